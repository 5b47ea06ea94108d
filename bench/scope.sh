#!/bin/sh
# bench/scope.sh - `coffre scope` over N synthetic audit entries (default
# 10,000,000, written through the audit module by build/bench_scope_gen)
# against `grep -c` of the same entries as JSON lines, in the same run: a
# scope by actor, by address and by a time window of 1,000 s.  Each query:
# one warm-up, then 3 runs of each tool alternating; medians, min-max.
# scope's time is the whole command (start, records and trail opened, the
# index caught up, the query, its own durable audit entry, the report).
# Checks that both count the same entries.  Markdown on stdout, progress on
# stderr; everything under a mktemp directory in /tmp, removed at the end.
#
#   bench/scope.sh [BIN] [GEN] [N]
set -eu
BIN=${1:-build/coffre}
GEN=${2:-build/bench_scope_gen}
N=${3:-${SCOPE_ENTRIES:-10000000}}
# per entry: ~330 B of trail, ~330 B of JSON, ~200 B of index
need=$(( N / 1000 + 500 ))
avail=$(df -Pm /tmp | awk 'NR == 2 { print $4 }')
[ "$avail" -gt "$need" ] || { echo "bench/scope.sh: needs about $need MB free in /tmp ($avail)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/coffre-bench-scope-XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM
export LC_ALL=C

now_ms() { date +%s%3N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
iso() { date -u -d "@$(( $1 / 1000 ))" +%Y-%m-%dT%H:%M:%S; }

echo "bench/scope.sh: writing $N entries through the audit module" >&2
t0=$(now_ms)
"$GEN" "$WORK/data" "$N" > "$WORK/range"
t1=$(now_ms)
read base last < "$WORK/range"
echo "bench/scope.sh: building the index (coffre audit reindex)" >&2
"$BIN" audit reindex --data "$WORK/data" >/dev/null
t2=$(now_ms)
trail_mb=$(( $(stat -c %s "$WORK/data/audit.db") / 1048576 ))
index_mb=$(( $(stat -c %s "$WORK/data/audit-index.db") / 1048576 ))
json_mb=$(( $(stat -c %s "$WORK/data/entries.jsonl") / 1048576 ))

# the window: 1,000 s in the middle of the trail, aligned so that grep can
# match it by the time's leading digits
W=$(( (base + (last - base) / 2) / 1000000 * 1000000 ))
actor=$(printf 'acct:%032x' 42)

# run LABEL SCOPE-ARGS -- GREP-ARGS
run() {
    label=$1; shift
    sargs=""
    while [ "$1" != "--" ]; do sargs="$sargs $1"; shift; done
    shift
    : > "$WORK/s"; : > "$WORK/g"
    # shellcheck disable=SC2086
    "$BIN" scope --data "$WORK/data" $sargs > "$WORK/out" 2>&1 || { cat "$WORK/out" >&2; exit 1; }
    grep -c "$@" "$WORK/data/entries.jsonl" > "$WORK/gc"
    for r in 1 2 3; do
        a=$(now_ms)
        # shellcheck disable=SC2086
        "$BIN" scope --data "$WORK/data" $sargs > "$WORK/out"
        b=$(now_ms)
        grep -c "$@" "$WORK/data/entries.jsonl" > /dev/null
        c=$(now_ms)
        echo $(( b - a )) >> "$WORK/s"
        echo $(( c - b )) >> "$WORK/g"
    done
    got=$(sed -n 's/^- entries matched: \([0-9]*\).*/\1/p' "$WORK/out")
    want=$(cat "$WORK/gc")
    [ "$got" = "$want" ] || { echo "bench/scope.sh: $label: scope counted $got entries, grep $want" >&2; exit 1; }
    s=$(median < "$WORK/s"); g=$(median < "$WORK/g")
    printf '| %s | %s | %s (%s–%s) | %s (%s–%s) | %s× |\n' "$label" "$got" \
        "$s" "$(sort -n "$WORK/s" | head -1)" "$(sort -n "$WORK/s" | tail -1)" \
        "$g" "$(sort -n "$WORK/g" | head -1)" "$(sort -n "$WORK/g" | tail -1)" \
        "$(awk -v s="$s" -v g="$g" 'BEGIN { printf "%.0f", g / (s > 0 ? s : 1) }')"
}

printf '| %s audit entries (trail %s MB, index %s MB, JSON %s MB) | entries | coffre scope, ms | grep -c on JSON lines, ms | speed-up |\n' \
    "$(printf '%s' "$N" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')" "$trail_mb" "$index_mb" "$json_mb"
printf '|---|---:|---:|---:|---:|\n'
run "--actor (one of 20,000 accounts)" --actor "$actor" -- -F "\"actor\":\"$actor\""
run "--address (one of 5,000)" --address 10.0.0.42 -- -F '"addr":"10.0.0.42"'
run "--from/--to (1,000 s)" --from "$(iso "$W").000Z" --to "$(iso $(( W + 999999 ))).999Z" -- "\"time_ms\":$(( W / 1000000 ))[0-9]\{6\},"
printf '| writing the trail (audit_submit, group commit) | %s | %s s | | |\n' "$N" "$(( (t1 - t0) / 1000 ))"
printf '| building the index (audit reindex, from scratch) | %s | %s s | | |\n' "$N" "$(( (t2 - t1) / 1000 ))"
