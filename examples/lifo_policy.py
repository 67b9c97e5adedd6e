"""LIFO, a cachesim plugin: on a miss in a full cache, evict the key inserted last.

Two versions of one policy: `lifo` (a numba kernel, fast) and `lifo-python` (a PythonPolicy,
slow: a prototype). `cachesim --plugin lifo_policy replay trace.txt -p lifo,lifo-python -s 100`
"""
import numba
import numpy as np

import cachesim
from cachesim.policies import EVICTIONS, HITS, MISS_BYTES, MISSES, Policy, PythonPolicy


class LifoPython(PythonPolicy):
    """The prototype: `access` returns True on a hit and calls `evicted` for each victim."""

    def __init__(self, capacity, unit=True, seed=0):
        super().__init__(capacity, unit, seed)
        self.stack, self.size_of, self.used = [], {}, 0

    def access(self, key, size):
        if key in self.size_of:
            return True
        if size <= self.capacity:  # an object larger than the cache is not inserted
            while self.used + size > self.capacity:
                victim = self.stack.pop()
                self.used -= self.size_of.pop(victim)
                self.evicted(victim)
            self.stack.append(key)
            self.size_of[key] = size
            self.used += size
        return False


def init(setup):
    """State for one replay: arrays only, so a replay can stop and resume between chunks."""
    n = setup.n_keys
    resident = np.zeros(n, dtype=np.uint8)
    stack = np.zeros(n, dtype=np.int32)      # resident keys, the newest last
    stored = np.zeros(n, dtype=np.int64)     # size each resident takes (1 in unit mode)
    meta = np.zeros(2, dtype=np.int64)       # [stack depth, used]
    return (resident, stack, stored, meta)


@numba.njit(cache=True)
def kernel(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    resident, stack, stored, meta = state
    depth, used = meta[0], meta[1]
    has_sizes = sizes.shape[0] > 0
    for i in range(keys.shape[0]):
        k = keys[i]
        t = key_table[k]
        if resident[k]:
            counters[t, HITS] += 1
            continue
        counters[t, MISSES] += 1
        s = sizes[i] if has_sizes else 1
        if has_sizes:
            counters[t, MISS_BYTES] += s
        need = 1 if unit else s
        if need > capacity:
            continue
        while used + need > capacity:
            depth -= 1
            v = stack[depth]
            resident[v] = 0
            used -= stored[v]
            counters[key_table[v], EVICTIONS] += 1
        stack[depth] = k
        depth += 1
        resident[k] = 1
        stored[k] = need
        used += need
    meta[0] = depth
    meta[1] = used


cachesim.register_policy(Policy(name="lifo", kernel=kernel, init=init, aliases=("stack",),
                                description="evict the key inserted last"), replace=True)
cachesim.register_policy(Policy(name="lifo-python", python_class=LifoPython,
                                description="LIFO as a plain-Python prototype"), replace=True)
