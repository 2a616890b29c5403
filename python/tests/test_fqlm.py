"""Tests of the fqlm Python package against the engine and the fqlm program.

Run from the repository root after `make python`:  python3 -m unittest discover -s python/tests
(FQLM_LIB names the library to test, FQLM_BIN the fqlm program for the CLI comparisons.)"""
import os
import re
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
import fqlm  # noqa: E402

MODEL = os.path.join(ROOT, "models", "stories260K.gguf")
TEXT = "Once upon a time, there was a little girl named Lily. She loved to play outside."
FQLM_BIN = os.environ.get("FQLM_BIN") or os.path.join(ROOT, "build", "fqlm")


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def bf16_numpy(x):
    """bf16 round-to-nearest-even written in numpy (NaN and Inf kept)."""
    u = x.view(np.uint32)
    finite = np.isfinite(x)
    r = ((u.astype(np.uint64) + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    u[finite] = r[finite]


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = fqlm.Model(MODEL)
        cls.ids = cls.m.tokenize(TEXT)


class TestModel(Base):
    def test_version(self):
        with open(os.path.join(ROOT, "include", "fqlm.h")) as f:
            v = re.search(r'#define FQLM_VERSION "([^"]+)"', f.read()).group(1)
        self.assertEqual(fqlm.__version__, v)
        self.assertEqual(fqlm.library_version(), v)

    def test_tokens(self):
        self.assertEqual(self.ids[0], self.m.bos)
        self.assertGreater(len(self.ids), 10)
        self.assertEqual(self.m.detokenize(self.ids).strip(), TEXT)
        self.assertEqual(self.m.tokenize(TEXT, bos=False), self.ids[1:])
        with self.assertRaisesRegex(fqlm.FqlmError, "outside the vocabulary"):
            self.m.detokenize([1, self.m.n_vocab])

    def test_nodes_as_cli(self):
        names = [n["name"] for n in self.m.nodes()]
        self.assertEqual(names[0], "inp_embd")
        self.assertIn("ffn_norm", names)
        self.assertEqual(names[-1], "result_output")
        by = {n["name"]: n for n in self.m.nodes()}
        self.assertEqual(by["ffn_norm"]["cols"], self.m.n_embd)
        self.assertEqual(by["result_output"]["cols"], self.m.n_vocab)
        self.assertFalse(by["result_output"]["per_layer"])
        if os.path.exists(FQLM_BIN):
            out = subprocess.run([FQLM_BIN, "run", "-m", MODEL, "--list-nodes"], capture_output=True,
                                 text=True).stdout
            for n in names:
                self.assertIn(n, out)

    def test_bad_model(self):
        with self.assertRaisesRegex(fqlm.FqlmError, "nonexistent.gguf"):
            fqlm.Model(os.path.join(ROOT, "nonexistent.gguf"))
        with tempfile.NamedTemporaryFile(suffix=".gguf") as f:
            f.write(b"GGUF not really")
            f.flush()
            with self.assertRaises(fqlm.FqlmError):
                fqlm.Model(f.name)


@unittest.skipUnless(os.path.exists(FQLM_BIN), "the fqlm program is not built")
class TestLogitsAsCli(Base):
    def cli_last_logits(self, prompt, *extra):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([FQLM_BIN, "run", "-m", MODEL, "-p", prompt, "-n", "1", "--temp", "0", "-c", "128",
                            "-t", "2", "--dump", "result_output", "--dump-dir", d] + list(extra),
                           check=True, capture_output=True)
            files = [f for f in os.listdir(d) if f.startswith("result_output.pos")]
            self.assertEqual(len(files), 1, files)
            return np.load(os.path.join(d, files[0])).reshape(-1)

    def test_default_arithmetic(self):
        ids = self.m.tokenize(TEXT)
        with self.m.context(n_ctx=128, threads=2) as c:
            L = c.logits(ids)
            last = c.last_logits(ids)
        self.assertEqual(L.shape, (len(ids), self.m.n_vocab))
        ref = self.cli_last_logits(TEXT)
        np.testing.assert_array_equal(bits(L[-1]), bits(ref))
        np.testing.assert_array_equal(bits(last), bits(ref))

    def test_exact_with_rule(self):
        with self.m.context(n_ctx=128, threads=1, exact=True) as c:
            c.add_rule("ffn_norm@4=fp8_e4m3")
            L = c.logits(TEXT)
        ref = self.cli_last_logits(TEXT, "--exact", "--fq", "ffn_norm@4=fp8_e4m3")
        np.testing.assert_array_equal(bits(L[-1]), bits(ref))
        # and the rule made a difference, so the comparison above can fail
        plain = self.cli_last_logits(TEXT, "--exact")
        self.assertFalse(np.array_equal(bits(plain), bits(ref)))


class TestHooks(Base):
    def test_bf16_hook_equals_rule(self):
        by_rule = fqlm.compare(self.m, TEXT, rules=["ffn_norm@*=bf16"], n_ctx=128, threads=2)
        calls = []

        def hook(name, layer, x):
            self.assertEqual(name, "ffn_norm")
            self.assertEqual(x.dtype, np.float32)
            self.assertEqual(x.shape[1], self.m.n_embd)
            calls.append(layer)
            bf16_numpy(x)

        by_hook = fqlm.compare(self.m, TEXT, hook=("ffn_norm@*", hook), n_ctx=128, threads=2)
        self.assertEqual(sorted(set(calls)), list(range(self.m.n_layer)))
        self.assertGreater(by_rule["mean_kld"], 0)  # the format changes something
        for k in ("mean_kld", "max_kld", "kld_median", "top1_agree", "ppl_fq", "ppl_base", "max_abs_logit_diff"):
            self.assertEqual(by_rule[k], by_hook[k], k)
        # and the logits themselves
        with self.m.context(n_ctx=128) as a, self.m.context(n_ctx=128) as b:
            a.add_rule("ffn_norm@*=bf16")
            b.hook("ffn_norm@*", lambda n, l, x: bf16_numpy(x))
            np.testing.assert_array_equal(bits(a.logits(self.ids)), bits(b.logits(self.ids)))

    def test_hook_sees_rounded_values_and_capture(self):
        with self.m.context(n_ctx=64) as c:
            raw = c.capture("attn_norm@3")
            c.logits(self.ids)
            x = raw["attn_norm", 3]
            self.assertEqual(x.shape, (len(self.ids), self.m.n_embd))
        with self.m.context(n_ctx=64) as c:
            c.add_rule("attn_norm@3=fp8_e4m3")
            after = c.capture("attn_norm@3")
            c.logits(self.ids)
            np.testing.assert_array_equal(bits(after["attn_norm", 3]), bits(fqlm.formats.quantize(x, "fp8_e4m3")))
            st = c.stats()["nodes"]
            self.assertEqual(len(st), 1)
            self.assertEqual(st[0]["node"], "attn_norm")
            self.assertEqual(st[0]["layer"], 3)
            self.assertEqual(st[0]["applications"], 1)

    def test_raising_hook(self):
        with self.m.context(n_ctx=64) as c:
            before = c.logits(self.ids)
            seen = []

            def bad(name, layer, x):
                seen.append(layer)
                raise ValueError("my format failed at layer %d" % layer)

            after = []
            c.hook("ffn_norm@1-2", bad)
            c.hook("l_out@*", lambda n, l, x: after.append(l))
            with self.assertRaisesRegex(ValueError, "my format failed at layer 1") as cm:
                c.logits(self.ids)
            self.assertEqual(seen, [1])  # no hook ran after the one that raised
            self.assertEqual(after, [0])  # ... and no later node: the pass stopped in layer 1
            self.assertIn("hook 'ffn_norm@1-2' on node ffn_norm-1", "\n".join(getattr(cm.exception, "__notes__", [])))
            with self.assertRaisesRegex(ValueError, "layer 1"):
                fqlm.compare(self.m, TEXT, hook=("ffn_norm@1", bad), n_ctx=64)
            c.clear_hooks()
            np.testing.assert_array_equal(bits(c.logits(self.ids)), bits(before))

    def test_hook_changes_values(self):
        with self.m.context(n_ctx=64) as c:
            before = c.logits(self.ids)
            c.hook("l_out@4", lambda n, l, x: x.__imul__(0.5))
            self.assertFalse(np.array_equal(before, c.logits(self.ids)))

    def test_bad_input_raises(self):
        with self.m.context(n_ctx=16) as c:
            with self.assertRaisesRegex(fqlm.FqlmError, "unknown node 'ffn_nrm'"):
                c.add_rule("ffn_nrm@1=bf16")
            with self.assertRaisesRegex(fqlm.FqlmError, "layer 9 out of range"):
                c.add_rule("ffn_norm@9=bf16")
            with self.assertRaisesRegex(fqlm.FqlmError, "fp9"):
                c.add_rule("ffn_norm@1=fp9")
            with self.assertRaisesRegex(fqlm.FqlmError, "unknown node"):
                c.hook("nonode@1", lambda *a: None)
            with self.assertRaises(fqlm.FqlmError):
                c.logits([1, self.m.n_vocab + 5])
            with self.assertRaises(fqlm.FqlmError):
                c.logits(list(range(1, 40)))  # more than n_ctx
            self.assertEqual(c.logits([1, 2, 3]).shape, (3, self.m.n_vocab))  # still usable
        with self.assertRaisesRegex(fqlm.FqlmError, "bogus"):
            fqlm.formats.quantize([1.0], "bogus")


class TestFormats(Base):
    def test_every_format_as_the_engine(self):
        """quantize() on a node's raw values equals what a rule of that format leaves there
        (ffn_norm: small values; result_output: logits beyond the narrow formats' range)."""
        specs = fqlm.formats.names() + ["int4:group=32", "fp8_e4m3:round=rtz", "fp4_e2m1:subnormal=off"]
        self.assertGreater(len(specs), 20)
        for sel, key in (("ffn_norm@1", ("ffn_norm", 1)), ("result_output", "result_output")):
            with self.m.context(n_ctx=128) as c:
                raw = c.capture(sel)
                c.logits(self.ids)
                x = raw[key]
            for spec in specs:
                with self.subTest(node=sel, spec=spec), self.m.context(n_ctx=128) as c:
                    c.add_rule("%s=%s" % (sel, spec))
                    got = c.capture(sel)
                    c.logits(self.ids)
                    want = fqlm.formats.quantize(x, spec)
                    np.testing.assert_array_equal(bits(got[key]), bits(want))
                    if spec not in ("f32",):
                        self.assertFalse(np.array_equal(bits(want), bits(x)), "format changed nothing")

    def test_edge_values_as_the_engine(self):
        """quantize() on edge values (zeros of both signs, Inf, NaN, f16/fp8 boundaries and ties,
        subnormals, the largest floats, random values of 17 decades) equals what a rule of every
        format leaves in the engine: a hook writes them into Vcur@1, which v_cache@1 copies bit for
        bit, and the rule rounds v_cache@1."""
        rng = np.random.default_rng(11)
        special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 65504, 65520, 70000, -70000, 1e-40,
                            -1e-45, 6e-8, 3e-8, 448, 449, 464, 480, -240, 57344, 61440, 1.0 + 2**-8,
                            1.0 + 3 * 2**-8, 1.5 * 2**-126, 3.4e38, -3.4e38, 6.0, 7.0, 0.25, 0.75], dtype=np.float32)

        def values(shape):
            n = shape[0] * shape[1]
            rnd = (rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n))).astype(np.float32)
            return np.concatenate([special, rnd])[:n].reshape(shape)

        def run(spec):
            seen = {}

            def put(name, layer, x):
                seen["in"] = values(x.shape)
                x[:] = seen["in"]

            with self.m.context(n_ctx=64) as c:
                c.hook("Vcur@1", put)
                if spec:
                    c.add_rule("v_cache@1=" + spec)
                got = c.capture("v_cache@1")
                c.logits(self.ids)
                return seen["in"], got["v_cache", 1]

        x, got = run(None)  # the copy itself: without a rule v_cache@1 holds the values written
        np.testing.assert_array_equal(bits(got), bits(x))
        self.assertGreater(x.size, special.size)
        specs = fqlm.formats.names() + ["int4:group=32", "fp8_e4m3:round=rtz", "fp4_e2m1:subnormal=off",
                                        "e5m2:sat=on", "fp16:round=rna"]
        for spec in specs:
            with self.subTest(spec=spec):
                x, got = run(spec)
                want = fqlm.formats.quantize(x, spec)
                np.testing.assert_array_equal(bits(got), bits(want))
                if spec != "f32":
                    self.assertFalse(np.array_equal(bits(want), bits(x)), "format changed nothing")

    def test_edge_values(self):
        rng = np.random.default_rng(7)
        x = np.concatenate([
            np.array([0.0, -0.0, np.inf, -np.inf, 65504, 65520, 70000, -70000, 1e-40, -1e-45, 6e-8, 3e-8,
                      448, 449, 464, 480, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 3.4e38], dtype=np.float32),
            (rng.standard_normal(4096) * np.exp(rng.uniform(-20, 20, 4096))).astype(np.float32)])
        f16 = fqlm.formats.quantize(x, "fp16")
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(bits(f16), bits(x.astype(np.float16).astype(np.float32)))
        b = x.copy()
        bf16_numpy(b)
        np.testing.assert_array_equal(bits(fqlm.formats.quantize(x, "bf16")), bits(b))
        nan = np.array([np.nan, -np.nan], dtype=np.float32)
        for spec in fqlm.formats.names():
            with self.subTest(spec=spec):
                self.assertTrue(np.isnan(fqlm.formats.quantize(nan, spec)).all())
                q = fqlm.formats.quantize(x[:4096].reshape(64, 64), spec)
                self.assertEqual(q.shape, (64, 64))
        self.assertEqual(fqlm.formats.quantize(np.float32(1.0001), "bf16").shape, ())
        np.testing.assert_array_equal(fqlm.formats.quantize(x, "f32"), x)


