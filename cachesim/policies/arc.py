"""ARC: adaptive replacement between a recency list and a frequency list, steered by ghosts.

T1 holds keys seen once, T2 keys seen again; B1 and B2 remember (as ghosts, without data) what
T1 and T2 evicted. A target `p` for T1's share moves up on a B1 hit and down on a B2 hit (by
max(|B2| / |B1|, 1) and the reverse). Sizes are bytes and `p` is a float, as in libCacheSim's
`ARC.c` (Megiddo and Modha, FAST'03), which this follows rule for rule:

- hit in T1: move to T2's head; hit in T2: move to T2's head;
- ghost hit: a miss; adapt `p`, drop the ghost, then (if the object fits at all) make room by
  REPLACE and insert at T2's head;
- other miss: make room, insert at T1's head. Each eviction step: if T1 + B1 + size > capacity,
  drop B1's LRU ghost and REPLACE, or, with B1 empty, evict T1's LRU without a ghost; otherwise,
  when T1 + B1 + T2 + B2 >= 2 x capacity, drop B2's LRU ghost (if any), then REPLACE;
- REPLACE: evict T1's LRU into B1 if T1 is not empty and (T1 > p, or T1 == p on a B2 hit), or if
  T2 is empty; else evict T2's LRU into B2.

State: `link[k] = (toward head, toward tail)`, `where[k]` (0 absent, 1 T1, 2 T2, 3 B1, 4 B2),
`stored` sizes (byte mode), `ends[list] = (head, tail)`, `total[list]` (sizes per list) and
`p` (float64[1]).
"""
from __future__ import annotations

import numba
import numpy as np

from .base import EVICTIONS, HITS, MISS_BYTES, MISSES, Policy, Setup, register

T1, T2, B1, B2 = 1, 2, 3, 4
UP, DOWN = 0, 1        # link columns: neighbour toward the head (newer), toward the tail


def init(setup: Setup) -> tuple:
    n = setup.n_keys
    link = np.full((n, 2), -1, dtype=np.int32)
    where = np.zeros(n, dtype=np.uint8)
    stored = np.zeros(0 if setup.unit else n, dtype=np.int64)
    ends = np.full((5, 2), -1, dtype=np.int64)
    total = np.zeros(5, dtype=np.int64)
    p = np.zeros(1, dtype=np.float64)
    return (link, where, stored, ends, total, p)


@numba.njit(cache=True)
def _step(other, own):
    """max(other / own, 1) in floats; a ghost list of zero-size objects divides by 0 as C does."""
    if own > 0:
        r = other / own
        return r if r > 1.0 else 1.0
    return np.inf if other > 0 else 1.0


@numba.njit(cache=True)
def kernel(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    # The list operations are written out in place: a call that passes arrays costs more than
    # the operation itself in numba.
    link, where, stored, ends, total, p = state
    has_sizes = sizes.shape[0] > 0
    one_table = counters.shape[0] == 1
    hits = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        w = where[k]
        if w == T1 or w == T2:
            if one_table:
                hits += 1
            else:
                counters[key_table[k], HITS] += 1
            if w == T2 and ends[T2, 0] == k:
                continue
            up = link[k, UP]  # unlink k from its list
            down = link[k, DOWN]
            if up != -1:
                link[up, DOWN] = down
            else:
                ends[w, 0] = down
            if down != -1:
                link[down, UP] = up
            else:
                ends[w, 1] = up
            if w == T1:
                sz = 1 if unit else stored[k]
                total[T1] -= sz
                total[T2] += sz
                where[k] = T2
            h = ends[T2, 0]  # push k at T2's head
            link[k, UP] = -1
            link[k, DOWN] = h
            if h != -1:
                link[h, UP] = k
            else:
                ends[T2, 1] = k
            ends[T2, 0] = k
            continue
        t = key_table[k]
        counters[t, MISSES] += 1
        s = sizes[i] if has_sizes else 1
        if has_sizes:
            counters[t, MISS_BYTES] += s
        ghost = w
        if ghost != 0:
            if ghost == B1:
                p[0] = min(p[0] + _step(total[B2], total[B1]), float(capacity))
            else:
                p[0] = max(p[0] - _step(total[B1], total[B2]), 0.0)
            up = link[k, UP]  # unlink k from its ghost list
            down = link[k, DOWN]
            if up != -1:
                link[up, DOWN] = down
            else:
                ends[w, 0] = down
            if down != -1:
                link[down, UP] = up
            else:
                ends[w, 1] = up
            total[w] -= 1 if unit else stored[k]
            where[k] = 0
        need = 1 if unit else s
        if need > capacity:
            continue
        while total[T1] + total[T2] + need > capacity:
            to_ghost = True
            drop = 0
            if ghost == 0:
                if total[T1] + total[B1] + need > capacity:
                    if total[B1] > 0:
                        drop = B1
                    else:  # T1 alone fills the cache: evict its LRU without a ghost
                        to_ghost = False
                elif total[T1] + total[B1] + total[T2] + total[B2] >= 2 * capacity and \
                        total[B2] > 0:
                    drop = B2
            if drop != 0:  # forget the oldest ghost of `drop`
                g = ends[drop, 1]
                up = link[g, UP]
                ends[drop, 1] = up
                if up != -1:
                    link[up, DOWN] = -1
                else:
                    ends[drop, 0] = -1
                where[g] = 0
                total[drop] -= 1 if unit else stored[g]
            src = T1
            if to_ghost:  # REPLACE
                t1 = total[T1]
                if not ((t1 > 0 and (t1 > p[0] or (t1 == p[0] and ghost == B2)))
                        or total[T2] == 0):
                    src = T2
            v = ends[src, 1]  # pop src's LRU
            up = link[v, UP]
            ends[src, 1] = up
            if up != -1:
                link[up, DOWN] = -1
            else:
                ends[src, 0] = -1
            sz = 1 if unit else stored[v]
            total[src] -= sz
            counters[key_table[v], EVICTIONS] += 1
            if to_ghost:  # into the ghost list B1 (from T1) or B2 (from T2)
                dst = src + 2
                h = ends[dst, 0]
                link[v, UP] = -1
                link[v, DOWN] = h
                if h != -1:
                    link[h, UP] = v
                else:
                    ends[dst, 1] = v
                ends[dst, 0] = v
                where[v] = dst
                total[dst] += sz
            else:
                where[v] = 0
        dst = T2 if ghost != 0 else T1
        where[k] = dst
        if not unit:
            stored[k] = s
        total[dst] += need
        h = ends[dst, 0]
        link[k, UP] = -1
        link[k, DOWN] = h
        if h != -1:
            link[h, UP] = k
        else:
            ends[dst, 1] = k
        ends[dst, 0] = k
    if hits:
        counters[0, HITS] += hits


POLICY = register(Policy(
    name="arc", kernel=kernel, init=init, aliases=("adaptive-replacement-cache",),
    description="adaptive split between a recency and a frequency LRU list, steered by ghosts"))
