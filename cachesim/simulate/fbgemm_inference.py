"""FBGEMM's inference cache: the cache of `IntNBitTableBatchedEmbeddingBagsCodegen`
(EmbeddingLocation.MANAGED_CACHING), batch by batch, as `cache_model="fbgemm-inference"`.

Each rule follows FBGEMM's source (pytorch/FBGEMM, fbgemm_gpu/fbgemm_gpu/
split_table_batched_embeddings_ops_inference.py, "the inference op", and fbgemm_gpu/src/
split_embeddings_cache/); the README lists them with file and function.

- Geometry (`_apply_cache_state`): `cache_assoc` ways, 32 (the warp size; 64 on AMD) or 1
  (direct-mapped); sets = (int(total rows * cache_load_factor) + assoc - 1) // assoc, 0 -> 1, or
  `cache_sets` when given.
- Time step (`prefetch`): `timestep_counter` is an AtomicCounter that starts at 0 and is
  incremented before every populate, so the first batch uses stamp 1 (training: 2).
- 32 (64) ways (`prefetch_32way`): `lru_cache_populate_byte` runs the training cache's LRU find
  with `lock_cache_line=false` and `lru_cache_insert_byte_kernel`, whose rules are the training
  insert's without locking; `lfu_cache_populate_byte` is the training LFU (counts, find,
  `lfu_cache_insert_byte_kernel`). So this model runs `FbgemmCache` (simulate/fbgemm.py) for it.
- 1 way (`prefetch_1way`, LRU only: "Direct Mapped for LRU only"): `_run_direct` below
  (`direct_mapped_lru_cache_populate_byte`: no unique, no sort; the first miss of a set wins the
  set, unless some access of the batch hit the set).
- Then `lxu_cache_lookup` (`direct_mapped_lxu_cache_lookup`) of every access: conflict misses.

Counters: FBGEMM's `uvm_cache_stats` under FBGEMM's names (what each populate fills differs:
see INFERENCE_STATS_FILLED), cachesim's own (simulate/fbgemm.py OWN_COUNTERS, same meaning as in
every batch model), and the inference op's `cache_miss_counter` (`record_cache_miss_counter`,
MISS_COUNTER_NAMES).
"""
from __future__ import annotations

import numba
import numpy as np

from ..errors import CachesimError
from ..hashing import fmix64
from .fbgemm import (BatchCounters, max_batch, CMISS, COUNTER_NAMES, CUMISS, EVICTIONS,
                     FBGEMM_COUNTERS, FILLS, MISSES,
                     N_CALLS, N_CMISS, N_CUMISS, N_REQ, POLICIES, REQ, T_CMISS, T_CUMISS,
                     T_EVICT, T_MISSES, T_REQ, T_UMISS, T_UNIQ, TABLE_COUNTERS, UMISS, UNIQ,
                     FbgemmCache, checked_geometry, feed_trace, fbgemm_cache_sets)

MODEL_NAME = "fbgemm-inference"
INFERENCE_WAYS = (32, 64, 1)  # cache_assoc: the warp size (64 on AMD CDNA), or 1: direct-mapped
FIRST_TIMESTEP = 1  # AtomicCounter() starts at 0; prefetch() increments it before the populate
# which uvm_cache_stats each populate fills (the rest stay 0):
INFERENCE_STATS_FILLED = {
    ("lru", 32): FBGEMM_COUNTERS,            # lru_cache_find_uncached, insert_byte, lookup
    ("lfu", 32): ("num_conflict_misses",),   # lfu_cache_populate_byte takes no stats; lookup
    ("lru", 1): ("num_calls", "num_requested_indices", "num_conflict_unique_misses",
                 "num_conflict_misses"),    # direct-mapped: conflict_unique = rows inserted
}
# the inference op's cache_miss_counter (get_cache_miss_counter; record_cache_miss_counter=True),
# from a lookup *before* the populate: batches with a unique miss, unique misses, unique
# indices, accesses
MISS_COUNTER_NAMES = ("cache_miss_forward_count", "unique_cache_miss_count",
                      "unique_access_count", "total_access_count")


