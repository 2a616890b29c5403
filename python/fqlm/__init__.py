"""fqlm: fake quantization of llama-family GGUF models, from Python.

    import fqlm
    m = fqlm.Model("models/stories260K.gguf")
    ctx = m.context(n_ctx=256, threads=2)
    ctx.add_rule("ffn_norm@4=bf16")
    logits = ctx.logits(m.tokenize("Once upon a time"))   # [n_tokens, n_vocab] float32
    fqlm.compare(m, "Once upon a time", rules=["ffn_norm@*=bf16"])["mean_kld"]

A thin ctypes layer over libfqlm.so (include/fqlm.h): the engine computes, Python sees the
values. C calls run without the GIL; hooks written in Python take it while they run.
"""
import ctypes
import json
import weakref

import numpy as np

from . import formats
from ._lib import (lib, check, free, last_error, FqlmError, HOOK_FN, Score, SweepParams, SweepRow,
                   SWEEP_FIELDS, c_float_p, c_int32_p, library_path)

__version__ = "0.1.0"
__all__ = ["Model", "Context", "Capture", "compare", "sweep", "formats", "FqlmError", "__version__",
           "library_version", "library_path"]


def library_version():
    """FQLM_VERSION of the loaded libfqlm.so (the package's __version__ must equal it)."""
    return lib.fqlm_version().decode()


if library_version() != __version__:
    raise ImportError("fqlm: the package is %s but %s is %s: rebuild or reinstall them together"
                      % (__version__, library_path, library_version()))


def _ids(ids):
    a = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    if a.size and (a.min() < -2**31 or a.max() >= 2**31):
        raise ValueError("token ids must fit in int32")
    return np.ascontiguousarray(a.astype(np.int32))


class Model:
    """A GGUF model, loaded (mmap'd) by the engine."""

    def __init__(self, path):
        self.path = str(path)
        self._contexts = weakref.WeakSet()  # closed before the model is freed
        self._live = 0                      # contexts not yet freed (they need the model)
        self._closing = False
        self._h = lib.fqlm_model_load(self.path.encode())
        if not self._h:
            raise FqlmError(last_error())
        self.n_vocab = lib.fqlm_model_n_vocab(self._h)
        self.n_layer = lib.fqlm_model_n_layer(self._h)
        self.n_embd = lib.fqlm_model_n_embd(self._h)
        self.n_ctx_train = lib.fqlm_model_n_ctx_train(self._h)
        self.bos = lib.fqlm_token_bos(self._h)
        self.eos = lib.fqlm_token_eos(self._h)

    def close(self, _free=lib.fqlm_model_free):
        """Frees the model, closing its contexts first."""
        for c in list(getattr(self, "_contexts", ())):
            c.close()
        self._closing = True
        # a context collected in the same garbage cycle may still be alive: the last one frees
        if getattr(self, "_h", None) and not self._live:
            _free(self._h)
            self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _handle(self):
        if not self._h or self._closing:
            raise FqlmError("the model was closed")
        return self._h

    def tokenize(self, text, bos=True):
        """Token ids (a list of int) of UTF-8 text; BOS first when bos and the model adds one."""
        b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if b"\0" in b:
            raise ValueError("text holds a NUL character")
        cap = len(b) + 8
        while True:
            buf = (ctypes.c_int32 * cap)()
            n = check(lib.fqlm_tokenize(self._handle(), b, buf, cap, 1 if bos else 0))
            if n <= cap:
                return list(buf[:n])
            cap = n

    def detokenize(self, ids):
        """The text of token ids (invalid UTF-8 bytes are replaced)."""
        a = _ids(ids)
        p = a.ctypes.data_as(c_int32_p)
        n = check(lib.fqlm_detokenize(self._handle(), p, a.size, None, 0))
        buf = ctypes.create_string_buffer(n + 1)
        check(lib.fqlm_detokenize(self._handle(), p, a.size, buf, n + 1))
        return buf.raw[:n].decode("utf-8", "replace")

    def nodes(self):
        """The nodes this model computes, in graph order: a list of dicts
        {"name", "per_layer" (bool), "layers" (list), "cols" (values per token)}."""
        out = []
        has_layer, cols = ctypes.c_int(), ctypes.c_int64()
        for i in range(lib.fqlm_model_n_nodes(self._handle())):
            name = lib.fqlm_model_node(self._h, i, ctypes.byref(has_layer), ctypes.byref(cols)).decode()
            out.append({"name": name, "per_layer": bool(has_layer.value),
                        "layers": list(range(self.n_layer)) if has_layer.value else [],
                        "cols": int(cols.value)})
        return out

    def context(self, n_ctx=None, threads=None, exact=False, batch=None, cache_f16=False, seed=0):
        """A context (KV cache, activations) of n_ctx tokens (default: the training length,
        at most 4096)."""
        return Context(self, n_ctx=n_ctx, threads=threads, exact=exact, batch=batch,
                       cache_f16=cache_f16, seed=seed)

    def __repr__(self):
        return "fqlm.Model(%r: %d layers, n_embd %d, n_vocab %d)" % (self.path, self.n_layer, self.n_embd,
                                                                    self.n_vocab)


