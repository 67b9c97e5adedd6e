"""SIEVE: a FIFO queue with one visited bit per object and a hand that sifts out the unvisited.

A hit sets the object's visited bit and moves nothing. New objects go in at the head. To evict,
the hand walks from where it last stopped (at first, the tail: the oldest object) towards the
head, clearing visited bits, wrapping to the tail; the first unvisited object is evicted and the
hand stays on the next-newer object (libCacheSim's `Sieve.c`, Zhang et al., NSDI'24).

State: `link[k] = (newer, older)` neighbours in the queue (-1 at the ends), `flag[k]` = 0 absent,
1 resident, 2 resident and visited, `stored` sizes (byte mode only) and
`meta` = [head (newest), tail (oldest), hand (-1: start at the tail), used].
"""
from __future__ import annotations

import numba
import numpy as np

from .base import EVICTIONS, HITS, MISS_BYTES, MISSES, Policy, Setup, register

NEWER, OLDER = 0, 1


def init(setup: Setup) -> tuple:
    n = setup.n_keys
    link = np.full((n, 2), -1, dtype=np.int32)
    flag = np.zeros(n, dtype=np.uint8)
    stored = np.zeros(0 if setup.unit else n, dtype=np.int64)
    meta = np.array([-1, -1, -1, 0], dtype=np.int64)
    return (link, flag, stored, meta)


@numba.njit(cache=True)
def kernel(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    link, flag, stored, meta = state
    head, tail, hand, used = meta[0], meta[1], meta[2], meta[3]
    has_sizes = sizes.shape[0] > 0
    one_table = counters.shape[0] == 1
    hits = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        if flag[k] != 0:
            flag[k] = 2
            if one_table:
                hits += 1
            else:
                counters[key_table[k], HITS] += 1
            continue
        t = 0 if one_table else key_table[k]
        counters[t, MISSES] += 1
        s = sizes[i] if has_sizes else 1
        if has_sizes:
            counters[t, MISS_BYTES] += s
        need = 1 if unit else s
        if need > capacity:
            continue
        while used + need > capacity:
            v = hand if hand != -1 else tail
            while flag[v] == 2:  # visited: clear and move towards the head, wrapping
                flag[v] = 1
                v = link[v, NEWER]
                if v == -1:
                    v = tail
            hand = link[v, NEWER]
            older = link[v, OLDER]
            if hand != -1:
                link[hand, OLDER] = older
            else:
                head = older
            if older != -1:
                link[older, NEWER] = hand
            else:
                tail = hand
            flag[v] = 0
            used -= 1 if unit else stored[v]
            counters[0 if one_table else key_table[v], EVICTIONS] += 1
        flag[k] = 1
        if not unit:
            stored[k] = s
        used += need
        link[k, NEWER] = -1
        link[k, OLDER] = head
        if head != -1:
            link[head, NEWER] = k
        else:
            tail = k
        head = k
    if hits:
        counters[0, HITS] += hits
    meta[0] = head
    meta[1] = tail
    meta[2] = hand
    meta[3] = used


POLICY = register(Policy(
    name="sieve", kernel=kernel, init=init, aliases=("sieve-fifo",),
    description="FIFO queue with a visited bit; a moving hand evicts the first unvisited key"))
