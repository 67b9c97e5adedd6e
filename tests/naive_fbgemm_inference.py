"""Plain-Python twin of FBGEMM's inference cache (IntNBitTableBatchedEmbeddingBagsCodegen), written
from FBGEMM's source step for step, with lists and dicts:
fbgemm_gpu/fbgemm_gpu/split_table_batched_embeddings_ops_inference.py (prefetch, prefetch_32way,
prefetch_1way, _update_cache_miss_counter) and fbgemm_gpu/src/split_embeddings_cache/
lru_cache_populate_byte.cu, lfu_cache_populate_byte.cu, lru_cache_find.cu, lfu_cache_find.cu,
lxu_cache.cu.

Nothing here comes from cachesim: the warp bitonic sort and the hash are the lane-by-lane
simulation of tests/naive_fbgemm.py (also written from FBGEMM's kernels).
"""
from __future__ import annotations

from tests.naive_fbgemm import cache_slot, warp_bitonic_sort

LFU_COUNTER_BITS = 40  # kLFUCounterBits


class NaiveInference:
    """One inference cache: lxu_cache_state, lxu_state (stamps or per-key counts) and, for the
    direct-mapped form, lxu_cache_miss_timestamp."""

    def __init__(self, n_sets, policy="lru", assoc=32):
        self.C, self.W, self.policy = n_sets, assoc, policy
        self.state = [[-1] * assoc for _ in range(n_sets)]
        self.lru = [[0] * assoc for _ in range(n_sets)]
        self.lfu = {}
        self.miss_ts = [0] * n_sets
        self.timestep = 0  # AtomicCounter()
        self.miss_counter = [0, 0, 0, 0]  # cache_miss_counter

    def lookup(self, linear):
        """lxu_cache_lookup / direct_mapped_lxu_cache_lookup: location or -1 per access."""
        out = []
        for idx in linear:
            s = cache_slot(idx, self.C)
            ways = [w for w in range(self.W) if self.state[s][w] == idx]
            out.append(s * self.W + ways[0] if ways else -1)
        return out

    def prefetch(self, linear):
        """One prefetch(): returns (uvm stats of this call, list of 6; own counters dict)."""
        self.timestep += 1
        t = self.timestep
        stats = [0] * 6
        before = self.lookup(linear)
        # _update_cache_miss_counter (record_cache_miss_counter): lookup before populate
        missed = {x for x, loc in zip(linear, before) if loc == -1}
        self.miss_counter[0] += 1 if missed else 0
        self.miss_counter[1] += len(missed)
        self.miss_counter[2] += len(set(linear))
        self.miss_counter[3] += len(linear)
        evicted = []
        if linear:  # populate returns at once on an empty batch
            if self.W == 1:
                evicted = self._populate_direct(linear, t, stats)
            elif self.policy == "lru":
                evicted = self._populate_lru(linear, t, stats)
            else:
                evicted = self._populate_lfu(linear)
        after = self.lookup(linear)
        stats[5] += sum(1 for loc in after if loc == -1)
        own = {"requested_indices": len(linear), "unique_indices": len(set(linear)),
               "unique_misses": len(missed),
               "conflict_unique_misses": len({x for x, loc in zip(linear, after)
                                              if loc == -1 and x in missed}),
               "conflict_misses": stats[5],
               "fills": len({x for x, loc in zip(linear, after) if loc != -1 and x in missed}),
               "evictions": len(evicted),
               "misses": sum(1 for loc in before if loc == -1)}
        return stats, own, evicted

    def _populate_lru(self, linear, t, stats):
        # get_unique_indices_cuda (sorted unique), lru_cache_find_uncached_kernel
        uniq = sorted(set(linear))
        C, W = self.C, self.W
        stats[0] += 1
        stats[1] += len(linear)
        stats[2] += len(uniq)
        cache_sets = []
        for idx in uniq:
            s = cache_slot(idx, C)
            hit = [w for w in range(W) if self.state[s][w] == idx]
            for w in hit:
                self.lru[s][w] = t
            if not hit:
                stats[3] += 1
            cache_sets.append(C if hit else s)
        order = sorted(range(len(uniq)), key=lambda n: cache_sets[n])  # stable SortPairs
        ss = [cache_sets[n] for n in order]
        si = [uniq[n] for n in order]
        # lru_cache_insert_byte_kernel: no locking in the byte insert
        evicted = []
        n = 0
        while n < len(ss):
            s = ss[n]
            SL = 1
            while n + SL < len(ss) and ss[n + SL] == s:
                SL += 1
            if s != C:
                costs, slots = warp_bitonic_sort(self.lru[s], list(range(W)))
                inserted = 0
                for l in range(min(SL, W)):
                    if costs[l] == t:
                        break
                    slot = slots[l]
                    if self.state[s][slot] != -1:
                        evicted.append(self.state[s][slot])
                    self.state[s][slot] = si[n + l]
                    self.lru[s][slot] = t
                    inserted += 1
                stats[4] += SL - inserted
            n += SL
        return evicted

    def _populate_lfu(self, linear):
        # get_unique_indices_cuda(compute_count=True), lfu_update_counts, lfu find, insert byte
        uniq = sorted(set(linear))
        for idx in uniq:
            self.lfu[idx] = self.lfu.get(idx, 0) + linear.count(idx)
        C, W = self.C, self.W
        keys = []
        for idx in uniq:
            s = cache_slot(idx, C)
            hit = any(self.state[s][w] == idx for w in range(W))
            keys.append(C << LFU_COUNTER_BITS if hit else
                        (s << LFU_COUNTER_BITS) | ((1 << LFU_COUNTER_BITS) - 1 - self.lfu[idx]))
        order = sorted(range(len(uniq)), key=lambda n: keys[n])  # stable radix sort
        sk = [keys[n] >> LFU_COUNTER_BITS for n in order]
        si = [uniq[n] for n in order]
        evicted = []
        n = 0
        while n < len(sk):
            s = sk[n]
            SL = 1
            while n + SL < len(sk) and sk[n + SL] == s:
                SL += 1
            if s != C:
                cost = [self.lfu[k] if k != -1 else -1 for k in self.state[s]]
                costs, slots = warp_bitonic_sort(cost, list(range(W)))
                for l in range(min(SL, W)):
                    if costs[l] > self.lfu[si[n + l]]:
                        break
                    slot = slots[l]
                    if self.state[s][slot] != -1:
                        evicted.append(self.state[s][slot])
                    self.state[s][slot] = si[n + l]
            n += SL
        return evicted

    def _populate_direct(self, linear, t, stats):
        # direct_mapped_lru_cache_find_uncached_kernel: one thread per access (no dedup). The
        # atomicMax winner is taken to be the first access of the batch (cachesim's rule).
        C = self.C
        stats[0] += 1
        stats[1] += len(linear)
        cache_sets = []
        for idx in linear:
            s = cache_slot(idx, C)
            if self.state[s][0] == idx:
                self.lru[s][0] = t
                cache_sets.append(-1)
            else:
                old = self.miss_ts[s]
                self.miss_ts[s] = max(old, t + 1)
                cache_sets.append(s if old < t + 1 else -1)
        # direct_mapped_lru_cache_insert_byte_kernel
        evicted = []
        for pos, s in enumerate(cache_sets):
            if s == -1 or self.lru[s][0] == t:
                continue
            stats[4] += 1  # "number of actually inserted rows"
            if self.state[s][0] != -1:
                evicted.append(self.state[s][0])
            self.state[s][0] = linear[pos]
            self.lru[s][0] = t
        return evicted


