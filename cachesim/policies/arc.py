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

State: the four lists are append-only queues of dense ids, one row each of `queue` (oldest at
`qends[list, 0]`, next free slot at `qends[list, 1]`), and `node[k]` = (slot of k's live entry,
list of k: 0 absent, 1 T1, 2 T2, 3 B1, 4 B2). Moving a key (to T2's head on a hit, out of a ghost
list on a ghost hit) blanks its old entry (-1) and appends it where it goes, so no neighbour is
touched, and taking a list's LRU skips blanks without reading any key's state: on a miss, the
missed key's own row is the only random read. A full queue is compacted in place (its live
entries, at most half of it, moved to the front), so every access is O(1) amortised. `stored`
sizes (byte mode; shared with the request loop, which sets them), `total[list]` (sizes per
list), `p` (float64[1]) and `meta` = [ghost list of the current miss (0: none), its size, the
capacity] complete it. The request loop (`base.request_loop`) counts and evicts until it fits.
"""
from __future__ import annotations

import numba
import numpy as np

from .base import (Policy, Setup, loop_state, register,
                   request_loop, stored_sizes)

T1, T2, B1, B2 = 1, 2, 3, 4
SLOT, WHERE = 0, 1  # node columns


def max_per_list(setup: Setup) -> int:
    """Most keys one list can hold: in rows, T1, T2 and B1 hold at most C and B2 at most 2C
    (T1 + B1 <= C and all four <= 2C once the cache has filled); in bytes, every key."""
    if setup.unit:
        return max(1, min(setup.n_keys, 2 * setup.capacity))
    return max(1, setup.n_keys)


def init(setup: Setup) -> tuple:
    n = setup.n_keys
    node = np.zeros((n, 2), dtype=np.int32)
    queue = np.zeros((5, 2 * max_per_list(setup) + 64), dtype=np.int32)
    qends = np.zeros((5, 2), dtype=np.int64)
    stored = stored_sizes(setup)
    total = np.zeros(5, dtype=np.int64)
    p = np.zeros(1, dtype=np.float64)
    meta = np.array([0, 0, setup.capacity], dtype=np.int64)
    return loop_state(setup, (node, queue, qends, stored, total, p, meta), stored)


@numba.njit(cache=True)
def _step(other, own):
    """max(other / own, 1) in floats; a ghost list of zero-size objects divides by 0 as C does."""
    if own > 0:
        r = other / own
        return r if r > 1.0 else 1.0
    return np.inf if other > 0 else 1.0


@numba.njit(cache=True)
def _compact(node, queue, qends, lst):
    """Move the live entries of list `lst` to the front of its queue, in order."""
    w = 0
    for j in range(qends[lst, 0], qends[lst, 1]):
        v = queue[lst, j]
        if v != -1:
            queue[lst, w] = v
            node[v, SLOT] = w
            w += 1
    if w == queue.shape[1]:
        raise RuntimeError("arc: a list outgrew its queue (internal error)")
    qends[lst, 0] = 0
    qends[lst, 1] = w


@numba.njit(cache=True, inline="always")
def _push(node, queue, qends, lst, k):
    """Append k to list `lst` (its MRU end), compacting a full queue first."""
    if qends[lst, 1] == queue.shape[1]:
        _compact(node, queue, qends, lst)
    h = qends[lst, 1]
    queue[lst, h] = k
    node[k, SLOT] = h
    node[k, WHERE] = lst
    qends[lst, 1] = h + 1


@numba.njit(cache=True, inline="always")
def _pop_lru(queue, qends, lst):
    """Take the oldest live entry of list `lst` (-1 when it has none)."""
    j = qends[lst, 0]
    end = qends[lst, 1]
    while j < end and queue[lst, j] == -1:
        j += 1
    qends[lst, 0] = j + 1 if j < end else j
    return queue[lst, j] if j < end else -1


@numba.njit(cache=True, inline="always")
def hit(st, k, now, nx):  # in T1 or T2: to T2's head
    node, queue, qends, stored, total, _, _ = st
    w = node[k, WHERE]
    if w != T1 and w != T2:
        return False
    if w == T2 and node[k, SLOT] == qends[T2, 1] - 1:
        return True  # already T2's most recent
    queue[w, node[k, SLOT]] = -1  # blank its entry, append it to T2
    if w == T1:
        sz = 1 if stored.shape[0] == 0 else stored[k]
        total[T1] -= sz
        total[T2] += sz
    _push(node, queue, qends, T2, k)
    return True


@numba.njit(cache=True, inline="always")
def miss(st, k, need):  # a ghost hit adapts p and leaves the ghost list
    node, queue, _, stored, total, p, meta = st
    ghost = node[k, WHERE]
    meta[0] = ghost
    meta[1] = need
    if ghost != 0:
        if ghost == B1:
            p[0] = min(p[0] + _step(total[B2], total[B1]), float(meta[2]))
        else:
            p[0] = max(p[0] - _step(total[B1], total[B2]), 0.0)
        total[ghost] -= 1 if stored.shape[0] == 0 else stored[k]
        queue[ghost, node[k, SLOT]] = -1
        node[k, WHERE] = 0
    return 1


@numba.njit(cache=True, inline="always")
def evict(st, now):  # one eviction step (the module's doc), then REPLACE
    node, queue, qends, stored, total, p, meta = st
    ghost, need, capacity = meta[0], meta[1], meta[2]
    unit = stored.shape[0] == 0
    to_ghost = True
    drop = 0
    if ghost == 0:
        if total[T1] + total[B1] + need > capacity:
            if total[B1] > 0:
                drop = B1
            else:  # T1 alone fills the cache: evict its LRU without a ghost
                to_ghost = False
        elif total[T1] + total[B1] + total[T2] + total[B2] >= 2 * capacity and total[B2] > 0:
            drop = B2
    if drop != 0:  # forget the oldest ghost of `drop`
        g = _pop_lru(queue, qends, drop)
        node[g, WHERE] = 0
        total[drop] -= 1 if unit else stored[g]
    src = T1
    if to_ghost:  # REPLACE
        t1 = total[T1]
        if not ((t1 > 0 and (t1 > p[0] or (t1 == p[0] and ghost == B2))) or total[T2] == 0):
            src = T2
    v = _pop_lru(queue, qends, src)
    if v == -1:  # only zero-size objects could leave a list empty here
        return -1
    sz = 1 if unit else stored[v]
    total[src] -= sz
    node[v, WHERE] = 0
    if to_ghost:  # into the ghost list B1 (from T1) or B2 (from T2)
        _push(node, queue, qends, src + 2, v)
        total[src + 2] += sz
    return v


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):  # a ghost hit goes to T2, any other miss to T1
    node, queue, qends, _, total, _, meta = st
    dst = T2 if meta[0] != 0 else T1
    total[dst] += meta[1]
    _push(node, queue, qends, dst, k)


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict, miss=miss)


POLICY = register(Policy(
    name="arc", kernel=kernel, init=init, aliases=("adaptive-replacement-cache",),
    description="adaptive split between a recency and a frequency LRU list, steered by ghosts"))
