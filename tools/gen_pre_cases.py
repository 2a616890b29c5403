#!/usr/bin/env python3
"""gen_pre_cases.py REF_TOOL OUT.jsonl: reference ids for the pre-tokenizers that have no
published vocabulary (chameleon, tekken, deepseek-v3, bloom, viking). Each is given the GPT-2
vocabulary (tests/data/vocab/ggml-vocab-gpt-2.gguf with tokenizer.ggml.pre changed, by
tools/gguf_set_pre.py) and llama.cpp tokenizes (REF_TOOL: tools/llama_ref_tokenize.cpp built
against llama.cpp c392e509) the texts of tests/data/vocab/gpt-2.jsonl plus generated strings
of characters from every class those regexes tell apart. Writes one JSON line per text:
{"text": ..., "<pre>": [ids, no BOS, no special parsing], ...}; tests/test_tokenizer.c checks
fqlm against it.

gen_pre_cases.py --diff REF_TOOL FQ_TOOL N [VOCAB.gguf...]: a differential check, not stored:
N generated strings (half from the pieces below and some special-token texts, half random
Unicode scalar values) through llama.cpp (REF_TOOL) and fqlm (FQ_TOOL:
tools/fqlm_ref_tokenize.c) for the five vocabularies above and each VOCAB, plain and with
add_special + parse_special; prints the mismatches (the first 5 per vocabulary and mode) and
a count."""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

PRES = ["chameleon", "tekken", "deepseek-v3", "bloom", "viking"]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BASE = os.path.join(ROOT, "tests/data/vocab/ggml-vocab-gpt-2.gguf")

# pieces: ASCII classes, the literal patterns of the regexes, and non-ASCII letters (cased,
# uncased, CJK ranges and just outside them), marks, numbers, punctuation, symbols, whitespace
PIECES = (
    list("aZmQ09 \t\n\r\x0b\x0c!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    + ["'s", "'T", "'re", "'VE", "'ll", "'d", "'m", "IMGIMG", "IMGIMGAZ", "IMGIMGABCDZ",
       "IMGIMGABCDEZ", "<sentinel:", "<sentinel:12>", "  ", "    ", "     ", "\r\n", "\n\n",
       "123", "4567", "Hello", "wORLD", "McDonald", "x/", "//", "a.b", "...", " ", " ", " "]
    + ["\u00e9", "\u00c0", "\u01c5", "\u00df", "\u03a9", "\u03c9", "\u0416", "\u0436", "\u05d0",
       "\u0627", "\u0915\u093f", "\u0301", "\u0903", "\u4e00", "\u9fa5", "\u9fa6", "\u3042",
       "\u30a2", "\u30fc", "\u309d", "\uac00", "\ud7a3", "\uff21", "\uff5a", "\uff01", "\uff0c",
       "\u3002", "\u3001", "\u2026", "\u0964", "\u06d4", "\u060c", "\u0663", "\u07c1", "\u00b2",
       "\u00bd", "\u216b", "\u2014", "\u2018", "\u2019", "\u201c", "\u201d", "\u00ab", "\u00bf",
       "\u00a7", "\u00b7", "\u20ac", "\u00a9", "\u00b0", "\u00b1", "\u00d7", "\u2191", "\u2211",
       "\U0001f600", "\U0001f44d\U0001f3fd", "\u00a0", "\u3000", "\u2003", "\u0085", "\u2028",
       "\u1680", "\u200b", "\ufeff", "\ue000", "\U00020000", "\u0800", "\u4e00\u4e8c\u4e09",
       "\u65e5\u672c\u8a9e", "\u0e01\u0e32", "\u1100\u1161", "\u02b0", "\u3005"]
)


# cases made by hand for what random strings seldom hit (chameleon's image tokens inside words)
TARGETED = ["xIMGIMGAZy", "aIMGIMGABCDZb", "IMGIMGIMGIMGAZ", "fooIMGIMGAZbar baz", "IMGIMGAIZq",
            "IMGIMGABCDEZ x", "wordIMGIMGHZ123", "<sentinel:0>IMGIMGAZ<sentinel:1>", "don't IMGIMGBZs",
            "a\tb  c    d     e", "\u00e9IMGIMGAZ\u00e9", "\u4e00IMGIMGAZ\u4e00"]