@numba.njit(cache=True, nogil=True)
def _run_direct(keys, tables, ids, starts, ts0, cache_key, cache_tab, lru_state, miss_ts, mark,
                out, tout):
    """Replay batches keys[starts[b]:starts[b+1]] through FBGEMM's direct-mapped cache (one way,
    cache_key/cache_tab/lru_state/miss_ts of one entry per set), at time steps ts0, ts0 + 1, ...

    `ids` number the distinct keys (mark[id] = (time step << 32) | unique index). Per batch
    (direct_mapped_lru_cache_populate_byte_cuda):
    1. find (direct_mapped_lru_cache_find_uncached_kernel), access by access: a hit stamps its
       set's lru_state with t; a miss does atomicMax(miss_ts[set], t + 1), and the one access
       that raised it wins the set. The GPU's winner is whichever thread's atomic lands first;
       ours is the first missing access of the set in batch order.
    2. insert (direct_mapped_lru_cache_insert_byte_kernel): a winner whose set's lru_state is t
       (the batch hit the set) is dropped; else it replaces the set's key, stamp t, and FBGEMM
       adds 1 to num_conflict_unique_misses ("number of actually inserted rows").
    3. lookup (direct_mapped_lxu_cache_lookup_kernel): accesses whose key is not cached now are
       num_conflict_misses.
    Counters go to out[b] (COUNTER_NAMES) and tout[table] (TABLE_COUNTERS; an eviction counts
    for the evicted key's table)."""
    C = cache_key.shape[0]
    max_n = max_batch(starts)
    ukey = np.empty(max_n, np.int64)
    uset = np.empty(max_n, np.int64)
    uocc = np.empty(max_n, np.int64)
    utab = np.empty(max_n, np.int64)
    uhit = np.empty(max_n, np.bool_)
    upos = np.empty(max_n, np.int64)  # unique index of each access
    for b in range(starts.shape[0] - 1):
        ts = ts0 + b
        lo, hi = starts[b], starts[b + 1]
        n = hi - lo
        if n == 0:  # populate returns before its first kernel: no call counted
            continue
        nu = 0
        for i in range(lo, hi):
            d = ids[i]
            m = mark[d]
            if (m >> 32) == ts:
                u = m & 0xFFFFFFFF
                uocc[u] += 1
            else:
                u = nu
                mark[d] = (ts << 32) | u
                k = keys[i]
                ukey[u] = k
                uocc[u] = 1
                utab[u] = tables[i]
                s = np.int64(fmix64(np.uint64(k)) % np.uint64(C))
                uset[u] = s
                uhit[u] = cache_key[s, 0] == k
                nu += 1
            upos[i - lo] = u
        # 1. find (hits first in effect: the insert kernel runs after every hit has stamped)
        for i in range(lo, hi):
            u = upos[i - lo]
            s = uset[u]
            if uhit[u]:
                lru_state[s, 0] = ts
                upos[i - lo] = -1
            elif miss_ts[s, 0] < ts + 1:
                miss_ts[s, 0] = ts + 1
                upos[i - lo] = u  # this access won the set
            else:
                upos[i - lo] = -1
        # 2. insert
        n_ins = 0
        n_evict = 0
        for i in range(lo, hi):
            u = upos[i - lo]
            if u < 0:
                continue
            s = uset[u]
            if lru_state[s, 0] == ts:
                continue  # the batch hit this set: no insert
            if cache_key[s, 0] != -1:
                n_evict += 1
                tout[cache_tab[s, 0], T_EVICT] += 1
            cache_key[s, 0] = ukey[u]
            cache_tab[s, 0] = utab[u]
            lru_state[s, 0] = ts
            n_ins += 1
        # 3. lookup after populate
        n_cm = 0
        n_um = 0
        n_miss = 0
        for u in range(nu):
            t = utab[u]
            tout[t, T_REQ] += uocc[u]
            tout[t, T_UNIQ] += 1
            cached = cache_key[uset[u], 0] == ukey[u]
            if not uhit[u]:
                n_um += 1
                n_miss += uocc[u]
                tout[t, T_UMISS] += 1
                tout[t, T_MISSES] += uocc[u]
                if not cached:
                    tout[t, T_CUMISS] += 1
            if not cached:
                n_cm += uocc[u]
                tout[t, T_CMISS] += uocc[u]
        o_ = out[b]
        o_[N_CALLS] = 1
        o_[N_REQ] = n
        o_[N_CUMISS] = n_ins
        o_[N_CMISS] = n_cm
        o_[REQ] = n
        o_[UNIQ] = nu
        o_[UMISS] = n_um
        o_[CUMISS] = n_um - n_ins
        o_[CMISS] = n_cm
        o_[FILLS] = n_ins
        o_[EVICTIONS] = n_evict
        o_[MISSES] = n_miss


