"""SHARDS (Waldspurger et al., FAST'15): the LRU miss-ratio curve estimated from a hashed sample
of the keys, at a fixed rate or a fixed number of sampled keys, in one pass whose memory follows
the sampled keys (its own hash map; the dead-slot counter of `stack.py`). `sample_mask` is the
hashed sample that miniature simulation (`mini.py`) replays too."""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from ..errors import CachesimError
from ..hashing import fmix64
from .stack import compact, dead_upto, kill_slot

# A key is sampled when fmix64(linearised key) <= tmax, i.e. with probability R = (tmax+1)/2^64.
# Stack distances are taken over the sampled keys only and scaled by 1/R. The kernel keeps its own
# hash map from key to a small id, so its memory follows the sampled distinct keys, never the
# trace length. Fixed-size SHARDS keeps at most s_max keys: when a new key would exceed that, the
# key with the largest hash is dropped and tmax lowered below its hash, and earlier counts are
# rescaled by R'/R (done lazily: a reference adds 1/R at its time and the totals are multiplied
# by the final R at the end).

_TWO64 = 18446744073709551616.0


@numba.njit(cache=True, inline="always")
def _map_find(slot_key, slot_id, key, h):
    mask = slot_key.shape[0] - 1
    i = np.int64(h & np.uint64(mask))
    while True:
        v = slot_id[i]
        if v == -1 or slot_key[i] == key:
            return i
        i = (i + 1) & mask


@numba.njit(cache=True)
def _map_delete(slot_key, slot_id, id_hash, i):
    """Remove the entry at slot i (linear probing, backward-shift deletion)."""
    mask = slot_key.shape[0] - 1
    while True:
        slot_id[i] = -1
        j = i
        while True:
            j = (j + 1) & mask
            if slot_id[j] == -1:
                return
            home = np.int64(id_hash[slot_id[j]] & np.uint64(mask))
            if i <= j:
                stays = i < home <= j
            else:
                stays = home > i or home <= j
            if not stays:
                slot_key[i] = slot_key[j]
                slot_id[i] = slot_id[j]
                i = j
                break


@numba.njit(cache=True)
def _heap_push(heap, n, id_hash, v):
    i = n
    heap[i] = v
    while i > 0:
        parent = (i - 1) >> 1
        if id_hash[heap[parent]] >= id_hash[heap[i]]:
            break
        heap[parent], heap[i] = heap[i], heap[parent]
        i = parent
    return n + 1


@numba.njit(cache=True)
def _heap_pop(heap, n, id_hash):
    top = heap[0]
    n -= 1
    heap[0] = heap[n]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        c = left
        if left + 1 < n and id_hash[heap[left + 1]] > id_hash[heap[left]]:
            c = left + 1
        if id_hash[heap[i]] >= id_hash[heap[c]]:
            break
        heap[c], heap[i] = heap[i], heap[c]
        i = c
    return top, n


# meta slots of the SHARDS state (int64), and fmeta (float64)
_T, _DEAD, _NEXT_ID, _LIVE, _NFREE, _NHEAP, _PEAK, _SAMPLED, _NEED = range(9)
_TOTAL, _WIDTH = 0, 1
_NEED_IDS, _NEED_SLOTS, _NEED_HIST = 1, 2, 3


class ShardsState(NamedTuple):
    """The arrays of one SHARDS pass: the kernel changes them in place, and `_shards` replaces
    one with a larger copy when the kernel stops for room."""
    slots: np.ndarray       # hash map from key to id, [2^k, 2] int64 (key, id), id -1 when empty
    id_hash: np.ndarray     # fmix64 of each id's key, uint64
    id_key: np.ndarray      # each id's key, int64
    last: np.ndarray        # each id's latest time slot, -1 when none
    heap: np.ndarray        # fixed size: max-heap of the live ids by hash, int32
    free: np.ndarray        # fixed size: ids of dropped keys, free for reuse, int32
    bits: np.ndarray        # dead time slots, one bit each (`stack.py`'s counter)
    tree: np.ndarray        # Fenwick tree over the dead slots per 64-slot word
    slot_owner: np.ndarray  # the id of each time slot
    hist: np.ndarray        # weight per distance (fixed rate) or per bucket (fixed size)
    meta: np.ndarray        # int64 counters, indexed by _T .. _NEED
    fmeta: np.ndarray       # float64: total weight (_TOTAL), bucket width in rows (_WIDTH)
    tmax: np.ndarray        # [largest sampled hash], uint64


