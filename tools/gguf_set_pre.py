#!/usr/bin/env python3
"""gguf_set_pre.py IN OUT PRE: copies a tensor-less (vocabulary-only) GGUF, setting
tokenizer.ggml.pre to PRE (added if absent). Used to make reference vocabularies for
pre-tokenizers that have no published vocabulary file (tools/gen_pre_cases.py)."""
import struct
import sys

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def skip_value(b, o, t):
    if t in SIZES:
        return o + SIZES[t]
    if t == 8:
        (n,) = struct.unpack_from("<Q", b, o)
        return o + 8 + n
    if t == 9:
        at, n = struct.unpack_from("<IQ", b, o)
        o += 12
        if at in SIZES:
            return o + SIZES[at] * n
        for _ in range(n):
            o = skip_value(b, o, at)
        return o
    raise SystemExit(f"unknown GGUF value type {t} at byte {o}")


def main():
    if len(sys.argv) != 4:
        raise SystemExit("usage: gguf_set_pre.py IN OUT PRE")
    src, dst, pre = sys.argv[1], sys.argv[2], sys.argv[3].encode()
    b = open(src, "rb").read()
    if b[:4] != b"GGUF":
        raise SystemExit(f"{src}: not a GGUF file")
    ver, n_tensors, n_kv = struct.unpack_from("<IQQ", b, 4)
    if ver != 3 or n_tensors != 0:
        raise SystemExit(f"{src}: want a GGUF v3 file without tensors (version {ver}, {n_tensors} tensors)")
    o = 24
    out = bytearray(b[:24])
    found = False
    for _ in range(n_kv):
        start = o
        (kl,) = struct.unpack_from("<Q", b, o)
        key = b[o + 8:o + 8 + kl]
        o += 8 + kl
        (t,) = struct.unpack_from("<I", b, o)
        end = skip_value(b, o + 4, t)
        if key == b"tokenizer.ggml.pre":
            if t != 8:
                raise SystemExit(f"{src}: tokenizer.ggml.pre is not a string")
            out += b[start:o + 4] + struct.pack("<Q", len(pre)) + pre
            found = True
        else:
            out += b[start:end]
        o = end
    if not found:
        key = b"tokenizer.ggml.pre"
        out += struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, len(pre)) + pre
        struct.pack_into("<Q", out, 16, n_kv + 1)
    out += b[o:]
    open(dst, "wb").write(out)


main()
