"""FBGEMM's training cache as array code over `xp` (NumPy or CuPy): the executor's cache index,
kept on the device next to its lines.

The rules are those of `cachesim.simulate.fbgemm` (its docstring and README.md's "FBGEMM's
cache, rule by rule" cite FBGEMM's files), and one `step` equals one batch of that module's
numba kernel (`FbgemmCache.run_batches`): the same lines, stamps, counts, locks and counters.
Here a whole batch is a few array operations, with no loop over keys or sets:

1. unique keys (ascending, with their accesses): `xp.unique`;
2. set = set_base[table] + fmix64(key - hash_off[table]) % sets[table], in uint64;
3. LFU: counts[id] += accesses (ids are distinct after unique);
4. find: compare each unique key with the 32 (or 64) ways of its set ([n, W]); LRU stamps the
   hits (and, with the prefetch pipeline, locks them unless already stamped this batch);
5. misses ordered by set (a stable argsort, as FBGEMM's radix sort; LFU on FBGEMM's key
   (set << 40) | (2^40 - 1 - count)), ranked within their set;
6. the ways of every set with a miss as one [G, W] array, sorted at once by FBGEMM's warp
   bitonic network (the stages of `bitonic_pairs`, 15 for 32 lanes, each a few operations on
   views of [G, W]; not stable, exactly as the warp);
7. insertion: the l-th sorted way against the l-th miss (LRU with locks: the n-th unlocked way),
   the stop rules (`break`) as cumulative masks along the ways;
8. lookup after populate (conflict misses), then the pipeline's unlock of the previous batch.

CuPy is never imported here: the module `xp` comes from the caller (`ArrayBackend.xp`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CachesimError
from ..simulate.fbgemm import COUNTER_NAMES, FIRST_TIMESTEP, FbgemmCache

LFU_COUNTER_BITS = 40  # kLFUCounterBits (lfu_cache_find.cu)
_M1 = 0xFF51AFD7ED558CCD
_M2 = 0xC4CEB9FE1A85EC53


def fmix64_xp(xp, k):
    """MurmurHash3's fmix64 of a uint64 array (`cachesim.hashing.fmix64`, elementwise)."""
    s = xp.uint64(33)
    k = k ^ (k >> s)
    k = k * xp.uint64(_M1)
    k = k ^ (k >> s)
    k = k * xp.uint64(_M2)
    return k ^ (k >> s)


WAY_BITS = 6  # a way (lane) number fits in 6 bits: ways <= 64


def bitonic_sort_rows(xp, cost, slot):
    """Sort every row of cost [G, W] ascending as FBGEMM's warp does, moving slot along (ways
    0..63, [G, W] or one row for all; costs from -1 up to 2^56). Returns (cost, slot) [G, W].

    The stages of `BitonicSort::sort` (the loops of `bitonic_pairs`): for L = 1, 2, ..., W/2,
    lane i meets lane i ^ (2L - 1), then lane i ^ stride for stride = L/2, ..., 1. In blocks of
    2L (or 2 x stride) lanes that is the first half against the second half reversed (or as
    it is), so every stage is a few operations on views, for all sets at once. A pair swaps
    only when value[lower lane] > value[upper lane], strictly: equal values never move. Each
    (cost, way) travels as one int64, cost << 6 | way, compared with its way bits set."""
    W = cost.shape[1]
    packed = (cost << WAY_BITS) | slot
    L = 1
    while L <= W // 2:
        packed = _stage(xp, packed, 2 * L, reverse=True)
        stride = L // 2
        while stride > 0:
            packed = _stage(xp, packed, 2 * stride, reverse=False)
            stride //= 2
        L *= 2
    return packed >> WAY_BITS, packed & ((1 << WAY_BITS) - 1)


