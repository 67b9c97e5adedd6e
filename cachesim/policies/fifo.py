"""FIFO: evict the key inserted longest ago; a hit changes nothing.

State: a ring of the resident dense ids in insertion order (`ring`), a `resident` bit per dense
id (`flags.bits`: 2 MB at 16.7M keys, so it stays in the processor's caches) and `meta` =
[oldest slot, resident count]; the request loop (`base.request_loop`) does the rest.
"""
from __future__ import annotations

import numba
import numpy as np

from ..numba_util import prefetch
from .base import Policy, Setup, loop_state, max_residents, register, request_loop
from .flags import bit_clear, bit_get, bit_set, bits


def init(setup: Setup) -> tuple:
    ring = np.zeros(max_residents(setup), dtype=np.int32)
    resident = bits(setup.n_keys)
    return loop_state(setup, (ring, resident, np.zeros(2, dtype=np.int64)))


@numba.njit(cache=True, inline="always")
def ring_push(ring, meta, k):
    """Append k at the newest end of the ring (meta = [oldest slot, count])."""
    slot = meta[0] + meta[1]
    ring[slot - ring.shape[0] if slot >= ring.shape[0] else slot] = k
    meta[1] += 1


@numba.njit(cache=True, inline="always")
def ring_pop(ring, meta):
    """Take the oldest entry out of the ring and return it."""
    v = ring[meta[0]]
    meta[0] = meta[0] + 1 if meta[0] + 1 < ring.shape[0] else 0
    meta[1] -= 1
    return v


@numba.njit(cache=True, inline="always")
def ahead(st, k):
    prefetch(st[1], k >> 3)


@numba.njit(cache=True, inline="always")
def hit(st, k, now, nx):
    return bit_get(st[1], k) != 0


@numba.njit(cache=True, inline="always")
def evict(st, now):
    v = ring_pop(st[0], st[2])
    bit_clear(st[1], v)
    return v


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):
    ring_push(st[0], st[2], k)
    bit_set(st[1], k)


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict, ahead=ahead)

POLICY = register(Policy(name="fifo", kernel=kernel, init=init,
                         aliases=("first-in-first-out",),
                         description="evict the key inserted longest ago; hits change nothing",
                         set_rule="fifo"))
