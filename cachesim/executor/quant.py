"""Row storage at fp32, int8 or int4: encode FP32 rows into bytes, decode them back.

Layouts (one uint8 row of `row_bytes(precision, dim)` bytes, from the one table of row layouts,
`cachesim.costs.layouts`):
- fp32: the dim float32 values, 4 x dim bytes.
- int8: FBGEMM's training layout: fp32 scale and fp32 bias (8 bytes), then dim uint8 codes:
  dim + 8 bytes.
- int4: fp16 scale and fp16 bias (4 bytes), then two codes a byte (element 2i in the low
  nibble, 2i+1 in the high nibble; an odd dim pads the last high nibble with 0): ceil(dim/2) + 4.

Quantization (FBGEMM): bias = min(row), scale = (max - min) / (2^bits - 1), code =
round((x - bias) / scale) clipped to [0, 2^bits - 1], value = code x scale + bias. Rounding is
'deterministic' (to nearest) or 'stochastic' (floor(q + u), u ~ U[0, 1) from a seeded
generator: unbiased, E[value] = x). For int4 the fp16 bias is rounded down and the fp16 scale up,
so that [bias, bias + 15 x scale] still covers the row and the error stays within half a stored
step.

Every function takes the array module `xp` implicitly from its inputs' backend (NumPy or CuPy):
pass arrays of one module.
"""
from __future__ import annotations

import numpy as np

from ..costs.layouts import row_layout
from ..errors import CachesimError

PRECISIONS = ("fp32", "int8", "int4")
BITS = {"int8": 8, "int4": 4}
ROUNDINGS = ("stochastic", "deterministic")


def check_precision(precision: str) -> str:
    p = str(precision).lower()
    if p not in PRECISIONS:
        raise CachesimError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}; "
                            "pass --precision fp32, int8 or int4")
    return p


def check_rounding(rounding: str) -> str:
    if rounding not in ROUNDINGS:
        raise CachesimError(f"rounding {rounding!r} is not one of {', '.join(ROUNDINGS)}")
    return rounding


def row_bytes(precision: str, dim: int) -> int:
    """Bytes of one stored row (`costs.layouts.row_layout`): fp32 4 x dim, int8 dim + 8, int4
    ceil(dim / 2) + 4."""
    return row_layout(check_precision(precision), dim).row_bytes


def _xp_of(a):
    from .xp import is_cupy_array
    if is_cupy_array(a):
        import cupy
        return cupy
    return np


def _codes(xp, q, levels: int, rounding: str, rng):
    """Integer codes of the scaled values q (>= 0 in exact arithmetic), as uint8."""
    if rounding == "stochastic":
        if rng is None:
            raise ValueError("stochastic rounding needs a generator (rng)")
        q = xp.floor(q + rng.random(q.shape, dtype=q.dtype))
    else:
        q = xp.floor(q + q.dtype.type(0.5))
    return xp.clip(q, 0, levels).astype(xp.uint8)


def _f16_next(xp, h, up: bool):
    """The float16 next to h toward +inf (up) or -inf, by its bits (NumPy and CuPy alike)."""
    b = h.view(xp.uint16).astype(xp.int32)
    away = (h > 0) if up else (h < 0)          # moving away from zero: magnitude grows
    nxt = xp.where(away, b + 1, b - 1)
    zero = xp.int32(0x0001 if up else 0x8001)  # from +-0: the smallest subnormal of that sign
    nxt = xp.where(h == 0, zero, nxt)
    return nxt.astype(xp.uint16).view(xp.float16)


def _f16_down(xp, x):
    """x (float32) rounded to float16 toward -inf."""
    h = x.astype(xp.float16)
    return xp.where(h.astype(xp.float32) > x, _f16_next(xp, h, up=False), h)


def _f16_up(xp, x):
    """x (float32) rounded to float16 toward +inf."""
    h = x.astype(xp.float16)
    return xp.where(h.astype(xp.float32) < x, _f16_next(xp, h, up=True), h)


def quantize_params(rows, bits: int):
    """Scale and bias per row (float32 for int8; float16-representable for int4), as float32
    arrays, the values the stored row will hold."""
    xp = _xp_of(rows)
    lo = rows.min(axis=1)
    hi = rows.max(axis=1)
    levels = (1 << bits) - 1
    if bits == 8:
        return (hi - lo) / np.float32(levels), lo
    bias = _f16_down(xp, lo)
    scale = _f16_up(xp, (hi - bias.astype(xp.float32)) / np.float32(levels))
    return scale.astype(xp.float32), bias.astype(xp.float32)


def encode(rows, precision: str, rounding: str = "deterministic", rng=None):
    """FP32 rows [n, dim] -> stored rows, uint8 [n, row_bytes]."""
    xp = _xp_of(rows)
    p = check_precision(precision)
    rows = xp.ascontiguousarray(rows, dtype=xp.float32)
    n, dim = rows.shape
    if p == "fp32":
        return rows.view(xp.uint8).reshape(n, 4 * dim)
    bits = BITS[p]
    levels = (1 << bits) - 1
    scale, bias = quantize_params(rows, bits)
    inv = xp.where(scale > 0, np.float32(1) / xp.where(scale > 0, scale, np.float32(1)),
                   np.float32(0))
    q = (rows - bias[:, None]) * inv[:, None]
    codes = _codes(xp, q, levels, check_rounding(rounding), rng)
    out = xp.empty((n, row_bytes(p, dim)), dtype=xp.uint8)
    if p == "int8":
        params = xp.stack([scale, bias], axis=1).astype(xp.float32)
        out[:, :8] = params.view(xp.uint8).reshape(n, 8)
        out[:, 8:] = codes
        return out
    params = xp.stack([scale, bias], axis=1).astype(xp.float16)
    out[:, :4] = params.view(xp.uint8).reshape(n, 4)
    out[:, 4:] = pack_int4(codes)
    return out


def decode(stored, precision: str, dim: int):
    """Stored rows, uint8 [n, row_bytes] -> FP32 rows [n, dim]."""
    xp = _xp_of(stored)
    p = check_precision(precision)
    stored = xp.ascontiguousarray(stored)
    n = stored.shape[0]
    if p == "fp32":
        return stored.view(xp.float32).reshape(n, dim).copy()
    if p == "int8":
        params = stored[:, :8].copy().view(xp.float32).reshape(n, 2)
        codes = stored[:, 8:]
    else:
        params = stored[:, :4].copy().view(xp.float16).reshape(n, 2).astype(xp.float32)
        codes = unpack_int4(stored[:, 4:], dim)
    return codes.astype(xp.float32) * params[:, 0:1] + params[:, 1:2]


def pack_int4(codes):
    """uint8 codes in [0, 15], [n, dim] -> [n, ceil(dim / 2)], element 2i in the low nibble."""
    xp = _xp_of(codes)
    n, dim = codes.shape
    if dim % 2:
        codes = xp.concatenate([codes, xp.zeros((n, 1), dtype=xp.uint8)], axis=1)
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(xp.uint8)


def unpack_int4(packed, dim: int):
    """[n, ceil(dim / 2)] packed bytes -> uint8 codes [n, dim]."""
    xp = _xp_of(packed)
    n = packed.shape[0]
    out = xp.empty((n, 2 * packed.shape[1]), dtype=xp.uint8)
    out[:, 0::2] = packed & 0x0F
    out[:, 1::2] = packed >> 4
    return out[:, :dim]
