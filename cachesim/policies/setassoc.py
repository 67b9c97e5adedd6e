"""Set-associative caches: `--ways W` turns a policy that declares a `set_rule` (lru, lfu,
fifo, or a plugin) into W-way caches.

A cache of C rows has S = ceil(C / W) sets of W lines (W = 1: direct-mapped; W = C: one set,
the fully associative policy exactly). A key may live only in its set, fmix64(key) mod S of its
linearised key (as FBGEMM's cache; the engine computes it per dense id in `Setup.set_of`).
On a miss the key takes its set's lowest empty line; in a full set the policy's own rule picks
the victim among the set's W lines, by the rule the policy declares (`Policy.set_rule`):

- 'lru': the line used least recently;
- 'fifo': the line filled first;
- 'lfu': the line with the lowest count (1 on insertion, +1 per hit, forgotten on eviction),
  ties to the least recently used.

Rows only: a line holds one row whatever its size.

State: per line (slot = set x W + way) `tag` (dense id, -1 empty), `stamp` (time of last use, or
of insertion for fifo) and `count` (lfu); per dense id `slot_of` (-1 when not cached) and
`set_of`; `meta` = [rule, ways]. A hit is O(1); a miss scans the W lines of one set.
"""
from __future__ import annotations

from functools import partial

import numba
import numpy as np

from . import base
from .base import EVICTIONS, HITS, MISSES, MISS_BYTES, Policy, Setup, attach_ways, registered

LRU, FIFO, LFU = 0, 1, 2
RULES = {"lru": LRU, "fifo": FIFO, "lfu": LFU}  # a policy's set_rule -> the kernel's rule


def init(setup: Setup, rule: int) -> tuple:
    if setup.ways is None or setup.set_of is None:
        raise ValueError("a set-associative cache needs Setup.ways and Setup.set_of")
    lines = setup.n_sets * setup.ways
    tag = np.full(lines, -1, dtype=np.int32)
    stamp = np.zeros(lines, dtype=np.int64)
    count = np.zeros(lines if rule == LFU else 0, dtype=np.int64)
    slot_of = np.full(setup.n_keys, -1, dtype=np.int64)
    set_of = np.ascontiguousarray(setup.set_of, dtype=np.int64)
    meta = np.array([rule, setup.ways], dtype=np.int64)
    return (tag, stamp, count, slot_of, set_of, meta)


@numba.njit(cache=True, nogil=True)
def kernel(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    tag, stamp, count, slot_of, set_of, meta = state
    rule, ways = meta[0], meta[1]
    has_sizes = sizes.shape[0] > 0
    for i in range(keys.shape[0]):
        k = keys[i]
        now = t0 + i
        slot = slot_of[k]
        if slot >= 0:
            counters[key_table[k], HITS] += 1
            if rule == LRU:
                stamp[slot] = now
            elif rule == LFU:
                count[slot] += 1
                stamp[slot] = now
            continue
        t = key_table[k]
        counters[t, MISSES] += 1
        if has_sizes:
            counters[t, MISS_BYTES] += sizes[i]
        first = set_of[k] * ways
        victim = -1
        for line in range(first, first + ways):  # the lowest empty line
            if tag[line] == -1:
                victim = line
                break
        if victim == -1:  # a full set: the policy's rule
            victim = first
            for line in range(first + 1, first + ways):
                if rule == LFU:
                    if count[line] < count[victim] or (
                            count[line] == count[victim] and stamp[line] < stamp[victim]):
                        victim = line
                elif stamp[line] < stamp[victim]:
                    victim = line
            v = tag[victim]
            slot_of[v] = -1
            counters[key_table[v], EVICTIONS] += 1
        tag[victim] = k
        stamp[victim] = now
        if rule == LFU:
            count[victim] = 1
        slot_of[k] = victim


def variant(policy: Policy) -> Policy:
    """The W-way variant of a policy that declares a `set_rule`."""
    if policy.set_rule not in RULES:
        raise ValueError(f"policy {policy.name!r}: set_rule {policy.set_rule!r} is not one of "
                         f"{', '.join(RULES)}")
    return Policy(name=policy.name, kernel=kernel,
                  init=partial(init, rule=RULES[policy.set_rule]), supports_bytes=False,
                  description=f"{policy.name} within each set of a W-way set-associative cache "
                              f"({policy.set_rule}'s victim rule)")


def attach_all() -> list[str]:
    """Give each registered policy that declares a set_rule its set-associative variant, and
    have `register` do so for the policies registered later."""
    present = [name for name, p in registered().items() if p.set_rule is not None]
    for name in present:
        attach_ways(name, variant(registered()[name]))
    base.install_set_variant(variant)
    return present


attach_all()
