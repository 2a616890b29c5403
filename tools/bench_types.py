#!/usr/bin/env python3
"""bench_types.py - prompt processing (pp) and decode (tg) speed of fqlm for a list of weight
types, side by side with llama.cpp's and ik_llama.cpp's llama-bench when their paths are given,
as one markdown table. Run through tools/bench-types.sh; `--help` lists the options.

For each type it uses DIR/tl-TYPE.gguf (made with `fqlm synth --shape SHAPE --type TYPE` when
missing), or the model files given with -m. fqlm runs `fqlm bench -p P -n N -t T -r R --json`;
each llama-bench runs with the same -p/-n/-t/-r (-o json) right after it, so the ratios are
measured in one sitting. Needs only python3's standard library."""
import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

DEFAULT_TYPES = "f32,f16,bf16,q8_0,q4_0,q4_1,q5_0,q5_1,q2_k,q3_k_m,q4_k_m,q5_k_m,q6_k"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Fail(Exception):
    """a run that gave no figures; the message says which and why"""


def die(msg, code=2):
    print(f"bench-types: {msg}", file=sys.stderr)
    sys.exit(code)


def int_list(text, what):
    try:
        vals = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        die(f"{what}: '{text}' is not a comma-separated list of integers")
    if not vals or any(v < 0 for v in vals):
        die(f"{what}: '{text}' needs one or more integers >= 0")
    return vals


def pos_int(text, what, lo=1):
    try:
        v = int(text)
    except ValueError:
        die(f"{what}: '{text}' is not an integer")
    if v < lo:
        die(f"{what}: {v} is below {lo}")
    return v


def check_exe(path, what):
    if not path:
        return None
    if os.path.isdir(path) or not os.path.isfile(path):
        die(f"{what}: no such program: {path}")
    if not os.access(path, os.X_OK):
        die(f"{what}: not executable: {path}")
    return path


def tail(text, n=6):
    lines = [l for l in (text or "").strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:]) if lines else "(no output)"


def run(cmd, log, timeout):
    """runs cmd, echoing it to the log; returns (rc, stdout, stderr)"""
    print("$ " + " ".join(shlex.quote(c) for c in cmd), file=log, flush=True)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Fail(f"timed out after {timeout} s: {cmd[0]}")
    except OSError as e:
        raise Fail(f"cannot run {cmd[0]}: {e.strerror}")
    return p.returncode, p.stdout, p.stderr


def make_model(args, typ, path, log):
    tmp = path + ".tmp"
    cmd = [args.fqlm, "synth", "--shape", args.shape, "--type", typ, "-o", tmp]
    if args.vocab_from:
        cmd += ["--vocab-from", args.vocab_from]
    print(f"bench-types: making {path} (fqlm synth --shape {args.shape} --type {typ})", file=sys.stderr)
    rc, out, err = run(cmd, log, args.timeout)
    if rc != 0 or not os.path.isfile(tmp):
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise Fail(f"fqlm synth --type {typ} failed (exit {rc}): {tail(err)}")
    os.replace(tmp, path)


def fqlm_bench(args, model, p, n, log):
    fd, jpath = tempfile.mkstemp(prefix="bench-types-", suffix=".json")
    os.close(fd)
    try:
        cmd = [args.fqlm, "bench", "-m", model, "-p", str(p), "-n", str(n), "-t", str(args.threads),
               "-r", str(args.reps), "-ctk", args.ctk, "-ctv", args.ctv, "--json", jpath] + args.fqlm_args
        rc, out, err = run(cmd, log, args.timeout)
        log.write(out)
        log.write(err)
        if rc != 0:
            raise Fail(f"fqlm bench on {model} failed (exit {rc}): {tail(err)}")
        try:
            with open(jpath) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise Fail(f"fqlm bench on {model} wrote no readable JSON ({e})")
    finally:
        try:
            os.unlink(jpath)
        except OSError:
            pass