class Capture:
    """Values of the nodes of a selector, copied at each evaluation (see Context.capture).
    calls: a list of (name, layer, array) in the order the engine computed them;
    cap[name, layer] (or cap[name] for a node without a layer) gives that node's rows of
    the last evaluation(s) stacked into one [rows, cols] array."""

    def __init__(self):
        self.calls = []

    def clear(self):
        self.calls = []

    def keys(self):
        seen = []
        for name, layer, _ in self.calls:
            if (name, layer) not in seen:
                seen.append((name, layer))
        return seen

    def __getitem__(self, key):
        name, layer = (key, -1) if isinstance(key, str) else key
        parts = [a for n, l, a in self.calls if n == name and l == layer]
        if not parts:
            raise KeyError(key)
        if len(parts) == 1:
            return parts[0]
        if len({p.shape[1] for p in parts}) == 1:
            return np.concatenate(parts, axis=0)
        return parts  # kq, kq_soft_max: one [n_head, n_kv] array per token

    def _fn(self, name, layer, x):
        self.calls.append((name, layer, x.copy()))


class Context:
    """A context of a model: rules, hooks and evaluation. Use Model.context()."""

    def __init__(self, model, n_ctx=None, threads=None, exact=False, batch=None, cache_f16=False, seed=0):
        self.model = model
        p = lib.fqlm_context_default_params()
        p.n_ctx = int(n_ctx) if n_ctx else max(2, min(model.n_ctx_train or 2048, 4096))
        if threads:
            p.n_threads = int(threads)
        if batch:
            p.n_batch = int(batch)
        p.exact = 1 if exact else 0
        p.cache_f16 = 1 if cache_f16 else 0
        p.seed = int(seed)
        self.exact = bool(exact)
        self._hooks = []       # (selector, python fn, CFUNCTYPE object): kept alive while set
        self._pending = None   # the exception a Python hook raised during the running eval
        self._h = lib.fqlm_context_new(model._handle(), ctypes.byref(p))
        if not self._h:
            raise FqlmError(last_error())
        self.n_ctx = lib.fqlm_context_n_ctx(self._h)
        self.rules = []
        model._contexts.add(self)
        model._live += 1

    def close(self, _free=lib.fqlm_context_free):
        """Frees the context (also done when it is garbage-collected)."""
        if getattr(self, "_h", None):
            _free(self._h)
            self._h = None
            m = self.model
            m._live -= 1
            if m._closing and not m._live:
                m.close()

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _handle(self):
        if not self._h:
            raise FqlmError("the context was closed")
        return self._h

    def add_rule(self, rule):
        """Adds a fake-quantization rule, as `fqlm run --fq` ("ffn_norm@21=bf16")."""
        check(lib.fqlm_context_add_rule(self._handle(), rule.encode()))
        self.rules.append(rule)
        return self

    def hook(self, selector, fn):
        """Calls fn(name, layer, x) on every node of selector ("ffn_norm@*", "attn_norm@3",
        "result_output") right after the engine computed it (and its rules rounded it):
        x is a writable float32 numpy view [rows, cols] of the engine's values, valid only
        during the call; change it in place (x[...] = f(x)) to apply your own format. What
        fn returns is ignored; an exception stops the evaluation, which then raises it."""
        if not callable(fn):
            raise TypeError("hook: fn must be callable")

        ref = weakref.ref(self)  # no cycle: the context is freed as soon as it is dropped

        def trampoline(_ud, name, layer, values, rows, cols):
            ctx = ref()
            if ctx is None or ctx._pending is not None:
                return 1
            try:
                x = np.ctypeslib.as_array(values, shape=(rows, cols)) if rows and cols else \
                    np.zeros((rows, cols), dtype=np.float32)
                fn(name.decode(), layer, x)
                return 0
            except BaseException as e:  # noqa: B036 (re-raised by the eval that called us)
                # the engine stops the evaluation at once (no further hook or layer, no
                # logits); the eval re-raises e, noting which hook and node raised it
                where = "%s-%d" % (name.decode(), layer) if layer >= 0 else name.decode()
                note = "raised by the fqlm hook %r on node %s: the evaluation stopped there" % (selector, where)
                if hasattr(e, "add_note"):  # Python 3.11+
                    e.add_note(note)
                else:
                    e.__notes__ = getattr(e, "__notes__", []) + [note]
                ctx._pending = e
                return 1

        cb = HOOK_FN(trampoline)
        check(lib.fqlm_context_set_hook(self._handle(), selector.encode(), cb, None))
        self._hooks.append((selector, fn, cb))
        return self

    def capture(self, selector):
        """Returns a Capture that copies the values of selector's nodes at each evaluation."""
        cap = Capture()
        self.hook(selector, cap._fn)
        return cap

    def clear_hooks(self):
        """Removes every hook and capture (rules stay)."""
        lib.fqlm_context_clear_hooks(self._handle())
        self._hooks = []

    def _eval(self, ids, pos, every):
        a = _ids(ids)
        if a.size == 0:
            raise ValueError("no tokens to evaluate")
        nv = self.model.n_vocab
        out = np.empty((a.size if every else 1, nv), dtype=np.float32)
        fn = lib.fqlm_eval_all if every else lib.fqlm_eval
        self._pending = None
        rc = fn(self._handle(), a.ctypes.data_as(c_int32_p), a.size, int(pos), out.ctypes.data_as(c_float_p))
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                raise pending
            finally:
                del pending  # no frame <-> exception cycle holding the context
        check(rc)
        return out

    def logits(self, ids, pos=0):
        """Evaluates token ids (a list, an array, or a str to tokenize) at positions
        pos.. and returns every position's logits, float32 [n_tokens, n_vocab]."""
        if isinstance(ids, str):
            ids = self.model.tokenize(ids)
        return self._eval(ids, pos, True)

    def last_logits(self, ids, pos=0):
        """The same, keeping only the last token's logits: [n_vocab]."""
        if isinstance(ids, str):
            ids = self.model.tokenize(ids)
        return self._eval(ids, pos, False)[0]

    def stats(self):
        """The rules' per-(node, layer, format) error table (as --fq-stats writes it), a dict."""
        p = lib.fqlm_context_stats_json(self._handle())
        if not p:
            raise FqlmError("out of memory")
        try:
            return json.loads(ctypes.string_at(p).decode())
        finally:
            free(p)

    def reset_stats(self):
        lib.fqlm_context_reset_stats(self._handle())


