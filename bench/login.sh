#!/bin/sh
# bench/login.sh - sign-ins per second through the HTTP API at the default
# Argon2id cost (t=2, 19 MiB, 2 workers) vs raw crypto_pwhash_str_verify
# calls on the same 2 threads, in the same run; 3 rounds each, medians.
# Goal: >= 90% of the hashing bound.  Loopback only, bounded runs.
#
#   bench/login.sh [BIN] [SECONDS]
set -eu
BIN=${1:-build/coffre}
SECS=${2:-10}
RAW=${RAW:-build/bench_pwhash_raw}
WORK=$(mktemp -d /tmp/coffre-bench-login-XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT INT TERM
. "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || { echo "wrk is needed (make bench installs it)" >&2; exit 1; }

bench_setup_data
bench_start_server --hash-workers 2
# activate the account once (through the API, so it is what sign-in verifies)
bench_activate

: > "$WORK/api"; : > "$WORK/raw"; : > "$WORK/p50"; : > "$WORK/p99"
for round in 1 2 3; do
    wrk -t2 -c8 -d"${SECS}s" --latency -s "$(dirname "$0")/login.lua" "http://127.0.0.1:$PORT/api/v1/login" > "$WORK/wrk.$round"
    wrk_rate "$WORK/wrk.$round" >> "$WORK/api"
    wrk_latency "$WORK/wrk.$round" 50 >> "$WORK/p50"
    wrk_latency "$WORK/wrk.$round" 99 >> "$WORK/p99"
    "$RAW" 2 "$SECS" 2 19456 | awk '{ print $2 }' >> "$WORK/raw"
done
bench_stop_server
api=$(median < "$WORK/api"); raw=$(median < "$WORK/raw")
printf '| sign-ins, default Argon2id (t=2, 19 MiB), 2 workers | per s: median (min–max) |\n|---|---:|\n'
printf '| POST /api/v1/login (wrk, 8 connections, %s s x 3) | %s (%s–%s) |\n' "$SECS" "$api" \
    "$(sort -g "$WORK/api" | head -1)" "$(sort -g "$WORK/api" | tail -1)"
printf '| raw crypto_pwhash_str_verify, 2 threads | %s (%s–%s) |\n' "$raw" \
    "$(sort -g "$WORK/raw" | head -1)" "$(sort -g "$WORK/raw" | tail -1)"
printf '| ratio API / raw | %s |\n' "$(awk -v a="$api" -v b="$raw" 'BEGIN { printf "%.2f", a / b }')"
printf '| sign-in latency p50 / p99, ms (median of rounds) | %s / %s |\n' "$(median < "$WORK/p50")" "$(median < "$WORK/p99")"
