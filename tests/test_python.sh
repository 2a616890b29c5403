#!/usr/bin/env bash
# The Python package's suite (python/tests) as one test program of tests/run.sh: runs it with
# a python3 that has numpy (Debian's /usr/bin/python3 first: python3-numpy), against
# FQLM_LIB (default build/libfqlm.so) and FQLM_BIN, and prints "RESULT test_python passed failed".
# Without python3 or numpy it says so and counts nothing.
set -u
export FQLM_LIB=${FQLM_LIB:-build/libfqlm.so}
py=
for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import numpy' >/dev/null 2>&1; then py=$p; break; fi
done
if [ -z "$py" ]; then
    echo "test_python: skipped: no python3 with numpy (Debian: apt-get install python3-numpy)"
    echo "RESULT test_python 0 0"
    exit 0
fi
out=$("$py" -m unittest discover -s python/tests -t python 2>&1); rc=$?
printf '%s\n' "$out" | tail -n 60
ran=$(printf '%s\n' "$out" | sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p' | tail -n 1)
ran=${ran:-0}
count() { printf '%s\n' "$out" | grep -E '^(OK|FAILED)' | tail -n 1 | grep -o "$1=[0-9]*" | cut -d= -f2; }
f=$(count failures); e=$(count errors); s=$(count skipped)
f=$((${f:-0} + ${e:-0})); s=${s:-0}
[ "$ran" -eq 0 ] && f=$((f + 1))              # a suite that did not run is a failure
[ $rc -ne 0 ] && [ $f -eq 0 ] && f=1
echo "RESULT test_python $((ran - f - s < 0 ? 0 : ran - f - s)) $f"
[ $f -eq 0 ]
