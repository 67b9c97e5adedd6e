"""Miss-ratio curves: LRU stack distances, exact curves in one pass, SHARDS, miniature simulation,
and TorchRec's `EmbeddingOffloadStats` export.

Stack distance of an access: the number of distinct other keys accessed since the previous access
to the same key (LRU stack depth - 1), -1 for a first access. An access hits in an LRU cache of C
rows if and only if 0 <= distance < C (Mattson's inclusion property), so one pass gives LRU's
miss ratio at every size.

Distances are counted over access times: each access takes the next time slot and marks its
key's previous slot dead, so the distance of an access at time t to a key last seen at time p is
the live slots strictly between them. Slots are renumbered (compacted) when they run out, so a
pass holds about 2 x (distinct keys) slots whatever the trace length: O(N log M) time, O(M)
memory. Byte-capacity curves (`lru_bytes_curve`) weight the slots by object size; SHARDS keeps
its own hash map so its memory follows the sampled keys.
"""
from __future__ import annotations

import numba
import numpy as np

from ..errors import CachesimError
from ..hashing import fmix64

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
def _dead_upto(bits, tree, p):
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
def _kill(bits, tree, p):
    """Mark slot p dead."""
    w = p >> 6
    bits[w] |= _ONE << np.uint64(p & 63)
    j = w + 1
    n = tree.shape[0] - 1
    while j <= n:
        tree[j] += 1
        j += j & (-j)


@numba.njit(cache=True)
def _compact(bits, tree, slot_owner, last, t):
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


