"""Pick the array module once: CuPy on a GPU, NumPy otherwise.

CuPy is imported only inside `get_xp` (never at package import), so `import cachesim` and
`import cachesim.executor` work, and stay light, on machines without it. Everything else in the
executor takes the module `xp` that `get_xp` returns and writes one code path over it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ..errors import CachesimError

DEVICES = ("auto", "gpu", "cpu")


@dataclass(frozen=True)
class ArrayBackend:
    """The array module and what goes with it: `name` is 'gpu' (CuPy) or 'cpu' (NumPy)."""

    xp: object
    name: str

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"

    def to_host(self, a) -> np.ndarray:
        """A NumPy copy (or view, on the CPU) of a device array."""
        return a.get() if self.is_gpu else np.asarray(a)

    def host_empty(self, shape, dtype) -> np.ndarray:
        """Host memory for the store: pinned (page-locked) on a GPU, ordinary on the CPU."""
        if self.is_gpu:
            import cupyx
            return cupyx.empty_pinned(shape, dtype=dtype)
        return np.empty(shape, dtype=dtype)

    def rng(self, seed: int):
        """A seeded generator of the array module (`.random(shape, dtype=...)`)."""
        return self.xp.random.default_rng(seed)

    def synchronize(self) -> None:
        if self.is_gpu:
            self.xp.cuda.get_current_stream().synchronize()


def _cupy_or_none():
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # no CuPy, no driver, or no device
        return None


def get_xp(device: str = "auto") -> ArrayBackend:
    """The array backend for `device`: 'gpu' (CuPy; CachesimError without one), 'cpu' (NumPy),
    or 'auto' (CuPy when it imports and sees a GPU, else NumPy)."""
    if device not in DEVICES:
        raise CachesimError(f"device {device!r} is not one of {', '.join(DEVICES)}; "
                            "pass --device auto, gpu or cpu")
    if device == "cpu":
        return ArrayBackend(np, "cpu")
    cp = _cupy_or_none()
    if cp is not None:
        return ArrayBackend(cp, "gpu")
    if device == "gpu":
        raise CachesimError("device 'gpu' needs CuPy and a CUDA GPU, and none was found; "
                            "install cachesim[gpu] (cupy-cuda12x) on a GPU machine, or pass "
                            "--device cpu")
    return ArrayBackend(np, "cpu")


def is_cupy_array(a) -> bool:
    """True for a CuPy array, without importing CuPy (looks in sys.modules)."""
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(a, cp.ndarray)


def scatter_add(xp, out, index, values) -> None:
    """out[index[i]] += values[i] for every i, repeats summed (np.add.at / cupyx.scatter_add)."""
    if xp is np:
        np.add.at(out, index, values)
    else:
        import cupyx
        cupyx.scatter_add(out, index, values)


def segment_sum(xp, values, inverse, n_groups: int):
    """Sum of the rows of `values` per group (`inverse[i]` is the group of row i); every group
    0..n_groups-1 must have at least one row."""
    if xp is np:
        order = np.argsort(inverse, kind="stable")
        counts = np.bincount(inverse, minlength=n_groups)
        starts = np.zeros(n_groups, dtype=np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        return np.add.reduceat(values[order], starts, axis=0)
    out = xp.zeros((n_groups,) + values.shape[1:], dtype=values.dtype)
    scatter_add(xp, out, inverse, values)
    return out