# -- Python API -----------------------------------------------------------------------------------
class FbgemmInferenceCache(BatchCounters):
    """FBGEMM's inference cache over tables of `table_rows` rows (num_embeddings) each.

    Give `cache_sets` or `load_factor` (FBGEMM's cache_load_factor, a share of the tables' total
    rows). `ways` is FBGEMM's cache_assoc: 32 (64: AMD's warp) with policy lru or lfu, or 1 for
    the direct-mapped cache (lru only). One cache over all tables, as the op has.
    `step(table_ids, rows)` runs one batch (one `prefetch`) and returns its counters
    (COUNTER_NAMES); `totals()` sums them; `table_counts` holds per-table counters
    (TABLE_COUNTERS); `cache_miss_counter()` the op's record_cache_miss_counter values.
    """

    def __init__(self, table_rows, cache_sets: int | None = None,
                 load_factor: float | None = None, policy: str = "lru", ways: int = 32,
                 n_ids: int | None = None):
        if policy not in POLICIES:
            raise CachesimError(f"cache policy {policy!r}: FBGEMM's inference cache is 'lru' or "
                                "'lfu' (CacheAlgorithm)")
        if ways is None or int(ways) not in INFERENCE_WAYS:
            raise CachesimError(f"ways={ways}: FBGEMM's inference cache has cache_assoc 32 (64 "
                                "on AMD) or 1 (direct-mapped); use one of these")
        self.ways, self.policy = int(ways), policy
        if self.ways == 1 and policy != "lru":
            raise CachesimError("policy lfu with ways=1: FBGEMM's direct-mapped cache is LRU only "
                                "(prefetch_1way raises 'Direct Mapped for LRU only'); use "
                                "ways=32 for lfu")
        if self.ways != 1:
            self._assoc = FbgemmCache(table_rows, cache_sets=cache_sets, load_factor=load_factor,
                                      policy=policy, ways=self.ways, n_ids=n_ids)
            self._assoc.timestep = FIRST_TIMESTEP
            self.table_rows, self.offsets = self._assoc.table_rows, self._assoc.offsets
            self.n_sets = self._assoc.n_sets
            self.table_counts = self._assoc.table_counts
        else:
            # the geometry checks of the 32-way cache, on a 1-set probe (no big arrays)
            probe = FbgemmCache(table_rows, cache_sets=1, n_ids=1)
            if (cache_sets is None) == (load_factor is None):
                raise CachesimError("give the cache size as cache_sets or load_factor, not both")
            if load_factor is not None and not float(load_factor) > 0:
                raise CachesimError(f"load_factor {load_factor}: must be > 0 (a share of the "
                                    "tables' rows, e.g. 0.05)")
            if cache_sets is not None and int(np.asarray(cache_sets).reshape(-1)[0]) < 1:
                raise CachesimError(f"cache_sets {cache_sets}: the cache needs at least 1 set")
            self._assoc = None
            self.table_rows, self.offsets = probe.table_rows, probe.offsets
            self.n_sets = (int(np.asarray(cache_sets).reshape(-1)[0]) if cache_sets is not None
                           else fbgemm_cache_sets(probe.total_rows, load_factor, 1))
            S = self.n_sets
            self.cache_key = np.full((S, 1), -1, dtype=np.int64)   # lxu_cache_state
            self.cache_tab = np.zeros((S, 1), dtype=np.int64)
            self.lru_state = np.zeros((S, 1), dtype=np.int64)      # lxu_state
            self.miss_ts = np.zeros((S, 1), dtype=np.int64)        # lxu_cache_miss_timestamp
            self.mark = np.zeros(max(1, int(n_ids or 1)), dtype=np.int64)
            self.table_counts = np.zeros((self.table_rows.size, len(TABLE_COUNTERS)),
                                         dtype=np.int64)
        self.timestep = FIRST_TIMESTEP
        self.batches: list[np.ndarray] = []

    @property
    def capacity_rows(self) -> int:
        return self.n_sets * self.ways

    def run_batches(self, keys, tables, ids, starts) -> np.ndarray:
        if self._assoc is not None:
            out = self._assoc.run_batches(keys, tables, ids, starts)
        else:
            n_b = starts.shape[0] - 1
            out = np.zeros((n_b, len(COUNTER_NAMES)), dtype=np.int64)
            if n_b == 0:
                return out
            if ids.size and int(ids.max()) >= self.mark.size:
                grow = np.zeros(max(int(ids.max()) + 1, 2 * self.mark.size), dtype=np.int64)
                grow[:self.mark.size] = self.mark
                self.mark = grow
            _run_direct(keys, tables, ids, starts, np.int64(self.timestep), self.cache_key,
                        self.cache_tab, self.lru_state, self.miss_ts, self.mark, out,
                        self.table_counts)
        self.timestep += starts.shape[0] - 1
        self.batches.append(out)
        return out

    def step(self, table_ids, rows) -> dict:
        """Run one batch (one `prefetch`) and return its counters."""
        keys, tables = FbgemmCache.linearize(self, table_ids, rows)
        if self._assoc is not None:
            ids = self._assoc._ids_of(keys)
        else:  # ids need only be consistent within a batch (marks carry the time step)
            ids = np.unique(keys, return_inverse=True)[1].reshape(-1).astype(np.int64)
        out = self.run_batches(keys, tables, ids, np.array([0, keys.size], np.int64))
        return dict(zip(COUNTER_NAMES, (int(v) for v in out[0])))


    def cache_miss_counter(self) -> dict:
        """The op's cache_miss_counter (MISS_COUNTER_NAMES): a lookup before each populate
        (`_update_cache_miss_counter`), i.e. from cachesim's own unique_misses."""
        pb = self.per_batch()
        return dict(zip(MISS_COUNTER_NAMES, (int(np.count_nonzero(pb[:, UMISS])),
                                             int(pb[:, UMISS].sum()), int(pb[:, UNIQ].sum()),
                                             int(pb[:, REQ].sum()))))


