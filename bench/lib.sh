# lib.sh - shared by the server benchmarks: a data directory with one active
# account, a server on a free loopback port, wrk runs, medians.
# Sourced; expects BIN (the coffre binary) and WORK (a temp dir).

PASSWORD='girafe tambour nuage citron'

bench_setup_data() {
    "$BIN" init --data "$WORK/data" --academie 10 >/dev/null
    "$BIN" demo-data --data "$WORK/data" --establishments 1 --students-per 20 --guardians-per 0 >/dev/null
    id=$("$BIN" student find --data "$WORK/data" --ine 0999000001S | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p')
    out=$("$BIN" account provision --data "$WORK/data" --role student --person "$id")
    LOGIN=$(printf '%s\n' "$out" | sed -n 's/^login //p')
    CODE=$(printf '%s\n' "$out" | sed -n 's/^activation code \([^ ]*\).*/\1/p')
    export LOGIN PASSWORD
}

# bench_start_server EXTRA-ARGS...: sets PID and PORT
bench_start_server() {
    # serve refuses root without --user (docs/hardening.md): as root, serve as nobody
    if [ "$(id -u)" = 0 ]; then
        chmod 711 "$WORK" && chown -R nobody: "$WORK/data" && set -- "$@" --user nobody
    fi
    "$BIN" serve --data "$WORK/data" --listen 127.0.0.1:0 "$@" 2>"$WORK/server.log" &
    PID=$!
    i=0
    PORT=""
    while [ -z "$PORT" ] && [ $i -lt 100 ]; do
        sleep 0.1
        PORT=$(sed -n 's/.*"msg":"serving".*"port":"\([0-9]*\)".*/\1/p' "$WORK/server.log" | head -1)
        i=$((i + 1))
    done
    [ -n "$PORT" ] || { echo "server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }
}

bench_stop_server() {
    kill -TERM "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
}

# median of the numbers on stdin
median() {
    sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# wrk_rate OUTPUT-FILE: requests/s from a wrk report
wrk_rate() {
    sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1"
}

# wrk_latency OUTPUT-FILE PERCENT: latency in ms from --latency output
wrk_latency() {
    awk -v p="$2%" '$1 == p { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
                                 else if (v ~ /ms$/) sub(/ms$/, "", v);
                                 else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } print v }' "$1"
}

# bench_activate: activates the account set up by bench_setup_data through
# the API and sets TOKEN to its session's bearer token.
bench_activate() {
    TOKEN=$(CODE="$CODE" PORT="$PORT" node -e "
const http = require('http');
const b = JSON.stringify({ login: process.env.LOGIN, code: process.env.CODE,
                           password: process.env.PASSWORD, want_token: true });
const r = http.request({ host: '127.0.0.1', port: Number(process.env.PORT), method: 'POST',
                         path: '/api/v1/activate',
                         headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) } },
  (res) => { let d = ''; res.on('data', (c) => d += c);
             res.on('end', () => { if (res.statusCode !== 200) process.exit(1); console.log(JSON.parse(d).token); }); });
r.end(b);")
    [ -n "$TOKEN" ] || { echo "activation failed: no session token" >&2; exit 1; }
}