def llama_bench(exe, args, model, ps, n, log):
    """llama-bench -o json with every pp size and the tg run; returns {("pp", P) | ("tg", N): (avg, sd)}"""
    cmd = [exe, "-m", model, "-p", ",".join(str(p) for p in ps), "-n", str(n), "-t", str(args.threads),
           "-r", str(args.reps), "-ctk", args.ctk, "-ctv", args.ctv, "-o", "json"]
    if not ps:
        cmd[4] = "0"
    env_extra = os.environ.get("LLAMA_BENCH_ARGS" if exe == args.llama else "IK_LLAMA_BENCH_ARGS", "")
    cmd += shlex.split(env_extra)
    rc, out, err = run(cmd, log, args.timeout)
    log.write(err)
    log.write(out)
    if rc != 0:
        raise Fail(f"{exe} on {model} failed (exit {rc}): {tail(err)}")
    start = out.find("[")
    try:
        rows = json.loads(out[start:]) if start >= 0 else None
    except ValueError:
        rows = None
    if not isinstance(rows, list):
        raise Fail(f"{exe} on {model}: no JSON array in its output: {tail(out)}")
    res = {}
    for r in rows:
        try:
            np_, ng, avg, sd = int(r["n_prompt"]), int(r["n_gen"]), float(r["avg_ts"]), float(r.get("stddev_ts", 0))
        except (KeyError, TypeError, ValueError):
            continue
        if np_ > 0 and ng == 0:
            res[("pp", np_)] = (avg, sd)
        elif ng > 0 and np_ == 0:
            res[("tg", ng)] = (avg, sd)
    if not res:
        raise Fail(f"{exe} on {model}: its JSON had no pp/tg results")
    return res


def fmt(v, sd=None, digits=1):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}f}" if sd is None or not args_show_sd else f"{v:.{digits}f} ± {sd:.{digits}f}"


args_show_sd = False


def ratio(a, b):
    if a is None or b is None or isinstance(a, str) or isinstance(b, str) or b <= 0:
        return "-"
    return f"{a / b:.2f}x"


