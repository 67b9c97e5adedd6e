"""OPT (Belady's MIN): evict the resident key whose next access is farthest in the future.

Reads the trace's next-access column (`needs_next`), as libCacheSim's Belady does. Like
libCacheSim's, it follows the common request loop: every missed object that fits is inserted,
even one never accessed again, and evictions make room for it first (so with byte capacity this
is the classic farthest-next-access rule, not the size-aware optimum). A key never accessed again
is infinitely far; among such keys, the one accessed most recently is evicted first (any other
rule gives the same counts in unit mode, where all of them are equally useless).

O(log n) per access: an indexed binary max-heap of the resident keys by priority = next access,
or 2^62 + the time of the last access for a key never accessed again (unique priorities, so the
victim does not depend on the heap's layout).

State: `hkey` (dense id per heap slot), `hpri` (its priority), `hpos` (heap slot of each dense
id, -1 when not resident) and `meta` = [count]; the request loop (`base.request_loop`) does
the rest.
"""
from __future__ import annotations

import numba
import numpy as np

from ..numba_util import prefetch
from .base import Policy, Setup, loop_state, max_residents, register, request_loop

NEVER = np.int64(1 << 62)


def init(setup: Setup) -> tuple:
    r = max_residents(setup)
    hkey = np.zeros(r, dtype=np.int32)
    hpri = np.zeros(r, dtype=np.int64)
    hpos = np.full(setup.n_keys, -1, dtype=np.int32)
    return loop_state(setup, (hkey, hpri, hpos, np.zeros(1, dtype=np.int64)))


@numba.njit(cache=True, inline="always")
def _put(j, k, pri, hkey, hpri, hpos):
    """Key k with priority pri into heap slot j."""
    hkey[j] = k
    hpri[j] = pri
    hpos[k] = j


@numba.njit(cache=True, inline="always")
def _sift_up(j, k, pri, hkey, hpri, hpos):
    """Place key k with priority pri at slot j or above (its priority did not drop)."""
    while j > 0:
        parent = (j - 1) >> 1
        if hpri[parent] >= pri:
            break
        _put(j, hkey[parent], hpri[parent], hkey, hpri, hpos)
        j = parent
    _put(j, k, pri, hkey, hpri, hpos)


@numba.njit(cache=True, inline="always")
def _sift_down(k, pri, count, hkey, hpri, hpos):
    """Place key k with priority pri at the root or below, in a heap of `count` slots."""
    j = 0
    while True:
        c = 2 * j + 1
        if c >= count:
            break
        if c + 1 < count and hpri[c + 1] > hpri[c]:
            c += 1
        if hpri[c] <= pri:
            break
        _put(j, hkey[c], hpri[c], hkey, hpri, hpos)
        j = c
    _put(j, k, pri, hkey, hpri, hpos)


@numba.njit(cache=True, inline="always")
def ahead(st, k):
    prefetch(st[2], k)


@numba.njit(cache=True, inline="always")
def hit(st, k, now, nx):
    hkey, hpri, hpos, _ = st
    j = hpos[k]
    if j < 0:
        return False
    _sift_up(j, k, nx if nx >= 0 else NEVER + now, hkey, hpri, hpos)  # its priority was now
    return True


@numba.njit(cache=True, inline="always")
def evict(st, now):  # the root: the farthest next access
    hkey, hpri, hpos, meta = st
    v = hkey[0]
    hpos[v] = -1
    meta[0] -= 1
    count = meta[0]
    if count > 0:
        _sift_down(hkey[count], hpri[count], count, hkey, hpri, hpos)
    return v


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):
    hkey, hpri, hpos, meta = st
    _sift_up(meta[0], k, nx if nx >= 0 else NEVER + now, hkey, hpri, hpos)
    meta[0] += 1


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict, ahead=ahead)

POLICY = register(Policy(name="opt", kernel=kernel, init=init, needs_next=True,
                         aliases=("belady", "min", "optimal"),
                         description="Belady's MIN: evict the farthest next access (reads the "
                                     "trace's future)"))
