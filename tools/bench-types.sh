#!/usr/bin/env bash
# fqlm pp/tg speed per weight type beside llama.cpp / ik_llama.cpp (LLAMA_BENCH=, IK_LLAMA_BENCH=)
# as a markdown table; tools/bench_types.py does the work (python3, standard library only).
# Example: LLAMA_BENCH=/path/llama-bench tools/bench-types.sh --dir /work/bench -p 512 -n 128 -t 2
command -v python3 >/dev/null 2>&1 || { echo "bench-types: needs python3 (not found on PATH)" >&2; exit 2; }
exec python3 "$(dirname "$0")/bench_types.py" "$@"