def _slots_for(n_keys: int, n_accesses: int) -> int:
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
            t = _compact(bits, tree, slot_owner, last, t)
            dead = 0
        p = last[k]
        if p >= 0:
            out[n] = t - p - 1 - (dead - _dead_upto(bits, tree, p))
            n += 1
            _kill(bits, tree, p)
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
    _stack_distances(ids, _new_state(n_distinct, _slots_for(n_distinct, ids.shape[0])), out,
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


@numba.njit(cache=True)
def _byte_distances(ids, key_size, limit, cap, out):
    """out[i] = s_k + bytes of the distinct keys (of size <= limit) accessed since the last access
    to k; -1 for a first access; -2 when s_k > limit (never cached in this band)."""
    n_ids = key_size.shape[0]
    bits = np.zeros(cap // 64, dtype=np.uint64)
    tree = np.zeros(cap + 1, dtype=np.int64)   # Fenwick over slots: dead bytes
    cum = np.zeros(cap + 1, dtype=np.int64)    # cum[s] = bytes of slots 0..s-1
    slot_owner = np.empty(cap, dtype=np.int32)
    last = np.full(n_ids, -1, dtype=np.int64)
    t = 0
    dead = 0
    for i in range(ids.shape[0]):
        k = ids[i]
        sk = key_size[k]
        if sk > limit:
            out[i] = -2
            continue
        if t == cap:
            live = 0
            for s in range(t):
                if not (bits[s >> 6] >> np.uint64(s & 63)) & _ONE:
                    o = slot_owner[s]
                    slot_owner[live] = o
                    last[o] = live
                    cum[live + 1] = cum[live] + key_size[o]
                    live += 1
            bits[:] = 0
            tree[:] = 0
            t = live
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


def key_sizes(trace) -> np.ndarray:
    """The size in bytes of every dense id; CachesimError when a key's size changes."""
    if not trace.has_sizes:
        raise CachesimError(f"{trace.source or 'the trace'} has no object sizes: a byte-capacity "
                            "curve needs them; drop --bytes to count rows")
    ids, size = trace.dense_ids, trace.size
    ks = np.zeros(trace.n_distinct, dtype=np.int64)
    ks[ids[::-1]] = size[::-1]  # the first size of each key
    bad = np.flatnonzero(ks[ids] != size)
    if bad.size:
        i = int(bad[0])
        raise CachesimError(
            f"access {i} of {trace.source or 'the trace'}: key {int(trace.keys[i])} has size "
            f"{int(size[i])} B but {int(ks[ids[i]])} B before; the exact byte curve needs one size "
            "per key: use method 'mini' (it replays), or give each key one size")
    if (ks < 0).any():
        raise CachesimError("object sizes must not be negative")
    return ks


def byte_distances(trace, limit: int | None = None) -> np.ndarray:
    """Byte distance of every access for the keys of size <= `limit` (all keys when None):
    s_k + bytes of the distinct such keys accessed since the last access to k; -1 for a first
    access; -2 for an access to a key larger than `limit`. Needs one size per key."""
    ks = key_sizes(trace)
    lim = int(ks.max()) if limit is None else int(limit)
    out = np.empty(len(trace), dtype=np.int64)
    n_in = int((ks <= lim).sum())
    _byte_distances(trace.dense_ids, ks, lim, _slots_for(n_in, len(trace)), out)
    return out


# -- SHARDS (Waldspurger et al., FAST'15) --------------------------------------------------------
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


@numba.njit(cache=True)
def _shards_run(keys, start, s_max, n_buckets, slots, id_hash, id_key, last, heap, free, bits,
                tree, slot_owner, hist, meta, fmeta, tmax_arr):
    """Process keys[start:] with the state in the arrays; return the index reached. It stops
    early, before changing anything for that access, when an array must grow (the reason in
    meta[_NEED]): the wrapper grows it and calls again from there."""
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
            t = _compact(bits, tree, slot_owner, last, t)
            dead = 0
            if 2 * t + 64 > cap:
                meta[_NEED] = _NEED_SLOTS
                break
        pos = _map_find(slot_key, slot_id, key, h)
        v = slot_id[pos]
        if v >= 0:
            p = last[v]
            d = t - p - 1 - (dead - _dead_upto(bits, tree, p))
            if not fixed_size and d >= hist.shape[0]:
                meta[_NEED] = _NEED_HIST
                break
            weight = inv_rate if fixed_size else 1.0
            total += weight
            sampled += 1
            _kill(bits, tree, p)
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
                        _kill(bits, tree, last[e])
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


def _shards(keys, tmax, s_max, n_buckets, stats):
    """SHARDS over int64 keys. Fixed rate when s_max == 0: returns counts per sampled distance d
    (scaled distance d / R). Fixed size otherwise: returns weights per bucket of scaled distance,
    bucket width in stats[3]. stats = [sampled refs, total weight, final R, width, peak ids,
    bytes of the state at the end (its arrays only grow)]. Memory follows the sampled keys."""
    fixed_size = s_max > 0
    n_ids = s_max + 1 if fixed_size else 1024
    cap = (2 * n_ids + 64 + 63) // 64 * 64
    st = {"slots": np.full((_pow2_at_least(2 * n_ids), 2), -1, dtype=np.int64),
          "id_hash": np.zeros(n_ids, dtype=np.uint64), "id_key": np.zeros(n_ids, dtype=np.int64),
          "last": np.full(n_ids, -1, dtype=np.int64),
          "heap": np.zeros(n_ids if fixed_size else 1, dtype=np.int32),
          "free": np.zeros(n_ids if fixed_size else 1, dtype=np.int32),
          "bits": np.zeros(cap // 64, dtype=np.uint64),
          "tree": np.zeros(cap // 64 + 1, dtype=np.int32),
          "slot_owner": np.empty(cap, dtype=np.int32),
          "hist": np.zeros(n_buckets if fixed_size else 1024, dtype=np.float64),
          "meta": np.zeros(9, dtype=np.int64), "fmeta": np.array([0.0, 1.0]),
          "tmax": np.array([tmax], dtype=np.uint64)}
    order = ("slots", "id_hash", "id_key", "last", "heap", "free", "bits", "tree", "slot_owner",
             "hist", "meta", "fmeta", "tmax")
    i = 0
    while True:
        i = _shards_run(keys, i, s_max, n_buckets, *(st[k] for k in order))
        need = int(st["meta"][_NEED])
        if need == 0:
            break
        if need == _NEED_IDS:  # fixed rate: more sampled keys than ids
            old = len(st["last"])
            for name, fill in (("id_hash", 0), ("id_key", 0), ("last", -1)):
                grown = np.full(2 * old, fill, dtype=st[name].dtype)
                grown[:old] = st[name]
                st[name] = grown
            slots = np.full((_pow2_at_least(4 * old), 2), -1, dtype=np.int64)
            _map_rehash(st["slots"], slots, st["id_hash"])
            st["slots"] = slots
        elif need == _NEED_SLOTS:  # more live keys than half the time slots: compacted, grow
            t = int(st["meta"][_T])
            cap = (4 * t + 64 + 63) // 64 * 64
            owner = np.empty(cap, dtype=np.int32)
            owner[:t] = st["slot_owner"][:t]
            st["slot_owner"] = owner
            st["bits"] = np.zeros(cap // 64, dtype=np.uint64)
            st["tree"] = np.zeros(cap // 64 + 1, dtype=np.int32)
        else:  # a distance beyond the histogram
            grown = np.zeros(2 * len(st["hist"]), dtype=np.float64)
            grown[:len(st["hist"])] = st["hist"]
            st["hist"] = grown
    meta, fmeta = st["meta"], st["fmeta"]
    stats[0] = meta[_SAMPLED]
    stats[1] = fmeta[_TOTAL]
    stats[2] = (float(st["tmax"][0]) + 1.0) / _TWO64
    stats[3] = fmeta[_WIDTH]
    stats[4] = meta[_PEAK]
    stats[5] = sum(a.nbytes for a in st.values())
    return st["hist"]


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


def _threshold(rate: float) -> np.uint64:
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
    _sample_mask(keys, _threshold(rate), out)
    return out


# -- curves as arrays ----------------------------------------------------------------------------


def lru_hits(dense_ids: np.ndarray, n_distinct: int) -> np.ndarray:
    """Exact LRU hits at every cache size C = 0..n_distinct rows (int64, length n_distinct + 1):
    the accesses with 0 <= stack distance < C."""
    n_distinct = int(n_distinct)
    ids = _checked_ids(dense_ids, n_distinct)
    counts = np.zeros(n_distinct, dtype=np.int64)
    state = _new_state(n_distinct, _slots_for(n_distinct, ids.shape[0]))
    buf = np.empty(min(_CHUNK, ids.shape[0]), dtype=np.int32)
    for start in range(0, ids.shape[0], _CHUNK):  # packed distances, then one bincount a chunk
        n = _stack_distances(ids[start:start + _CHUNK], state, buf, True)
        counts += np.bincount(buf[:n], minlength=n_distinct)
    hits = np.zeros(n_distinct + 1, dtype=np.int64)
    np.cumsum(counts, out=hits[1:])
    return hits


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


def _start_rate(rate, s_max) -> float:
    """The sampling rate a curve starts at: `rate`, or by default 0.01 at a fixed rate and 1 at a
    fixed size (the sample then fills to s_max keys and the rate falls only as keys exceed it)."""
    if rate is not None:
        return float(rate)
    return 0.01 if s_max is None else 1.0


def shards(keys: np.ndarray, rate: float | None = None, s_max: int | None = None,
           adj: bool = True):
    """SHARDS estimate of the LRU curve from int64 (linearised) keys, in one pass.

    Fixed rate (`rate`, default 0.01) when `s_max` is None; fixed size otherwise: at most
    `s_max` sampled keys, starting at `rate` (default 1, so the sample fills to s_max keys
    whatever the trace) and lowering it as keys beyond s_max come. Returns (distance values in
    rows, weights, total weight, info): the estimated hit ratio at C rows is
    sum(weights[values < C]) / total. `adj` applies SHARDS_adj: the first bucket absorbs the
    expected minus the actual (rescaled) sampled references. info["sample_accesses"]: the
    sampled references at the final rate (rescaled ones at a fixed size).
    """
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    if keys.shape[0] == 0:
        raise CachesimError("the trace has no accesses")
    rate = _start_rate(rate, s_max)
    tmax = _threshold(rate)
    if s_max is not None and int(s_max) < 1:
        raise CachesimError(f"fixed-size SHARDS needs s_max >= 1 keys, got {s_max}")
    smax = 0 if s_max is None else int(s_max)
    n_buckets = max(1024, 4 * smax)
    stats = np.zeros(6, dtype=np.float64)
    hist = _shards(keys, tmax, smax, n_buckets, stats)
    sampled, total, final_rate, width, peak, state_bytes = stats
    if sampled == 0:
        raise CachesimError(f"SHARDS at rate {rate:g} sampled none of the {keys.shape[0]:,} "
                            "accesses: raise --rate (or use --method exact)")
    if smax == 0:
        nz = np.flatnonzero(hist)
        values = nz / final_rate
        weights = hist[nz].copy()
        sample_accesses = float(sampled)
        if adj:
            expected = keys.shape[0] * final_rate
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
            expected = keys.shape[0] * final_rate
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


def shards_curve(keys: np.ndarray, sizes=None, rate: float | None = None,
                 s_max: int | None = None, adj: bool = True):
    """(sizes, miss_ratio) from SHARDS. Default sizes: 0 and every size where the estimate
    changes, up to the estimated distinct keys."""
    values, weights, total, info = shards(keys, rate, s_max, adj)
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
    return sizes, miss, info


def sample_trace(trace, rate: float):
    """The accesses whose key is in the hashed sample, as a Trace with the same tables (and no
    batch column: a miniature simulation replays access by access)."""
    from ..trace import Trace
    mask = sample_mask(trace.keys, rate)
    cut = lambda a: None if a is None else a[mask]
    return Trace(table=trace.table[mask], row=trace.row[mask], size=cut(trace.size), table_names=list(trace.table_names),
                 table_rows=trace.table_rows.copy(), table_dims=trace.table_dims.copy(),
                 source=f"{trace.source} (sample {rate:g})")


def mini_curve(trace, policy: str, sizes, rate: float = 0.01, bytes: bool = False,
               adj: bool = True) -> np.ndarray:
    """Miniature simulation (Waldspurger et al., ATC'17): replay the hashed sample at rate R with
    each cache size scaled by R (at least 1 row or 1 byte); miss ratio per size (1 at size 0).

    `adj` (ours, after SHARDS_adj): divide the sample's misses by the expected sampled accesses,
    N x R, instead of the actual ones, i.e. count the sample's surplus or shortfall of accesses
    (hot keys caught or missed by the hash) as hits. On skewed traces this cuts the error several
    fold (bench/RESULTS.md); `adj=False` is the paper's estimator."""
    return _mini(trace, policy, sizes, rate, bytes, adj)[0]


def _mini(trace, policy, sizes, rate, bytes, adj):
    """`mini_curve`'s miss ratios and the sample's size: (curve, {"rate", "sampled_keys",
    "sample_accesses"})."""
    from ..simulate.access import replay
    sub = sample_trace(trace, rate)
    sizes = np.asarray(sizes, dtype=np.int64)
    out = np.ones(sizes.shape[0], dtype=np.float64)
    if len(sub) == 0:
        raise CachesimError(f"the sample at rate {rate:g} has no accesses: raise the rate")
    for i, c in enumerate(sizes.tolist()):
        if c <= 0:
            continue
        scaled = max(1, int(round(c * rate)))
        res = replay(sub, policy, f"{scaled}B" if bytes else scaled, ways=None)  # fully assoc.
        out[i] = min(1.0, res.misses / (len(trace) * rate)) if adj else res.miss_ratio
    return out, {"rate": float(rate), "sampled_keys": int(sub.n_distinct),
                 "sample_accesses": float(len(sub))}


# -- when a sampled curve can be trusted ---------------------------------------------------------
# A size C simulated on a sample at rate R is a cache of C x R sampled rows. Below one sampled row
# the estimate is meaningless (mini replays a 1-row cache, SHARDS counts only repeats with no
# sampled key between them); up to tens of rows it follows the few hot keys the hash happened to
# catch. On the Criteo sample (criteo_kaggle_head10k, rates 0.001-0.3 and fixed sizes 1K-8K keys)
# the error against the exact curve was up to 0.70 below 1 sampled row, up to 0.41 at 1-10, up
# to 0.15 at 10-100, and at most 0.019 from 100 sampled rows up (SHARDS LRU, mini LRU and FIFO),
# so sizes below MIN_SAMPLED_ROWS sampled rows are marked unreliable (the ATC'17 miniature
# simulations use caches of this order or larger). With K sampled keys the reliable sizes thus
# start at 100/K of the distinct keys: under MIN_SAMPLED_KEYS (1,000) keys, everything below 10%
# of them is unreliable, hence the warning (SHARDS' fixed-size variant holds 8K keys). Under
# MIN_SAMPLE_ACCESSES the sample's own hit ratio has a binomial standard error above
# 0.5/sqrt(10,000) = 0.005 even before accesses of one key correlate, hence the other warning.

MIN_SAMPLED_ROWS = 100
MIN_SAMPLED_KEYS = 1_000
MIN_SAMPLE_ACCESSES = 10_000


class SampledCurveWarning(UserWarning):
    """A sampled curve from too few keys or accesses to be trusted."""


def reliable_sizes(sizes, rate: float, row_bytes: float = 1.0) -> np.ndarray:
    """True for the sizes whose sampled cache holds at least MIN_SAMPLED_ROWS rows:
    size x rate >= MIN_SAMPLED_ROWS x `row_bytes` (the mean object size, for byte sizes)."""
    return np.asarray(sizes, dtype=np.float64) * rate >= MIN_SAMPLED_ROWS * row_bytes


def sample_warning(info: dict, what: str = "the sample",
                   fix: str = "raise the rate") -> str | None:
    """One line when a sample (`info`: rate, sampled_keys, sample_accesses) holds fewer than
    MIN_SAMPLED_KEYS keys or MIN_SAMPLE_ACCESSES accesses; None when it is big enough."""
    keys, acc, rate = info["sampled_keys"], info["sample_accesses"], info["rate"]
    if keys >= MIN_SAMPLED_KEYS and acc >= MIN_SAMPLE_ACCESSES:
        return None
    return (f"{what} at rate {rate:.3g} holds {keys:,} keys and {acc:,.0f} accesses, under the "
            f"{MIN_SAMPLED_KEYS:,} keys and {MIN_SAMPLE_ACCESSES:,} accesses a sampled curve "
            f"needs: it may be off by 0.1 or more; sizes below {MIN_SAMPLED_ROWS / rate:,.0f} "
            f"rows ({MIN_SAMPLED_ROWS} sampled rows) are marked reliable=false; {fix}")


# -- the public curve API ------------------------------------------------------------------------

METHODS = ("exact", "shards", "mini")


def _resolve_sizes(sizes, n_distinct: int, total_bytes: int | None) -> np.ndarray | None:
    """Sizes as given (ints, '5%', '128MiB', or a comma-separated string) -> int64 rows or bytes
    (bytes when `total_bytes` is given: a share then counts the distinct keys' bytes)."""
    from ..sizes import parse_size
    if sizes is None:
        return None
    if isinstance(sizes, str):
        sizes = [p for p in sizes.split(",") if p.strip()]
    out = []
    for s in np.atleast_1d(np.asarray(sizes, dtype=object)).tolist():
        if isinstance(s, str) and s.strip().isdigit():
            s = int(s.strip())
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            if s < 0:
                raise CachesimError(f"cache size {s} must not be negative")
            out.append(int(s))
            continue
        cap = parse_size(s)
        if total_bytes is None:
            if cap.is_bytes:
                raise CachesimError(f"cache size {cap.text!r} is in bytes: pass bytes=True "
                                    "(--bytes) for a byte-capacity curve, or give rows")
            out.append(cap.resolve(n_distinct))
        elif cap.kind == "fraction":
            out.append(max(1, int(round(cap.value * total_bytes))))
        else:
            out.append(int(cap.value))
    return np.asarray(out, dtype=np.int64)


def _default_grid(n_distinct: int) -> np.ndarray:
    """Sizes for methods that replay once per size: 0, 40 log-spaced sizes and 20 linear ones."""
    g = np.concatenate([[0], np.geomspace(1, max(1, n_distinct), 40),
                        np.linspace(0, n_distinct, 21)])
    return np.unique(np.round(g).astype(np.int64))


def _table_traces(trace):
    """(table name, single-table Trace) for each table with accesses."""
    from ..trace import Trace
    if trace.n_tables == 1:
        yield trace.table_names[0], trace
        return
    order = np.argsort(trace.table, kind="stable")
    bounds = np.searchsorted(trace.table[order], np.arange(trace.n_tables + 1))
    for t, name in enumerate(trace.table_names):
        idx = order[bounds[t]:bounds[t + 1]]
        if idx.shape[0] == 0:
            continue
        cut = lambda a: None if a is None else a[idx]
        yield name, Trace(table=np.zeros(idx.shape[0], np.int32), row=trace.row[idx],
                          batch=cut(trace.batch), size=cut(trace.size), table_names=[name],
                          table_rows=trace.table_rows[t:t + 1].copy(),
                          table_dims=trace.table_dims[t:t + 1].copy(),
                          source=f"{trace.source}:{name}")


def _one_curve(trace, policy, sizes, method, rate, bytes, s_max, adj):
    """(sizes, miss ratios, reliable per size or None when exact, sample info or None)."""
    from ..policies import get_policy
    pol = get_policy(policy).name
    if method not in METHODS:
        raise CachesimError(f"unknown curve method {method!r}; use one of {', '.join(METHODS)}")
    if method in ("exact", "shards") and pol != "lru":
        raise CachesimError(f"method {method!r} gives LRU's curve only (stack distances); use "
                            f"method 'mini' (--method mini) for {pol}")
    total_bytes = int(key_sizes(trace).sum()) if bytes else None
    sz = _resolve_sizes(sizes, trace.n_distinct if method != "shards" or sizes is not None else 0,
                        total_bytes)
    if method == "exact":
        if bytes:
            if sz is None:
                return (*lru_bytes_curve(trace), None, None)
            return sz, lru_bytes_curve(trace, sz), None, None
        curve = lru_curve(trace)
        if sz is None:
            return np.arange(curve.shape[0], dtype=np.int64), curve, None, None
        return sz, curve[np.minimum(sz, curve.shape[0] - 1)], None, None
    if method == "shards":
        if bytes:
            raise CachesimError("SHARDS here counts rows; use method 'exact' or 'mini' with bytes")
        s, m, info = shards_curve(trace.keys, sz, rate, s_max, adj)
        return s, m, reliable_sizes(s, info["rate"]), info
    if sz is None:
        sz = _default_grid(total_bytes if bytes else trace.n_distinct)
    rate = _start_rate(rate, None)
    m, info = _mini(trace, pol, sz, rate, bytes, adj)
    row_bytes = total_bytes / trace.n_distinct if bytes else 1.0
    return sz, m, reliable_sizes(sz, rate, row_bytes), info


def mrc(trace, policy: str = "lru", sizes=None, method: str = "exact",
        rate: float | None = None, bytes: bool = False, per_table: bool = False,
        s_max: int | None = None, adj: bool = True):
    """Miss-ratio curve as a polars DataFrame with columns size, miss_ratio, hit_ratio (and
    table first when `per_table`: each table's own cache).

    method 'exact': LRU, one pass, every size 0..distinct keys (or the step function in bytes
    with `bytes=True`); 'shards': LRU estimate from a hashed sample at `rate` (default 0.01), or
    fixed size with `s_max` keys (starting at `rate`, default 1); 'mini': miniature simulation of
    any policy at `rate` (default 0.01), one replay per size.
    `sizes`: ints, '5%' or '128MiB' strings, or one comma-separated string; default: all sizes
    (exact), the sizes where the estimate changes (shards), or 61 sizes from 0 to the distinct
    keys (mini). `adj`: SHARDS_adj for shards, and its analogue for mini (see `mini_curve`).

    Sampled methods add a column `reliable`: False for sizes under MIN_SAMPLED_ROWS sampled rows
    (`reliable_sizes`), and warn (SampledCurveWarning, one line) when a sample holds too few keys
    or accesses (`sample_warning`).
    """
    import warnings

    import polars as pl
    trace.require_nonempty()
    parts, small = [], []
    sources = list(_table_traces(trace)) if per_table else [(None, trace)]
    for name, tr in sources:
        s, m, ok, info = _one_curve(tr, policy, sizes, method, rate, bytes, s_max, adj)
        df = pl.DataFrame({"size": np.asarray(s, dtype=np.int64),
                           "miss_ratio": np.asarray(m, dtype=np.float64)})
        df = df.with_columns(hit_ratio=1.0 - pl.col("miss_ratio"))
        if ok is not None:
            df = df.with_columns(reliable=pl.Series(np.asarray(ok, dtype=bool)))
            what = f"the {method} sample" if name is None else f"table {name}'s {method} sample"
            fix = ("raise the rate (--rate), use s_max=8192 (--s-max 8192) or method 'exact'"
                   if method == "shards" else "raise the rate (--rate)")
            msg = sample_warning(info, what, fix)
            if msg:
                small.append((info["sampled_keys"], msg))
        if per_table:
            df = df.select(pl.lit(name).alias("table"), pl.all())
        parts.append(df)
    if small:
        msg = min(small)[1]
        if len(sources) > 1:
            msg = f"{len(small)} of {len(sources)} tables' samples are too small; {msg}"
        warnings.warn(msg, SampledCurveWarning, stacklevel=2)
    return pl.concat(parts)


# -- TorchRec export -----------------------------------------------------------------------------


def expected_lookups(trace) -> np.ndarray:
    """Distinct ids per batch, per table (mean over batches): TorchRec's `expected_lookups`.
    Without a batch column every access is its own batch (accesses of the table / accesses)."""
    n_t = trace.n_tables
    if trace.batch is None:
        return np.bincount(trace.table, minlength=n_t) / len(trace)
    import polars as pl
    df = pl.DataFrame({"b": trace.batch, "t": trace.table, "k": trace.row})
    per = df.group_by(["b", "t"]).agg(pl.col("k").n_unique().alias("n"))
    sums = per.group_by("t").agg(pl.col("n").sum())
    out = np.zeros(n_t, dtype=np.float64)
    out[sums["t"].to_numpy()] = sums["n"].to_numpy()
    return out / df["b"].n_unique()


def torchrec_stats(trace, bins: int = 100) -> dict:
    """Per-table LRU statistics in the shape of TorchRec's `EmbeddingOffloadStats`.

    {table: {"mrc_hist_counts": [bins ints], "height": rows, "expected_lookups": distinct ids
    per batch, "cacheability": area under the exact miss-ratio curve over load factors 0..1}}.
    Bin i counts the accesses whose stack distance lies in [i, i+1) x height / bins, as
    `np.histogram` over `linspace(0, height, bins + 1)`; first accesses go to the last bin, so
    TorchRec's miss rate at load factor c = 1 - cumsum(hist)/sum(hist) at the bin of c x height
    - 1 equals the exact curve (compulsory misses included) wherever c x height is a bin edge
    below the last bin. TorchRec takes the last bin to give a miss rate of 0.
    """
    trace.require_nonempty()
    if bins < 1:
        raise CachesimError(f"bins {bins}: need at least one histogram bin")
    lookups = expected_lookups(trace)
    out = {}
    for (name, tr), t in zip(_table_traces(trace), _tables_with_accesses(trace)):
        height = max(int(trace.table_rows[t]), tr.n_distinct)
        d = stack_distances(tr.dense_ids, tr.n_distinct)
        edges = np.linspace(0, height, bins + 1)
        hist, _ = np.histogram(d[d >= 0], bins=edges)
        hist[-1] += int((d < 0).sum())
        miss = lru_curve(tr)
        # area under the step function miss(C) for C in [0, height), per row of height
        area = miss[:min(height, miss.shape[0])].sum() + max(0, height - miss.shape[0]) * miss[-1]
        out[name] = {"mrc_hist_counts": hist.astype(np.int64).tolist(), "height": height,
                     "expected_lookups": float(lookups[t]),
                     "cacheability": float(area / height)}
    return out


def _tables_with_accesses(trace) -> list[int]:
    if trace.n_tables == 1:
        return [0]
    return np.flatnonzero(np.bincount(trace.table, minlength=trace.n_tables)).tolist()


def torchrec_miss_rate(stats: dict, load_factor: float) -> float:
    """Miss rate at `load_factor` from one exported table, computed as TorchRec's
    `EmbeddingOffloadStats.expected_miss_rate` does (for checking an export)."""
    hist = np.asarray(stats["mrc_hist_counts"], dtype=np.float64)
    edges = np.linspace(0, stats["height"], hist.shape[0] + 1)
    ys = np.cumsum(hist)
    if ys[-1] == 0:
        return 0.0
    ys = np.concatenate([1.0 - ys / ys[-1], [0.0, 1.0]])
    idx = int(np.searchsorted(edges, load_factor * stats["height"] - 1, side="right"))
    return float(ys[idx - 1])


# -- output --------------------------------------------------------------------------------------


def write_atomic(path, data) -> None:
    """Write text or bytes to `path` atomically (`tabular.atomic_path`: temp file in the same
    folder, the usual file mode, os.replace; a missing folder is a CachesimError)."""
    from ..io.tabular import atomic_path
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def plot_mrc(df, path, title: str, unit: str = "rows") -> None:
    """Miss ratio against cache size as a PNG (one line per table when `df` has a table
    column); log x when the positive sizes span more than two decades. With a `reliable` column
    (a sampled curve) the unreliable sizes are dotted and their range hatched grey."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    groups = ([(None, df)] if "table" not in df.columns
              else [(n, df.filter(pl.col("table") == n)) for n in df["table"].unique(maintain_order=True)])
    scale, label = 1.0, unit
    if unit == "bytes":
        top = float(df["size"].max() or 1)
        for factor, name in ((2.0**30, "GiB"), (2.0**20, "MiB"), (2.0**10, "KiB")):
            if top >= 4 * factor:
                scale, label = factor, name
                break
    pos = df.filter(pl.col("size") > 0)["size"]
    log_x = pos.len() > 1 and float(pos.max()) / float(pos.min()) > 100
    n = len(groups)
    outside = n > 6  # many tables: the legend goes right of the axes
    fig, ax = plt.subplots(figsize=(9.5 if outside else 7.5, 4.8), dpi=110)
    colors = plt.get_cmap("tab10" if n <= 10 else "tab20").colors
    styles = ("-", "--", "-.")
    has_ok = "reliable" in df.columns
    x_lo, x_ok = np.inf, np.inf  # smallest size drawn, smallest reliable size drawn
    for j, (name, g) in enumerate(groups):
        g = g.sort("size")
        if log_x:
            g = g.filter(pl.col("size") > 0)
        x = g["size"].to_numpy() / scale
        y = g["miss_ratio"].to_numpy()
        color = colors[j % len(colors)]
        line = name if name is not None else "all accesses"
        # reliable is size x rate >= a floor, so on sorted sizes it is a suffix: k is its start
        k = int(np.argmax(g["reliable"].to_numpy())) if has_ok and g["reliable"].any() else (
            x.shape[0] if has_ok else 0)
        if x.shape[0]:
            x_lo = min(x_lo, float(x[0]))
        if k > 0:  # the unreliable sizes, up to the first reliable one
            ax.plot(x[:k + 1], y[:k + 1], drawstyle="steps-post", lw=1.6, color=color,
                    linestyle=":", alpha=0.8, label=None if k < x.shape[0] else line)
        if k < x.shape[0]:
            x_ok = min(x_ok, float(x[k]))
            ax.plot(x[k:], y[k:], drawstyle="steps-post", lw=1.4, color=color,
                    linestyle=styles[(j // len(colors)) % 3], label=line)
    if has_ok and np.isfinite(x_lo) and x_lo < x_ok:
        top = x_ok if np.isfinite(x_ok) else float(df["size"].max()) / scale
        ax.axvspan(x_lo, top, facecolor="0.9", edgecolor="0.75", hatch="//", lw=0, alpha=0.5,
                   zorder=0, label=f"unreliable (dotted): under {MIN_SAMPLED_ROWS} sampled rows")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(f"cache size ({label})")
    ax.set_ylabel("miss ratio")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(title, fontsize=10)
    if outside:
        ax.legend(fontsize=7, ncol=1 if n <= 20 else 2, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), frameon=False, title="table", title_fontsize=8)
    else:
        ax.legend(fontsize=9, loc="upper right", frameon=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_atomic(path, buf.getvalue())