def generated(n, seed=20261207):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(1, 16)
        out.append("".join(rng.choice(PIECES) for _ in range(k)))
    return out


def random_unicode(n, seed=7):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(1, 12)
        cs = []
        for _ in range(k):
            r = rng.random()
            if r < 0.3:
                c = rng.randint(0x20, 0x7E)
            elif r < 0.4:
                c = rng.choice([9, 10, 13, 32, 32, 0xA0, 0x3000, 0x85, 0x2028, 0x202F])
            elif r < 0.8:
                c = rng.randint(0x80, 0xFFFF)
            else:
                c = rng.randint(0x10000, 0x10FFFF)
            if 0xD800 <= c < 0xE000:
                c = 0xE000
            cs.append(chr(c))
        out.append("".join(cs))
    return out


SPECIAL = ["<|endoftext|>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>", "<|eot_id|>",
           "<|begin_of_text|>", "<｜begin▁of▁sentence｜>", "<|end|>", "<|user|>", "<fim_prefix>",
           "<|fim_middle|>", ">>ABSTRACT<<", "<|endoftext|", "|endoftext|>"]


def run_tool(tool, gguf, texts, special=False):
    rec = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    r = subprocess.run([tool, gguf] + (["special"] if special else []), input=rec, stdout=subprocess.PIPE, check=True)
    lines = r.stdout.decode().split("\n")[:-1]
    if len(lines) != len(texts):
        raise SystemExit(f"{tool} {gguf}: {len(lines)} results for {len(texts)} texts")
    return lines


def diff(ref, fq, n, vocabs):
    PIECES.extend(SPECIAL)
    texts = generated(n // 2, seed=99) + random_unicode(n - n // 2)
    bad_total = 0
    with tempfile.TemporaryDirectory() as d:
        todo = []
        for pre in PRES:
            g = os.path.join(d, pre + ".gguf")
            subprocess.run([sys.executable, os.path.join(HERE, "gguf_set_pre.py"), BASE, g, pre], check=True)
            todo.append(("gpt-2 as " + pre, g))
        todo += [(os.path.basename(v), v) for v in vocabs]
        for name, g in todo:
            for special in (False, True):
                mode = "add+parse special" if special else "plain"
                a, b = run_tool(ref, g, texts, special), run_tool(fq, g, texts, special)
                bad = [i for i in range(len(texts)) if a[i] != b[i]]
                for i in bad[:5]:
                    print(f"  {name} {mode}: {texts[i]!r}: llama.cpp [{a[i]}] fqlm [{b[i]}]")
                print(f"{name} {mode}: {len(texts) - len(bad)}/{len(texts)} equal")
                bad_total += len(bad)
    print(f"{bad_total} mismatches")
    return 1 if bad_total else 0


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "--diff":
        raise SystemExit(diff(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]))
    if len(sys.argv) != 3:
        raise SystemExit("usage: gen_pre_cases.py REF_TOOL OUT.jsonl")
    ref, out_path = sys.argv[1], sys.argv[2]
    texts = [json.loads(l)["text"] for l in open(os.path.join(ROOT, "tests/data/vocab/gpt-2.jsonl"), encoding="utf-8")]
    texts += TARGETED + generated(400)
    seen, uniq = set(), []
    for t in texts:
        if t not in seen:
            seen.add(t)
            uniq.append(t)
    texts = uniq
    rec = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    ids = {}
    with tempfile.TemporaryDirectory() as d:
        for pre in PRES:
            g = os.path.join(d, pre + ".gguf")
            subprocess.run([sys.executable, os.path.join(HERE, "gguf_set_pre.py"), BASE, g, pre], check=True)
            r = subprocess.run([ref, g], input=rec, stdout=subprocess.PIPE, check=True)
            lines = r.stdout.decode().split("\n")[:-1]
            if len(lines) != len(texts) or any(l.startswith("ERR") for l in lines):
                raise SystemExit(f"{pre}: {len(lines)} results for {len(texts)} texts")
            ids[pre] = [[int(x) for x in l.split()] for l in lines]
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            row = {"text": t}
            for pre in PRES:
                row[pre] = ids[pre][i]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, out_path)
    print(f"{out_path}: {len(texts)} texts x {len(PRES)} pre-tokenizers")


main()
