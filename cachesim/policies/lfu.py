"""LFU: evict the key with the lowest access count; ties go to the least recently used.

A key's count starts at 1 when it is inserted, grows by 1 per hit and is forgotten when the key
is evicted (as cachetools' LFUCache and libCacheSim's LFU). Among the keys with the lowest count,
the one whose last access is oldest is evicted.

O(1) per access: resident keys sit in frequency buckets, one per count in use, kept in a list in
ascending count; each bucket lists its keys in order of last access (oldest first). A hit moves
the key to the newest end of the bucket for count + 1 (its last access is now the newest of all,
so the order holds); an insertion goes to the newest end of bucket 1; the victim is the oldest
key of the lowest bucket. Buckets come from a pool of n_keys + 1 (at most one per resident key,
plus one while a key moves).

State: per dense id `kprev`, `knext` (links within its bucket) and `kbucket` (-1 when not
resident); per bucket `bcount`, `bfirst` (oldest key), `blast` (newest key), `bprev`, `bnext`
(the bucket list; `bnext` also chains free buckets); `stored` sizes (byte mode only);
`meta` = [lowest bucket, first free bucket, used].
"""
from __future__ import annotations

import numba
import numpy as np

from .base import EVICTIONS, HITS, MISS_BYTES, MISSES, Policy, Setup, register
from .lru import add_single_table, PREFETCH_AHEAD, prefetch


def init(setup: Setup) -> tuple:
    n = setup.n_keys
    kprev = np.full(n, -1, dtype=np.int32)
    knext = np.full(n, -1, dtype=np.int32)
    kbucket = np.full(n, -1, dtype=np.int32)
    nb = n + 1
    bcount = np.zeros(nb, dtype=np.int64)
    bfirst = np.full(nb, -1, dtype=np.int32)
    blast = np.full(nb, -1, dtype=np.int32)
    bprev = np.full(nb, -1, dtype=np.int32)
    bnext = np.arange(1, nb + 1, dtype=np.int32)  # free chain 0 -> 1 -> ... -> nb-1 -> -1
    bnext[-1] = -1
    stored = np.zeros(0 if setup.unit else n, dtype=np.int64)
    meta = np.array([-1, 0, 0], dtype=np.int64)  # lowest bucket, first free bucket, used
    return (kprev, knext, kbucket, bcount, bfirst, blast, bprev, bnext, stored, meta)


@numba.njit(cache=True, inline="always")
def _append_key(k, b, kprev, knext, kbucket, bfirst, blast):
    """Put key k at the newest end of bucket b."""
    last = blast[b]
    kprev[k] = last
    knext[k] = -1
    if last == -1:
        bfirst[b] = k
    else:
        knext[last] = k
    blast[b] = k
    kbucket[k] = b


@numba.njit(cache=True, inline="always")
def _unlink_key(k, b, kprev, knext, bfirst, blast):
    """Take key k out of bucket b's list; True when b is left empty."""
    p = kprev[k]
    n = knext[k]
    if p == -1:
        bfirst[b] = n
    else:
        knext[p] = n
    if n == -1:
        blast[b] = p
    else:
        kprev[n] = p
    return bfirst[b] == -1


@numba.njit(cache=True)
def kernel(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    kprev, knext, kbucket, bcount, bfirst, blast, bprev, bnext, stored, meta = state
    lowest, free, used = meta[0], meta[1], meta[2]
    has_sizes = sizes.shape[0] > 0
    single = counters.shape[0] == 1
    hits = misses = miss_bytes = evictions = 0
    n_keys = keys.shape[0]
    for i in range(n_keys):
        if i + PREFETCH_AHEAD < n_keys:
            prefetch(kbucket, keys[i + PREFETCH_AHEAD])
        k = keys[i]
        b = kbucket[k]
        if b >= 0:
            if single:
                hits += 1
            else:
                counters[key_table[k], HITS] += 1
            c = bcount[b] + 1
            nb = bnext[b]
            if nb == -1 or bcount[nb] != c:
                if kprev[k] == -1 and knext[k] == -1:  # alone in its bucket: bump the count
                    bcount[b] = c
                    continue
                nb = free  # a new bucket for count c, right after b
                free = bnext[nb]
                bcount[nb] = c
                bfirst[nb] = -1
                blast[nb] = -1
                bprev[nb] = b
                bnext[nb] = bnext[b]
                if bnext[b] != -1:
                    bprev[bnext[b]] = nb
                bnext[b] = nb
            if _unlink_key(k, b, kprev, knext, bfirst, blast):  # b is empty: drop it
                p = bprev[b]
                n = bnext[b]
                if p == -1:
                    lowest = n
                else:
                    bnext[p] = n
                bprev[n] = p  # n != -1: nb follows b
                bnext[b] = free
                free = b
            _append_key(k, nb, kprev, knext, kbucket, bfirst, blast)
            continue
        s = sizes[i] if has_sizes else 1
        if single:
            misses += 1
            miss_bytes += s
        else:
            t = key_table[k]
            counters[t, MISSES] += 1
            if has_sizes:
                counters[t, MISS_BYTES] += s
        need = 1 if unit else s
        if need > capacity:
            continue
        while used + need > capacity:  # evict the oldest key of the lowest bucket
            b = lowest
            v = bfirst[b]
            if _unlink_key(v, b, kprev, knext, bfirst, blast):
                n = bnext[b]
                lowest = n
                if n != -1:
                    bprev[n] = -1
                bnext[b] = free
                free = b
            kbucket[v] = -1
            used -= 1 if unit else stored[v]
            if single:
                evictions += 1
            else:
                counters[key_table[v], EVICTIONS] += 1
        if lowest == -1 or bcount[lowest] != 1:  # a new bucket for count 1 at the front
            nb = free
            free = bnext[nb]
            bcount[nb] = 1
            bfirst[nb] = -1
            blast[nb] = -1
            bprev[nb] = -1
            bnext[nb] = lowest
            if lowest != -1:
                bprev[lowest] = nb
            lowest = nb
        _append_key(k, lowest, kprev, knext, kbucket, bfirst, blast)
        if not unit:
            stored[k] = s
        used += need
    if single:
        add_single_table(counters, has_sizes, hits, misses, miss_bytes, evictions)
    meta[0] = lowest
    meta[1] = free
    meta[2] = used


POLICY = register(Policy(name="lfu", kernel=kernel, init=init,
                         aliases=("least-frequently-used",),
                         description="evict the lowest access count (counts forgotten on "
                                     "eviction); ties: least recently used"))
