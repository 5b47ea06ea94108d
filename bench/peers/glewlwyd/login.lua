-- login.lua - wrk script: Glewlwyd's password sign-in (POST /api/auth/)
-- with the right password.  GL_USER and GL_PASSWORD come from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"username":"%s","password":"%s"}', os.getenv("GL_USER"), os.getenv("GL_PASSWORD"))
