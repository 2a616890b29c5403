#!/usr/bin/env python3
"""The report's experiment from Python: round ffn_norm of the last layer to bf16 and measure
what it does to the next-token distributions, once with the engine's bf16 rule and once with
bf16 written in numpy as a hook (the two must agree to the last bit).

    make python && PYTHONPATH=python python3 python/examples/report_experiment.py [MODEL] [TEXT_FILE]
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fqlm  # noqa: E402

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
model_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "models", "stories260K.gguf")
text = (open(sys.argv[2], encoding="utf-8").read() if len(sys.argv) > 2 else
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
        "One day, she saw a big red ball in the park. She ran to get it, but a dog got there first.")

m = fqlm.Model(model_path)
last = m.n_layer - 1
print(m)


def bf16(name, layer, x):
    """bf16, round to nearest even, on the engine's float32 values in place."""
    u = x.view(np.uint32)
    fin = np.isfinite(x)
    u[fin] = ((u[fin].astype(np.uint64) + 0x7FFF + ((u[fin] >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)


rule = fqlm.compare(m, text, rules=["ffn_norm@%d=bf16" % last], n_ctx=256)
hook = fqlm.compare(m, text, hook=("ffn_norm@%d" % last, bf16), n_ctx=256)
print("ffn_norm@%d=bf16 over %d positions:" % (last, rule["n_pos"]))
for k in ("mean_kld", "max_kld", "top1_agree", "ppl_base", "ppl_fq", "max_abs_logit_diff"):
    print("  %-20s rule %-14.6g numpy hook %-14.6g %s" % (k, rule[k], hook[k], "same" if rule[k] == hook[k] else "DIFFERENT"))
st = rule["stats"][0]
print("  values rounded: %d, SQNR %.1f dB, RMSE %.3g" % (st["elements"], st["sqnr_db"], st["rmse"]))
