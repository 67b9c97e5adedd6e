"""LRU: evict the least recently used key.

State: a doubly linked list over dense ids (`prev`, `next`; head = most recent, tail = least),
`resident` flags, `stored` sizes (byte mode only) and `meta` = [head, tail, used].
"""
from __future__ import annotations

import numba
import numpy as np

from .base import EVICTIONS, HITS, MISS_BYTES, MISSES, Policy, Setup, register


def init(setup: Setup) -> tuple:
    n = setup.n_keys
    prev = np.full(n, -1, dtype=np.int32)
    nxt = np.full(n, -1, dtype=np.int32)
    resident = np.zeros(n, dtype=np.uint8)
    stored = np.zeros(0 if setup.unit else n, dtype=np.int64)
    meta = np.array([-1, -1, 0], dtype=np.int64)
    return (prev, nxt, resident, stored, meta)


@numba.njit(cache=True)
def kernel(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    prev, nxt, resident, stored, meta = state
    head, tail, used = meta[0], meta[1], meta[2]
    has_sizes = sizes.shape[0] > 0
    for i in range(keys.shape[0]):
        k = keys[i]
        if resident[k]:
            counters[key_table[k], HITS] += 1
            if head != k:  # unlink k, then push it at the head
                p = prev[k]
                n = nxt[k]
                nxt[p] = n
                if n != -1:
                    prev[n] = p
                else:
                    tail = p
                prev[k] = -1
                nxt[k] = head
                prev[head] = k
                head = k
            continue
        t = key_table[k]
        counters[t, MISSES] += 1
        s = sizes[i] if has_sizes else 1
        if has_sizes:
            counters[t, MISS_BYTES] += s
        need = 1 if unit else s
        if need > capacity:
            continue
        while used + need > capacity:  # evict from the tail
            v = tail
            tail = prev[v]
            if tail != -1:
                nxt[tail] = -1
            else:
                head = -1
            resident[v] = 0
            used -= 1 if unit else stored[v]
            counters[key_table[v], EVICTIONS] += 1
        resident[k] = 1
        if not unit:
            stored[k] = s
        used += need
        prev[k] = -1
        nxt[k] = head
        if head != -1:
            prev[head] = k
        else:
            tail = k
        head = k
    meta[0] = head
    meta[1] = tail
    meta[2] = used


POLICY = register(Policy(name="lru", kernel=kernel, init=init, aliases=("least-recently-used",),
                         description="evict the least recently used key"))