def _as_model(model):
    return model if isinstance(model, Model) else Model(model)


def _install(ctx, rules, hook):
    for r in rules or []:
        ctx.add_rule(r)
    if hook is None:
        return
    items = hook.items() if isinstance(hook, dict) else [hook]
    for sel, fn in items:
        ctx.hook(sel, fn)


def compare(model, text, rules=None, hook=None, n_ctx=512, threads=None, exact=False, chunk=None,
            baseline_rules=None):
    """Scores text as `fqlm compare` does: a baseline context (no rules, or baseline_rules)
    against one with rules (a list of rule strings) and/or hook (a (selector, fn) pair or a
    {selector: fn} dict). text: a str, or a list of token ids. Returns a dict: n_pos,
    n_scored, n_nonfinite, n_chunks, mean_kld, kld_stderr, kld_median, kld_p90, kld_p99,
    max_kld (nats), top1_agree (0..1), ppl_base, ppl_fq, ppl_ratio, nll_base, nll_fq,
    max_abs_logit_diff, plus rules and stats (the rules' error table rows)."""
    m = _as_model(model)
    ids = _ids(m.tokenize(text) if isinstance(text, str) else text)
    with m.context(n_ctx=n_ctx, threads=threads, exact=exact) as base, \
            m.context(n_ctx=n_ctx, threads=threads, exact=exact) as fq:
        _install(base, baseline_rules, None)
        _install(fq, rules, hook)
        return _score(base, fq, ids, chunk)


def _score(base, fq, ids, chunk):
    s = Score()
    fq._pending = None
    rc = lib.fqlm_score_tokens(base._handle(), fq._handle(), ids.ctypes.data_as(c_int32_p), ids.size,
                               int(chunk or 0), ctypes.byref(s))
    pending, fq._pending = fq._pending, None
    if pending is not None:
        try:
            raise pending
        finally:
            del pending
    check(rc)
    out = {name: getattr(s, name) for name, _ in Score._fields_}
    for k in ("n_pos", "n_scored", "n_nonfinite", "n_chunks"):
        out[k] = int(out[k])
    out["rules"] = list(fq.rules)
    out["stats"] = fq.stats()["nodes"]
    return out


