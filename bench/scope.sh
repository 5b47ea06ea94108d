#!/bin/sh
# bench/scope.sh - `coffre scope` over N synthetic audit entries (default
# 10,000,000, written through the audit module by build/bench_scope_gen)
# against `grep -c` of the same entries as JSON lines, in the same run: a
# scope by actor, by address, and by windows of 100 s and 1,000 s.  Each
# query: one warm-up, then 3 runs of each tool alternating; medians and
# min-max.  For scope, two times: the whole command (process start, records
# and trail opened, the index caught up, the query, its own durable audit
# entry and the trail's final checkpoint, the report) and the query alone as
# scope reports it.  CPU time (user + sys) beside each: the machine is
# shared, and wall time moves with its load.  Checks that both tools count
# the same entries.  grep's output goes to a file: GNU grep stops at the
# first match when its output is /dev/null.  Markdown on stdout, progress on
# stderr; everything in a mktemp directory under /tmp, removed at the end.
# SCOPE_DATA=DIR reuses a directory an earlier run kept (with DIR/range),
# for the queries only.
#
#   bench/scope.sh [BIN] [GEN] [N]
set -eu
BIN=${1:-build/coffre}
GEN=${2:-build/bench_scope_gen}
N=${3:-${SCOPE_ENTRIES:-10000000}}
# per entry: ~270 B of trail, ~320 B of JSON, ~230 B of index, sort space
need=$(( N / 1000 + 500 ))
avail=$(df -Pm /tmp | awk 'NR == 2 { print $4 }')
[ "$avail" -gt "$need" ] || { echo "bench/scope.sh: needs about $need MB free in /tmp ($avail)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/scope.sh: /usr/bin/time is needed" >&2; exit 1; }
WORK=$(mktemp -d /tmp/coffre-bench-scope-XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM
DATA=$WORK/data
export LC_ALL=C

now_ms() { date +%s%3N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
range() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%s–%s", v[1], v[NR] }'; }
iso() { date -u -d "@$(( $1 / 1000 ))" +%Y-%m-%dT%H:%M:%S; }
# cpu MS-FILE CMD...: runs CMD, appends its user+sys ms to MS-FILE
cpu() {
    f=$1; shift
    /usr/bin/time -f '%U %S' -o "$WORK/t" "$@"
    awk '{ printf "%d\n", ($1 + $2) * 1000 }' "$WORK/t" >> "$f"
}

if [ -n "${SCOPE_DATA:-}" ]; then
    DATA=$SCOPE_DATA
    read base last < "$DATA/range"
    N=$(wc -l < "$DATA/entries.jsonl")
    t0=0; t1=0; t2=0
else
    echo "bench/scope.sh: writing $N entries through the audit module" >&2
    t0=$(now_ms)
    "$GEN" "$DATA" "$N" > "$WORK/range"
    t1=$(now_ms)
    cp "$WORK/range" "$DATA/range"
    read base last < "$WORK/range"
    echo "bench/scope.sh: building the index (coffre audit reindex)" >&2
    : > "$WORK/ri"
    cpu "$WORK/ri" "$BIN" audit reindex --data "$DATA" >/dev/null
    t2=$(now_ms)
fi
trail_mb=$(( $(stat -c %s "$DATA/audit.db") / 1048576 ))
index_mb=$(( $(stat -c %s "$DATA/audit-index.db") / 1048576 ))
json_mb=$(( $(stat -c %s "$DATA/entries.jsonl") / 1048576 ))
mid=$(( base + (last - base) / 2 ))
actor=$(printf 'acct:%032x' 42)

# run LABEL SCOPE-ARGS -- GREP-ARGS
run() {
    label=$1; shift
    sargs=""
    while [ "$1" != "--" ]; do sargs="$sargs $1"; shift; done
    shift
    echo "bench/scope.sh: $label" >&2
    for f in s sc q g gc; do : > "$WORK/$f"; done
    # shellcheck disable=SC2086
    "$BIN" scope --data "$DATA" $sargs > "$WORK/out" 2>&1 || { cat "$WORK/out" >&2; exit 1; }
    want=$(grep -c "$@" "$DATA/entries.jsonl")
    for r in 1 2 3; do
        a=$(now_ms)
        # shellcheck disable=SC2086
        cpu "$WORK/sc" "$BIN" scope --data "$DATA" $sargs > "$WORK/out"
        b=$(now_ms)
        cpu "$WORK/gc" grep -c "$@" "$DATA/entries.jsonl" > "$WORK/gout"
        c=$(now_ms)
        echo $(( b - a )) >> "$WORK/s"
        echo $(( c - b )) >> "$WORK/g"
        sed -n 's/^- query: \([0-9.]*\) ms.*/\1/p' "$WORK/out" >> "$WORK/q"
    done
    got=$(sed -n 's/^- entries matched: \([0-9]*\).*/\1/p' "$WORK/out")
    [ "$got" = "$want" ] || { echo "bench/scope.sh: $label: scope counted $got entries, grep $want" >&2; exit 1; }
    s=$(median < "$WORK/s"); q=$(median < "$WORK/q"); g=$(median < "$WORK/g")
    printf '| %s | %s | %s (%s) | %s | %s (%s) | %s | %s | %s× | %s× |\n' "$label" "$got" \
        "$s" "$(range "$WORK/s")" "$(median < "$WORK/sc")" "$q" "$(range "$WORK/q")" \
        "$g" "$(median < "$WORK/gc")" \
        "$(awk -v s="$s" -v g="$g" 'BEGIN { printf "%.1f", g / (s > 0 ? s : 1) }')" \
        "$(awk -v s="$q" -v g="$g" 'BEGIN { printf "%.0f", g / (s > 0 ? s : 0.1) }')"
}

printf '| %s entries (trail %s MB, index %s MB, JSON lines %s MB) | entries | scope command, ms: median (min–max) | its CPU ms | scope query, ms | grep -c, ms | its CPU ms | command vs grep | query vs grep |\n' \
    "$(printf '%s' "$N" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')" "$trail_mb" "$index_mb" "$json_mb"
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
run "--actor (one of 20,000 accounts)" --actor "$actor" -- -F "\"actor\":\"$actor\""
run "--address (one of 5,000)" --address 10.0.0.42 -- -F '"addr":"10.0.0.42"'
W=$(( mid / 100000 * 100000 ))
run "--from/--to, 100 s" --from "$(iso "$W").000Z" --to "$(iso $(( W + 99999 ))).999Z" -- "\"time_ms\":$(( W / 100000 ))[0-9]\{5\},"
W=$(( mid / 1000000 * 1000000 ))
run "--from/--to, 1,000 s" --from "$(iso "$W").000Z" --to "$(iso $(( W + 999999 ))).999Z" -- "\"time_ms\":$(( W / 1000000 ))[0-9]\{6\},"
if [ -z "${SCOPE_DATA:-}" ]; then
    printf '\n| %s entries | wall, s | CPU, s |\n|---|---:|---:|\n' "$N"
    printf '| writing the trail (bench_scope_gen: audit_submit, group commit, and the JSON lines) | %s | |\n' "$(( (t1 - t0) / 1000 ))"
    printf '| building the index from scratch (coffre audit reindex) | %s | %s |\n' "$(( (t2 - t1) / 1000 ))" "$(( $(cat "$WORK/ri") / 1000 ))"
fi
