"""SIEVE: a FIFO queue with one visited bit per object and a hand that sifts out the unvisited.

A hit sets the object's visited bit and moves nothing. New objects go in at the head. To evict,
the hand walks from where it last stopped (at first, the tail: the oldest object) towards the
head, clearing visited bits, wrapping to the tail; the first unvisited object is evicted and the
hand stays on the next-newer object, or goes back to the tail when the evicted one was the head
(libCacheSim's `Sieve.c`, Zhang et al., NSDI'24).

State: the queue is an array of dense ids, oldest first (`queue[low:top]`), where an eviction
leaves a hole (-1) instead of unlinking a node; when the array is full, the live entries move
to its front in order. Per key only a two-bit `flag` (`flags.pairs`: 0 absent, 1 resident, 2
resident and visited; 4 MB at 16.7M keys, where neighbour links took 8 bytes a key), so the
state of every key stays in the processor's caches. `meta` = [top, low (no live entry below),
hand (index of a live entry, -1: start at the tail)]; the request loop (`base.request_loop`)
does the rest.
"""
from __future__ import annotations

import numba
import numpy as np

from .base import Policy, Setup, loop_state, max_residents, register, request_loop
from .clock import ahead, hit  # the same visited flag: st[1] is flag, 2 after a hit
from .flags import pair_get, pair_put, pairs

TOP, LOW, HAND = 0, 1, 2


def init(setup: Setup) -> tuple:
    queue = np.full(2 * max_residents(setup) + 1024, -1, dtype=np.int32)
    flag = pairs(setup.n_keys)
    return loop_state(setup, (queue, flag, np.array([0, 0, -1], dtype=np.int64)))


@numba.njit(cache=True, inline="always")
def _live_from(queue, j, top):
    """The first live index at or after j, or top when there is none."""
    while j < top and queue[j] < 0:
        j += 1
    return j


@numba.njit(cache=True, inline="always")
def _tail(queue, meta):
    """The oldest live index (the queue holds at least one live entry)."""
    low = _live_from(queue, meta[LOW], meta[TOP])
    meta[LOW] = low
    return low


@numba.njit(cache=True, inline="always")
def evict(st, now):
    queue, flag, meta = st
    top = meta[TOP]
    x = meta[HAND] if meta[HAND] != -1 else _tail(queue, meta)
    while pair_get(flag, queue[x]) == 2:  # visited: clear, move towards the head, wrapping
        pair_put(flag, queue[x], 1)
        x = _live_from(queue, x + 1, top)
        if x == top:
            x = _tail(queue, meta)
    v = queue[x]
    queue[x] = -1
    nxt = _live_from(queue, x + 1, top)
    meta[HAND] = nxt if nxt < top else -1
    pair_put(flag, v, 0)
    return v


@numba.njit(cache=True)
def _compact(queue, meta):
    """Move the live entries to the front, in order, keeping the hand on its entry."""
    w, hand = 0, -1
    for j in range(meta[LOW], meta[TOP]):
        v = queue[j]
        if v >= 0:
            if j == meta[HAND]:
                hand = w
            queue[w] = v
            w += 1
    queue[w:meta[TOP]] = -1
    meta[TOP], meta[LOW], meta[HAND] = w, 0, hand


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):
    queue, flag, meta = st
    if meta[TOP] == queue.shape[0]:
        _compact(queue, meta)
    queue[meta[TOP]] = k
    meta[TOP] += 1
    pair_put(flag, k, 1)


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict, ahead=ahead)

POLICY = register(Policy(
    name="sieve", kernel=kernel, init=init, aliases=("sieve-fifo",),
    description="FIFO queue with a visited bit; a moving hand evicts the first unvisited key"))
