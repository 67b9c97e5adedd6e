"""Clock (FIFO-reinsertion, second chance) with one reference bit, as libCacheSim's `Clock`.

A key enters at the head of a FIFO with its bit clear; a hit sets the bit. To evict, look at the
tail (oldest): a key with its bit set has the bit cleared and is moved to the head; the first key
found with a clear bit is evicted.

State: a ring of the resident dense ids in queue order (`ring`), `flag` per dense id
(0 = not resident, 1 = resident with a clear bit, 2 = resident with the bit set) and
`meta` = [tail slot, count]; the request loop (`base.request_loop`) does the rest.
"""
from __future__ import annotations

import numba
import numpy as np

from ..numba_util import prefetch
from .base import Policy, Setup, loop_state, max_residents, register, request_loop


def init(setup: Setup) -> tuple:
    ring = np.zeros(max_residents(setup), dtype=np.int32)
    flag = np.zeros(setup.n_keys, dtype=np.uint8)
    return loop_state(setup, (ring, flag, np.zeros(2, dtype=np.int64)))


@numba.njit(cache=True, inline="always")
def ahead(st, k):
    prefetch(st[1], k)


@numba.njit(cache=True, inline="always")
def hit(st, k, now, nx):
    flag = st[1]
    if flag[k]:
        flag[k] = 2
        return True
    return False


@numba.njit(cache=True, inline="always")
def evict(st, now):
    ring, flag, meta = st
    rsize = ring.shape[0]
    tail = meta[0]
    v = ring[tail]
    while flag[v] == 2:  # second chance: clear the bit, move the key to the head
        flag[v] = 1
        head = tail + meta[1]
        ring[head - rsize if head >= rsize else head] = v
        tail = tail + 1 if tail + 1 < rsize else 0
        v = ring[tail]
    meta[0] = tail + 1 if tail + 1 < rsize else 0
    meta[1] -= 1
    flag[v] = 0
    return v


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):
    ring, flag, meta = st
    head = meta[0] + meta[1]
    ring[head - ring.shape[0] if head >= ring.shape[0] else head] = k
    meta[1] += 1
    flag[k] = 1


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict, ahead=ahead)

POLICY = register(Policy(name="clock", kernel=kernel, init=init,
                         aliases=("fifo-reinsertion", "second-chance"),
                         description="FIFO that gives a key with its reference bit set a second "
                                     "chance (libCacheSim's Clock, one bit)"))