def main(argv):
    global args_show_sd
    ap = argparse.ArgumentParser(
        prog="tools/bench-types.sh",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="fqlm pp/tg speed per weight type, beside llama.cpp (LLAMA_BENCH=path/llama-bench) "
        "and ik_llama.cpp\n(IK_LLAMA_BENCH=path/llama-bench), as a markdown table on stdout (progress on "
        "stderr).\n\nExample (the issue's table, AVX2 kernels, 2 threads):\n"
        "  LLAMA_BENCH=llama.cpp/build-avx2/bin/llama-bench IK_LLAMA_BENCH=ik_llama.cpp/build-avx2/bin/llama-bench \\\n"
        "  FQLM_ISA=avx2 tools/bench-types.sh --dir bench-models --types f32,f16,bf16,q8_0,q4_0,q4_k_m \\\n"
        "      -p 512,2048 -n 128 -t 2 -o table.md --log bench.log\n"
        "Missing models are made with fqlm synth (TinyLlama shape: 0.6 to 4.4 GB each). Compare like with\n"
        "like: an AVX2-only llama-bench build beside FQLM_ISA=avx2, a native one beside the default.\n"
        "The run takes long (TinyLlama F32 pp512 alone is minutes at 2 threads): give --fqlm a copy of\n"
        "the binary that no build replaces meanwhile, and run it on an otherwise idle machine.",
        epilog="Environment: LLAMA_BENCH, IK_LLAMA_BENCH (llama-bench programs; unset: column shows -), "
        "LLAMA_BENCH_ARGS, IK_LLAMA_BENCH_ARGS (extra llama-bench options, e.g. '-fa 1'), "
        "FQLM_ISA (generic|avx2|avx512, passed on to fqlm). Exit status: 0 all ran, 1 some run "
        "failed (its cells read 'error', the reason on stderr), 2 bad usage or missing program.")
    ap.add_argument("--types", default=DEFAULT_TYPES, help=f"weight types (default {DEFAULT_TYPES})")
    ap.add_argument("-m", "--model", action="append", default=[],
                    help="bench this model file instead of the --types models (repeatable)")
    ap.add_argument("--dir", default="bench-models", help="where the tl-TYPE.gguf models are (TYPE in lower "
                    "or upper case) or are made (default bench-models)")
    ap.add_argument("--shape", default="tinyllama-1.1b", help="fqlm synth --shape for missing models "
                    "(default tinyllama-1.1b)")
    ap.add_argument("--vocab-from", default=None, help="fqlm synth --vocab-from for missing models")
    ap.add_argument("--no-make", action="store_true", help="do not make missing models: report them as errors")
    ap.add_argument("--fqlm", default=None, help="the fqlm program (default: FQLM_BIN, else build/fqlm, else ./fqlm)")
    ap.add_argument("-p", "--n-prompt", default="512", help="prompt sizes, comma-separated; the first is the "
                    "table's pp column, the others (e.g. 512,2048,4096) go in a long-context table (default 512)")
    ap.add_argument("-n", "--n-gen", default="128", help="generated tokens (default 128; 0: no tg)")
    ap.add_argument("-t", "--threads", default=None, help="threads (default: fqlm's default, physical cores)")
    ap.add_argument("-r", "--repetitions", dest="reps", default="3", help="repetitions (default 3)")
    ap.add_argument("-ctk", "--cache-type-k", dest="ctk", default="f16", choices=("f16", "f32"),
                    help="K cache type for fqlm and llama-bench alike (default f16, llama-bench's default)")
    ap.add_argument("-ctv", "--cache-type-v", dest="ctv", default="f16", choices=("f16", "f32"),
                    help="V cache type (default f16)")
    ap.add_argument("--timeout", default="3600", help="seconds allowed per program run (default 3600)")
    ap.add_argument("--fqlm-args", default="", help="extra fqlm bench options, e.g. '--bw-mib 256'")
    ap.add_argument("--sd", action="store_true", help="print ± standard deviations")
    ap.add_argument("-o", "--output", default=None, help="also write the markdown to this file (whole or not at all)")
    ap.add_argument("--json", default=None, help="write every figure as JSON to this file")
    ap.add_argument("--log", default=None, help="append every command and its output to this file "
                    "(default: discard)")
    args = ap.parse_args(argv)
    args_show_sd = args.sd

    ps = int_list(args.n_prompt, "-p")
    ps = [p for p in ps if p > 0]
    n = pos_int(args.n_gen, "-n", 0)
    args.reps = pos_int(args.reps, "-r")
    args.timeout = pos_int(args.timeout, "--timeout")
    args.fqlm_args = shlex.split(args.fqlm_args)
    if not ps and n == 0:
        die("nothing to measure: -p and -n are both 0")

    if args.fqlm is None:
        for c in (os.environ.get("FQLM_BIN"), os.path.join(ROOT, "build", "fqlm"), os.path.join(ROOT, "fqlm")):
            if c and os.path.isfile(c):
                args.fqlm = c
                break
        if args.fqlm is None:
            die("no fqlm program: build it (make) or give --fqlm PATH")
    args.fqlm = check_exe(args.fqlm, "--fqlm")
    args.llama = check_exe(os.environ.get("LLAMA_BENCH") or None, "LLAMA_BENCH")
    args.ik = check_exe(os.environ.get("IK_LLAMA_BENCH") or None, "IK_LLAMA_BENCH")
    if args.threads is None:
        # fqlm's default; llama-bench needs the same number spelled out
        import re
        try:
            h = subprocess.run([args.fqlm, "bench", "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=60).stdout
            m = re.search(r"physical cores, (\d+) here", h)
        except (OSError, subprocess.TimeoutExpired):
            m = None
        args.threads = int(m.group(1)) if m else (os.cpu_count() or 1)
    else:
        args.threads = pos_int(args.threads, "-t")
    if args.vocab_from is None:
        # synth looks in models/ and tests/data/models/ of the working directory: name the
        # repository's copy so that the script works from anywhere
        v = os.path.join(ROOT, "tests", "data", "models", "ggml-vocab-llama-spm.gguf")
        args.vocab_from = v if os.path.isfile(v) else None

    # the work list: (label, model path, synth type or None)
    work = []
    if args.model:
        for m in args.model:
            work.append((None, m, None))
    else:
        types = [t.strip().lower() for t in args.types.split(",") if t.strip()]
        if not types:
            die("--types: empty list")
        for t in types:
            # tl-q4_k_m.gguf or tl-Q4_K_M.gguf, whichever is there (made: lower case)
            path = os.path.join(args.dir, f"tl-{t}.gguf")
            upper = os.path.join(args.dir, f"tl-{t.upper()}.gguf")
            if not os.path.isfile(path) and os.path.isfile(upper):
                path = upper
            work.append((t, path, t))

    log = open(args.log, "a") if args.log else open(os.devnull, "w")
    rows, failures = [], 0
    for label, model, typ in work:
        row = {"type": label, "model": model, "fqlm": {}, "llama": {}, "ik": {}, "errors": []}
        rows.append(row)
        if not os.path.isfile(model):
            if typ is None or args.no_make:
                row["errors"].append(f"no model file {model}")
                failures += 1
                print(f"bench-types: {label or model}: no model file {model}", file=sys.stderr)
                continue
            try:
                os.makedirs(args.dir, exist_ok=True)
                make_model(args, typ, model, log)
            except (Fail, OSError) as e:
                row["errors"].append(str(e))
                failures += 1
                print(f"bench-types: {typ}: {e}", file=sys.stderr)
                continue
        print(f"bench-types: {label or model}: fqlm", file=sys.stderr, flush=True)
        # fqlm: one run per prompt size; the first also runs tg
        for i, p in enumerate(ps or [0]):
            ng = n if i == 0 else 0
            try:
                j = fqlm_bench(args, model, p, ng, log)
            except Fail as e:
                row["errors"].append(str(e))
                failures += 1
                print(f"bench-types: {label or model}: {e}", file=sys.stderr)
                break
            if row["type"] is None:
                base = os.path.basename(model)
                row["type"] = (j.get("file_type") or "").lower() or (base[:-5] if base.endswith(".gguf") else base)
            if p:
                row["fqlm"][("pp", p)] = (j.get("pp_tps"), j.get("pp_tps_sd"))
            if ng:
                row["fqlm"][("tg", ng)] = (j.get("tg_tps"), j.get("tg_tps_sd"))
                row["eff"] = j.get("decode_efficiency")
                row["wbytes"] = j.get("weight_bytes_per_token")
            for k in ("cpu", "isa", "bandwidth_gbs", "logits_hash", "rss_mib", "model_bytes"):
                if j.get(k) is not None:
                    row.setdefault(k, j.get(k))
        for key, exe, name in (("llama", args.llama, "llama.cpp"), ("ik", args.ik, "ik_llama.cpp")):
            if not exe:
                continue
            print(f"bench-types: {row['type'] or model}: {name}", file=sys.stderr, flush=True)
            try:
                row[key] = llama_bench(exe, args, model, ps, n, log)
            except Fail as e:
                row["errors"].append(str(e))
                row[key] = None
                failures += 1
                print(f"bench-types: {row['type'] or model}: {e}", file=sys.stderr)
    log.close()

    def get(row, who, key):
        d = row[who]
        if d is None:
            return "error"
        v = d.get(key)
        if v is None or v[0] is None:
            return "error" if (who == "fqlm" and row["errors"]) else None
        return v[0]

    # ---- header ----
    cpus = [r["cpu"] for r in rows if r.get("cpu")]
    isas = sorted({r["isa"] for r in rows if r.get("isa")})
    bws = [r["bandwidth_gbs"] for r in rows if isinstance(r.get("bandwidth_gbs"), (int, float))]
    cmdline = "tools/bench-types.sh " + " ".join(shlex.quote(a) for a in argv)
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in ("FQLM_ISA", "LLAMA_BENCH", "IK_LLAMA_BENCH",
                                                                    "LLAMA_BENCH_ARGS", "IK_LLAMA_BENCH_ARGS")
                   if os.environ.get(k))
    out = []
    out.append(f"- CPU: {cpus[0] if cpus else 'unknown'}; {args.threads} threads; fqlm kernels: "
               f"{', '.join(isas) if isas else 'unknown'} (FQLM_ISA={os.environ.get('FQLM_ISA', 'unset')}); "
               f"K/V cache {args.ctk}/{args.ctv}")
    if bws:
        out.append(f"- memory read bandwidth (fqlm bench, median of each run's passes): "
                   f"{statistics.median(bws):.2f} GB/s (runs: {min(bws):.2f} .. {max(bws):.2f})")
    out.append(f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    out.append(f"- command: `{(env + ' ' if env else '') + cmdline}`")
    out.append(f"- llama.cpp: {args.llama or 'not run (LLAMA_BENCH unset)'}; "
               f"ik_llama.cpp: {args.ik or 'not run (IK_LLAMA_BENCH unset)'}")
    out.append("")

    p0 = ps[0] if ps else None
    hdr = ["type"]
    if p0:
        hdr += [f"fqlm pp{p0}", f"llama.cpp pp{p0}", f"ik pp{p0}", "pp vs llama.cpp", "pp vs ik"]
    if n:
        hdr += [f"fqlm tg{n}", f"llama.cpp tg{n}", f"ik tg{n}", "tg vs llama.cpp", "fqlm tg % of bw"]
    hdr += ["logits hash"]
    out.append("| " + " | ".join(hdr) + " |")
    out.append("| --- | " + " | ".join("---:" for _ in hdr[1:-1]) + " | --- |")
    for r in rows:
        cells = [r["type"] or r["model"]]
        if p0:
            f, l, k = get(r, "fqlm", ("pp", p0)), get(r, "llama", ("pp", p0)), get(r, "ik", ("pp", p0))
            cells += [fmt(f, (r["fqlm"].get(("pp", p0)) or (0, 0))[1]), fmt(l), fmt(k), ratio(f, l), ratio(f, k)]
        if n:
            f, l, k = get(r, "fqlm", ("tg", n)), get(r, "llama", ("tg", n)), get(r, "ik", ("tg", n))
            eff = r.get("eff")
            cells += [fmt(f, (r["fqlm"].get(("tg", n)) or (0, 0))[1], 2), fmt(l, None, 2), fmt(k, None, 2),
                      ratio(f, l), f"{100 * eff:.1f}%" if isinstance(eff, (int, float)) else "-"]
        cells.append(r.get("logits_hash", "-"))
        out.append("| " + " | ".join(cells) + " |")

    if len(ps) > 1:
        out.append("")
        out.append(f"Long contexts: pp at each prompt size, and as a fraction of pp{p0}:")
        out.append("")
        hdr = ["type"]
        for p in ps:
            hdr += [f"fqlm pp{p}", f"llama.cpp pp{p}", f"ik pp{p}"]
        for p in ps[1:]:
            hdr += [f"fqlm pp{p}/pp{p0}", f"llama.cpp pp{p}/pp{p0}", f"fqlm vs llama.cpp pp{p}"]
        out.append("| " + " | ".join(hdr) + " |")
        out.append("| --- | " + " | ".join("---:" for _ in hdr[1:]) + " |")
        for r in rows:
            cells = [r["type"] or r["model"]]
            for p in ps:
                cells += [fmt(get(r, w, ("pp", p))) for w in ("fqlm", "llama", "ik")]
            for p in ps[1:]:
                f0, f1 = get(r, "fqlm", ("pp", p0)), get(r, "fqlm", ("pp", p))
                l0, l1 = get(r, "llama", ("pp", p0)), get(r, "llama", ("pp", p))
                cells += [ratio(f1, f0), ratio(l1, l0), ratio(f1, l1)]
            out.append("| " + " | ".join(cells) + " |")
    errs = [(r["type"] or r["model"], e) for r in rows for e in r["errors"]]
    if errs:
        out.append("")
        out.append("Errors:")
        for t, e in errs:
            out.append(f"- {t}: {e}")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)

    def write_whole(path, data):
        tmp = path + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            die(f"cannot write {path}: {e.strerror}")

    if args.output:
        write_whole(args.output, text)
    if args.json:
        def keyed(d):
            return None if d is None else {f"{k[0]}{k[1]}": {"tps": v[0], "sd": v[1]} for k, v in d.items()}
        js = [{"type": r["type"], "model": r["model"], "fqlm": keyed(r["fqlm"]), "llama_cpp": keyed(r["llama"]),
               "ik_llama_cpp": keyed(r["ik"]), "decode_efficiency": r.get("eff"),
               "bandwidth_gbs": r.get("bandwidth_gbs"), "logits_hash": r.get("logits_hash"),
               "isa": r.get("isa"), "errors": r["errors"]} for r in rows]
        write_whole(args.json, json.dumps({"command": cmdline, "threads": args.threads, "rows": js}, indent=1) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        die("interrupted", 130)
