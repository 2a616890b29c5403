"""fqlm's number formats on numpy arrays, computed by the engine's own code (bit-exact)."""
import ctypes

import numpy as np

from ._lib import lib, check, c_float_p

__all__ = ["quantize", "names"]


def names():
    """The format specs `fqlm formats` lists, in its order."""
    out, i = [], 0
    while True:
        s = lib.fqlm_format_list(i)
        if s is None:
            return out
        out.append(s.decode())
        i += 1


def quantize(x, fmt, seed=0):
    """Returns x rounded to format fmt ("bf16", "fp8_e4m3", "mxfp4", "int4:group=32", ...) as a
    new float32 array of x's shape. Rows are the last axis (a 1-D array is one row), as a
    rule rounds a node's [tokens, values] rows; formats with a scale over rows or columns
    (per_tensor, per_col) see the array as [prod(shape[:-1]), shape[-1]]."""
    a = np.array(x, dtype=np.float32, order="C", copy=True)
    shape = a.shape
    cols = shape[-1] if a.ndim else 1
    rows = a.size // cols if cols else 0
    check(lib.fqlm_quantize(fmt.encode(), a.ctypes.data_as(c_float_p), rows, cols, int(seed)))
    return a.reshape(shape)