def _stage(xp, packed, block: int, reverse: bool):
    """One compare-exchange stage: in every block of `block` lanes, lane j of the first half
    meets lane block - 1 - j (reverse) or lane j + block / 2 of the second half."""
    G, W = packed.shape
    h = block // 2
    x = packed.reshape(G, W // block, block)
    lo, hi = x[:, :, :h], x[:, :, h:]
    if reverse:
        hi = hi[:, :, ::-1]
    ways = (1 << WAY_BITS) - 1  # equal costs compare equal, whatever their ways
    swap = (lo | ways) > (hi | ways)
    lo, hi = xp.where(swap, hi, lo), xp.where(swap, lo, hi)
    if reverse:
        hi = hi[:, :, ::-1]
    return xp.concatenate([lo, hi], axis=2).reshape(G, W)


@dataclass
class FbgemmStep:
    """One batch through the cache. Arrays are on the cache's device (xp); ids are the caller's
    per-key ids (the executor's dense ids)."""

    unique_ids: object      # ids of the batch's unique keys, ascending linear key
    inverse: object         # per access: index into unique_ids
    slot: object            # per unique key: its line (set * W + way) after the step, or -1
    was_hit: object         # per unique key: cached when the batch began
    evicted_slots: object   # lines whose old key was replaced (write its row back first)
    evicted_ids: object
    filled_slots: object    # lines given to a miss (load its row)
    filled_ids: object
    counters: dict          # COUNTER_NAMES of `cachesim.simulate.fbgemm`, this batch
    missed_accesses: int    # accesses of the keys that missed (the executor's `misses`)


class XpFbgemmCache:
    """FBGEMM's training cache (`cachesim.simulate.fbgemm.FbgemmCache`, the same arguments)
    whose state lives in `xp` arrays: `step(table_ids, rows)` runs one batch.

    `n_ids` sizes the per-key arrays (LFU counts): `step_keys` takes an id per access in
    0..n_ids-1 (one per distinct key); `step` uses the linear key itself (n_ids = total rows)."""

    def __init__(self, xp, table_rows, cache_sets: int | None = None,
                 load_factor: float | None = None, policy: str = "lru", ways: int = 32,
                 prefetch_pipeline: bool = False, per_table: bool = False,
                 n_ids: int | None = None, table_groups=None):
        # the geometry and its checks are FbgemmCache's (a one-id host twin holds them)
        geo = FbgemmCache(table_rows, cache_sets=cache_sets, load_factor=load_factor,
                          policy=policy, ways=ways, prefetch_pipeline=prefetch_pipeline,
                          per_table=per_table, n_ids=1, table_groups=table_groups)
        self.geometry = geo
        self.xp = xp
        self.policy, self.lfu = policy, policy == "lfu"
        self.lock = bool(prefetch_pipeline)
        self.ways, self.n_sets = geo.ways, geo.n_sets
        self.n_lines = geo.n_sets * geo.ways
        self.n_ids = geo.total_rows if n_ids is None else int(n_ids)
        self._ids_are_keys = n_ids is None
        S, W = self.n_sets, self.ways
        self.hash_off = xp.asarray(geo.hash_off)
        self.set_base = xp.asarray(geo.set_base)
        self.tbl_sets = xp.asarray(geo.tbl_sets.astype(np.uint64))
        self.cache_key = xp.full((S, W), -1, dtype=xp.int64)    # lxu_cache_state
        self.cache_id = xp.full((S, W), -1, dtype=xp.int64)
        self.lru_state = xp.zeros((S, W), dtype=xp.int64)       # lxu_state (LRU)
        self.lock_cnt = xp.zeros((S, W), dtype=xp.int32)        # lxu_cache_locking_counter
        self.counts = xp.zeros(self.n_ids if self.lfu else 0, dtype=xp.int64)  # lfu_state
        self.prev_lines = xp.zeros(0, dtype=xp.int64)
        self._lanes = xp.arange(W, dtype=xp.int64)
        self.timestep = FIRST_TIMESTEP
        self.batches: list[np.ndarray] = []

    @property
    def capacity_rows(self) -> int:
        return self.n_lines

    @property
    def index_bytes(self) -> int:
        """Bytes of the cache's state arrays (keys, ids, stamps, locks, LFU counts)."""
        return int(sum(a.nbytes for a in (self.cache_key, self.cache_id, self.lru_state,
                                          self.lock_cnt, self.counts)))

    # -- per-key helpers -----------------------------------------------------------------------
    def sets_of(self, keys, tables):
        """Set of each linear key (its table's block of sets with `per_table`)."""
        xp = self.xp
        h = (keys - self.hash_off[tables]).astype(xp.uint64)
        return self.set_base[tables] + (fmix64_xp(xp, h) % self.tbl_sets[tables]).astype(xp.int64)

    def lines_of(self, keys, tables):
        """Line holding each linear key now, -1 where it is not cached (changes nothing)."""
        xp = self.xp
        s = self.sets_of(keys, tables)
        match = self.cache_key[s] == keys[:, None]
        way = xp.argmax(match.astype(xp.int8), axis=1)
        return xp.where(match.any(axis=1), s * self.ways + way, -1)

    @property
    def line_ids(self):
        """Id held by each line, -1 when empty (device array, [n_lines])."""
        return self.cache_id.reshape(-1)

    # -- stepping ------------------------------------------------------------------------------
    def step(self, table_ids, rows) -> dict:
        """One batch of (table id, row) given on the host, as `FbgemmCache.step`; its counters."""
        if not self._ids_are_keys:
            raise CachesimError("step() needs a cache built without n_ids (the linear key is "
                                "the id); use step_keys")
        keys, tables = self.geometry.linearize(table_ids, rows)
        xp = self.xp
        k = xp.asarray(keys)
        return self.step_keys(k, xp.asarray(tables), k).counters

    def step_keys(self, keys, tables, ids) -> FbgemmStep:
        """One batch: linear keys, their tables and their ids (xp int64 arrays, one per access;
        the caller guarantees rows inside their tables and ids in 0..n_ids-1, one per key)."""
        xp, W = self.xp, self.ways
        ts = self.timestep
        self.timestep += 1
        n = int(keys.shape[0])
        if n == 0:  # lru_cache_populate returns before counting; the backward still unlocks
            if self.lock:
                self._unlock(xp.zeros(0, dtype=xp.int64))
            e = xp.zeros(0, dtype=xp.int64)
            return FbgemmStep(e, e, e, xp.zeros(0, dtype=bool), e, e, e, e,
                              self._count({}), 0)
        # 1-3. unique keys, sets, LFU counts
        ukey, first, inverse, uocc = xp.unique(keys, return_index=True, return_inverse=True,
                                               return_counts=True)
        inverse = inverse.reshape(-1)
        uid, utab = ids[first], tables[first]
        uset = self.sets_of(ukey, utab)
        if self.lfu:
            self.counts[uid] += uocc
        # 4. find; LRU stamps (and locks) the hits
        match = self.cache_key[uset] == ukey[:, None]
        hit = match.any(axis=1)
        hway = xp.argmax(match.astype(xp.int8), axis=1)
        uline = xp.where(hit, uset * W + hway, -1)
        if not self.lfu:
            hs, hw = uset[hit], hway[hit]
            if self.lock:
                fresh = self.lru_state[hs, hw] != ts
                self.lock_cnt[hs[fresh], hw[fresh]] += 1
            self.lru_state[hs, hw] = ts
        miss = xp.flatnonzero(~hit)
        nm = int(miss.shape[0])
        n_fill = n_evict = 0
        ev_slots = ev_ids = fill_slots = fill_ids = xp.zeros(0, dtype=xp.int64)
        if nm:
            ev_slots, ev_ids, fill_slots, fill_ids = self._insert(miss, ukey, uid, uset, uline,
                                                                  ts)
            n_fill, n_evict = int(fill_slots.shape[0]), int(ev_slots.shape[0])
        # 8. lookup after populate (LFU may have replaced a line the batch hit)
        cached = uline >= 0
        held = self.cache_key.reshape(-1)[xp.where(cached, uline, 0)]
        uline = xp.where(cached & (held == ukey), uline, -1)
        n_cm = int(uocc[uline < 0].sum())
        # 8. prefetch pipeline: the backward of the previous batch unlocks its lines
        if self.lock:
            self._unlock(uline[uline >= 0])
        nu = int(ukey.shape[0])
        missed = int(uocc[~hit].sum())
        own = dict(requested_indices=n, unique_indices=nu, unique_misses=nm,
                   conflict_unique_misses=nm - n_fill, conflict_misses=n_cm, fills=n_fill,
                   evictions=n_evict, misses=missed)
        # under LFU FBGEMM fills only num_conflict_misses (lfu_cache_populate takes no stats)
        fb = dict(num_calls=1, num_requested_indices=n, num_unique_indices=nu,
                  num_unique_misses=nm, num_conflict_unique_misses=nm - n_fill)
        own.update({} if self.lfu else fb, num_conflict_misses=n_cm)
        return FbgemmStep(uid, inverse, uline, hit, ev_slots, ev_ids, fill_slots, fill_ids,
                          self._count(own), missed)

    def _count(self, values: dict) -> dict:
        """The batch's counters under COUNTER_NAMES (0 where not given), kept for totals()."""
        out = {name: int(values.get(name, 0)) for name in COUNTER_NAMES}
        self.batches.append(np.array([list(out.values())], dtype=np.int64))
        return out

    def _insert(self, miss, ukey, uid, uset, uline, ts):
        """Steps 5-7 for the misses (positions into the unique keys); sets uline of the filled
        misses; returns (evicted lines, their old ids, filled lines, their new ids)."""
        xp, W = self.xp, self.ways
        mset = uset[miss]
        if self.lfu:  # (set << 40) | (2^40 - 1 - count), a stable radix sort
            mcnt = self.counts[uid[miss]]
            lim = xp.uint64((1 << LFU_COUNTER_BITS) - 1)
            sort_key = ((mset.astype(xp.uint64) << xp.uint64(LFU_COUNTER_BITS))
                        | (lim - mcnt.astype(xp.uint64)))
        else:  # the set; the unique keys are ascending, so each set's misses stay by key
            sort_key = mset
        order = xp.argsort(sort_key, kind="stable")  # 5. misses by set, ranked in their set
        mpos, mset = miss[order], mset[order]
        nm = int(mpos.shape[0])
        new = xp.ones(nm, dtype=bool)
        new[1:] = mset[1:] != mset[:-1]
        gstart = xp.flatnonzero(new)                       # first miss of each set
        gsets = mset[gstart]
        gsize = xp.diff(xp.concatenate([gstart, xp.asarray([nm], dtype=gstart.dtype)]))
        G = int(gsets.shape[0])
        # 6. the ways of every set with a miss, sorted by the warp network
        if self.lfu:
            cid = self.cache_id[gsets]
            cost = xp.where(cid >= 0, self.counts[xp.maximum(cid, 0)], -1)
        else:
            cost = self.lru_state[gsets]
        cost, slot = bitonic_sort_rows(xp, cost, self._lanes)  # way w starts in lane w
        # 7. the l-th sorted way meets a miss while l < min(SL, W); stop rules as cumulative masks
        lanes = self._lanes[None, :]
        in_range = lanes < gsize[:, None]
        if self.lfu:  # stop when the way's count is greater than the l-th miss's
            rank = xp.minimum(gstart[:, None] + lanes, nm - 1)
            miss_cnt = self.counts[uid[mpos[rank]]]
            ok = in_range & (cost <= miss_cnt)
            take = ok & (xp.cumsum((~ok).astype(xp.int32), axis=1) == 0)
            nth = xp.broadcast_to(lanes, (G, W))
        else:  # skip a locked way (`continue`); stop at a way stamped this batch
            if self.lock:
                locked = self.lock_cnt[gsets[:, None], slot] > 0
            else:
                locked = xp.zeros((G, W), dtype=bool)
            stop = ~locked & (cost == ts)
            take = in_range & ~locked & (xp.cumsum(stop.astype(xp.int32), axis=1) == 0)
            nth = xp.cumsum(take.astype(xp.int64), axis=1) - 1
        g, lane = xp.nonzero(take)
        s, w = gsets[g], slot[g, lane]
        u = mpos[gstart[g] + nth[g, lane]]
        line = s * W + w
        old = self.cache_key[s, w] != -1
        ev_slots, ev_ids = line[old], self.cache_id[s, w][old]
        self.cache_key[s, w] = ukey[u]
        self.cache_id[s, w] = uid[u]
        if not self.lfu:
            self.lru_state[s, w] = ts
            if self.lock:
                self.lock_cnt[s, w] += 1
        uline[u] = line
        return ev_slots, ev_ids, line, uid[u]

    def _unlock(self, lines) -> None:
        """lxu_cache_locking_counter_decrement: each line of the previous batch once, then the
        lines of this batch wait for its backward."""
        prev = self.prev_lines
        if prev.shape[0]:
            s, w = prev // self.ways, prev % self.ways
            dec = self.lock_cnt[s, w] > 0
            self.lock_cnt[s[dec], w[dec]] -= 1
        self.prev_lines = lines

    # -- counters (kept in `batches` as FbgemmCache keeps them) ------------------------------
    per_batch = FbgemmCache.per_batch
    totals = FbgemmCache.totals
