"""LRU stack distances and the exact LRU miss-ratio curves they give, in rows and in bytes.

Stack distance of an access: the number of distinct other keys accessed since the previous access
to the same key (LRU stack depth - 1), -1 for a first access. An access hits in an LRU cache of C
rows if and only if 0 <= distance < C (Mattson's inclusion property), so one pass gives LRU's
miss ratio at every size.

Distances are counted over access times: each access takes the next time slot and marks its
key's previous slot dead, so the distance of an access at time t to a key last seen at time p is
the live slots strictly between them. Slots are renumbered (compacted) when they run out, so a
pass holds about 2 x (distinct keys) slots whatever the trace length: O(N log M) time, O(M)
memory. Byte-capacity curves (`lru_bytes_curve`) weight the slots by object size. SHARDS
(`shards.py`) reuses the dead-slot counter. Every pass keeps its state in arrays, so it resumes
across the chunks of a streamed trace (`LruStackStream`, `byte_distances_kernel`'s state;
`cachesim.analysis.stream`).
"""
from __future__ import annotations

import numba
import numpy as np

from ..errors import CachesimError

# -- dead-slot counter over access times, with compaction ---------------------------------------
# Every access takes the next time slot. When a key is accessed again (or dropped from a sample),
# its previous slot becomes dead. The distinct keys accessed strictly between slots p and t are
# then (t - p - 1) - (dead slots in (p, t)). Dead slots are bits in uint64 words, with a Fenwick
# tree over the per-word counts (64x smaller than one over slots, so it stays in cache).

