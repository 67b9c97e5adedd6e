"""Random: evict a uniformly random resident key (seeded, reproducible).

Each eviction draws x = splitmix64(), the next output of Steele, Lea and Flood's SplitMix64
generator (state += 0x9E3779B97F4A7C15; z = state; z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9;
z = (z ^ z >> 27) * 0x94D049BB133111EB; x = z ^ z >> 31, all mod 2^64), whose state starts at
`Setup.seed` (mod 2^64), and evicts `residents[x % count]` (the modulo bias is below
count / 2^64). `residents` lists the resident dense ids; a key leaves it by swap-remove (the last
entry takes its slot) and a new key is appended, so `tests/naive.py` can replay the same choices
in plain Python.

State: `residents` (int32), `slot` of each dense id in it (-1 when not resident), `stored` sizes
(byte mode only), `meta` = [count, used] and `rng` = [splitmix64 state] (uint64).
"""
from __future__ import annotations

import numba
import numpy as np

from .base import EVICTIONS, HITS, MISS_BYTES, MISSES, Policy, Setup, register
from .lru import add_single_table, max_residents

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def init(setup: Setup) -> tuple:
    residents = np.zeros(max_residents(setup), dtype=np.int32)
    slot = np.full(setup.n_keys, -1, dtype=np.int32)
    stored = np.zeros(0 if setup.unit else setup.n_keys, dtype=np.int64)
    meta = np.zeros(2, dtype=np.int64)  # count, used
    rng = np.array([int(setup.seed) % (1 << 64)], dtype=np.uint64)
    return (residents, slot, stored, meta, rng)


@numba.njit(cache=True, inline="always")
def splitmix64_next(rng):
    """Advance the state in rng[0] and return the next uint64 output."""
    z = rng[0] + _GOLDEN
    rng[0] = z
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(cache=True)
def kernel(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    residents, slot, stored, meta, rng = state
    count, used = meta[0], meta[1]
    has_sizes = sizes.shape[0] > 0
    single = counters.shape[0] == 1
    hits = misses = miss_bytes = evictions = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        if slot[k] >= 0:
            if single:
                hits += 1
            else:
                counters[key_table[k], HITS] += 1
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
        while used + need > capacity:
            j = np.int64(splitmix64_next(rng) % np.uint64(count))
            v = residents[j]
            last = residents[count - 1]  # swap-remove v
            residents[j] = last
            slot[last] = j
            slot[v] = -1
            count -= 1
            used -= 1 if unit else stored[v]
            if single:
                evictions += 1
            else:
                counters[key_table[v], EVICTIONS] += 1
        residents[count] = k
        slot[k] = count
        count += 1
        if not unit:
            stored[k] = s
        used += need
    if single:
        add_single_table(counters, has_sizes, hits, misses, miss_bytes, evictions)
    meta[0] = count
    meta[1] = used


POLICY = register(Policy(name="random", kernel=kernel, init=init, aliases=("rand", "rr"),
                         description="evict a uniformly random resident key (SplitMix64, "
                                     "seeded by --seed)"))
