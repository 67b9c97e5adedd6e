"""Clock (FIFO-reinsertion, second chance) with one reference bit, as libCacheSim's `Clock`.

A key enters at the head of a FIFO with its bit clear; a hit sets the bit. To evict, look at the
tail (oldest): a key with its bit set has the bit cleared and is moved to the head; the first key
found with a clear bit is evicted.

State: a ring of the resident dense ids in queue order (`ring`), a two-bit `flag` per dense id
(`flags.pairs`: 0 = not resident, 1 = resident with a clear bit, 2 = resident with the bit set;
4 MB at 16.7M keys) and `meta` = [tail slot, count]; the request loop (`base.request_loop`)
does the rest.
"""
from __future__ import annotations

import numba
import numpy as np

from ..numba_util import prefetch
from .base import Policy, Setup, loop_state, max_residents, register, request_loop
from .fifo import ring_pop, ring_push
from .flags import pair_get, pair_put, pairs


def init(setup: Setup) -> tuple:
    ring = np.zeros(max_residents(setup), dtype=np.int32)
    flag = pairs(setup.n_keys)
    return loop_state(setup, (ring, flag, np.zeros(2, dtype=np.int64)))


@numba.njit(cache=True, inline="always")
def ahead(st, k):
    prefetch(st[1], k >> 2)


@numba.njit(cache=True, inline="always")
def hit(st, k, now, nx):
    flag = st[1]
    if pair_get(flag, k):
        pair_put(flag, k, 2)
        return True
    return False


@numba.njit(cache=True, inline="always")
def evict(st, now):
    ring, flag, meta = st
    v = ring_pop(ring, meta)
    while pair_get(flag, v) == 2:  # second chance: clear the bit, move the key to the head
        pair_put(flag, v, 1)
        ring_push(ring, meta, v)
        v = ring_pop(ring, meta)
    pair_put(flag, v, 0)
    return v


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):
    ring_push(st[0], st[2], k)
    pair_put(st[1], k, 1)


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict, ahead=ahead)

POLICY = register(Policy(name="clock", kernel=kernel, init=init,
                         aliases=("fifo-reinsertion", "second-chance"),
                         description="FIFO that gives a key with its reference bit set a second "
                                     "chance (libCacheSim's Clock, one bit)"))
