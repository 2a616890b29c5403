#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS on a scratch copy of its seed corpus (the repo's
# corpus is never modified) and prints executions and coverage per target from libFuzzer's
# final stats. Crash inputs are kept in BIN_DIR/../artifacts/. Exit status 1 when any target
# crashed, leaked, timed out or ran out of memory.
# Usage: fuzz/run.sh BIN_DIR SECONDS TARGET... (from the repository root)
set -u
bdir=$1; secs=$2; shift 2
art="$bdir/../artifacts"
mkdir -p "$art"
summary="$bdir/../summary.txt"
fail=0
lines=()
for t in "$@"; do
    name=${t#fuzz_}
    work=$(mktemp -d)
    [ -d "fuzz/corpus/$name" ] && cp -R "fuzz/corpus/$name/." "$work/"
    seeds=$(find "$work" -type f | wc -l)
    log="$bdir/../$t.log"
    "$bdir/$t" -max_total_time="$secs" -print_final_stats=1 -timeout=30 -rss_limit_mb=2048 \
        -artifact_prefix="$art/$t-" "$work" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]*' | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -E '^#[0-9]+' "$log" | grep -o 'ft: [0-9]*' | tail -n 1 | cut -d' ' -f2)
    corp=$(find "$work" -type f | wc -l)
    rm -rf "$work"
    status=ok
    if [ $rc -ne 0 ]; then
        status="FAILED (exit $rc)"
        fail=1
        grep -E 'ERROR|SUMMARY|fuzz:|internal error|Test unit written' "$log" | head -n 20
        echo "$t: see $log"
    fi
    lines+=("$(printf '%-16s %10s execs %8s/s  cov %6s  ft %6s  corpus %4s -> %-5s %s' \
        "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "$seeds" "$corp" "$status")")
done
{
    echo "fuzz: $secs s per target ($(date -u +%Y-%m-%d))"
    printf '%s\n' "${lines[@]}"
} | tee "$summary"
exit $fail