def inference_sets(total_rows, load_factor, assoc=32):
    """_apply_cache_state: (int(total * clf) + assoc - 1) // assoc, 0 -> 1."""
    s = (int(total_rows * load_factor) + assoc - 1) // assoc
    return 1 if s == 0 else s


def replay(batches, table_rows, policy="lru", sets=None, load_factor=None, assoc=32):
    """batches: lists of (table, row). Returns one dict per batch with FBGEMM's six uvm stats
    (num_*) and the own counters, the names of cachesim.simulate.fbgemm.COUNTER_NAMES."""
    cumsum = [0]
    for r in table_rows:
        cumsum.append(cumsum[-1] + r)
    C = sets if sets is not None else inference_sets(cumsum[-1], load_factor, assoc)
    cache = NaiveInference(C, policy, assoc)
    names = ("num_calls", "num_requested_indices", "num_unique_indices", "num_unique_misses",
             "num_conflict_unique_misses", "num_conflict_misses")
    out = []
    for batch in batches:
        linear = [r + cumsum[t] for t, r in batch]  # linearize_cache_indices_kernel
        stats, own, _ = cache.prefetch(linear)
        if policy == "lfu":
            stats = [0, 0, 0, 0, 0, stats[5]]
        out.append(dict(zip(names, stats)) | own)
    return out, cache
