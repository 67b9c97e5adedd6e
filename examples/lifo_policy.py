"""LIFO, a cachesim plugin: on a miss in a full cache, evict the key inserted last.
`lifo`: three numba pieces of cachesim's one request loop; `lifo-python`: a slow prototype.
`cachesim --plugin lifo_policy replay trace.txt -p lifo,lifo-python -s 100`"""
import numba
import numpy as np

import cachesim
from cachesim.policies import Policy, PythonPolicy, loop_state, request_loop


def init(setup):  # the policy's state: arrays only, so a replay can resume between chunks
    resident = np.zeros(setup.n_keys, dtype=np.uint8)
    stack = np.zeros(setup.n_keys, dtype=np.int32)  # resident keys, the newest last
    return loop_state(setup, (resident, stack, np.zeros(1, dtype=np.int64)))  # depth


@numba.njit(cache=True, inline="always")
def hit(st, k, now, nx):  # is dense id k resident? (a hit changes nothing in LIFO)
    return st[0][k] != 0


@numba.njit(cache=True, inline="always")
def evict(st, now):  # take the victim out of the state and return it
    resident, stack, depth = st
    depth[0] -= 1
    resident[stack[depth[0]]] = 0
    return stack[depth[0]]


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):  # make k resident (the loop has made room for it)
    resident, stack, depth = st
    stack[depth[0]] = k
    depth[0] += 1
    resident[k] = 1


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict)  # counts, sizes, capacity
cachesim.register_policy(Policy(name="lifo", kernel=kernel, init=init, aliases=("stack",),
                                description="evict the key inserted last"), replace=True)


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


cachesim.register_policy(Policy(name="lifo-python", python_class=LifoPython,
                                description="LIFO as a plain-Python prototype"), replace=True)
