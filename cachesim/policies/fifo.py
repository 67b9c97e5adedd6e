"""FIFO: evict the key inserted longest ago; a hit changes nothing.

State: a ring of the resident dense ids in insertion order (`ring`, oldest at `meta[0]`, the
count at `meta[1]`), `resident` flags, `stored` sizes (byte mode only) and
`meta` = [oldest slot, resident count, used].
"""
from __future__ import annotations

import numba
import numpy as np

from .base import EVICTIONS, HITS, MISS_BYTES, MISSES, Policy, Setup, register
from .lru import add_single_table, max_residents


def init(setup: Setup) -> tuple:
    ring = np.zeros(max_residents(setup), dtype=np.int32)
    resident = np.zeros(setup.n_keys, dtype=np.uint8)
    stored = np.zeros(0 if setup.unit else setup.n_keys, dtype=np.int64)
    meta = np.zeros(3, dtype=np.int64)  # oldest slot, count, used
    return (ring, resident, stored, meta)


@numba.njit(cache=True)
def kernel(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    ring, resident, stored, meta = state
    oldest, count, used = meta[0], meta[1], meta[2]
    rsize = ring.shape[0]
    has_sizes = sizes.shape[0] > 0
    single = counters.shape[0] == 1
    hits = misses = miss_bytes = evictions = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        if resident[k]:
            if single:
                hits += 1
            else:
                counters[key_table[k], HITS] += 1
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
        while used + need > capacity:  # evict the oldest insertion
            v = ring[oldest]
            oldest += 1
            if oldest == rsize:
                oldest = 0
            count -= 1
            resident[v] = 0
            used -= 1 if unit else stored[v]
            if single:
                evictions += 1
            else:
                counters[key_table[v], EVICTIONS] += 1
        slot = oldest + count
        if slot >= rsize:
            slot -= rsize
        ring[slot] = k
        count += 1
        resident[k] = 1
        if not unit:
            stored[k] = s
        used += need
    if single:
        add_single_table(counters, has_sizes, hits, misses, miss_bytes, evictions)
    meta[0] = oldest
    meta[1] = count
    meta[2] = used


POLICY = register(Policy(name="fifo", kernel=kernel, init=init,
                         aliases=("first-in-first-out",),
                         description="evict the key inserted longest ago; hits change nothing"))