class TestCompare(Base):
    def test_compare_and_sweep(self):
        r = fqlm.compare(self.m, TEXT, n_ctx=128)
        self.assertEqual(r["mean_kld"], 0.0)
        self.assertEqual(r["top1_agree"], 1.0)
        self.assertEqual(r["n_pos"], len(self.ids))
        r = fqlm.compare(self.m, self.ids, rules=["ffn_norm@4=fp4_e2m1"], n_ctx=128, chunk=8)
        self.assertGreater(r["n_chunks"], 1)
        self.assertGreater(r["mean_kld"], 0.0)
        self.assertEqual(r["stats"][0]["rule"], "ffn_norm@4=fp4_e2m1")
        rows = fqlm.sweep(self.m, TEXT, nodes=["ffn_norm"], formats=["bf16", "fp4_e2m1"], layers=[0, 4], n_ctx=128)
        self.assertEqual([(x["layer"], x["format"]) for x in rows],
                         [(0, "bf16"), (0, "fp4_e2m1"), (4, "bf16"), (4, "fp4_e2m1")])
        self.assertLess(rows[2]["mean_kld"], rows[3]["mean_kld"])

    def test_sweep_rows_equal_cli_results_csv(self):
        """fqlm.sweep runs `fqlm sweep`'s engine: every field of results.csv but the timing is
        the same number, for the same model, text, selection, -c and --chunks."""
        text = " ".join([TEXT] * 6)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "t.txt"), "w") as f:
                f.write(text)
            out = os.path.join(d, "sw")
            r = subprocess.run([FQLM_BIN, "sweep", "-m", MODEL, "-f", os.path.join(d, "t.txt"),
                                "--nodes", "ffn_norm,attn_norm,result_norm", "--layers", "0,3-4",
                                "--formats", "bf16,int4:group=16,asym,fp8_e4m3", "-c", "32", "--chunks", "3",
                                "-t", "1", "--no-progress", "-o", out], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(out, "results.csv")) as f:
                lines = f.read().splitlines()
        header = lines[0].split(",")
        import csv
        cli = list(csv.DictReader(lines))
        self.assertEqual(len(cli), 2 * 3 * 3 + 3)  # 2 nodes x 3 layers x 3 formats, result_norm once per format
        rows = fqlm.sweep(self.m, text, nodes="ffn_norm,attn_norm,result_norm", layers=[0, "3-4"],
                          formats=["bf16", "int4:group=16,asym", "fp8_e4m3"], n_ctx=32, chunks=3, threads=1)
        self.assertEqual(len(rows), len(cli))
        by_key = {(r["node"], r["layer"], r["format"]): r for r in rows}
        for c in cli:
            key = (c["node"], int(c["layer"]) if c["layer"] else -1, c["format"])
            self.assertIn(key, by_key)
            py = by_key[key]
            for h in header:
                if h in ("node", "format", "seconds"):
                    continue
                want = c[h]
                got = py[h]
                if h in ("layer",):
                    self.assertEqual(got, int(want) if want else -1)
                elif h in ("first_layer", "positions", "applications"):
                    self.assertEqual(got, int(want), "%s %s" % (key, h))
                else:  # results.csv has %.17g: the same double
                    w = float(want)
                    self.assertTrue(got == w or (np.isnan(got) and np.isnan(w)), "%s %s: %r vs %r" % (key, h, got, w))
        self.assertTrue(any(r["mean_kld"] > 0 for r in rows))
        arr = fqlm.sweep(self.m, text, nodes="ffn_norm", layers="3", formats="bf16", n_ctx=32, chunks=3,
                         threads=1, as_array=True)
        self.assertEqual(arr.shape, (1,))
        self.assertEqual(arr["mean_kld"][0], by_key[("ffn_norm", 3, "bf16")]["mean_kld"])
        with self.assertRaisesRegex(fqlm.FqlmError, "unknown node 'ffn_nrm'"):
            fqlm.sweep(self.m, text, nodes=["ffn_nrm"])
        with self.assertRaisesRegex(fqlm.FqlmError, "layers: layer 9 out of range"):
            fqlm.sweep(self.m, text, layers=[9])


