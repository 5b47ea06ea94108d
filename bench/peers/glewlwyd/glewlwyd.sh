#!/bin/sh
# bench/peers/glewlwyd/glewlwyd.sh - Glewlwyd (Debian's glewlwyd 2.7, an
# OpenID Connect SSO server in C) as the peer of bench/compare.
#
# Sourced by bench/compare (functions gl_*), or run alone:
#
#   bench/peers/glewlwyd/glewlwyd.sh smoke    # start, add a user and a client, sign in, read, stop
#
# What it sets up, all under a temp dir ($GL_DIR), nothing under /etc or /var:
#   - an SQLite database made from Debian's own init script
#     (/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz: the schema, the
#     "database" user and client backend instances, the admin user
#     admin/password with scopes g_admin and g_profile);
#   - a configuration file: bind 127.0.0.1 only, a free port, no TLS,
#     console logging at WARNING to $GL_DIR/glewlwyd.log, the modules from
#     /usr/lib/glewlwyd;
#   - through the admin API (a session cookie from POST /api/auth/ as admin):
#     users (POST /api/user/) and an OIDC client (POST /api/client/:
#     confidential, authorization code, redirect URI on loopback, scope openid).
# It starts the server in the background and stops it by its PID (SIGTERM,
# then SIGKILL after 5 s).
#
# Password hashing, as measured here (not assumed): with SQLite, Glewlwyd's
# database user module stores PBKDF2-HMAC-SHA256 (nettle's
# pbkdf2_hmac_sha256; 32-byte digest, 16-character salt, base64) followed by
# ",<iterations>".  The iteration count is the module parameter
# "pbkdf2-iterations", absent from Debian's init script, so its default
# G_PBKDF2_ITERATOR_DEFAULT applies: 150,000 (src/glewlwyd.h upstream).  A
# user created here is stored as "...,150000"; gl_user_iterations reads that
# suffix back from the database so bench/compare prints what Glewlwyd really
# used.  (The admin user of the init script has a legacy hash with no suffix:
# 1,000 iterations.  The benchmark never signs in as admin except to set up.)
#
# Expects: GL_DIR (an existing empty directory), COFFRE_ROOT (the checkout,
# for scripts/install-deps.sh; default: the current directory).  Sets
# GL_PID, GL_PORT.

GL_INIT_SQL=${GL_INIT_SQL:-/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz}
GL_MODULES=${GL_MODULES:-/usr/lib/glewlwyd}
GL_PBKDF2_ITERATIONS_EXPECTED=150000

# gl_install: Glewlwyd (and what this script uses) from Debian, if missing.
gl_install() {
    if command -v glewlwyd >/dev/null 2>&1 && [ -f "$GL_INIT_SQL" ] && command -v curl >/dev/null 2>&1; then
        return 0
    fi
    "${COFFRE_ROOT:-.}/scripts/install-deps.sh" peer
}

# gl_free_port: prints a TCP port free on 127.0.0.1 right now.
gl_free_port() {
    node -e "const s = require('net').createServer(); s.listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); });"
}

# gl_setup: the database and the configuration file under $GL_DIR.
gl_setup() {
    rm -f "$GL_DIR/glewlwyd.db"
    gzip -dc "$GL_INIT_SQL" | sqlite3 "$GL_DIR/glewlwyd.db"
    GL_PORT=$(gl_free_port)
    cat > "$GL_DIR/glewlwyd.conf" <<EOF
# written by bench/peers/glewlwyd/glewlwyd.sh; loopback only, no TLS
port=$GL_PORT
bind_address="127.0.0.1"
external_url="http://127.0.0.1:$GL_PORT/"
login_url="login.html"
api_prefix="api"
allow_origin="*"
log_mode="console"
log_level="WARNING"
cookie_secure=0
cookie_same_site="empty"
session_expiration=2419200
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="$GL_MODULES/user"
client_module_path="$GL_MODULES/client"
user_auth_scheme_module_path="$GL_MODULES/scheme"
plugin_module_path="$GL_MODULES/plugin"
hash_algorithm="SHA512"
database =
{
  type = "sqlite3"
  path = "$GL_DIR/glewlwyd.db"
};
EOF
}

# gl_start: starts Glewlwyd, waits (at most 10 s) until GET /config answers.
gl_start() {
    glewlwyd --config-file="$GL_DIR/glewlwyd.conf" >>"$GL_DIR/glewlwyd.log" 2>&1 &
    GL_PID=$!
    i=0
    while [ $i -lt 100 ]; do
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$GL_PORT/config"; then
            return 0
        fi
        kill -0 "$GL_PID" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    echo "glewlwyd did not start:" >&2
    cat "$GL_DIR/glewlwyd.log" >&2
    return 1
}

