"""LFU: evict the key with the lowest access count; ties go to the least recently used.

A key's count starts at 1 when it is inserted, grows by 1 per hit and is forgotten when the key
is evicted (as cachetools' LFUCache and libCacheSim's LFU). Among the keys with the lowest count,
the one whose last access is oldest is evicted.

O(1) per access: resident keys sit in frequency buckets, one per count in use, kept in a list in
ascending count; each bucket lists its keys in order of last access (oldest first). A hit moves
the key to the newest end of the bucket for count + 1 (its last access is now the newest of all,
so the order holds); an insertion goes to the newest end of bucket 1; the victim is the oldest
key of the lowest bucket. Buckets come from a pool of n_keys + 1 (at most one per resident key,
plus one while a key moves).

State, in four arrays (few arrays: each one a piece unpacks costs the loop a reference count):
`key[k]` = (older, newer key in its bucket, its bucket; -1 for none and when not resident);
`blink[b]` = (oldest key, newest key, previous bucket, next bucket: the bucket list, whose next
links also chain the free buckets); `bcount[b]`; `meta` = [lowest bucket, first free bucket].
The request loop (`base.request_loop`) does the rest.
"""
from __future__ import annotations

import numba
import numpy as np

from ..numba_util import prefetch
from .base import BatchRule, Policy, Setup, loop_state, register, request_loop

PREV, NEXT, BUCKET = 0, 1, 2           # columns of key
FIRST, LAST, BPREV, BNEXT = 0, 1, 2, 3  # columns of blink


def init(setup: Setup) -> tuple:
    n = setup.n_keys
    key = np.full((n, 3), -1, dtype=np.int32)
    nb = n + 1
    blink = np.full((nb, 4), -1, dtype=np.int32)
    blink[:, BNEXT] = np.arange(1, nb + 1, dtype=np.int32)  # free chain 0 -> 1 -> ... -> -1
    blink[-1, BNEXT] = -1
    bcount = np.zeros(nb, dtype=np.int64)
    meta = np.array([-1, 0], dtype=np.int64)  # lowest bucket, first free bucket
    return loop_state(setup, (key, blink, bcount, meta))


@numba.njit(cache=True, inline="always")
def _append_key(k, b, key, blink):
    """Put key k at the newest end of bucket b."""
    last = blink[b, LAST]
    key[k, PREV] = last
    key[k, NEXT] = -1
    if last == -1:
        blink[b, FIRST] = k
    else:
        key[last, NEXT] = k
    blink[b, LAST] = k
    key[k, BUCKET] = b


@numba.njit(cache=True, inline="always")
def _unlink_key(k, b, key, blink):
    """Take key k out of bucket b's list; True when b is left empty."""
    p = key[k, PREV]
    n = key[k, NEXT]
    if p == -1:
        blink[b, FIRST] = n
    else:
        key[p, NEXT] = n
    if n == -1:
        blink[b, LAST] = p
    else:
        key[n, PREV] = p
    return blink[b, FIRST] == -1


@numba.njit(cache=True, inline="always")
def _new_bucket(c, prev, nxt, blink, bcount, meta):
    """Take a free bucket for count c and link it between buckets prev and nxt (-1: none)."""
    nb = meta[1]
    meta[1] = blink[nb, BNEXT]
    bcount[nb] = c
    blink[nb, FIRST] = -1
    blink[nb, LAST] = -1
    blink[nb, BPREV] = prev
    blink[nb, BNEXT] = nxt
    if nxt != -1:
        blink[nxt, BPREV] = nb
    if prev == -1:
        meta[0] = nb
    else:
        blink[prev, BNEXT] = nb
    return nb


@numba.njit(cache=True, inline="always")
def ahead(st, k):
    prefetch(st[0], 3 * k)


@numba.njit(cache=True, inline="always")
def hit(st, k, now, nx):
    key, blink, bcount, meta = st
    b = key[k, BUCKET]
    if b < 0:
        return False
    c = bcount[b] + 1
    nb = blink[b, BNEXT]
    if nb == -1 or bcount[nb] != c:
        if key[k, PREV] == -1 and key[k, NEXT] == -1:  # alone in its bucket: bump the count
            bcount[b] = c
            return True
        nb = _new_bucket(c, b, nb, blink, bcount, meta)  # for count c, right after b
    if _unlink_key(k, b, key, blink):  # b is empty: drop it
        p = blink[b, BPREV]
        if p == -1:
            meta[0] = nb
        else:
            blink[p, BNEXT] = nb
        blink[nb, BPREV] = p
        blink[b, BNEXT] = meta[1]
        meta[1] = b
    _append_key(k, nb, key, blink)
    return True


@numba.njit(cache=True, inline="always")
def evict(st, now):  # the oldest key of the lowest bucket
    key, blink, _, meta = st
    b = meta[0]
    v = blink[b, FIRST]
    if _unlink_key(v, b, key, blink):
        n = blink[b, BNEXT]
        meta[0] = n
        if n != -1:
            blink[n, BPREV] = -1
        blink[b, BNEXT] = meta[1]
        meta[1] = b
    key[v, BUCKET] = -1
    return v


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):
    key, blink, bcount, meta = st
    lowest = meta[0]
    if lowest == -1 or bcount[lowest] != 1:  # a new bucket for count 1 at the front
        lowest = _new_bucket(1, -1, lowest, blink, bcount, meta)
    _append_key(k, lowest, key, blink)


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict, ahead=ahead)


# batch mode (FBGEMM's LFU): counts of every row, misses by descending count, a miss takes a
# line only if its count is at least the line key's; a hit keeps the fill stamp (ties)
BATCH_RULE = BatchRule(order="count", stamp_on_hit=False, admission="count-at-least")
COUNT_BYTES = 8


def policy_state_bytes(lines: int, total_rows: int) -> int:
    """FBGEMM's LFU state: an int64 count per row of every cached table, plus a sentinel."""
    return COUNT_BYTES * (int(total_rows) + 1)


POLICY = register(Policy(name="lfu", kernel=kernel, init=init,
                         aliases=("least-frequently-used",),
                         description="evict the lowest access count (counts forgotten on "
                                     "eviction); ties: least recently used",
                         batch_rule=BATCH_RULE, policy_state_bytes=policy_state_bytes,
                         set_rule="lfu"))
