"""Hashes: MurmurHash3's 64-bit finaliser, as FBGEMM uses it to pick a cache set, and the
content digest of a trace's fingerprint.

fmix64(k): k ^= k >> 33; k *= 0xff51afd7ed558ccd; k ^= k >> 33; k *= 0xc4ceb9fe1a85ec53;
k ^= k >> 33, all in uint64. The set of a key is fmix64(key) mod n_sets, applied to the trace's
own (linearised) key, never to a dense id.

`digest()`: the hasher of every fingerprint (`Trace.fingerprint`, `sweep_stream.stream_fingerprint`,
the streamed first pass's files), XXH3-128 (the `xxhash` package). A fingerprint tells a changed
trace from the same one for saved results and for workers that read the trace themselves; it
needs no resistance to a crafted collision, and it hashes every access: 7.3 GB/s here against
0.39 GB/s for BLAKE2b (hashlib), which at a billion accesses was 10 CPU-seconds of a 25 s first
pass (bench/RESULTS.md, "The first pass's hash"). It releases the GIL, so the first pass hashes
on its writer thread while the next chunk is numbered.
"""
from __future__ import annotations

import numba
import numpy as np

_C1 = np.uint64(0xFF51AFD7ED558CCD)
_C2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)


@numba.njit(cache=True, inline="always")
def fmix64(k):
    """fmix64 of one uint64."""
    k = np.uint64(k)
    k ^= k >> _S33
    k *= _C1
    k ^= k >> _S33
    k *= _C2
    k ^= k >> _S33
    return k


@numba.njit(cache=True)
def _fmix64_each(keys, out):
    for i in range(keys.shape[0]):
        out[i] = fmix64(keys[i])


def fmix64_array(keys: np.ndarray) -> np.ndarray:
    """fmix64 of each entry of a 1-D uint64 array (other integer dtypes are cast), as uint64."""
    keys = np.ascontiguousarray(keys, dtype=np.uint64).reshape(-1)
    out = np.empty(keys.shape[0], dtype=np.uint64)
    _fmix64_each(keys, out)
    return out


@numba.njit(cache=True)
def _set_index(keys, n_sets, out):
    s = np.uint64(n_sets)
    for i in range(keys.shape[0]):
        out[i] = fmix64(np.uint64(keys[i])) % s


def set_index(keys: np.ndarray, n_sets: int) -> np.ndarray:
    """Set of each key (int64 or uint64 array) for a cache of `n_sets` sets, as int64."""
    keys = np.ascontiguousarray(keys)
    if keys.dtype != np.uint64:
        keys = keys.astype(np.int64, copy=False).view(np.uint64)
    out = np.empty(keys.shape[0], dtype=np.int64)
    _set_index(keys, n_sets, out)
    return out


def set_geometry(capacity_rows, ways):
    """(sets S, ways W') of a W-way cache of C rows: S = ceil(C / W') as FBGEMM rounds a cache
    up to whole sets (C = 10, W = 3: 4 sets of 3 ways = 12 lines), with W' = min(W, C) (more ways
    than rows is one set of C, where FBGEMM keeps its W: `fbgemm_cache_sets`). Ints, or numpy
    arrays (one cache per entry). The rule of access replay and of the ideal batch model."""
    if np.ndim(capacity_rows) or np.ndim(ways):
        caps = np.asarray(capacity_rows, dtype=np.int64)
        w = np.minimum(caps, np.asarray(ways, dtype=np.int64))
        return -(-caps // w), w
    w = min(int(ways), int(capacity_rows))
    return -(-int(capacity_rows) // w), w


def fbgemm_cache_sets(total_rows: int, load_factor: float, ways: int = 32) -> int:
    """FBGEMM's set count (`_apply_cache_state`, split_table_batched_embeddings_ops_training.py):
    (int(rows * load_factor) + ways - 1) // ways, at least 1; its ways are never lowered."""
    sets = (int(int(total_rows) * float(load_factor)) + ways - 1) // ways
    return 1 if sets == 0 else sets


def n_sets_for(capacity_rows: int, ways: int) -> int:
    """S = ceil(C / min(W, C)) sets for a cache of C rows and W ways (see `set_geometry`)."""
    return set_geometry(capacity_rows, ways)[0]


def geometry_note(size_text: str, capacity_rows: int, ways: int) -> str | None:
    """The line to tell a user when `ways` makes the lines differ from the `capacity_rows` asked
    for ('--ways 3 --size 10: 4 sets of 3 ways = 12 lines'); None when they are equal."""
    n_sets, w = set_geometry(capacity_rows, ways)
    if n_sets * w == int(capacity_rows) and w == int(ways):
        return None
    capped = f" (ways lowered to the {w} rows)" if w != int(ways) else ""
    return (f"--ways {ways} --size {size_text}: {n_sets:,} set{'s' * (n_sets != 1)} of {w} ways "
            f"= {n_sets * w:,} lines{capped}")


def digest():
    """A new 128-bit content hasher (`update(bytes-like)`, `digest()`, `hexdigest()`)."""
    import xxhash
    return xxhash.xxh3_128()
