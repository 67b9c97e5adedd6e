"""Bytes of one stored embedding row and of one cache line, per precision: the one table of row
layouts (the cost model and the executor's row storage both use it). FBGEMM_GPU = pytorch/FBGEMM,
fbgemm_gpu/.

Row layouts (bytes of one stored row of dimension D, `row_layout`):
- `fp32` 4D, `fp16` and `bf16` 2D: the element sizes.
- `int8` D + 8: one byte per element plus an fp32 scale and an fp32 bias per row, FBGEMM's
  training layout (`INT8_EMB_ROW_DIM_OFFSET = 8` in split_table_batched_embeddings_ops_training).
- `int8-fp16qp` D + 4, `int4` ceil(D/2) + 4, `int2` ceil(D/4) + 4: fp16 scale and fp16 bias per
  row, FBGEMM's inference layout (`unpadded_row_size_in_bytes`: INT8 dim + 4, INT4 dim/2 + 4,
  INT2 dim/4 + 4).
- `align`: FBGEMM pads inference rows to a multiple of 16 bytes (`padded_row_size_in_bytes`,
  row_alignment 16). Here padding is off by default (`align=1`); pass `align=16` for FBGEMM's
  inference tables. Padding is reported apart from the scale/bias bytes.
Cache rows (`cache_row_bytes`): `fp32` 4D or `fp16` 2D (FBGEMM's cache precision). One cache
shared by all tables stores every line at the largest dimension (FBGEMM's `lxu_cache_weights` is
[lines, max_D_cache]); per-table caches use each table's own dimension.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CachesimError

# precision -> (data bytes as a function of D, scale+bias bytes per row, what the overhead is)
_STORAGE = {
    "fp32": (lambda d: 4 * d, 0, "none"),
    "fp16": (lambda d: 2 * d, 0, "none"),
    "bf16": (lambda d: 2 * d, 0, "none"),
    "int8": (lambda d: d, 8, "fp32 scale + fp32 bias"),
    "int8-fp16qp": (lambda d: d, 4, "fp16 scale + fp16 bias"),
    "int4": (lambda d: -(-d // 2), 4, "fp16 scale + fp16 bias"),
    "int2": (lambda d: -(-d // 4), 4, "fp16 scale + fp16 bias"),
}
_CACHE = {"fp32": 4, "fp16": 2}


def precision_names() -> list[str]:
    """Storage precisions known to the cost model."""
    return list(_STORAGE)


def check_precision(precision: str) -> str:
    p = str(precision).strip().lower()
    if p not in _STORAGE:
        raise CachesimError(f"unknown storage precision {precision!r}; use one of "
                            f"{', '.join(_STORAGE)}")
    return p


def check_cache_precision(precision: str) -> str:
    p = str(precision).strip().lower()
    if p not in _CACHE:
        raise CachesimError(f"cache precision {precision!r}: the cache holds fp32 or fp16 rows "
                            "(FBGEMM's cache precisions); pass --cache-precision fp32 or fp16")
    return p


def check_align(align: int) -> int:
    a = int(align)
    if a < 1:
        raise CachesimError(f"row alignment {align}: must be at least 1 byte (1 = no padding, "
                            "16 = FBGEMM's inference tables)")
    return a


@dataclass(frozen=True)
class RowLayout:
    """Bytes of one stored row: data + scale/bias + padding = `row_bytes`."""

    precision: str
    dim: int
    data_bytes: int
    scale_bias_bytes: int
    padding_bytes: int
    overhead: str

    @property
    def row_bytes(self) -> int:
        return self.data_bytes + self.scale_bias_bytes + self.padding_bytes


def row_layout(precision: str, dim: int, align: int = 1) -> RowLayout:
    """The stored row of `dim` elements at `precision`, padded to a multiple of `align` bytes."""
    p = check_precision(precision)
    dim, align = int(dim), check_align(align)
    if dim < 1:
        raise CachesimError(f"embedding dim {dim}: must be at least 1")
    data_of, sb, what = _STORAGE[p]
    data = data_of(dim)
    padded = -(-(data + sb) // align) * align
    return RowLayout(p, dim, data, sb, padded - data - sb, what)


def row_bytes(precision: str, dims, align: int = 1) -> np.ndarray:
    """Stored row bytes per table (int64), one per entry of `dims`."""
    return np.array([row_layout(precision, d, align).row_bytes for d in np.atleast_1d(dims)],
                    dtype=np.int64)


def cache_row_bytes(cache_precision: str, dim: int) -> int:
    """Bytes of one cache line's row of `dim` elements (fp32 4D, fp16 2D)."""
    return _CACHE[check_cache_precision(cache_precision)] * int(dim)
