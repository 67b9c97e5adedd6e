"""The host store: every embedding row at its storage precision, in host memory.

One uint8 array [n_rows, row_bytes] (layouts in `quant`), pinned on a GPU so that rows move by
real DMA copies. Row i is the trace's dense id i. Every copy is counted as it is made:
`h2d_bytes` (rows read to the device) and `d2h_bytes` (rows written back), so the counters are
the bytes that actually crossed, not an estimate.
"""
from __future__ import annotations

import numpy as np

from .quant import check_precision, decode, encode, row_bytes
from .xp import ArrayBackend


class HostStore:
    """Rows [n_rows, dim] stored at `precision` in host memory, read and written by dense id."""

    def __init__(self, backend: ArrayBackend, init_rows: np.ndarray, precision: str,
                 rounding: str = "stochastic", seed: int = 0):
        self.backend = backend
        self.precision = check_precision(precision)
        self.rounding = rounding
        self.n_rows, self.dim = init_rows.shape
        self.row_bytes = row_bytes(self.precision, self.dim)
        self.rows = backend.host_empty((self.n_rows, self.row_bytes), np.uint8)
        # the initial weights are rounded to nearest, on the host, in pieces
        step = 1 << 18
        for a in range(0, self.n_rows, step):
            self.rows[a:a + step] = encode(init_rows[a:a + step], self.precision, "deterministic")
        self.rng = backend.rng(seed)
        self.h2d_bytes = 0
        self.d2h_bytes = 0
        self._buffers = {}

    def _staging(self, n: int, which: str) -> np.ndarray:
        """A pinned host buffer of n rows (grown as needed) for the copies on a GPU."""
        buf = self._buffers.get(which)
        if buf is None or buf.shape[0] < n:
            buf = self.backend.host_empty((max(n, 1024), self.row_bytes), np.uint8)
            self._buffers[which] = buf
        return buf[:n]

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes)

    def read(self, ids: np.ndarray, count: bool = True):
        """FP32 rows of dense ids (host int array) on the device: gather on the host, copy H2D,
        dequantize on the device. `count=False` for evaluation reads (no counters change)."""
        if self.backend.is_gpu:
            buf = self._staging(len(ids), "in")
            np.take(self.rows, ids, axis=0, out=buf)
            stored = self.backend.xp.asarray(buf)
        else:
            stored = self.rows[ids]  # the gather is the copy
        if count:
            self.h2d_bytes += int(stored.nbytes)
        return decode(stored, self.precision, self.dim)

    def write(self, ids: np.ndarray, rows) -> None:
        """Quantize FP32 device rows (with the store's rounding), copy D2H, scatter on the host.
        `ids` (host) must not repeat."""
        if len(ids) == 0:
            return
        stored = encode(rows, self.precision, self.rounding, self.rng)
        if self.backend.is_gpu:
            host = stored.get(out=self._staging(len(ids), "out"))
        else:
            host = stored
        self.d2h_bytes += int(host.nbytes)
        self.rows[ids] = host

    def dequantized(self) -> np.ndarray:
        """All rows as FP32 on the host (for checks; not counted)."""
        return np.asarray(decode(self.rows, self.precision, self.dim))