# gl_stop: SIGTERM to our PID, SIGKILL after 5 s; GL_EXIT: its exit status
# (2.7.5 here sometimes dies of SIGSEGV while shutting down after load: 139).
gl_stop() {
    GL_EXIT=""
    [ -n "${GL_PID:-}" ] || return 0
    kill -TERM "$GL_PID" 2>/dev/null || { GL_PID=""; return 0; }
    i=0
    while kill -0 "$GL_PID" 2>/dev/null && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$GL_PID" 2>/dev/null || true
    GL_EXIT=0
    wait "$GL_PID" 2>/dev/null || GL_EXIT=$?
    GL_PID=""
}

# gl_signin USER PASSWORD: prints the session cookie's value (empty if refused).
gl_signin() {
    curl -s -o /dev/null -D - --max-time 10 -H 'Content-Type: application/json' \
         --data "{\"username\":\"$1\",\"password\":\"$2\"}" "http://127.0.0.1:$GL_PORT/api/auth/" |
        sed -n 's/^[Ss]et-[Cc]ookie: GLEWLWYD2_SESSION_ID=\([^;]*\);.*/\1/p' | tr -d '\r'
}

# gl_admin POST|PUT PATH JSON: an admin API call; fails unless 200.  The
# g_admin scope wants a password younger than 10 minutes
# (gs_password_max_age 600 in the init script): on 401, sign in again once.
gl_admin() {
    for attempt in 1 2; do
        if [ -z "${GL_ADMIN_COOKIE:-}" ]; then
            GL_ADMIN_COOKIE=$(gl_signin admin password)
            [ -n "$GL_ADMIN_COOKIE" ] || { echo "glewlwyd: admin sign-in failed" >&2; return 1; }
        fi
        code=$(curl -s -o "$GL_DIR/admin.out" -w '%{http_code}' --max-time 30 -X "$1" \
                    -H "Cookie: GLEWLWYD2_SESSION_ID=$GL_ADMIN_COOKIE" -H 'Content-Type: application/json' \
                    --data "$3" "http://127.0.0.1:$GL_PORT/api$2")
        [ "$code" = 401 ] && [ "$attempt" = 1 ] && { GL_ADMIN_COOKIE=""; continue; }
        [ "$code" = 200 ] || { echo "glewlwyd: $1 /api$2 -> $code: $(cat "$GL_DIR/admin.out")" >&2; return 1; }
        return 0
    done
}

# gl_user_add USER PASSWORD NAME EMAIL: a user of the database backend with
# the profile and openid scopes.
gl_user_add() {
    gl_admin POST /user/ "{\"username\":\"$1\",\"password\":\"$2\",\"name\":\"$3\",\"email\":\"$4\",\"scope\":[\"g_profile\",\"openid\"],\"enabled\":true}"
}

# gl_client_add CLIENT_ID SECRET: a confidential OIDC client (code flow).
gl_client_add() {
    gl_admin POST /client/ "{\"client_id\":\"$1\",\"name\":\"coffre bench client\",\"confidential\":true,\"password\":\"$2\",\"redirect_uri\":[\"http://127.0.0.1/callback\"],\"authorization_type\":[\"code\",\"refresh_token\"],\"scope\":[\"openid\"],\"enabled\":true}"
}

# gl_user_iterations USER: the PBKDF2 iteration count stored with USER's hash.
gl_user_iterations() {
    sqlite3 "$GL_DIR/glewlwyd.db" "SELECT guw_password FROM g_user_password JOIN g_user USING (gu_id) WHERE gu_username = '$1'" |
        sed -n 's/.*,\([0-9]*\)$/\1/p'
}

# gl_cpu_ticks PID / gl_rss_kib PID / gl_hwm_kib PID: from /proc.
gl_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
gl_rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
gl_hwm_kib() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status"; }

if [ "${0##*/}" = glewlwyd.sh ] && [ "${1:-}" = smoke ]; then
    set -eu
    COFFRE_ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
    GL_DIR=$(mktemp -d /tmp/coffre-peer-glewlwyd-XXXXXX)
    trap 'gl_stop; rm -rf "$GL_DIR"' EXIT INT TERM
    gl_install
    gl_setup
    gl_start
    gl_user_add eleve.bench 'girafe tambour nuage citron' 'Camille Exemple' 'camille.exemple@example.org'
    gl_client_add coffre-bench 'secret du client de banc'
    it=$(gl_user_iterations eleve.bench)
    c=$(gl_signin eleve.bench 'girafe tambour nuage citron')
    [ -n "$c" ] || { echo "smoke: sign-in refused" >&2; exit 1; }
    curl -s -f --max-time 5 -H "Cookie: GLEWLWYD2_SESSION_ID=$c" "http://127.0.0.1:$GL_PORT/api/profile_list" >/dev/null
    echo "glewlwyd $(glewlwyd --help 2>&1 | sed -n 's/^Version //p') on 127.0.0.1:$GL_PORT (pid $GL_PID): user and client added, sign-in and profile read OK; PBKDF2-SHA256 iterations stored: $it (expected $GL_PBKDF2_ITERATIONS_EXPECTED)"
    [ "$it" = "$GL_PBKDF2_ITERATIONS_EXPECTED" ] || echo "note: iterations differ from the documented default" >&2
fi
