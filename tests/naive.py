"""Slow, obviously-right twins of every kernel, in plain Python.

Each access-mode oracle takes a list of keys (and optional sizes), a capacity (rows when
`unit`, else bytes) and returns (hits, misses, miss_bytes, evictions) where miss_bytes is the sum
of the sizes of missed accesses (0 when no sizes are given). The byte-capacity rules are
libCacheSim's: a miss on every access to a non-resident object; an object larger than the cache
is not inserted; on a miss evict until used + size <= capacity, then insert; a hit does not
update the stored size.
"""
from __future__ import annotations

from collections import OrderedDict


def _sizes(keys, sizes):
    return [1] * len(keys) if sizes is None else list(sizes)


def lru(keys, capacity, sizes=None, unit=True):
    """LRU with an OrderedDict (last = most recent)."""
    cache = OrderedDict()  # key -> stored size
    used = hits = misses = miss_bytes = evictions = 0
    for k, s in zip(keys, _sizes(keys, sizes)):
        if k in cache:
            hits += 1
            cache.move_to_end(k)
            continue
        misses += 1
        miss_bytes += s if sizes is not None else 0
        need = 1 if unit else s
        if need > capacity:
            continue
        while used + need > capacity:
            _, vs = cache.popitem(last=False)
            used -= 1 if unit else vs
            evictions += 1
        cache[k] = s
        used += need
    return hits, misses, miss_bytes, evictions


# -- access-mode policies (fifo, lfu, clock, random, opt) ----------------------------------------

# -- sieve, arc, s3fifo, set-associative ---------------------------------------------------------

# -- batch mode (embedding-cache semantics) ------------------------------------------------------

# -- analysis (stack distances, curves) ----------------------------------------------------------
