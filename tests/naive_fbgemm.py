"""Plain-Python twin of FBGEMM's training cache, written from FBGEMM's CUDA kernels (pytorch/FBGEMM
fbgemm_gpu/src/split_embeddings_cache/*.cu), step for step, with lists and dicts.

Nothing here is imported from cachesim.fbgemm_cache: the warp bitonic sort is simulated lane by
lane (every lane reads its partner's old value through shfl_xor, as the warp does), not from a
precomputed list of compare-exchanges; uniques come from sorted(set()); the radix sorts are
Python's stable sorted() on the same keys FBGEMM sorts on.
"""
from __future__ import annotations

M64 = (1 << 64) - 1
LFU_COUNTER_BITS = 40  # kLFUCounterBits, common.cuh


def cache_slot(h_in: int, C: int) -> int:
    """common.cuh cache_slot: MurmurHash3 fmix64, then % C."""
    h = h_in & M64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    h ^= h >> 33
    return h % C


def warp_bitonic_sort(keys, vals):
    """BitonicSort<K, V, Dir=1>::sort over a warp of len(keys) lanes (32 or 64):
    warpBitonicMergeLE16<L, IsBitonic=false> for L = 1, 2, 4, ..., lanes/2. Returns new lists."""
    k, v = list(keys), list(vals)
    lanes = len(k)

    def exchange(partner_of, small_of):
        ok, ov = [k[partner_of(i)] for i in range(lanes)], [v[partner_of(i)] for i in range(lanes)]
        for i in range(lanes):
            small = small_of(i)
            s = (k[i] > ok[i]) if small else (k[i] < ok[i])  # Dir = true
            if s:
                k[i], v[i] = ok[i], ov[i]
        # the assignments above read only the old values (ok, ov), as in the warp

    L = 1
    while L <= lanes // 2:
        exchange(lambda i: i ^ (2 * L - 1), lambda i: not (i & L))
        stride = L // 2
        while stride > 0:
            exchange(lambda i: i ^ stride, lambda i: not (i & stride))
            stride //= 2
        L *= 2
    return k, v