def check_inference_ways(ways, warp=None) -> int:
    """cache_assoc of the inference cache: 1, or the warp size (32; 64 with warp=64)."""
    if warp is not None and int(warp) not in (32, 64):
        raise CachesimError(f"--warp {warp}: FBGEMM's cache has one way per warp lane; use 32 "
                            "(NVIDIA) or 64 (AMD CDNA)")
    if ways is not None and int(ways) == 1:
        return 1
    if ways is None or int(ways) not in (32, 64) or (warp is not None and int(ways) not in
                                                      (32, int(warp))):
        shown = "full" if ways is None else ways
        raise CachesimError(f"--ways {shown} with --cache-model {MODEL_NAME}: FBGEMM's inference "
                            "cache has cache_assoc 32 (64 with --warp 64) or 1 (direct-mapped); "
                            "use --cache-model ideal for other ways")
    return int(warp) if warp is not None else int(ways)


def replay_batch_fbgemm_inference(trace, policy: str = "lru", capacity="5%", ways=32, *,
                                  per_table: bool = False, prefetch_pipeline: bool = False,
                                  warp: int | None = None, progress: bool = False):
    """`replay_batch(..., cache_model="fbgemm-inference")`: `trace` through FBGEMM's inference
    cache, wrapped in a `Result` (mode 'batch', cache_model 'fbgemm-inference', inference True).

    The size is read as in the fbgemm model (`fbgemm_geometry`: a share is the load factor on
    num_embeddings; rows are ceil(rows / ways) sets). hits/misses count accesses whose row was
    cached when their batch began. `num_*` are FBGEMM's uvm cache stats (INFERENCE_STATS_FILLED
    says which the op fills; under direct-mapped num_conflict_unique_misses counts rows
    inserted); the unprefixed counters are cachesim's own, as in every batch model."""
    import time

    from ..progress import bar as progress_bar
    t0 = time.perf_counter()
    cache, size_text, load_factor = inference_cache_for(
        trace, policy, capacity, ways, per_table=per_table, prefetch_pipeline=prefetch_pipeline,
        warp=warp, stacklevel=4)
    bar = progress_bar(len(trace), f"{cache.policy} {size_text} {MODEL_NAME}", progress,
                       unit="req", unit_scale=True, delay=2.0)
    feed_trace(trace, cache, bar)
    if bar is not None:
        bar.close()
    return inference_result(trace, cache, size_text, load_factor, time.perf_counter() - t0)