_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@numba.njit(cache=True, inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@numba.njit(cache=True, inline="always")
def dead_upto(bits, tree, p):
    """Dead slots among 0..p."""
    w = p >> 6
    s = 0
    j = w  # Fenwick prefix over words 0..w-1 (tree is 1-based)
    while j > 0:
        s += tree[j]
        j -= j & (-j)
    b = p & 63
    mask = _ALL if b == 63 else (_ONE << np.uint64(b + 1)) - _ONE
    return s + _popcount(bits[w] & mask)


@numba.njit(cache=True, inline="always")
def kill_slot(bits, tree, p):
    """Mark slot p dead."""
    w = p >> 6
    bits[w] |= _ONE << np.uint64(p & 63)
    j = w + 1
    n = tree.shape[0] - 1
    while j <= n:
        tree[j] += 1
        j += j & (-j)


@numba.njit(cache=True)
def compact(bits, tree, slot_owner, last, t):
    """Renumber the live slots to 0..live-1 in order and clear the dead marks; returns live.

    A slot s < t is live when it is not marked dead; `slot_owner[s]` is its key and
    `last[key]` its slot.
    """
    live = 0
    for s in range(t):
        if not (bits[s >> 6] >> np.uint64(s & 63)) & _ONE:
            k = slot_owner[s]
            slot_owner[live] = k
            last[k] = live
            live += 1
    bits[:] = 0
    tree[:] = 0
    return live


def slots_for(n_keys: int, n_accesses: int) -> int:
    """Slots for a tree over `n_keys` live keys: twice that (so compaction, O(slots), runs at
    most once per n_keys accesses), at most the number of accesses + 1, in whole 64-slot words."""
    cap = min(2 * int(n_keys) + 64, int(n_accesses) + 1)
    return max(64, (cap + 63) // 64 * 64)


# -- exact stack distances (rows) ----------------------------------------------------------------


def _new_state(n_ids: int, cap: int) -> tuple:
    """State of a stack-distance pass: (bits, tree, slot_owner, last, meta = [t, dead])."""
    return (np.zeros(cap // 64, dtype=np.uint64), np.zeros(cap // 64 + 1, dtype=np.int32),
            np.empty(cap, dtype=np.int32), np.full(n_ids, -1, dtype=np.int32),
            np.zeros(2, dtype=np.int64))


@numba.njit(cache=True)
def _stack_distances(ids, state, out, reuses_only):
    """Distances of the accesses in `ids` (one chunk; `state` carries over between chunks) into
    `out`: one per access (-1 for a first access), or with `reuses_only` only the reuse
    distances, packed. Returns the number written."""
    bits, tree, slot_owner, last, meta = state
    cap = slot_owner.shape[0]
    t = meta[0]
    dead = meta[1]
    n = 0
    for i in range(ids.shape[0]):
        k = ids[i]
        if t == cap:
            t = compact(bits, tree, slot_owner, last, t)
            dead = 0
        p = last[k]
        if p >= 0:
            out[n] = t - p - 1 - (dead - dead_upto(bits, tree, p))
            n += 1
            kill_slot(bits, tree, p)
            dead += 1
        elif not reuses_only:
            out[n] = -1
            n += 1
        last[k] = t
        slot_owner[t] = k
        t += 1
    meta[0] = t
    meta[1] = dead
    return n


_CHUNK = 1 << 22


def stack_distances(dense_ids: np.ndarray, n_distinct: int) -> np.ndarray:
    """LRU stack distance of every access (int64): distinct other keys accessed since the previous
    access to the same key, -1 for a first access.

    `dense_ids` must hold ids in 0..n_distinct-1 (a Trace's `dense_ids`). An access hits in an LRU
    cache of C rows if and only if 0 <= distance < C.
    """
    n_distinct = int(n_distinct)
    ids = _checked_ids(dense_ids, n_distinct)
    out = np.empty(ids.shape[0], dtype=np.int64)
    if ids.shape[0] == 0:
        return out
    _stack_distances(ids, _new_state(n_distinct, slots_for(n_distinct, ids.shape[0])), out,
                     False)
    return out


def _checked_ids(dense_ids, n_distinct):
    ids = np.ascontiguousarray(dense_ids)
    if ids.dtype not in (np.int32, np.int64):
        ids = ids.astype(np.int64)
    if ids.shape[0]:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= n_distinct:
            raise CachesimError(f"ids must lie in 0..n_distinct-1 = {n_distinct - 1}, got "
                                f"{lo}..{hi}; pass a Trace's dense_ids and n_distinct")
    return ids


# -- byte-capacity distances ---------------------------------------------------------------------
# With libCacheSim's byte rules (an object larger than the cache is never inserted; evict from the
# LRU end until the new object fits) and one size per key, the cache at capacity C holds the
# longest prefix of the recency stack of the keys of size <= C whose sizes sum to at most C. So an
# access to k hits at C iff s_k + (sizes of the distinct keys of size <= C accessed since the
# last access to k) <= C. Keys larger than C never enter the stack, so the sum depends on C only
# through that filter: for C between two consecutive distinct object sizes z_r <= C < z_(r+1) the
# filter is fixed, and one pass over the trace with the keys of size <= z_r gives every access's
# byte distance D; the access hits at C in that band iff D <= C. The curve need not be monotone
# below the largest object size (a big object can push others out at C = its size and not fit
# at C - 1).


def new_byte_state(n_ids: int, cap: int) -> tuple:
    """State of a byte-distance pass: (bits, tree (Fenwick over slots: dead bytes), cum (cum[s]
    = bytes of slots 0..s-1), slot_owner, last, meta = [t, dead bytes])."""
    return (np.zeros(cap // 64, dtype=np.uint64), np.zeros(cap + 1, dtype=np.int64),
            np.zeros(cap + 1, dtype=np.int64), np.empty(cap, dtype=np.int32),
            np.full(n_ids, -1, dtype=np.int64), np.zeros(2, dtype=np.int64))


@numba.njit(cache=True)
def byte_distances_kernel(ids, key_size, limit, state, out):
    """out[i] = s_k + bytes of the distinct keys (of size <= limit) accessed since the last access
    to k; -1 for a first access; -2 when s_k > limit (never cached in this band). `state`
    (`new_byte_state`) carries over between the chunks of one trace."""
    bits, tree, cum, slot_owner, last, meta = state
    cap = slot_owner.shape[0]
    t = meta[0]
    dead = meta[1]
    for i in range(ids.shape[0]):
        k = ids[i]
        sk = key_size[k]
        if sk > limit:
            out[i] = -2
            continue
        if t == cap:
            t = compact(bits, tree, slot_owner, last, t)
            for s in range(t):
                cum[s + 1] = cum[s] + key_size[slot_owner[s]]
            dead = 0
        p = last[k]
        if p >= 0:
            dead_upto_p = 0
            j = p + 1
            while j > 0:
                dead_upto_p += tree[j]
                j -= j & (-j)
            out[i] = sk + (cum[t] - cum[p + 1]) - (dead - dead_upto_p)
            bits[p >> 6] |= _ONE << np.uint64(p & 63)
            j = p + 1
            while j <= cap:
                tree[j] += sk
                j += j & (-j)
            dead += sk
        else:
            out[i] = -1
        last[k] = t
        slot_owner[t] = k
        cum[t + 1] = cum[t] + sk
        t += 1
    meta[0] = t
    meta[1] = dead


def key_sizes(trace) -> np.ndarray:
    """The size in bytes of every dense id; CachesimError when a key's size changes."""
    if not trace.has_sizes:
        _no_sizes(trace.source)
    ids, size = trace.dense_ids, trace.size
    ks = np.zeros(trace.n_distinct, dtype=np.int64)
    ks[ids[::-1]] = size[::-1]  # the first size of each key
    _check_one_size(ks, ids, size, trace.source, 0, lambda i: trace.keys[i])
    if (ks < 0).any():
        raise CachesimError("object sizes must not be negative")
    return ks


def _no_sizes(source):
    raise CachesimError(f"{source or 'the trace'} has no object sizes: a byte-capacity "
                        "curve needs them; drop --bytes to count rows")


def _check_one_size(ks, ids, size, source, first_access: int, key_of) -> None:
    """CachesimError at the first access whose size is not its key's first size `ks[id]`."""
    bad = np.flatnonzero(ks[ids] != size)
    if bad.size:
        i = int(bad[0])
        raise CachesimError(
            f"access {first_access + i} of {source or 'the trace'}: key {int(key_of(i))} has size "
            f"{int(size[i])} B but {int(ks[ids[i]])} B before; the exact byte curve needs one size "
            "per key: use method 'mini' (it replays), or give each key one size")


class KeySizesStream:
    """`key_sizes` of a trace fed chunk by chunk: (dense ids, keys, sizes) per chunk."""

    def __init__(self, source: str):
        self.source = source
        self.accesses = 0
        self.sizes = np.zeros(0, dtype=np.int64)  # -1: not seen yet

    def feed(self, ids: np.ndarray, keys: np.ndarray, sizes) -> None:
        if sizes is None:
            _no_sizes(self.source)
        if ids.shape[0]:
            top = int(ids.max()) + 1
            if top > self.sizes.shape[0]:
                grow = max(top, 2 * self.sizes.shape[0]) - self.sizes.shape[0]
                self.sizes = np.concatenate([self.sizes, np.full(grow, -1, np.int64)])
            fresh = self.sizes[ids] < 0
            self.sizes[ids[fresh][::-1]] = sizes[fresh][::-1]  # the first size of each new key
            _check_one_size(self.sizes, ids, sizes, self.source, self.accesses,
                            lambda i: keys[i])
        self.accesses += ids.shape[0]


def byte_distances(trace, limit: int | None = None) -> np.ndarray:
    """Byte distance of every access for the keys of size <= `limit` (all keys when None):
    s_k + bytes of the distinct such keys accessed since the last access to k; -1 for a first
    access; -2 for an access to a key larger than `limit`. Needs one size per key."""
    ks = key_sizes(trace)
    lim = int(ks.max()) if limit is None else int(limit)
    out = np.empty(len(trace), dtype=np.int64)
    n_in = int((ks <= lim).sum())
    byte_distances_kernel(trace.dense_ids, ks, lim,
                    new_byte_state(trace.n_distinct, slots_for(n_in, len(trace))), out)
    return out


# -- curves as arrays ----------------------------------------------------------------------------
def lru_hits(dense_ids: np.ndarray, n_distinct: int) -> np.ndarray:
    """Exact LRU hits at every cache size C = 0..n_distinct rows (int64, length n_distinct + 1):
    the accesses with 0 <= stack distance < C."""
    n_distinct = int(n_distinct)
    ids = _checked_ids(dense_ids, n_distinct)
    counts = np.zeros(n_distinct, dtype=np.int64)
    state = _new_state(n_distinct, slots_for(n_distinct, ids.shape[0]))
    buf = np.empty(min(_CHUNK, ids.shape[0]), dtype=np.int32)
    for start in range(0, ids.shape[0], _CHUNK):  # packed distances, then one bincount a chunk
        n = _stack_distances(ids[start:start + _CHUNK], state, buf, True)
        counts += np.bincount(buf[:n], minlength=n_distinct)
    hits = np.zeros(n_distinct + 1, dtype=np.int64)
    np.cumsum(counts, out=hits[1:])
    return hits


class LruStackStream:
    """Exact LRU stack distances of a trace fed chunk by chunk as dense ids (the keys numbered,
    as `cachesim.io.stream.KeyMap.add` does): the state grows with the
    distinct keys seen (each key's last time slot, 2 x keys + 64 time slots compacted as they
    fill, the histogram of distances), never with the trace. After the last chunk, `hits()`
    equals `lru_hits` of the whole trace."""

    def __init__(self):
        self.accesses = 0
        self.n_ids = 0  # distinct keys seen
        self._state = _new_state(0, 64)
        self.counts = np.zeros(0, dtype=np.int64)  # reuses per stack distance

    def _reserve(self, n_ids: int) -> None:
        bits, tree, slot_owner, last, meta = self._state
        if n_ids > last.shape[0]:
            size = max(n_ids, 2 * last.shape[0], 1024)
            last = np.concatenate([last, np.full(size - last.shape[0], -1, dtype=np.int32)])
            self.counts = np.concatenate([self.counts,
                                          np.zeros(size - self.counts.shape[0], np.int64)])
        if slot_owner.shape[0] < 2 * n_ids + 64:  # compact, then twice the slots of live keys
            t = compact(bits, tree, slot_owner, last, int(meta[0]))
            meta[0], meta[1] = t, 0
            cap = (max(2 * n_ids + 64, 2 * slot_owner.shape[0]) + 63) // 64 * 64
            owner = np.empty(cap, dtype=np.int32)
            owner[:t] = slot_owner[:t]
            slot_owner = owner
            bits = np.zeros(cap // 64, dtype=np.uint64)
            tree = np.zeros(cap // 64 + 1, dtype=np.int32)
        self._state = (bits, tree, slot_owner, last, meta)

    def feed(self, dense_ids: np.ndarray, reuses_only: bool = True) -> np.ndarray:
        """Add one chunk of accesses (dense ids 0..: the keys numbered, as `KeyMap.add` does);
        returns their reuse distances, packed (first accesses left out), or with `reuses_only`
        False one per access (-1 for a first access)."""
        ids = np.ascontiguousarray(dense_ids)
        if ids.dtype not in (np.int32, np.int64):
            ids = ids.astype(np.int64)
        if ids.shape[0] == 0:
            return np.zeros(0, dtype=np.int32)
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0:
            raise CachesimError(f"dense ids must not be negative, got {lo}; number the keys "
                                "with KeyMap.add")
        self.n_ids = max(self.n_ids, hi + 1)
        self._reserve(self.n_ids)
        out = np.empty(ids.shape[0], dtype=np.int32)
        n = _stack_distances(ids, self._state, out, reuses_only)
        d = out[:n]
        reuses = d if reuses_only else d[d >= 0]
        if reuses.shape[0]:
            b = np.bincount(reuses)
            self.counts[:b.shape[0]] += b
        self.accesses += ids.shape[0]
        return d

    def hits(self) -> np.ndarray:
        """Hits at every size C = 0..distinct keys seen (as `lru_hits`)."""
        hits = np.zeros(self.n_ids + 1, dtype=np.int64)
        np.cumsum(self.counts[:self.n_ids], out=hits[1:])
        return hits

    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self._state) + self.counts.nbytes)


def lru_curve(trace) -> np.ndarray:
    """Exact LRU miss ratio at every size 0..n_distinct rows; miss_ratio[0] == 1."""
    trace.require_nonempty()
    n = len(trace)
    return (n - lru_hits(trace.dense_ids, trace.n_distinct)) / n


def lru_bytes_curve(trace, capacities=None, max_bands: int = 256):
    """Exact byte-capacity LRU curve (libCacheSim's byte rules; one size per key).

    With `capacities` (bytes): the miss ratio at each, exact. Without: the step function as
    (capacities, miss_ratio) where miss_ratio[i] holds on [capacities[i], capacities[i+1]); it
    starts at 0 when the trace has at most `max_bands` distinct object sizes (one pass per size
    below the largest), else at the largest object size (one pass), with a warning.
    """
    trace.require_nonempty()
    ks = key_sizes(trace)
    n = len(trace)
    z = np.unique(ks)
    top = int(z[-1])

    def band_hits(limit):
        d = byte_distances(trace, limit)
        return np.sort(d[d >= 0])

    if capacities is not None:
        caps = np.asarray(capacities, dtype=np.int64)
        out = np.ones(caps.shape[0], dtype=np.float64)
        band_of = np.searchsorted(z, caps, side="right") - 1  # largest z <= C
        for b in np.unique(band_of[band_of >= 0]):
            dsorted = band_hits(int(z[b]))
            sel = band_of == b
            out[sel] = (n - np.searchsorted(dsorted, caps[sel], side="right")) / n
        return out
    if z.shape[0] > max_bands:
        import warnings
        warnings.warn(f"{z.shape[0]} distinct object sizes (> max_bands={max_bands}): the byte "
                      f"curve starts at the largest object, {top} B; pass capacities for exact "
                      "values below it", stacklevel=2)
        bands = [z.shape[0] - 1]
        xs, ys = [], []
    else:
        bands = range(z.shape[0])
        xs, ys = ([0], [1.0]) if z[0] > 0 else ([], [])
    for b in bands:
        lo = int(z[b])
        hi = int(z[b + 1]) if b + 1 < z.shape[0] else None
        dsorted = band_hits(lo)
        steps = np.unique(dsorted[(dsorted > lo) & ((dsorted < hi) if hi is not None else True)])
        pts = np.concatenate([[lo], steps])
        xs.append(pts)
        ys.append((n - np.searchsorted(dsorted, pts, side="right")) / n)
    xs = np.concatenate([np.atleast_1d(np.asarray(x, dtype=np.int64)) for x in xs])
    ys = np.concatenate([np.atleast_1d(np.asarray(y, dtype=np.float64)) for y in ys])
    keep = np.concatenate([[True], np.diff(ys) != 0])  # drop points that change nothing
    return xs[keep], ys[keep]