class NaiveFbgemm:
    """One FBGEMM cache: lxu_cache_state, lru_state or lfu_state, locking counter."""

    def __init__(self, n_sets, policy="lru", ways=32, lock=False, record_miss_counter=False):
        self.C, self.W, self.policy, self.lock = n_sets, ways, policy, lock
        self.record = record_miss_counter  # RecordCacheMetrics.record_cache_miss_counter
        self.cache_miss_counter = [0, 0]
        self.state = [[-1] * ways for _ in range(n_sets)]       # lxu_cache_state
        self.lru = [[0] * ways for _ in range(n_sets)]          # lru_state
        self.lfu = {}                                           # lfu_state, per linear index
        self.locking = [[0] * ways for _ in range(n_sets)]      # lxu_cache_locking_counter
        self.prev_locations = []
        self.timestep = 1

    def prefetch(self, linear):
        """One _prefetch: returns (uvm cache stats list of 6, derived dict)."""
        self.timestep += 1
        t = self.timestep
        stats = [0] * 6
        own = {"fills": 0, "evictions": 0, "unique_misses": 0, "conflict_unique_misses": 0,
               "misses": 0}
        if not linear:
            self._unlock_previous([])
            return stats, own, []
        if self.record:
            # _prefetch: lxu_cache_lookup before the populate, with the uvm cache stats
            # (lxu_cache_lookup_kernel adds n_indices - n_hits to num_conflict_misses), then
            # _update_cache_miss_counter on its locations
            found = [self._location(idx) >= 0 for idx in linear]
            stats[5] += found.count(False)  # FBGEMM's counter; cachesim's own excludes it
            missed = {idx for idx, f in zip(linear, found) if not f}
            self.cache_miss_counter[0] += 1 if missed else 0
            self.cache_miss_counter[1] += len(missed)
        before = stats[5]
        uniq = sorted(set(linear))
        occ = {}
        for x in linear:
            occ[x] = occ.get(x, 0) + 1
        C, W = self.C, self.W
        if self.policy == "lru":
            # lru_cache_find_uncached_kernel
            stats[0] += 1
            stats[1] += len(linear)
            stats[2] += len(uniq)
            cache_sets = [C] * len(uniq)
            for n, idx in enumerate(uniq):
                s = cache_slot(idx, C)
                found = False
                for slot in range(W):
                    if self.state[s][slot] == idx:
                        found = True
                        already = self.lru[s][slot] == t
                        self.lru[s][slot] = t
                        if self.lock and not already:
                            self.locking[s][slot] += 1
                if not found:
                    cache_sets[n] = s
                    stats[3] += 1
                    own["misses"] += occ[idx]  # accesses whose key was not cached at the start
            order = sorted(range(len(uniq)), key=lambda n: cache_sets[n])  # stable radix sort
            sorted_sets = [cache_sets[n] for n in order]
            sorted_idx = [uniq[n] for n in order]
            # lru_cache_insert_kernel
            n_conflict = 0
            for n in range(len(uniq)):
                if n > 0 and sorted_sets[n - 1] == sorted_sets[n]:
                    continue
                s = sorted_sets[n]
                if s == C:
                    continue
                SL = 1
                while n + SL < len(uniq) and sorted_sets[n + SL] == s:
                    SL += 1
                n_inserted = 0
                costs, slots = warp_bitonic_sort(self.lru[s], list(range(W)))
                for l in range(min(SL, W)):
                    ins = slots[l]
                    if self.lock and self.locking[s][ins] > 0:
                        continue
                    if costs[l] == t:
                        break
                    idx = sorted_idx[n + n_inserted]
                    if self.state[s][ins] != -1:
                        own["evictions"] += 1
                    self.state[s][ins] = idx
                    self.lru[s][ins] = t
                    if self.lock:
                        self.locking[s][ins] += 1
                    n_inserted += 1
                own["fills"] += n_inserted
                n_conflict += SL - n_inserted
            stats[4] += n_conflict
            own["unique_misses"] = stats[3]
            own["conflict_unique_misses"] = n_conflict
        else:
            # lfu_update_counts_kernel
            for idx in uniq:
                self.lfu[idx] = self.lfu.get(idx, 0) + occ[idx]
            # lfu_cache_find_uncached_kernel
            cache_sets = [C << LFU_COUNTER_BITS] * len(uniq)
            for n, idx in enumerate(uniq):
                s = cache_slot(idx, C)
                if idx not in self.state[s]:
                    cache_sets[n] = (s << LFU_COUNTER_BITS) | (
                        (1 << LFU_COUNTER_BITS) - 1 - self.lfu[idx])
                    own["unique_misses"] += 1
                    own["misses"] += occ[idx]
            order = sorted(range(len(uniq)), key=lambda n: cache_sets[n])
            sorted_sets = [cache_sets[n] for n in order]
            sorted_idx = [uniq[n] for n in order]
            # lfu_cache_insert_kernel
            for n in range(len(uniq)):
                s = sorted_sets[n] >> LFU_COUNTER_BITS
                if n > 0 and (sorted_sets[n - 1] >> LFU_COUNTER_BITS) == s:
                    continue
                if s == C:
                    continue
                SL = 1
                while n + SL < len(uniq) and (sorted_sets[n + SL] >> LFU_COUNTER_BITS) == s:
                    SL += 1
                cur = [self.lfu[x] if x != -1 else -1 for x in self.state[s]]
                costs, slots = warp_bitonic_sort(cur, list(range(W)))
                done = 0
                for l in range(min(SL, W)):
                    ins = slots[l]
                    idx = sorted_idx[n + l]
                    if costs[l] > self.lfu[idx]:
                        break
                    if self.state[s][ins] != -1:
                        own["evictions"] += 1
                    self.state[s][ins] = idx
                    done += 1
                own["fills"] += done
                own["conflict_unique_misses"] += SL - done
        # lxu_cache_lookup_kernel over the whole batch
        locations = []
        for idx in linear:
            s = cache_slot(idx, C)
            loc = -1
            for way in range(W):
                if self.state[s][way] == idx:
                    loc = s * W + way
                    break
            locations.append(loc)
            if loc < 0:
                stats[5] += 1
        self._unlock_previous(locations)
        own["requested_indices"] = len(linear)
        own["unique_indices"] = len(uniq)
        own["conflict_misses"] = stats[5] - before
        return stats, own, locations


    def _location(self, idx):
        s = cache_slot(idx, self.C)
        for way in range(self.W):
            if self.state[s][way] == idx:
                return s * self.W + way
        return -1

    def _unlock_previous(self, locations):
        """Prefetch pipeline: backward(b - 1) runs after prefetch(b) and calls
        lxu_cache_locking_counter_decrement with batch b - 1's locations (each line once)."""
        if not self.lock:
            return
        for loc in set(x for x in self.prev_locations if x >= 0):
            s, way = divmod(loc, self.W)
            if self.locking[s][way] > 0:
                self.locking[s][way] -= 1
        self.prev_locations = locations


