#!/usr/bin/env python3
"""What a Python hook costs: one evaluation of N tokens with a numpy bf16 hook on one node of
every layer, against the same evaluation without it (two contexts, alternated, best of R).
Prints wall and CPU time of each pass and the time spent inside the hooks.

    make python && PYTHONPATH=python python3 python/examples/hook_overhead.py MODEL \
        [--tokens 512] [--node ffn_norm] [--threads 2] [--reps 3]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fqlm  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--tokens", type=int, default=512)
ap.add_argument("--node", default="ffn_norm")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=3)
a = ap.parse_args()

m = fqlm.Model(a.model)
rng = np.random.default_rng(1)
ids = [m.bos] + [int(t) for t in rng.integers(3, m.n_vocab, a.tokens - 1)]
inside = {"s": 0.0, "calls": 0}


def bf16(name, layer, x):
    t = time.perf_counter()
    u = x.view(np.uint32)
    u[:] = ((u.astype(np.uint64) + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    inside["s"] += time.perf_counter() - t
    inside["calls"] += 1


wall = {"plain": [], "hook": []}
cpu = {"plain": [], "hook": []}
with m.context(n_ctx=a.tokens, threads=a.threads) as plain, m.context(n_ctx=a.tokens, threads=a.threads) as hooked:
    hooked.hook(a.node + "@*", bf16)
    plain.logits(ids[:8])
    hooked.logits(ids[:8])  # warm-up
    inside["s"], inside["calls"] = 0.0, 0
    for r in range(a.reps):
        for k, c in (("plain", plain), ("hook", hooked)):
            t0, c0 = time.perf_counter(), time.process_time()
            c.logits(ids)
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
            print("%-5s wall %6.2f s  cpu %6.2f s" % (k, wall[k][-1], cpu[k][-1]), flush=True)
print("%s, %d tokens, %d threads, hook on %s@* (%d layers)" % (os.path.basename(a.model), a.tokens, a.threads,
                                                              a.node, m.n_layer))
for k in ("plain", "hook"):
    print("  %-5s best of %d: wall %.2f s, cpu %.2f s" % (k, a.reps, min(wall[k]), min(cpu[k])))
print("  overhead: wall %+.1f%%, cpu %+.1f%%; inside the hooks %.3f s per pass (%d calls per pass)"
      % (100 * (min(wall["hook"]) / min(wall["plain"]) - 1), 100 * (min(cpu["hook"]) / min(cpu["plain"]) - 1),
         inside["s"] / a.reps, inside["calls"] // a.reps))