def _csv_list(v, what):
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    v = [str(x) for x in v]
    if not v:
        raise FqlmError("sweep: the %s list is empty" % what)
    return ",".join(v)


# sweep(..., as_array=True): a numpy structured array with these columns (results.csv's)
SWEEP_DTYPE = np.dtype([("node", "U32"), ("layer", np.int32), ("format", "U160"), ("first_layer", np.int32),
                        ("positions", np.int64)] + [(n, np.float64) for n in SWEEP_FIELDS] +
                       [("applications", np.int64), ("seconds", np.float64), ("n_nonfinite", np.int64)])


def sweep(model, text, nodes=("ffn_norm",), formats=("bf16",), layers=None, n_ctx=512, threads=None,
          exact=False, chunk=None, chunks=None, reuse=True, seed=0, as_array=False):
    """Every node x layer x format against the baseline, as `fqlm sweep` runs it (the same
    engine, fqlm_sweep_* of libfqlm): the baseline's hidden states are kept and each
    combination recomputes from its first layer on; the figures equal `fqlm sweep`'s
    results.csv for the same model, text, -c (chunk, default n_ctx) and --chunks (chunks).

    nodes, formats, layers: lists or `fqlm sweep`-style strings ("ffn_*,attn_norm", "0-3,7",
    "int4:group=32,asym,bf16"); layers None: every layer; nodes without a layer are run once
    (layer -1). Returns a list of row dicts (node, layer, format, rule, first_layer,
    positions, mean_kld, kld_stderr, kld_median, kld_p90, kld_p99, max_kld, top1_agree,
    ppl_base, ppl_fq, ppl_ratio, dp_mean, max_abs_logit_diff, applications, seconds,
    n_nonfinite, nonfinite_at; n_pos and n_chunks as compare() has them), ordered node by
    node, then layer, then format (pandas.DataFrame(rows) makes a table of it); with
    as_array=True a numpy structured array of SWEEP_DTYPE in the same order."""
    m = _as_model(model)
    ids = _ids(m.tokenize(text) if isinstance(text, str) else text)
    p = lib.fqlm_sweep_default_params()
    keep = [(_csv_list(nodes, "node") or "").encode(), (_csv_list(formats, "format") or "").encode(),
            None if layers is None else _csv_list(layers, "layer").encode()]
    p.nodes, p.formats, p.layers = keep
    p.chunk = int(chunk or n_ctx)
    p.max_chunks = int(chunks or 0)
    p.reuse = 1 if reuse else 0
    rows = []
    with m.context(n_ctx=max(n_ctx, p.chunk), threads=threads, exact=exact, seed=seed) as ctx:
        h = lib.fqlm_sweep_new(ctx._handle(), ids.ctypes.data_as(c_int32_p), ids.size, ctypes.byref(p))
        if not h:
            raise FqlmError(last_error())
        try:
            n_chunks = lib.fqlm_sweep_n_chunks(h)
            r = SweepRow()
            for i in range(lib.fqlm_sweep_n_combos(h)):
                check(lib.fqlm_sweep_run(h, i, ctypes.byref(r), None, None))
                row = {name: getattr(r, name) for name, _ in SweepRow._fields_}
                for k in ("node", "format", "nonfinite_at"):
                    row[k] = row[k].decode("utf-8", "replace")
                row["rule"] = ("%s@%d=%s" % (row["node"], row["layer"], row["format"]) if row["layer"] >= 0
                               else "%s=%s" % (row["node"], row["format"]))
                row["n_pos"] = row["positions"]
                row["n_chunks"] = n_chunks
                rows.append(row)
        finally:
            lib.fqlm_sweep_free(h)
    # the engine lists format by format; compare-style callers read node, layer, format
    npos, fpos = {}, {}
    for r in rows:
        npos.setdefault(r["node"], len(npos))
        fpos.setdefault(r["format"], len(fpos))
    rows.sort(key=lambda r: (npos[r["node"]], r["layer"], fpos[r["format"]]))
    if as_array:
        return np.array([tuple(r[n] for n in SWEEP_DTYPE.names) for r in rows], dtype=SWEEP_DTYPE)
    return rows
