"""Clock (FIFO-reinsertion, second chance) with one reference bit, as libCacheSim's `Clock`.

A key enters at the head of a FIFO with its bit clear; a hit sets the bit. To evict, look at the
tail (oldest): a key with its bit set has the bit cleared and is moved to the head; the first key
found with a clear bit is evicted.

State: a ring of the resident dense ids in queue order (`ring`, tail at `meta[0]`, the count at
`meta[1]`), `flag` per dense id (0 = not resident, 1 = resident with a clear bit, 2 = resident
with the bit set), `stored` sizes (byte mode only) and `meta` = [tail slot, count, used].
"""
from __future__ import annotations

import numba
import numpy as np

from .base import EVICTIONS, HITS, MISS_BYTES, MISSES, Policy, Setup, register
from .lru import add_single_table, PREFETCH_AHEAD, max_residents, prefetch


def init(setup: Setup) -> tuple:
    ring = np.zeros(max_residents(setup), dtype=np.int32)
    flag = np.zeros(setup.n_keys, dtype=np.uint8)
    stored = np.zeros(0 if setup.unit else setup.n_keys, dtype=np.int64)
    meta = np.zeros(3, dtype=np.int64)  # tail slot, count, used
    return (ring, flag, stored, meta)


@numba.njit(cache=True)
def kernel(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    ring, flag, stored, meta = state
    tail, count, used = meta[0], meta[1], meta[2]
    rsize = ring.shape[0]
    has_sizes = sizes.shape[0] > 0
    single = counters.shape[0] == 1
    hits = misses = miss_bytes = evictions = 0
    n_keys = keys.shape[0]
    for i in range(n_keys):
        if i + PREFETCH_AHEAD < n_keys:
            prefetch(flag, keys[i + PREFETCH_AHEAD])
        k = keys[i]
        if flag[k]:
            flag[k] = 2
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
        while used + need > capacity:
            v = ring[tail]
            while flag[v] == 2:  # second chance: clear the bit, move the key to the head
                flag[v] = 1
                head = tail + count
                if head >= rsize:
                    head -= rsize
                ring[head] = v
                tail += 1
                if tail == rsize:
                    tail = 0
                v = ring[tail]
            tail += 1
            if tail == rsize:
                tail = 0
            count -= 1
            flag[v] = 0
            used -= 1 if unit else stored[v]
            if single:
                evictions += 1
            else:
                counters[key_table[v], EVICTIONS] += 1
        head = tail + count
        if head >= rsize:
            head -= rsize
        ring[head] = k
        count += 1
        flag[k] = 1
        if not unit:
            stored[k] = s
        used += need
    if single:
        add_single_table(counters, has_sizes, hits, misses, miss_bytes, evictions)
    meta[0] = tail
    meta[1] = count
    meta[2] = used


POLICY = register(Policy(name="clock", kernel=kernel, init=init,
                         aliases=("fifo-reinsertion", "second-chance"),
                         description="FIFO that gives a key with its reference bit set a second "
                                     "chance (libCacheSim's Clock, one bit)"))
