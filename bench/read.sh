#!/bin/sh
# bench/read.sh - authorised reads of one sealed pupil through the whole
# path (session + guard + policy + open + durable audit entry:
# GET /api/v1/students/ID, a pupil reading their own record) vs GET /healthz
# of the same server, with wrk and keep-alive, alternating 3 rounds of each,
# medians.  Goal (issue 5): >= 30 % of /healthz, with p99.
#
#   bench/read.sh [BIN] [SECONDS]
set -eu
BIN=${1:-build/coffre}
SECS=${2:-10}
WORK=$(mktemp -d /tmp/coffre-bench-read-XXXXXX)
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
    wrk -t2 -c50 -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/students/$id" > "$WORK/a.$round"
    wrk_rate "$WORK/a.$round" >> "$WORK/a"
    wrk_latency "$WORK/a.$round" 99 >> "$WORK/ap99"
    grep -q "Non-2xx" "$WORK/a.$round" && { echo "reads were refused:" >&2; cat "$WORK/a.$round" >&2; exit 1; }
done
bench_stop_server
h=$(median < "$WORK/h"); a=$(median < "$WORK/a")
printf '| 50 connections, %s s x 3, alternating | req/s: median (min–max) |\n|---|---:|\n' "$SECS"
printf '| GET /healthz | %s (%s–%s) |\n' "$h" "$(sort -g "$WORK/h" | head -1)" "$(sort -g "$WORK/h" | tail -1)"
printf '| GET /api/v1/students/ID (session, guard, policy, open 6 fields, durable audit) | %s (%s–%s) |\n' "$a" \
    "$(sort -g "$WORK/a" | head -1)" "$(sort -g "$WORK/a" | tail -1)"
printf '| ratio read / healthz | %s |\n' "$(awk -v a="$a" -v b="$h" 'BEGIN { printf "%.2f", a / b }')"
printf '| read p99 latency, ms (median of rounds) | %s |\n' "$(median < "$WORK/ap99")"