class TestExamples(unittest.TestCase):
    """python/examples run as a user runs them (with this python3 and FQLM_LIB)."""

    def run_example(self, *args):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "python", "examples", args[0])] + list(args[1:]),
                           capture_output=True, text=True, cwd=ROOT)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_report_experiment(self):
        out = self.run_example("report_experiment.py")
        lines = [l for l in out.splitlines() if " rule " in l and "numpy hook" in l]
        self.assertEqual(len(lines), 6, out)
        for l in lines:
            self.assertTrue(l.endswith("same"), l)

    def test_hook_overhead(self):
        out = self.run_example("hook_overhead.py", MODEL, "--tokens", "32", "--reps", "1")
        self.assertIn("stories260K.gguf, 32 tokens, 2 threads, hook on ffn_norm@* (5 layers)", out)
        self.assertIn("(5 calls per pass)", out)

    def test_sensitivity_heatmap(self):
        with tempfile.TemporaryDirectory() as d:
            png = os.path.join(d, "h.png")
            out = self.run_example("sensitivity_heatmap.py", "--formats", "bf16,int4:group=32,asym,fp4_e2m1",
                                   "--out", png)
            head = out.splitlines()[1].split()
            self.assertEqual(head, ["layer", "bf16", "int4:group=32,asym", "fp4_e2m1"])
            table = [l.split() for l in out.splitlines()[2:] if l[:5].strip().isdigit()]
            self.assertEqual([int(r[0]) for r in table], list(range(5)))
            kl = np.array([[float(v) for v in r[1:]] for r in table])
            self.assertTrue((kl > 0).all() and (kl[:, 0] < kl[:, 2]).all(), out)  # bf16 below fp4 at every layer
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                self.assertIn("matplotlib is not installed", out)
                return
            self.assertIn("wrote " + png, out)
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main()
