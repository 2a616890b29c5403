#!/usr/bin/env bash
# Runs every test program in build/tests and prints the total as "N passed, N failed".
# Usage: tests/run.sh [BUILD_DIR]  (run from the repository root)
set -u
bdir=${1:-build}
passed=0; failed=0; broken=0
for t in "$bdir"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    out=$("$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n 1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out" | tail -n 20
        echo "$name: no RESULT line (exit $rc): counted as 1 failure"
        failed=$((failed + 1)); broken=1; continue
    fi
    read -r _ _ p f <<<"$line"
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ] || [ $rc -ne 0 ]; then
        printf '%s\n' "$out" | grep -v '^RESULT ' | tail -n 40
        [ "$f" -eq 0 ] && failed=$((failed + 1))
        echo "$name: $p passed, $f failed (exit $rc)"
    else
        echo "$name: $p passed"
        printf '%s\n' "$out" | grep '^SKIP ' || true
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
