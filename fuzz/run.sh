#!/bin/sh
# fuzz/run.sh DIR SECONDS TARGET... - what `make fuzz` runs once the
# libFuzzer binaries are in DIR (fuzz/README.md); scratch space and logs
# go under DIR too.
#
# For each target: fuzz SECONDS seconds starting from its saved corpus
# (fuzz/corpus/<name>/, <name> = the target without "fuzz_"), new inputs
# going to a scratch directory; then rebuild the saved corpus as the
# hand-written seeds (any file whose name is not a 40-hex SHA-1) plus the
# smallest set of other inputs that keeps all the coverage (libFuzzer's
# -merge=1), so the repository only grows with new coverage.  A crash,
# leak or timeout is moved to fuzz/crashes/<name>/, which is never
# replayed.  The input size limit is the target's "fuzz-max-len:" line.
#
# Prints one line per target and exits 1 if any target found a problem.
set -u

[ $# -ge 2 ] || { echo "usage: $0 DIR SECONDS TARGET..." >&2; exit 2; }
dir=$1
secs=$2
shift 2

# 0 when the file name is libFuzzer's (a SHA-1 of the contents)
generated() {
    b=$(basename "$1")
    case $b in *[!0-9a-f]*) return 1 ;; esac
    [ ${#b} -eq 40 ]
}

status=0
for t in "$@"; do
    name=${t#fuzz_}
    bin=$dir/$t
    corpus=fuzz/corpus/$name
    work=$dir/work/$name
    merged=$dir/merged/$name
    art=$dir/artifacts/$name
    log=$dir/$t.log
    maxlen=$(sed -n 's/^ \* fuzz-max-len: *\([0-9][0-9]*\).*/\1/p' "fuzz/$t.c" | head -n 1)
    [ -n "$maxlen" ] || maxlen=4096

    rm -rf "$work" "$merged" "$art"
    mkdir -p "$work" "$merged" "$art" "$corpus"
    "$bin" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 \
        -rss_limit_mb=2048 -use_value_profile=1 -print_final_stats=1 \
        -artifact_prefix="$art/" "$work" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=0

    crashes=0
    for f in "$art"/*; do
        [ -e "$f" ] || continue
        mkdir -p "fuzz/crashes/$name"
        mv "$f" "fuzz/crashes/$name/"
        crashes=$((crashes + 1))
    done

    # seeds first: what they cover is not added twice
    for f in "$corpus"/*; do
        [ -f "$f" ] || continue
        generated "$f" || cp "$f" "$merged/"
    done
    if "$bin" -merge=1 -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
            "$merged" "$corpus" "$work" >>"$log" 2>&1; then
        for f in "$corpus"/*; do
            [ -f "$f" ] && generated "$f" && rm -f "$f"
        done
        for f in "$merged"/*; do
            [ -f "$f" ] && generated "$f" && cp "$f" "$corpus/"
        done
    else
        echo "$t: merge failed (see $log); corpus left as it was" >&2
        status=1
    fi

    files=$(find "$corpus" -type f | wc -l)
    bytes=$(find "$corpus" -type f -exec cat {} + | wc -c)
    echo "$t: $execs executions in ${secs} s, corpus $files files ($bytes bytes), $crashes crashes"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        echo "$t: libFuzzer exited $rc; log: $log; inputs: fuzz/crashes/$name/" >&2
        status=1
    fi
done
exit $status
