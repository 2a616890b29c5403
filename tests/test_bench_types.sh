#!/usr/bin/env bash
# tools/bench-types.sh as one test program of tests/run.sh: a tiny model (stories260K, -p 8
# -n 4 -r 1), a stand-in llama-bench that prints llama-bench's JSON, and the error paths
# (missing model, missing program, failing llama-bench). Prints "RESULT test_bench_types P F".
# Skips itself (counts nothing) without python3.
set -u
fq=${FQLM_BIN:-build/fqlm}
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
if ! command -v python3 >/dev/null 2>&1; then
    echo "test_bench_types: skipped: no python3"
    echo "RESULT test_bench_types 0 0"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
quick=(--fqlm "$fq" -p 8 -n 4 -r 1 -t 1 --fqlm-args "--bw-mib 8 --no-warmup")

# 1. fqlm alone: one row with numbers in every fqlm column, the others "-"
out=$(tools/bench-types.sh "${quick[@]}" -m models/stories260K.gguf 2>"$tmp/err"); rc=$?
[ $rc -eq 0 ] && ok || bad "plain run exit $rc: $(cat "$tmp/err")"
row=$(printf '%s\n' "$out" | grep '^| stories260K ')
if [[ "$row" =~ ^\|\ stories260K\ \|\ ([0-9]+\.[0-9])\ \|\ -\ \|\ -\ \|\ -\ \|\ -\ \|\ ([0-9]+\.[0-9]{2})\ \|\ -\ \|\ -\ \|\ -\ \|\ ([0-9.]+%|-)\ \|\ [0-9a-f]{16}\ \|$ ]]; then
    ok
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0 and float(sys.argv[2]) > 0 else 1)" \
        "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" && ok || bad "zero speeds in: $row"
else
    bad "no stories260K row with figures in:"; printf '%s\n' "$out"
fi
printf '%s\n' "$out" | grep -q '^| type | fqlm pp8 | llama.cpp pp8 |' && ok || bad "no table header"
printf '%s\n' "$out" | grep -q '^- CPU: .*fqlm kernels: ' && ok || bad "no CPU line"

# 2. a stand-in llama-bench: its figures land in the llama.cpp columns, ratios computed,
#    and it was given the same -p/-n/-t/-r
cat >"$tmp/llama-bench" <<'EOS'
#!/bin/sh
echo "$@" > "$(dirname "$0")/args"
echo "some log line" >&2
printf '[\n {"n_prompt": 8, "n_gen": 0, "avg_ts": 2.5, "stddev_ts": 0.1},\n {"n_prompt": 16, "n_gen": 0, "avg_ts": 2.0, "stddev_ts": 0.1},\n {"n_prompt": 0, "n_gen": 4, "avg_ts": 0.5, "stddev_ts": 0}\n]\n'
EOS
chmod +x "$tmp/llama-bench"
out=$(LLAMA_BENCH="$tmp/llama-bench" tools/bench-types.sh "${quick[@]}" -p 8,16 -m models/stories260K.gguf \
      --json "$tmp/r.json" -o "$tmp/t.md" 2>"$tmp/err"); rc=$?
[ $rc -eq 0 ] && ok || bad "stand-in run exit $rc: $(cat "$tmp/err")"
printf '%s\n' "$out" | grep -Eq '^\| stories260K \| [0-9.]+ \| 2\.5 \| - \| [0-9.]+x \| - \| [0-9.]+ \| 0\.50 \| - \| [0-9.]+x \|' && ok ||
    { bad "stand-in figures not in the table:"; printf '%s\n' "$out"; }
grep -q -- '-p 8,16 -n 4 -t 1 -r 1 -ctk f16 -ctv f16 -o json' "$tmp/args" && ok || bad "llama-bench args: $(cat "$tmp/args")"
printf '%s\n' "$out" | grep -q '^| type | fqlm pp8 | llama.cpp pp8 | ik pp8 | fqlm pp16 ' && ok || bad "no long-context table"
cmp -s <(printf '%s\n' "$out") "$tmp/t.md" && ok || bad "-o file differs from stdout"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); r=d['rows'][0]; sys.exit(0 if r['llama_cpp']['pp16']['tps']==2.0 and r['fqlm']['tg4']['tps']>0 else 1)" \
    "$tmp/r.json" && ok || bad "--json content"

# 3. errors: a missing model gives an error row and exit 1, not a crash
out=$(tools/bench-types.sh "${quick[@]}" -m "$tmp/nope.gguf" -m models/stories260K.gguf 2>"$tmp/err"); rc=$?
[ $rc -eq 1 ] && ok || bad "missing model: exit $rc (want 1)"
grep -q "no model file $tmp/nope.gguf" "$tmp/err" && ok || bad "missing model message: $(cat "$tmp/err")"
printf '%s\n' "$out" | grep -q '^| stories260K | [0-9]' && ok || bad "the good model's row is missing after a bad one"
#    a model fqlm cannot load (not GGUF): fqlm's reason is passed on
echo "not a gguf" > "$tmp/bad.gguf"
tools/bench-types.sh "${quick[@]}" -m "$tmp/bad.gguf" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] && grep -q "fqlm bench on $tmp/bad.gguf failed" "$tmp/err" && ok || bad "bad model: exit $rc: $(cat "$tmp/err")"
#    a missing llama-bench program: usage error before any run
LLAMA_BENCH="$tmp/no-such-bench" tools/bench-types.sh "${quick[@]}" -m models/stories260K.gguf >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "LLAMA_BENCH: no such program: $tmp/no-such-bench" "$tmp/err" && ok || bad "missing llama-bench: exit $rc: $(cat "$tmp/err")"
#    a llama-bench that fails: its cells read error, exit 1, its stderr quoted
printf '#!/bin/sh\necho "error: failed to load model" >&2\nexit 3\n' > "$tmp/failing-bench"; chmod +x "$tmp/failing-bench"
out=$(LLAMA_BENCH="$tmp/failing-bench" tools/bench-types.sh "${quick[@]}" -m models/stories260K.gguf 2>"$tmp/err"); rc=$?
[ $rc -eq 1 ] && grep -q "failed (exit 3): error: failed to load model" "$tmp/err" && ok || bad "failing llama-bench: exit $rc: $(cat "$tmp/err")"
printf '%s\n' "$out" | grep -Eq '^\| stories260K \| [0-9.]+ \| error \|' && ok || { bad "no error cell:"; printf '%s\n' "$out"; }
#    bad option values
tools/bench-types.sh "${quick[@]}" -p x -m models/stories260K.gguf >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "^bench-types: -p: 'x'" "$tmp/err" && ok || bad "bad -p: exit $rc: $(cat "$tmp/err")"

echo "RESULT test_bench_types $pass $fail"
[ $fail -eq 0 ]
