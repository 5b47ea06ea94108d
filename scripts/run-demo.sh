#!/bin/sh
# run-demo.sh BIN DATA LISTEN - what `make run` does after building: create
# a demo data directory once (synthetic people only) with a few demo
# accounts, show how to sign in, then serve on LISTEN (127.0.0.1 only).
set -eu
bin=$1
data=$2
listen=${3:-127.0.0.1:8080}
accounts="$data/demo-accounts.txt"

provision() {   # role person-or-academie-args...
    out=$("$bin" account provision --data "$data" "$@")
    login=$(printf '%s\n' "$out" | sed -n 's/^login //p')
    code=$(printf '%s\n' "$out" | sed -n 's/^activation code \([^ ]*\).*/\1/p')
    printf '%-16s %-28s %s\n' "$2" "$login" "$code" >> "$accounts"
}

person() {      # kind lookup...
    "$bin" "$@" --data "$data" | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1
}

if [ ! -f "$data/keyring" ]; then
    echo "== creating demo data in '$data' (synthetic: département 099, e-mails in .invalid)"
    "$bin" init --data "$data" --academie 10 --academie 02
    "$bin" demo-data --data "$data" --establishments 3 --students-per 120 --seed 42
    umask 077
    printf '# demo accounts (synthetic); activation codes are single use\n%-16s %-28s %s\n' \
        role login "activation code" > "$accounts"
    provision --role student --person "$(person student find --ine 0999000001S)"
    provision --role student --person "$(person student find --ine 0999000002T)"
    provision --role academie_admin --academie 10 --login admin.lyon
fi

cat <<EOT

== demo accounts ($accounts)
$(cat "$accounts")

In a browser: open http://localhost:${listen##*:}/activate, type a login and
its activation code, then choose your own long passphrase; you land on "my
account" (the administrator first sets up a second factor: an authenticator
app, or a security key). Next time: http://localhost:${listen##*:}/signin
(use "localhost": security keys are bound to that name).

Or with curl (activate, then sign in):

  curl -s -X POST http://$listen/api/v1/activate -H 'Content-Type: application/json' \\
       -d '{"login":"LOGIN","code":"CODE","password":"a long passphrase of yours"}'
  curl -s -c cookies -X POST http://$listen/api/v1/login -H 'Content-Type: application/json' \\
       -d '{"login":"LOGIN","password":"a long passphrase of yours"}'
  curl -s -b cookies http://$listen/api/v1/session

The CLI works on '$data' when the server is stopped ('$bin --help').

== serving on http://$listen (Ctrl-C stops; the audit trail is signed on exit)
EOT
exec "$bin" serve --data "$data" --listen "$listen"
