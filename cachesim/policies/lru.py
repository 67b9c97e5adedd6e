"""LRU: evict the least recently used key.

State: an append-only recency queue of dense ids (`queue`, oldest at `tail`, newest at
`head - 1`) and `pos`, the queue slot of each resident key's latest entry (-1 when not resident).
An access appends the key and stamps its new slot, so a hit costs one random read and one write
instead of relinking a doubly linked list; the older entry of that key goes stale (its slot no
longer equals `pos[key]`). Eviction pops the tail, skipping stale entries, so the first live
entry is the least recently used key. When the queue is full, the live entries (at most the
number of resident keys, which the queue holds twice over) are compacted to its front, so every
access is O(1) amortised. `stored` holds each resident's size (byte mode only) and
`meta` = [tail, head, used]. The common case (capacity in rows, one table) runs a loop
specialised for it, which also prefetches the state of the keys a few accesses ahead and of
the entries next to leave the queue; both loops keep the same state.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .base import EVICTIONS, HITS, MISS_BYTES, MISSES, Policy, Setup, register

PREFETCH_AHEAD = 16  # accesses (or queue entries) ahead whose state is fetched into cache


@intrinsic
def _prefetch(typingctx, arr, index):
    """Hint the CPU to bring arr[index] into cache (LLVM's llvm.prefetch: read, high locality).
    A hint only: it changes no value; it hides the memory latency of random state reads."""
    def codegen(context, builder, signature, args):
        arrty = signature.args[0]
        ary = context.make_array(arrty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, arrty, ary, [args[1]],
                                       wraparound=False, boundscheck=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(arr, index), codegen


if numba.config.DISABLE_JIT:  # plain-Python kernels (NUMBA_DISABLE_JIT=1): nothing to hint
    def prefetch(arr, index):
        pass
else:
    prefetch = _prefetch


@numba.njit(cache=True, inline="always")
def add_single_table(counters, has_sizes, hits, misses, miss_bytes, evictions):
    """Add counts kept in registers (one-table fast path) to table 0's counters. Without sizes
    MISS_BYTES stays 0: the engine prices misses by row."""
    counters[0, HITS] += hits
    counters[0, MISSES] += misses
    counters[0, EVICTIONS] += evictions
    if has_sizes:
        counters[0, MISS_BYTES] += miss_bytes


def max_residents(setup: Setup) -> int:
    """Most keys a cache can hold at once: rows in unit mode; in bytes, sizes may be 0."""
    return max(1, min(setup.n_keys, setup.capacity) if setup.unit else setup.n_keys)


def init(setup: Setup) -> tuple:
    pos = np.full(setup.n_keys, -1, dtype=np.int32)
    queue = np.zeros(4 * max_residents(setup) + 1024, dtype=np.int32)
    stored = np.zeros(0 if setup.unit else setup.n_keys, dtype=np.int64)
    meta = np.zeros(3, dtype=np.int64)  # tail, head, used
    return (pos, queue, stored, meta)


@numba.njit(cache=True)
def _compact(pos, queue, tail, head):
    """Move the live entries of queue[tail:head] to the front, in order; return the new head."""
    w = 0
    for j in range(tail, head):
        v = queue[j]
        if pos[v] == j:
            queue[w] = v
            pos[v] = w
            w += 1
    return w


@numba.njit(cache=True)
def kernel(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    pos, queue, stored, meta = state
    if unit and counters.shape[0] == 1 and capacity > 0:
        _replay_rows_one_table(keys, sizes, capacity, pos, queue, meta, counters)
    else:
        _replay(keys, sizes, key_table, unit, capacity, pos, queue, stored, meta, counters)


@numba.njit(cache=True)
def _replay_rows_one_table(keys, sizes, capacity, pos, queue, meta, counters):
    """The common case, specialised: capacity in rows (>= 1), one table (counts in registers)."""
    tail, head, used = meta[0], meta[1], meta[2]
    qsize = queue.shape[0]
    has_sizes = sizes.shape[0] > 0
    hits = evictions = miss_bytes = 0
    n = keys.shape[0]
    for i in range(n):
        if i + PREFETCH_AHEAD < n:
            prefetch(pos, keys[i + PREFETCH_AHEAD])
        k = keys[i]
        p = pos[k]
        if p >= 0:
            hits += 1
            if p == head - 1:  # already the most recent
                continue
        else:
            if has_sizes:
                miss_bytes += sizes[i]
            if used >= capacity:  # evict the least recent live entry
                if tail + PREFETCH_AHEAD < head:
                    prefetch(pos, queue[tail + PREFETCH_AHEAD])
                v = queue[tail]
                while pos[v] != tail:
                    tail += 1
                    v = queue[tail]
                tail += 1
                pos[v] = -1
                evictions += 1
            else:
                used += 1
        if head == qsize:
            head = _compact(pos, queue, tail, head)
            tail = 0
        queue[head] = k
        pos[k] = head
        head += 1
    counters[0, HITS] += hits
    counters[0, MISSES] += n - hits
    counters[0, MISS_BYTES] += miss_bytes
    counters[0, EVICTIONS] += evictions
    meta[0] = tail
    meta[1] = head
    meta[2] = used


@numba.njit(cache=True)
def _replay(keys, sizes, key_table, unit, capacity, pos, queue, stored, meta, counters):
    """Any capacity (rows or bytes) and any number of tables."""
    tail, head, used = meta[0], meta[1], meta[2]
    qsize = queue.shape[0]
    has_sizes = sizes.shape[0] > 0
    single = counters.shape[0] == 1
    hits = misses = miss_bytes = evictions = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        p = pos[k]
        if p >= 0:
            if single:
                hits += 1
            else:
                counters[key_table[k], HITS] += 1
            if p != head - 1:  # not already the most recent: append a fresh entry
                if head == qsize:
                    head = _compact(pos, queue, tail, head)
                    tail = 0
                queue[head] = k
                pos[k] = head
                head += 1
            continue
        s = sizes[i] if has_sizes else 1
        if single:
            misses += 1
            miss_bytes += s
        else:
            t = key_table[k]
            counters[t, MISSES] += 1
            if has_sizes:
                counters[t, MISS_BYTES] += s
        need = 1 if unit else s
        if need > capacity:
            continue
        while used + need > capacity:  # evict the least recent live entry
            v = queue[tail]
            while pos[v] != tail:
                tail += 1
                v = queue[tail]
            tail += 1
            pos[v] = -1
            used -= 1 if unit else stored[v]
            if single:
                evictions += 1
            else:
                counters[key_table[v], EVICTIONS] += 1
        if head == qsize:
            head = _compact(pos, queue, tail, head)
            tail = 0
        queue[head] = k
        pos[k] = head
        head += 1
        if not unit:
            stored[k] = s
        used += need
    if single:
        add_single_table(counters, has_sizes, hits, misses, miss_bytes, evictions)
    meta[0] = tail
    meta[1] = head
    meta[2] = used


POLICY = register(Policy(name="lru", kernel=kernel, init=init, aliases=("least-recently-used",),
                         description="evict the least recently used key"))