def inference_cache_for(trace, policy, capacity, ways=32, *, per_table=False,
                        prefetch_pipeline=False, warp=None, stacklevel=3):
    """(an empty FbgemmInferenceCache for `trace`, the size as text, the load factor or None):
    the geometry of `replay_batch_fbgemm_inference`, with its checks and warning."""

    from ..policies import get_policy
    name = policy.name if hasattr(policy, "name") else get_policy(str(policy)).name
    if name not in POLICIES:
        raise CachesimError(f"policy {name!r}: FBGEMM's inference cache runs only lru and lfu; "
                            f"use --cache-model ideal for {name}'s batch rule")
    if per_table:
        raise CachesimError(f"--per-table with --cache-model {MODEL_NAME}: the inference op "
                            "keeps one cache over all its tables; drop --per-table")
    if prefetch_pipeline:
        raise CachesimError(f"--prefetch-pipeline with --cache-model {MODEL_NAME}: the "
                            "inference op never locks cache lines; drop it, or use "
                            "--cache-model fbgemm")
    w = check_inference_ways(ways, warp)
    size_kw, size_text, load_factor = checked_geometry(trace, capacity, w, False, stacklevel + 1)
    cache = FbgemmInferenceCache(np.maximum(trace.table_rows, 1), policy=name, ways=w,
                                 n_ids=trace.n_distinct, **size_kw)
    return cache, size_text, load_factor


def inference_result(trace, cache: FbgemmInferenceCache, size_text: str, load_factor,
                     seconds: float = 0.0):
    """The `Result` (mode 'batch', cache_model 'fbgemm-inference') of `cache`'s counters."""
    from .result import batch_result_of
    tot = cache.totals()
    return batch_result_of(
        trace, TABLE_COUNTERS, cache.table_counts, policy=cache.policy, size=size_text,
        capacity=cache.capacity_rows, ways=cache.ways, seconds=seconds, n_sets=cache.n_sets,
        n_lines=cache.capacity_rows, per_table_caches=False, inference=True,
        calls=int(np.count_nonzero(cache.per_batch()[:, REQ])), cache_model=MODEL_NAME,
        load_factor=load_factor, prefetch_pipeline=False,
        table_rows_inferred=bool(trace.table_rows_inferred),
        **{nm: tot[nm] for nm in FBGEMM_COUNTERS})
