"""S3-FIFO: a small probation FIFO, a main FIFO with a 2-bit clock, and a ghost FIFO.

Follows libCacheSim's `S3FIFO.c` (Yang et al., SOSP'23) rule for rule, sizes in bytes, as of
upstream commit 035d832 and later (the `libcachesim` 0.3.5 wheel's version). That commit added
the "into main while small is full and nothing has been evicted yet" rule below; a checkout
from before it (1a1a11a/libCacheSim aa0fc40, October 2024) inserts those keys into small and
counts differently (tests/test_input_checks.py holds a trace on which the two differ):

- small = int(0.1 x capacity), main = capacity - small, ghost = int(0.9 x capacity); a cache whose
  small queue would be 0 is refused (libCacheSim refuses it too);
- a hit adds 1 to the object's count (only min(count, 3) ever matters, so it is kept capped at 3);
- a miss on a key in the ghost removes it from the ghost and inserts the object into main; any
  other miss inserts into small, or into main while small is full and nothing has been evicted
  yet. An object larger than small is not cached; one exactly as large as small is not cached
  either unless it came from the ghost (the space is still made for it first);
- to make room: evict from main if main is over its share or small is empty, else from small.
  Small's oldest moves to main (count reset to 0) when its count >= 2, and the next one is
  looked at; otherwise it is evicted and its key enters the ghost (dropping the ghost's oldest
  keys to fit). Main's oldest with count >= 1 is reinserted at the head with count - 1; the first
  with count 0 is evicted.

State: `link[k] = (toward head, toward tail)`, shared by the three queues (a key is in at most
one); `code[k]` = queue (0 none, 1 small, 2 main, 3 ghost) + 4 x count; `stored` sizes (byte
mode; shared with the request loop, which sets them); `ends[queue] = (head, tail)`;
`total[queue]` (sizes per queue); `meta` = [evicted yet (0/1), small size, main size, ghost
size, current miss came from the ghost (0/1)]. The request loop (`base.request_loop`) counts
and evicts until the object fits.
"""
from __future__ import annotations

import numba
import numpy as np

from ..errors import CachesimError
from .base import (Policy, Setup, loop_state, register,
                   request_loop, stored_sizes)

SMALL, MAIN, GHOST = 1, 2, 3
UP, DOWN = 0, 1
SMALL_RATIO, GHOST_RATIO, MOVE_TO_MAIN = 0.1, 0.9, 2


def queue_sizes(capacity: int) -> tuple[int, int, int]:
    """(small, main, ghost) sizes for a cache of `capacity` rows or bytes, as libCacheSim's."""
    small = int(capacity * SMALL_RATIO)
    return small, capacity - small, int(capacity * GHOST_RATIO)


def init(setup: Setup) -> tuple:
    small, main, ghost = queue_sizes(setup.capacity)
    if small <= 0:
        unit = "rows" if setup.unit else "bytes"
        raise CachesimError(
            f"s3fifo: a cache of {setup.capacity} {unit} leaves its small FIFO (10% of the cache)"
            f" empty; S3-FIFO needs a capacity of at least 10 {unit}")
    n = setup.n_keys
    link = np.full((n, 2), -1, dtype=np.int32)
    code = np.zeros(n, dtype=np.uint8)
    stored = stored_sizes(setup)
    ends = np.full((4, 2), -1, dtype=np.int64)
    total = np.zeros(4, dtype=np.int64)
    meta = np.array([0, small, main, ghost, 0], dtype=np.int64)
    return loop_state(setup, (link, code, stored, ends, total, meta), stored)


@numba.njit(cache=True, inline="always")
def _push_head(link, ends, q, v):
    """Put v at the head (newest end) of queue q."""
    h = ends[q, 0]
    link[v, UP] = -1
    link[v, DOWN] = h
    if h != -1:
        link[h, UP] = v
    else:
        ends[q, 1] = v
    ends[q, 0] = v


@numba.njit(cache=True, inline="always")
def _pop_tail(link, ends, q):
    """Take the oldest key out of queue q (not empty) and return it."""
    v = ends[q, 1]
    up = link[v, UP]
    ends[q, 1] = up
    if up != -1:
        link[up, DOWN] = -1
    else:
        ends[q, 0] = -1
    return v


@numba.njit(cache=True, inline="always")
def hit(st, k, now, nx):  # in small or main: count + 1 (capped at 3)
    code = st[1]
    c = code[k]
    q = c & 3
    if q == SMALL or q == MAIN:
        if c < 12:
            code[k] = c + 4
        return True
    return False


@numba.njit(cache=True, inline="always")
def miss(st, k, need):  # leave the ghost; an object of small's size or more is not cached
    link, code, stored, ends, total, meta = st
    from_ghost = (code[k] & 3) == GHOST
    meta[4] = from_ghost
    if from_ghost:  # unlink k from the ghost
        up = link[k, UP]
        down = link[k, DOWN]
        if up != -1:
            link[up, DOWN] = down
        else:
            ends[GHOST, 0] = down
        if down != -1:
            link[down, UP] = up
        else:
            ends[GHOST, 1] = up
        total[GHOST] -= 1 if stored.shape[0] == 0 else stored[k]
        code[k] = 0
    if need > meta[1]:
        return 0
    return 1 if from_ghost or need < meta[1] else 2  # as large as small: room made, not cached


@numba.njit(cache=True, inline="always")
def evict(st, now):  # from main if over its share or small is empty, else from small
    link, code, stored, ends, total, meta = st
    unit = stored.shape[0] == 0
    meta[0] = 1  # evicted yet
    main_cap, ghost_cap = meta[2], meta[3]
    while True:  # until one object leaves (moves from small to main free nothing)
        from_main = total[MAIN] > main_cap or total[SMALL] == 0
        q = MAIN if from_main else SMALL
        while total[q] > 0:
            v = _pop_tail(link, ends, q)
            count = code[v] >> 2
            sz = 1 if unit else stored[v]
            if from_main:
                if count >= 1:  # reinsert at main's head, one count less
                    code[v] = MAIN + ((count - 1) << 2)
                    _push_head(link, ends, MAIN, v)
                    continue
            elif count >= MOVE_TO_MAIN:  # small -> main, count reset
                code[v] = MAIN
                total[SMALL] -= sz
                total[MAIN] += sz
                _push_head(link, ends, MAIN, v)
                continue
            total[q] -= sz  # evicted
            code[v] = 0
            if not from_main and sz <= ghost_cap:  # small's victim: its key enters the ghost
                code[v] = GHOST
                while total[GHOST] + sz > ghost_cap:
                    g = _pop_tail(link, ends, GHOST)
                    code[g] = 0
                    total[GHOST] -= 1 if unit else stored[g]
                total[GHOST] += sz
                _push_head(link, ends, GHOST, v)
            return v


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):  # a ghost hit, or a miss while small is full before any eviction,
    link, code, stored, ends, total, meta = st  # goes to main; any other to small
    dst = SMALL
    if meta[4] or (meta[0] == 0 and total[SMALL] >= meta[1]):
        dst = MAIN
    code[k] = dst
    total[dst] += 1 if stored.shape[0] == 0 else stored[k]
    _push_head(link, ends, dst, k)


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict, miss=miss)


POLICY = register(Policy(
    name="s3fifo", kernel=kernel, init=init, aliases=("s3-fifo",),
    description="small probation FIFO, main FIFO with a 2-bit clock, ghost of small's evictions"))
