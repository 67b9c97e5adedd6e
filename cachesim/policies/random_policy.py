"""Random: evict a uniformly random resident key (seeded, reproducible).

Each eviction draws x = splitmix64(), the next output of Steele, Lea and Flood's SplitMix64
generator (state += 0x9E3779B97F4A7C15; z = state; z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9;
z = (z ^ z >> 27) * 0x94D049BB133111EB; x = z ^ z >> 31, all mod 2^64), whose state starts at
`Setup.seed` (mod 2^64), and evicts `residents[x % count]` (the modulo bias is below
count / 2^64). `residents` lists the resident dense ids; a key leaves it by swap-remove (the last
entry takes its slot) and a new key is appended, so `tests/naive.py` can replay the same choices
in plain Python.

State: `residents` (int32), `slot` of each dense id in it (-1 when not resident),
`meta` = [count] and `rng` = [splitmix64 state] (uint64); the request loop
(`base.request_loop`) does the rest.
"""
from __future__ import annotations

import numba
import numpy as np

from .base import Policy, Setup, loop_state, max_residents, register, request_loop

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def init(setup: Setup) -> tuple:
    residents = np.zeros(max_residents(setup), dtype=np.int32)
    slot = np.full(setup.n_keys, -1, dtype=np.int32)
    rng = np.array([int(setup.seed) % (1 << 64)], dtype=np.uint64)
    return loop_state(setup, (residents, slot, np.zeros(1, dtype=np.int64), rng))


@numba.njit(cache=True, inline="always")
def splitmix64_next(rng):
    """Advance the state in rng[0] and return the next uint64 output."""
    z = rng[0] + _GOLDEN
    rng[0] = z
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(cache=True, inline="always")
def hit(st, k, now, nx):
    return st[1][k] >= 0


@numba.njit(cache=True, inline="always")
def evict(st, now):
    residents, slot, meta, rng = st
    count = meta[0]
    j = np.int64(splitmix64_next(rng) % np.uint64(count))
    v = residents[j]
    last = residents[count - 1]  # swap-remove v
    residents[j] = last
    slot[last] = j
    slot[v] = -1
    meta[0] = count - 1
    return v


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):
    residents, slot, meta, _ = st
    residents[meta[0]] = k
    slot[k] = meta[0]
    meta[0] += 1


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict)

POLICY = register(Policy(name="random", kernel=kernel, init=init, aliases=("rand", "rr"),
                         description="evict a uniformly random resident key (SplitMix64, "
                                     "seeded by --seed)"))
