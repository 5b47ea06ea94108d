#!/bin/sh
# bench/http.sh - an authenticated no-op (GET /api/v1/session: session
# lookup + a durable audit entry) vs GET /healthz, with wrk on loopback,
# alternating 3 rounds of each, medians.  Goal: >= 50% of /healthz.
#
#   bench/http.sh [BIN] [SECONDS]
set -eu
BIN=${1:-build/coffre}
SECS=${2:-10}
WORK=$(mktemp -d /tmp/coffre-bench-http-XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT INT TERM
. "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || { echo "wrk is needed (make bench installs it)" >&2; exit 1; }

bench_setup_data
bench_start_server --hash-workers 2
bench_activate

: > "$WORK/h"; : > "$WORK/a"; : > "$WORK/ap99"
for round in 1 2 3; do
    wrk -t2 -c50 -d"${SECS}s" "http://127.0.0.1:$PORT/healthz" > "$WORK/h.$round"
    wrk_rate "$WORK/h.$round" >> "$WORK/h"
    wrk -t2 -c50 -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/session" > "$WORK/a.$round"
    wrk_rate "$WORK/a.$round" >> "$WORK/a"
    wrk_latency "$WORK/a.$round" 99 >> "$WORK/ap99"
done
bench_stop_server
h=$(median < "$WORK/h"); a=$(median < "$WORK/a")
entries=$(sqlite3 "$WORK/data/audit.db" "SELECT count(*) FROM entries WHERE action = 'session.read'")
printf '| 50 connections, %s s x 3, alternating | req/s: median (min–max) |\n|---|---:|\n' "$SECS"
printf '| GET /healthz | %s (%s–%s) |\n' "$h" "$(sort -g "$WORK/h" | head -1)" "$(sort -g "$WORK/h" | tail -1)"
printf '| GET /api/v1/session (session lookup + durable audit entry) | %s (%s–%s) |\n' "$a" \
    "$(sort -g "$WORK/a" | head -1)" "$(sort -g "$WORK/a" | tail -1)"
printf '| ratio authenticated / healthz | %s |\n' "$(awk -v a="$a" -v b="$h" 'BEGIN { printf "%.2f", a / b }')"
printf '| authenticated p99 latency, ms (median of rounds) | %s |\n' "$(median < "$WORK/ap99")"
printf '| audit entries written by the authenticated runs | %s |\n' "$entries"