def fbgemm_sets(rows, load_factor, ways=32):
    """_apply_cache_state: (int(rows * clf) + assoc - 1) // assoc, 0 -> 1."""
    s = (int(rows * load_factor) + ways - 1) // ways
    return 1 if s == 0 else s


FBGEMM_NAMES = ("num_calls", "num_requested_indices", "num_unique_indices", "num_unique_misses",
                "num_conflict_unique_misses", "num_conflict_misses")
OWN_NAMES = ("requested_indices", "unique_indices", "unique_misses", "conflict_unique_misses",
             "conflict_misses", "fills", "evictions", "misses")


def replay(batches, table_rows, policy="lru", sets=None, load_factor=None, ways=32,
           per_table=False, prefetch_pipeline=False, record_miss_counter=False, caches_out=None,
           groups=None):
    """batches: list of lists of (table, row). Returns a list of dicts (per batch), with
    FBGEMM_NAMES + OWN_NAMES. per_table: one NaiveFbgemm per table, keyed by the table's row
    (each table's counters are summed per batch). groups (a group number per table): one TBE op
    per group, as TorchRec's group_tables builds them: the op's cache has
    fbgemm_sets(the op's rows) sets, and a key is linearised over the op's own tables
    (linearize_cache_indices with the op's cache_hash_size_cumsum: the row plus the rows of the
    op's earlier tables); `sets` may then be one number per group."""
    T = len(table_rows)
    if groups is None:
        groups = list(range(T)) if per_table else [0] * T
    ops = sorted(set(groups))
    # each op's tables, in table order, and each table's offset within its op
    op_tables = {g: [t for t in range(T) if groups[t] == g] for g in ops}
    offs = {}
    for g, ts in op_tables.items():
        acc = 0
        for t in ts:
            offs[t] = acc
            acc += table_rows[t]
    caches = []
    for i, g in enumerate(ops):
        n = (sets[i] if isinstance(sets, (list, tuple)) else sets) if sets is not None else \
            fbgemm_sets(sum(table_rows[t] for t in op_tables[g]), load_factor, ways)
        caches.append(NaiveFbgemm(n, policy, ways, prefetch_pipeline, record_miss_counter))
    if caches_out is not None:
        caches_out.extend(caches)
    result = []
    for batch in batches:
        rec = dict.fromkeys(FBGEMM_NAMES + OWN_NAMES, 0)
        parts = [[r + offs[t] for (t, r) in batch if groups[t] == g] for g in ops]
        for cache, part in zip(caches, parts):
            stats, own, _ = cache.prefetch(part)
            for nm, v in zip(FBGEMM_NAMES, stats):
                rec[nm] += v
            for nm in OWN_NAMES:
                rec[nm] += own.get(nm, 0)
        if policy == "lfu":
            for nm in FBGEMM_NAMES[:5]:
                rec[nm] = 0
        else:  # per_table: counters are summed over the tables, but a batch is one call
            rec["num_calls"] = 1 if batch else 0
        result.append(rec)
    return result