@numba.njit(cache=True)
def _shards_run(keys, start, s_max, n_buckets, st):
    """Process keys[start:] with the state `st` (a ShardsState); return the index reached. It
    stops early, before changing anything for that access, when an array must grow (the reason
    in st.meta[_NEED]): the wrapper grows it and calls again from there."""
    (slots, id_hash, id_key, last, heap, free, bits, tree, slot_owner, hist, meta, fmeta,
     tmax_arr) = st
    fixed_size = s_max > 0
    slot_key = slots[:, 0]
    slot_id = slots[:, 1]
    cap = slot_owner.shape[0]
    n_ids = last.shape[0]
    tmax = tmax_arr[0]
    rate = (np.float64(tmax) + 1.0) / _TWO64
    inv_rate = 1.0 / rate
    t, dead = meta[_T], meta[_DEAD]
    next_id, live_keys, n_free, n_heap = meta[_NEXT_ID], meta[_LIVE], meta[_NFREE], meta[_NHEAP]
    peak, sampled = meta[_PEAK], meta[_SAMPLED]
    total, width = fmeta[_TOTAL], fmeta[_WIDTH]
    meta[_NEED] = 0
    i = start
    n = keys.shape[0]
    while i < n:
        key = keys[i]
        h = fmix64(np.uint64(key))
        if h > tmax:
            i += 1
            continue
        if t == cap:
            t = compact(bits, tree, slot_owner, last, t)
            dead = 0
            if 2 * t + 64 > cap:
                meta[_NEED] = _NEED_SLOTS
                break
        pos = _map_find(slot_key, slot_id, key, h)
        v = slot_id[pos]
        if v >= 0:
            p = last[v]
            d = t - p - 1 - (dead - dead_upto(bits, tree, p))
            if not fixed_size and d >= hist.shape[0]:
                meta[_NEED] = _NEED_HIST
                break
            weight = inv_rate if fixed_size else 1.0
            total += weight
            sampled += 1
            kill_slot(bits, tree, p)
            dead += 1
            if fixed_size:
                b = np.int64(d * inv_rate / width)
                while b >= n_buckets:  # halve the resolution: merge neighbouring buckets
                    for j in range(n_buckets // 2):
                        hist[j] = hist[2 * j] + hist[2 * j + 1]
                    hist[n_buckets // 2:] = 0.0
                    width *= 2.0
                    b = np.int64(d * inv_rate / width)
                hist[b] += weight
            else:
                hist[d] += 1.0
        else:
            if n_free == 0 and next_id == n_ids:
                meta[_NEED] = _NEED_IDS
                break
            total += inv_rate if fixed_size else 1.0
            sampled += 1
            if n_free > 0:
                n_free -= 1
                v = free[n_free]
            else:
                v = next_id
                next_id += 1
            slot_key[pos] = key
            slot_id[pos] = v
            id_hash[v] = h
            id_key[v] = key
            live_keys += 1
            if fixed_size:
                n_heap = _heap_push(heap, n_heap, id_hash, v)
                if live_keys > s_max:  # drop the largest-hash key and lower the threshold
                    e, n_heap = _heap_pop(heap, n_heap, id_hash)
                    he = id_hash[e]
                    if he > 0:
                        tmax = he - np.uint64(1)
                    rate = (np.float64(tmax) + 1.0) / _TWO64
                    inv_rate = 1.0 / rate
                    if e != v:
                        kill_slot(bits, tree, last[e])
                        dead += 1
                    last[e] = -1
                    _map_delete(slot_key, slot_id, id_hash,
                                _map_find(slot_key, slot_id, id_key[e], he))
                    free[n_free] = e
                    n_free += 1
                    live_keys -= 1
                    if e == v:
                        i += 1
                        continue
        if live_keys > peak:
            peak = live_keys
        last[v] = t
        slot_owner[t] = v
        t += 1
        i += 1
    meta[_T], meta[_DEAD] = t, dead
    meta[_NEXT_ID], meta[_LIVE], meta[_NFREE], meta[_NHEAP] = next_id, live_keys, n_free, n_heap
    meta[_PEAK], meta[_SAMPLED] = peak, sampled
    fmeta[_TOTAL], fmeta[_WIDTH] = total, width
    tmax_arr[0] = tmax
    return i


def _pow2_at_least(x: int) -> int:
    return 1 << max(0, int(x - 1).bit_length())


class ShardsStream:
    """One SHARDS pass over int64 keys fed chunk by chunk (`feed`), in memory that follows the
    sampled keys. Fixed rate when s_max == 0: `hist` counts per sampled distance d (scaled
    distance d / R). Fixed size otherwise: weights per bucket of scaled distance."""

    def __init__(self, tmax, s_max: int, n_buckets: int):
        self.s_max, self.n_buckets = int(s_max), int(n_buckets)
        self.accesses = 0
        fixed_size = s_max > 0
        n_ids = s_max + 1 if fixed_size else 1024
        cap = (2 * n_ids + 64 + 63) // 64 * 64
        self.st = ShardsState(
            slots=np.full((_pow2_at_least(2 * n_ids), 2), -1, dtype=np.int64),
            id_hash=np.zeros(n_ids, dtype=np.uint64), id_key=np.zeros(n_ids, dtype=np.int64),
            last=np.full(n_ids, -1, dtype=np.int64),
            heap=np.zeros(n_ids if fixed_size else 1, dtype=np.int32),
            free=np.zeros(n_ids if fixed_size else 1, dtype=np.int32),
            bits=np.zeros(cap // 64, dtype=np.uint64),
            tree=np.zeros(cap // 64 + 1, dtype=np.int32),
            slot_owner=np.empty(cap, dtype=np.int32),
            hist=np.zeros(n_buckets if fixed_size else 1024, dtype=np.float64),
            meta=np.zeros(9, dtype=np.int64), fmeta=np.array([0.0, 1.0]),
            tmax=np.array([tmax], dtype=np.uint64))

    def feed(self, keys: np.ndarray) -> None:
        """Add one chunk of int64 (linearised) keys."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        self.accesses += keys.shape[0]
        st = self.st
        i = 0
        while True:
            i = _shards_run(keys, i, self.s_max, self.n_buckets, st)
            need = int(st.meta[_NEED])
            if need == 0:
                break
            if need == _NEED_IDS:  # fixed rate: more sampled keys than ids
                old = len(st.last)
                grown = {}
                for name, fill in (("id_hash", 0), ("id_key", 0), ("last", -1)):
                    grown[name] = np.full(2 * old, fill, dtype=getattr(st, name).dtype)
                    grown[name][:old] = getattr(st, name)
                slots = np.full((_pow2_at_least(4 * old), 2), -1, dtype=np.int64)
                _map_rehash(st.slots, slots, grown["id_hash"])
                st = st._replace(slots=slots, **grown)
            elif need == _NEED_SLOTS:  # more live keys than half the time slots: compacted, grow
                t = int(st.meta[_T])
                cap = (4 * t + 64 + 63) // 64 * 64
                owner = np.empty(cap, dtype=np.int32)
                owner[:t] = st.slot_owner[:t]
                st = st._replace(slot_owner=owner, bits=np.zeros(cap // 64, dtype=np.uint64),
                                 tree=np.zeros(cap // 64 + 1, dtype=np.int32))
            else:  # a distance beyond the histogram
                hist = np.zeros(2 * len(st.hist), dtype=np.float64)
                hist[:len(st.hist)] = st.hist
                st = st._replace(hist=hist)
        self.st = st

    def stats(self) -> np.ndarray:
        """[sampled refs, total weight, final R, bucket width, peak ids, bytes of the state
        (its arrays only grow)]."""
        st = self.st
        return np.array([st.meta[_SAMPLED], st.fmeta[_TOTAL], (float(st.tmax[0]) + 1.0) / _TWO64,
                         st.fmeta[_WIDTH], st.meta[_PEAK], sum(a.nbytes for a in st)],
                        dtype=np.float64)


def _shards(keys, tmax, s_max, n_buckets, stats):
    """SHARDS over int64 keys (`ShardsStream` fed once): returns its histogram, and its
    `stats()` in `stats`."""
    run = ShardsStream(tmax, s_max, n_buckets)
    run.feed(keys)
    stats[:] = run.stats()
    return run.st.hist


@numba.njit(cache=True)
def _map_rehash(old, new, id_hash):
    new_key = new[:, 0]
    new_id = new[:, 1]
    for j in range(old.shape[0]):
        v = old[j, 1]
        if v >= 0:
            q = _map_find(new_key, new_id, old[j, 0], id_hash[v])
            new_key[q] = old[j, 0]
            new_id[q] = v


@numba.njit(cache=True)
def _sample_mask(keys, tmax, out):
    for i in range(keys.shape[0]):
        out[i] = fmix64(np.uint64(keys[i])) <= tmax


def threshold(rate: float) -> np.uint64:
    """Largest sampled hash for a sampling rate in (0, 1]: fmix64(key) <= it with probability
    rate."""
    rate = float(rate)
    if not 0.0 < rate <= 1.0:
        raise CachesimError(f"sampling rate {rate} must be in (0, 1]; 0.01 samples 1% of the keys")
    return np.uint64(min(int(rate * 2.0**64), 2**64) - 1)


def sample_mask(keys: np.ndarray, rate: float) -> np.ndarray:
    """True for the accesses whose key is in the hashed sample: fmix64(key) < rate x 2^64."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    out = np.empty(keys.shape[0], dtype=np.bool_)
    _sample_mask(keys, threshold(rate), out)
    return out


# -- curves -------------------------------------------------------------------------------------
def start_rate(rate, s_max) -> float:
    """The sampling rate a curve starts at: `rate`, or by default 0.01 at a fixed rate and 1 at a
    fixed size (the sample then fills to s_max keys and the rate falls only as keys exceed it)."""
    if rate is not None:
        return float(rate)
    return 0.01 if s_max is None else 1.0


def shards(keys, rate: float | None = None, s_max: int | None = None, adj: bool = True):
    """SHARDS estimate of the LRU curve from int64 (linearised) keys, in one pass.

    `keys`: an array, or an iterable of arrays (chunks of one trace, fed one at a time: the
    same result in memory that follows the sample, never the trace).

    Fixed rate (`rate`, default 0.01) when `s_max` is None; fixed size otherwise: at most
    `s_max` sampled keys, starting at `rate` (default 1, so the sample fills to s_max keys
    whatever the trace) and lowering it as keys beyond s_max come. Returns (distance values in
    rows, weights, total weight, info): the estimated hit ratio at C rows is
    sum(weights[values < C]) / total. `adj` applies SHARDS_adj: the first bucket absorbs the
    expected minus the actual (rescaled) sampled references. info["sample_accesses"]: the
    sampled references at the final rate (rescaled ones at a fixed size).
    """
    rate = start_rate(rate, s_max)
    tmax = threshold(rate)
    if s_max is not None and int(s_max) < 1:
        raise CachesimError(f"fixed-size SHARDS needs s_max >= 1 keys, got {s_max}")
    smax = 0 if s_max is None else int(s_max)
    run = ShardsStream(tmax, smax, max(1024, 4 * smax))
    for chunk in ([keys] if isinstance(keys, np.ndarray) else keys):
        run.feed(chunk)
    n_accesses = run.accesses
    if n_accesses == 0:
        raise CachesimError("the trace has no accesses")
    hist = run.st.hist
    sampled, total, final_rate, width, peak, state_bytes = run.stats()
    if sampled == 0:
        raise CachesimError(f"SHARDS at rate {rate:g} sampled none of the {n_accesses:,} "
                            "accesses: raise --rate (or use --method exact)")
    if smax == 0:
        nz = np.flatnonzero(hist)
        values = nz / final_rate
        weights = hist[nz].copy()
        sample_accesses = float(sampled)
        if adj:
            expected = n_accesses * final_rate
            if values.shape[0] == 0 or values[0] != 0:
                values = np.concatenate([[0.0], values])
                weights = np.concatenate([[0.0], weights])
            weights[0] += expected - sampled
            total = expected
    else:
        nz = np.flatnonzero(hist)
        values = nz * width + (width - 1.0) / 2.0
        weights = hist[nz] * final_rate
        total = total * final_rate
        sample_accesses = float(total)
        if adj:  # each reference adds final_rate in expectation, whatever the rate at its time
            expected = n_accesses * final_rate
            if values.shape[0] == 0 or values[0] != (width - 1.0) / 2.0:
                values = np.concatenate([[(width - 1.0) / 2.0], values])
                weights = np.concatenate([[0.0], weights])
            weights[0] += expected - total
            total = expected
    info = {"sampled_references": int(sampled), "rate": float(final_rate),
            "sampled_keys": int(peak), "estimated_keys": float(peak / final_rate),
            "bucket_rows": float(width), "state_bytes": int(state_bytes),
            "sample_accesses": sample_accesses}
    return values, weights, float(total), info


def shards_curve(keys, sizes=None, rate: float | None = None, s_max: int | None = None,
                 adj: bool = True):
    """(sizes, miss_ratio, info) from SHARDS (`keys`: an array or an iterable of chunks, as
    `shards`). Default sizes: 0 and every size where the estimate changes, up to the estimated
    distinct keys."""
    values, weights, total, info = shards(keys, rate, s_max, adj)
    return (*estimate_curve(values, weights, total, info, sizes), info)


def estimate_curve(values, weights, total, info, sizes=None):
    """(sizes, miss_ratio) of `shards`' estimate (`shards_curve`'s default sizes when None)."""
    if sizes is None:
        top = int(np.ceil(info["estimated_keys"]))
        sizes = np.unique(np.concatenate([[0, top], np.floor(values).astype(np.int64) + 1]))
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.shape[0] > values.shape[0] and np.all(sizes[1:] >= sizes[:-1]):
        # many sorted sizes: count each value at the first size above it, then accumulate
        first = np.searchsorted(sizes, values, side="right")
        hits = np.cumsum(np.bincount(first, weights, minlength=sizes.shape[0] + 1))[:-1]
    else:
        cum = np.concatenate([[0.0], np.cumsum(weights)])
        hits = cum[np.searchsorted(values, sizes, side="left")]
    miss = np.clip(1.0 - hits / total, 0.0, 1.0) if total > 0 else np.ones(sizes.shape[0])
    return sizes, miss
