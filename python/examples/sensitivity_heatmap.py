#!/usr/bin/env python3
"""Layer-by-format sensitivity of one node: mean KL (nats) of the next-token distributions when
that node of one layer is rounded to each format. Prints the table; with matplotlib installed
also writes a heatmap (PNG, or SVG/PDF by the --out suffix).

    make python && PYTHONPATH=python python3 python/examples/sensitivity_heatmap.py \
        [--model M] [--node ffn_norm] [--out heatmap.png]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fqlm  # noqa: E402

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ap = argparse.ArgumentParser()
ap.add_argument("--model", default=os.path.join(root, "models", "stories260K.gguf"))
ap.add_argument("--node", default="ffn_norm")
ap.add_argument("--formats", default="bf16,fp8_e4m3,fp8_e5m2,fp6_e2m3,fp4_e2m1,mxfp4,nvfp4,int4:group=32")
ap.add_argument("--text", default="Once upon a time, there was a little girl named Lily. She loved to play "
                                  "outside in the sun. One day, she saw a big red ball in the park.")
ap.add_argument("--out", default="sensitivity.png")
a = ap.parse_args()

m = fqlm.Model(a.model)
# the string as `fqlm sweep --formats` takes it: an option list may follow a format
# (int4:group=32,asym,bf16), so it is not split here
rows = fqlm.sweep(m, a.text, nodes=[a.node], formats=a.formats, n_ctx=256)
formats = list(dict.fromkeys(r["format"] for r in rows))  # the engine's canonical specs, in order
layers = sorted({r["layer"] for r in rows})
kl = np.full((len(layers), len(formats)), np.nan)
for r in rows:
    kl[layers.index(r["layer"]), formats.index(r["format"])] = r["mean_kld"]

print("mean KL (nats) of %s rounded at one layer, %s" % (a.node, os.path.basename(a.model)))
w = max([13] + [len(f) for f in formats])
print("layer " + " ".join("%*s" % (w, f) for f in formats))
for i, L in enumerate(layers):
    print("%5d " % L + " ".join("%*.4g" % (w, v) for v in kl[i]))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("(matplotlib is not installed: no heatmap; Debian: apt-get install python3-matplotlib)")
    sys.exit(0)
fig, ax = plt.subplots(figsize=(1.2 * len(formats) + 2, 0.4 * len(layers) + 2))
im = ax.imshow(np.log10(np.maximum(kl, 1e-12)), aspect="auto", cmap="viridis")
ax.set_xticks(range(len(formats)), formats, rotation=45, ha="right")
ax.set_yticks(range(len(layers)), layers)
ax.set_xlabel("format")
ax.set_ylabel("layer")
ax.set_title("%s rounded at one layer, %s" % (a.node, os.path.basename(a.model)))
fig.colorbar(im, ax=ax, label="log10 mean KL (nats)")
fig.tight_layout()
fig.savefig(a.out, dpi=120)
print("wrote", a.out)
