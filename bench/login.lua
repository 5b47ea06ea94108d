-- login.lua - wrk script: POST a sign-in with the right password.
-- LOGIN and PASSWORD come from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"login":"%s","password":"%s"}', os.getenv("LOGIN"), os.getenv("PASSWORD"))
