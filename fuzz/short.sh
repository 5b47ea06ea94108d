#!/bin/sh
# fuzz/short.sh DIR SECONDS TARGET... - what `make test` runs (fuzz-short):
# each target SECONDS seconds from its saved corpus, new inputs to a
# scratch directory under DIR/short (the saved corpus is left alone).  A
# crash, leak or timeout is kept in DIR/short/artifacts/<name>/ and fails.
# Prints one line per target: executions, and executions per second.
set -u
[ $# -ge 2 ] || { echo "usage: $0 DIR SECONDS TARGET..." >&2; exit 2; }
dir=$1
secs=$2
shift 2
status=0
total=0
for t in "$@"; do
    name=${t#fuzz_}
    work=$dir/short/work/$name
    art=$dir/short/artifacts/$name
    log=$dir/short/$t.log
    maxlen=$(sed -n 's/^ \* fuzz-max-len: *\([0-9][0-9]*\).*/\1/p' "fuzz/$t.c" | head -n 1)
    [ -n "$maxlen" ] || maxlen=4096
    rm -rf "$work" "$art"
    mkdir -p "$work" "$art"
    "$dir/$t" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/" "$work" "fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=0
    total=$((total + execs))
    echo "$t: $execs executions in $secs s ($((execs / secs))/s)"
    if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$art")" ]; then
        echo "$t: libFuzzer exited $rc; log: $log; inputs: $art/" >&2
        status=1
    fi
done
echo "fuzz-short: $# targets, $total executions, $([ $status -eq 0 ] && echo 'no crash' || echo 'FAILED')"
exit $status
