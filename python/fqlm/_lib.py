"""ctypes bindings of libfqlm.so (include/fqlm.h). Internal: use the fqlm package."""
import ctypes
import ctypes.util
import os

__all__ = ["lib", "FqlmError", "check", "HOOK_FN", "Score", "ContextParams", "SweepParams", "SweepRow", "library_path"]


class FqlmError(RuntimeError):
    """A failure reported by libfqlm; the message is the library's."""


def _candidates():
    env = os.environ.get("FQLM_LIB")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.join(here, "..", "..")
    if os.path.exists(os.path.join(root, "include", "fqlm.h")):     # a source tree: `make python`
        yield os.path.join(root, "build", "libfqlm.so")
    yield os.path.join(here, "libfqlm.so")                          # installed with the package
    found = ctypes.util.find_library("fqlm")
    if found:
        yield found


def _load():
    tried = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            return ctypes.CDLL(path), os.path.abspath(path) if os.path.exists(path) else path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("fqlm: libfqlm.so not found (build it with `make python`, or set FQLM_LIB); tried: "
                      + ", ".join(tried))


lib, library_path = _load()

c_int, c_int64, c_uint64, c_char_p, c_void_p = (ctypes.c_int, ctypes.c_int64, ctypes.c_uint64,
                                                  ctypes.c_char_p, ctypes.c_void_p)
c_float_p = ctypes.POINTER(ctypes.c_float)
c_int32_p = ctypes.POINTER(ctypes.c_int32)


class ContextParams(ctypes.Structure):
    _fields_ = [("n_ctx", c_int), ("n_threads", c_int), ("n_batch", c_int), ("exact", c_int),
                ("cache_f16", c_int), ("seed", c_uint64)]


class Score(ctypes.Structure):
    _fields_ = [("n_pos", c_int64), ("n_scored", c_int64), ("n_nonfinite", c_int64), ("n_chunks", c_int64)] + [
        (name, ctypes.c_double) for name in (
            "mean_kld", "kld_stderr", "kld_median", "kld_p90", "kld_p99", "max_kld", "top1_agree",
            "ppl_base", "ppl_fq", "ppl_ratio", "nll_base", "nll_fq", "max_abs_logit_diff")]


class SweepParams(ctypes.Structure):
    _fields_ = [("nodes", c_char_p), ("layers", c_char_p), ("formats", c_char_p), ("chunk", c_int),
                ("max_chunks", c_int), ("reuse", c_int), ("shard_index", c_int), ("shard_count", c_int)]


# fqlm_sweep_row: results.csv's fields in its order, then where NaN/Inf appeared
SWEEP_FIELDS = ("mean_kld", "kld_stderr", "kld_median", "kld_p90", "kld_p99", "max_kld", "top1_agree",
                "ppl_base", "ppl_fq", "ppl_ratio", "dp_mean", "max_abs_logit_diff")


class SweepRow(ctypes.Structure):
    _fields_ = ([("node", ctypes.c_char * 32), ("layer", c_int), ("format", ctypes.c_char * 160),
                 ("first_layer", c_int), ("positions", c_int64)] +
                [(name, ctypes.c_double) for name in SWEEP_FIELDS] +
                [("applications", c_int64), ("seconds", ctypes.c_double), ("n_nonfinite", c_int64),
                 ("nonfinite_at", ctypes.c_char * 512)])


# int fn(void *ud, const char *node, int layer, float *values, int64_t rows, int64_t cols)
HOOK_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_char_p, c_int, c_float_p, c_int64, c_int64)


def _sig(name, res, *args):
    f = getattr(lib, name)
    f.restype = res
    f.argtypes = list(args)


_sig("fqlm_last_error", c_char_p)
_sig("fqlm_version", c_char_p)
_sig("fqlm_model_load", c_void_p, c_char_p)
_sig("fqlm_model_free", None, c_void_p)
for _n in ("fqlm_model_n_vocab", "fqlm_model_n_layer", "fqlm_model_n_embd", "fqlm_model_n_ctx_train",
           "fqlm_model_n_nodes", "fqlm_token_bos", "fqlm_token_eos"):
    _sig(_n, c_int, c_void_p)
_sig("fqlm_tokenize", c_int, c_void_p, c_char_p, c_int32_p, c_int, c_int)
_sig("fqlm_detokenize", c_int, c_void_p, c_int32_p, c_int, c_char_p, ctypes.c_size_t)
_sig("fqlm_model_node", c_char_p, c_void_p, c_int, ctypes.POINTER(c_int), ctypes.POINTER(c_int64))
_sig("fqlm_context_default_params", ContextParams)
_sig("fqlm_context_new", c_void_p, c_void_p, ctypes.POINTER(ContextParams))
_sig("fqlm_context_free", None, c_void_p)
_sig("fqlm_context_add_rule", c_int, c_void_p, c_char_p)
_sig("fqlm_context_set_hook", c_int, c_void_p, c_char_p, HOOK_FN, c_void_p)
_sig("fqlm_context_clear_hooks", None, c_void_p)
_sig("fqlm_context_reset_stats", None, c_void_p)
_sig("fqlm_context_n_ctx", c_int, c_void_p)
_sig("fqlm_context_stats_json", c_void_p, c_void_p)
_sig("fqlm_eval", c_int, c_void_p, c_int32_p, c_int, c_int, c_float_p)
_sig("fqlm_eval_all", c_int, c_void_p, c_int32_p, c_int, c_int, c_float_p)
_sig("fqlm_score_tokens", c_int, c_void_p, c_void_p, c_int32_p, c_int, c_int, ctypes.POINTER(Score))
_sig("fqlm_sweep_default_params", SweepParams)
_sig("fqlm_sweep_new", c_void_p, c_void_p, c_int32_p, c_int, ctypes.POINTER(SweepParams))
_sig("fqlm_sweep_free", None, c_void_p)
_sig("fqlm_sweep_n_combos", c_int, c_void_p)
_sig("fqlm_sweep_n_chunks", c_int, c_void_p)
_sig("fqlm_sweep_run", c_int, c_void_p, c_int, ctypes.POINTER(SweepRow), c_void_p, c_void_p)
_sig("fqlm_quantize", c_int, c_char_p, c_float_p, c_int64, c_int64, c_uint64)
_sig("fqlm_format_list", c_char_p, c_int)

_libc = ctypes.CDLL(None)
_libc.free.argtypes = [c_void_p]
_libc.free.restype = None


def free(ptr):
    _libc.free(ptr)


def last_error():
    return lib.fqlm_last_error().decode("utf-8", "replace")


def check(rc):
    """Raises FqlmError with the library's message when rc is -1 (or a NULL handle)."""
    if rc is None or (isinstance(rc, int) and rc < 0):
        raise FqlmError(last_error())
    return rc
