"""LRU: evict the least recently used key.

State: an append-only recency queue of dense ids (`queue`, oldest at `tail`, newest at
`head - 1`) and `pos`, the queue slot of each resident key's latest entry (-1 when not resident).
An access appends the key and stamps its new slot, so a hit costs one random read and one write
instead of relinking a doubly linked list; the older entry of that key goes stale (its slot no
longer equals `pos[key]`), and is marked so in `stale` (a byte per queue slot). Eviction pops
the tail, skipping stale entries by that mark (a sequential scan, where reading `pos` of each
stale entry's key would be a random read: most of a small cache's miss time over many keys),
so the first live entry is the least recently used key. When the queue is full, the live
entries (at most the number of resident keys, which the queue holds twice over) are compacted
to its front, so every access is O(1) amortised. `meta` = [tail, head]; the request loop
(`base.request_loop`, the one loop of every policy) keeps the stored sizes and `used`, and
prefetches `pos` of the key PREFETCH_AHEAD accesses ahead (`ahead`).
"""
from __future__ import annotations

import numba
import numpy as np

from ..numba_util import prefetch
from .base import (
    BatchRule,
    Policy,
    Setup,
    loop_state,
    max_residents,
    register,
    request_loop,
)


VICTIM_AHEAD = 8  # eviction hints the pos of the key this many queue slots past the victim


def init(setup: Setup) -> tuple:
    pos = np.full(setup.n_keys, -1, dtype=np.int32)
    queue = np.zeros(4 * max_residents(setup) + 1024, dtype=np.int32)
    stale = np.zeros(queue.shape[0], dtype=np.uint8)
    return loop_state(setup, (pos, queue, stale, np.zeros(2, dtype=np.int64)))  # tail, head


@numba.njit(cache=True)
def _compact(pos, queue, stale, tail, head):
    """Move the live entries of queue[tail:head] to the front, in order; return the new head."""
    w = 0
    for j in range(tail, head):
        if not stale[j]:
            v = queue[j]
            queue[w] = v
            pos[v] = w
            w += 1
    stale[:head] = 0
    return w


@numba.njit(cache=True, inline="always")
def _append(pos, queue, stale, meta, k):
    """Make k the most recent: append it (compacting a full queue first)."""
    if meta[1] == queue.shape[0]:
        meta[1] = _compact(pos, queue, stale, meta[0], meta[1])
        meta[0] = 0
    queue[meta[1]] = k
    pos[k] = meta[1]
    meta[1] += 1


@numba.njit(cache=True, inline="always")
def ahead(st, k):
    prefetch(st[0], k)


@numba.njit(cache=True, inline="always")
def hit(st, k, now, nx):
    pos, queue, stale, meta = st
    p = pos[k]
    if p < 0:
        return False
    if p != meta[1] - 1:  # not already the most recent: append a fresh entry
        stale[p] = 1  # (so that eviction skips it without reading pos of its key)
        _append(pos, queue, stale, meta, k)
    return True


@numba.njit(cache=True, inline="always")
def evict(st, now):  # the least recent live entry
    pos, queue, stale, meta = st
    tail = meta[0]
    while stale[tail]:  # a sequential scan of bytes, not a random read per stale entry
        stale[tail] = 0
        tail += 1
    v = queue[tail]
    meta[0] = tail + 1
    pos[v] = -1
    # the victims to come are the keys a few slots on (or stale entries, a wasted hint): their
    # pos is a random read over all the keys' state, so ask for it now (VICTIM_AHEAD)
    if tail + VICTIM_AHEAD < meta[1]:
        prefetch(pos, queue[tail + VICTIM_AHEAD])
    return v


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):
    _append(st[0], st[1], st[2], st[3], k)


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict, ahead=ahead)


# batch mode (FBGEMM's LRU): a hit restamps its line, a miss takes the oldest stamp;
# device state: lxu_state, one int64 stamp per line
BATCH_RULE = BatchRule(order="stamp", stamp_on_hit=True)
STAMP_BYTES = 8


def policy_state_bytes(lines: int, total_rows: int) -> int:
    """FBGEMM's LRU state: an int64 stamp per line."""
    return STAMP_BYTES * int(lines)


POLICY = register(Policy(name="lru", kernel=kernel, init=init, aliases=("least-recently-used",),
                         description="evict the least recently used key",
                         batch_rule=BATCH_RULE, policy_state_bytes=policy_state_bytes,
                         set_rule="lru"))
