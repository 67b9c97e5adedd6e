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
id, -1 when not resident), `stored` sizes (byte mode only), `meta` = [count, used].
"""
from __future__ import annotations

import numba
import numpy as np

from .base import EVICTIONS, HITS, MISS_BYTES, MISSES, Policy, Setup, register
from .lru import add_single_table, PREFETCH_AHEAD, max_residents, prefetch

NEVER = np.int64(1 << 62)


def init(setup: Setup) -> tuple:
    r = max_residents(setup)
    hkey = np.zeros(r, dtype=np.int32)
    hpri = np.zeros(r, dtype=np.int64)
    hpos = np.full(setup.n_keys, -1, dtype=np.int32)
    stored = np.zeros(0 if setup.unit else setup.n_keys, dtype=np.int64)
    meta = np.zeros(2, dtype=np.int64)  # count, used
    return (hkey, hpri, hpos, stored, meta)


@numba.njit(cache=True, inline="always")
def _sift_up(j, k, pri, hkey, hpri, hpos):
    """Place key k with priority pri at slot j or above (its priority did not drop)."""
    while j > 0:
        parent = (j - 1) >> 1
        if hpri[parent] >= pri:
            break
        pk = hkey[parent]
        hkey[j] = pk
        hpri[j] = hpri[parent]
        hpos[pk] = j
        j = parent
    hkey[j] = k
    hpri[j] = pri
    hpos[k] = j


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
        ck = hkey[c]
        hkey[j] = ck
        hpri[j] = hpri[c]
        hpos[ck] = j
        j = c
    hkey[j] = k
    hpri[j] = pri
    hpos[k] = j


@numba.njit(cache=True)
def kernel(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    hkey, hpri, hpos, stored, meta = state
    count, used = meta[0], meta[1]
    has_sizes = sizes.shape[0] > 0
    single = counters.shape[0] == 1
    hits = misses = miss_bytes = evictions = 0
    n_keys = keys.shape[0]
    for i in range(n_keys):
        if i + PREFETCH_AHEAD < n_keys:
            prefetch(hpos, keys[i + PREFETCH_AHEAD])
        k = keys[i]
        nx = nxt_access[i]
        pri = nx if nx >= 0 else NEVER + t0 + i
        j = hpos[k]
        if j >= 0:
            if single:
                hits += 1
            else:
                counters[key_table[k], HITS] += 1
            _sift_up(j, k, pri, hkey, hpri, hpos)  # its priority was now; now it is later
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
        while used + need > capacity:  # evict the root: the farthest next access
            v = hkey[0]
            hpos[v] = -1
            count -= 1
            if count > 0:
                _sift_down(hkey[count], hpri[count], count, hkey, hpri, hpos)
            used -= 1 if unit else stored[v]
            if single:
                evictions += 1
            else:
                counters[key_table[v], EVICTIONS] += 1
        _sift_up(count, k, pri, hkey, hpri, hpos)
        count += 1
        if not unit:
            stored[k] = s
        used += need
    if single:
        add_single_table(counters, has_sizes, hits, misses, miss_bytes, evictions)
    meta[0] = count
    meta[1] = used


POLICY = register(Policy(name="opt", kernel=kernel, init=init, needs_next=True,
                         aliases=("belady", "min", "optimal"),
                         description="Belady's MIN: evict the farthest next access (reads the "
                                     "trace's future)"))
