"""FBGEMM-exact training cache: the LRU and LFU caches of FBGEMM's
`SplitTableBatchedEmbeddingBagsCodegen` (EmbeddingLocation.MANAGED_CACHING), batch by batch.

Each rule follows FBGEMM's source (pytorch/FBGEMM, fbgemm_gpu/src/split_embeddings_cache/ and
fbgemm_gpu/fbgemm_gpu/split_table_batched_embeddings_ops_training.py); the README lists them
with file and function. For one batch (one `_prefetch` call, time step t = 2, 3, ...):

1. linearize: key = row + (rows of all earlier tables)           linearize_cache_indices_kernel
2. unique keys, ascending, with their number of accesses          get_unique_indices_cuda
3. LFU: count[key] += accesses of the key in the batch            lfu_update_counts_kernel
4. set = fmix64(key) % S; a key is cached when a way of its set holds it;
   LRU: a hit's way gets stamp t (and, with the prefetch pipeline, its locking counter + 1
   unless its stamp was already t)                                lru_cache_find_uncached_kernel
5. misses are grouped by set (stable radix sort of the ascending unique keys; LFU sorts on
   (set, descending count)), and each set's ways are sorted ascending by stamp (LRU) or by the
   count of the way's key, -1 when empty (LFU), with the warp bitonic network (not stable:
   `bitonic_pairs`).  The l-th sorted way goes to the n-th miss of the set (n = l for LFU):
   LRU: skip the way if locked (`continue`, l advances, n does not); stop if its stamp is t;
   LFU: stop if the way's count is greater than the miss's count.  l < min(misses, ways).
                                           lru_cache_insert_kernel / lfu_cache_insert_kernel
6. conflict misses: accesses whose key is not cached after 5      lxu_cache_lookup_kernel
7. prefetch pipeline (LRU only): the lines of batch b stay locked until the backward of b, which
   runs after the prefetch of batch b + 1; so batch b + 1's insert skips them.
                                            _update_cache_counter_and_locations (decrement)

Counters, per batch: FBGEMM's uvm cache stats under FBGEMM's names (`num_*`; under LFU FBGEMM
fills only num_conflict_misses: lfu_cache_populate takes no stats tensor), and our own counts,
defined the same way for both policies, under names without the prefix, and per table.

`replay_batch_fbgemm` is the batch replay's `cache_model="fbgemm"` (`replay_batch`,
`cachesim replay --cache-model fbgemm`): FBGEMM's geometry from a cache size
(`fbgemm_geometry`), the tables' num_embeddings (`with_table_rows`; a
`TableRowsInferredWarning` when the trace only implies them), and a `Result`.
"""
from __future__ import annotations

import numba
import numpy as np

from ._bitonic32 import sort32
from ..errors import CachesimError
from ..hashing import fbgemm_cache_sets, fmix64
from ..sizes import check_state_fits
from ..numba_util import prefetch
from ..policies.base import (BATCH_COUNTER_NAMES, BATCH_EVICTIONS, BATCH_MISSES,
                             CONFLICT_MISSES, CONFLICT_UNIQUE_MISSES, REQUESTED, UNIQUE,
                             UNIQUE_MISSES)

FBGEMM_COUNTERS = ("num_calls", "num_requested_indices", "num_unique_indices",
                   "num_unique_misses", "num_conflict_unique_misses", "num_conflict_misses")
OWN_COUNTERS = ("requested_indices", "unique_indices", "unique_misses",
                "conflict_unique_misses", "conflict_misses", "fills", "evictions", "misses")
# `misses`: the batch's accesses whose key was not cached when the batch began (every access to
# a unique miss), so that hits = requested_indices - misses means what it means in batch.py
COUNTER_NAMES = FBGEMM_COUNTERS + OWN_COUNTERS
(N_CALLS, N_REQ, N_UNIQ, N_UMISS, N_CUMISS, N_CMISS,
 REQ, UNIQ, UMISS, CUMISS, CMISS, FILLS, EVICTIONS, MISSES) = range(len(COUNTER_NAMES))
# per-table counters (`FbgemmCache.table_counts`): the batch replay's, in its order
TABLE_COUNTERS = BATCH_COUNTER_NAMES
(T_REQ, T_UNIQ, T_UMISS, T_CUMISS, T_CMISS, T_EVICT, T_MISSES) = (
    REQUESTED, UNIQUE, UNIQUE_MISSES, CONFLICT_UNIQUE_MISSES, CONFLICT_MISSES, BATCH_EVICTIONS,
    BATCH_MISSES)
POLICIES = ("lru", "lfu")
DIRECT_IDS_MAX = 1 << 26  # up to this many rows in all, per-key arrays are indexed by row
AHEAD = 16  # prefetch the state of the key (or set) this many positions ahead
FIRST_TIMESTEP = 2  # _apply_cache_state sets timestep = 1 and _prefetch adds 1 before use
PART_BITS = 7  # a split replay's part id of a key: (its number in its part) << PART_BITS | part
PART_MASK = (1 << PART_BITS) - 1
_NO_SELECT = np.zeros(0, np.int32)
_NO_OCC = np.zeros(0, dtype=np.int32)  # run_batches without deduplicated batches
STAMP32_END = (1 << 31) - 1  # time steps stay below this (int32 stamps; the batch marks)


def bitonic_pairs(ways: int = 32) -> np.ndarray:
    """The compare-exchanges of FBGEMM's warp bitonic sort (`BitonicSort::sort`,
    fbgemm_gpu/include/fbgemm_gpu/utils/bitonic_sort.cuh), in order, as (lower, upper) lanes.

    `sort` calls warpBitonicMergeLE16<L, Dir=1, IsBitonic=false> for L = 1, 2, 4, 8, 16 (and 32
    with 64 ways). Each merge first exchanges lane i with lane i ^ (2L - 1), then lane i with
    lane i ^ stride for stride = L/2, ..., 1. In every exchange the lane with the deciding bit
    clear is the lower one and keeps the smaller value: the pair swaps only when
    value[lower] > value[upper] (strictly), so equal values never move."""
    if ways not in (32, 64):
        raise CachesimError(f"ways={ways}: FBGEMM's cache has one way per warp lane; "
                            "use 32 (NVIDIA) or 64 (AMD CDNA)")
    pairs = []
    L = 1
    while L <= ways // 2:
        for i in range(ways):
            if not i & L:
                pairs.append((i, i ^ (2 * L - 1)))
        stride = L // 2
        while stride > 0:
            for i in range(ways):
                if not i & stride:
                    pairs.append((i, i ^ stride))
            stride //= 2
        L *= 2
    return np.array(pairs, dtype=np.int64)


def unrolled_source(ways: int = 32) -> str:
    """Source of cachesim/simulate/_bitonic32.py: the network of `bitonic_pairs(ways)` unrolled into
    straight-line, branchless code (one compare-exchange is a few instructions on registers)."""
    n = int(ways)
    out = ['"""FBGEMM\'s %d-lane warp bitonic sort, unrolled: generated by' % n,
           f'cachesim.simulate.fbgemm.unrolled_source({n}) from bitonic_pairs({n}) '
           f'({len(bitonic_pairs(n))} compare-exchanges, in order).',
           'Do not edit by hand; tests/test_fbgemm_cache.py checks that it is in sync.', '',
           'A pair (a, b) swaps (cost, way) only when cost[a] > cost[b]: equal costs never move. '
           'The swap is',
           'branchless (xor with a mask), as the warp\'s `assign` selects are: no branch to '
           'mispredict.', '"""', 'import numba', 'import numpy as np', '', '',
           '@numba.njit(cache=True)', f'def sort{n}(cost, slot):',
           f'    """Sort cost[0:{n}] ascending in place, moving slot[0:{n}] along, as the warp '
           'does."""']
    for v, arr in (("c", "cost"), ("s", "slot")):
        for i in range(n):
            out.append(f"    {v}{i} = {arr}[{i}]")
    for a, b in bitonic_pairs(n):
        out += [f"    m = -np.int64(c{a} > c{b})", f"    d = (c{a} ^ c{b}) & m",
                f"    c{a} ^= d", f"    c{b} ^= d", f"    d = (s{a} ^ s{b}) & m",
                f"    s{a} ^= d", f"    s{b} ^= d"]
    for i in range(n):
        out += [f"    cost[{i}] = c{i}", f"    slot[{i}] = s{i}"]
    return "\n".join(out) + "\n"


@numba.njit(cache=True)
def _bitonic(pairs, cost, slot):
    """Apply the network in place to parallel arrays (value, way)."""
    for p in range(pairs.shape[0]):
        a = pairs[p, 0]
        b = pairs[p, 1]
        if cost[a] > cost[b]:
            cost[a], cost[b] = cost[b], cost[a]
            slot[a], slot[b] = slot[b], slot[a]


def network_first(costs) -> tuple[int, int]:
    """(way, cost) in lane 0 after FBGEMM's 32-lane bitonic sort (the fast path for a set
    with one miss)."""
    w, c = _network_first32(np.asarray(costs, dtype=np.int64), np.empty(15, np.int64))
    return int(w), int(c)


def bitonic_order(costs) -> tuple[np.ndarray, np.ndarray]:
    """(sorted costs, way of each) as FBGEMM's warp bitonic sort leaves them."""
    cost = np.array(costs, dtype=np.int64)
    slot = np.arange(cost.shape[0], dtype=np.int64)
    _bitonic(bitonic_pairs(cost.shape[0]), cost, slot)
    return cost, slot


# Lanes whose bit g is clear, for g = 1, 2, 4, 8, 16 (index log2 g): the lower lane of a pair.
_LOW32 = np.array([0x55555555, 0x33333333, 0x0F0F0F0F, 0x00FF00FF, 0x0000FFFF], dtype=np.int64)


@numba.njit(cache=True, inline="always")
def _reverse_blocks(x, L_log):
    """Reverse the bit order inside each block of 2^(L_log + 1) bits of a 32-bit mask."""
    for g_log in range(L_log + 1):
        g = 1 << g_log
        m = _LOW32[g_log]
        x = ((x >> g) & m) | ((x & m) << g)
    return x


@numba.njit(cache=True, inline="always")
def _min_mask32(cost):
    """(the minimum of cost[:32], the 32-bit mask of the lanes holding it), branch-free: costs
    are random, and a branch per lane would be guessed wrong."""
    mn = cost[0]
    for w in range(1, 32):
        mn = min(mn, cost[w])
    M = np.int64(0)
    for w in range(32):
        M |= np.int64(cost[w] == mn) << w
    return mn, M


@numba.njit(cache=True)
def _network_first32(cost, before):
    """(way, cost) that FBGEMM's 32-lane bitonic sort leaves in lane 0, without sorting.

    Lane 0 ends with the minimum. Which way holding the minimum gets there depends only on
    which lanes hold the minimum: a minimum moves to the lower lane when paired with a larger
    value and never moves when paired with another minimum. So the network is run on the
    32-bit mask of minimum lanes (`_lane_of_mask`)."""
    mn, M = _min_mask32(cost)
    return _lane_of_mask(M, before), mn


MEMO_BITS = 12  # the kernel's memo of _lane_of_mask: 4096 masks


@numba.njit(cache=True, inline="always")
def _first_lane32(cost, before, memo):
    """`_network_first32` with a memo (`memo`: 2 << MEMO_BITS int64, keys -1 at first). One
    lane holding the minimum reaches lane 0, and with all 32 none moves; any other mask of
    minimum lanes is looked up (a set filling up goes through the same masks as every other)."""
    mn, M = _min_mask32(cost)
    if M & (M - 1) == 0:
        p = 0
        while not (M >> p) & 1:
            p += 1
        return p, mn
    if M == 0xFFFFFFFF:
        return 0, mn
    h = np.int64((np.uint64(M) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - MEMO_BITS))
    if memo[2 * h] != M:
        memo[2 * h] = M
        memo[2 * h + 1] = _lane_of_mask(M, before)
    return memo[2 * h + 1], mn


@numba.njit(cache=True)
def _lane_of_mask(M, before):
    """The lane whose element FBGEMM's 32-lane bitonic network leaves in lane 0 when the lanes
    of mask M hold the minimum: the network is run on M one step at a time (each step is a few
    word operations), then lane 0 is traced back through the recorded masks (`before`, 15
    int64) to its starting lane."""
    full = np.int64(0xFFFFFFFF)
    k = 0
    for L_log in range(5):
        L = 1 << L_log
        # i <-> i ^ (2L - 1): the partner's bit is the block-reversed mask's bit
        before[k] = M
        k += 1
        low = _LOW32[L_log]
        mv = _reverse_blocks(M, L_log) & low & ~M
        M = (M | mv) & ~_reverse_blocks(mv, L_log) & full
        for s_log in range(L_log - 1, -1, -1):
            st = 1 << s_log
            before[k] = M
            k += 1
            low = _LOW32[s_log]
            mv = (M >> st) & low & ~M
            M = (M | mv) & ~(mv << st) & full
    # trace lane 0 back: at a step, a lower lane p whose partner held a minimum and p did not
    # received the partner's element
    p = 0
    k = 15
    for L_log in range(4, -1, -1):
        for s_log in range(0, L_log):
            k -= 1
            st = 1 << s_log
            if not (p & st):
                q = p ^ st
                if (before[k] >> q) & 1 and not (before[k] >> p) & 1:
                    p = q
        k -= 1
        L = 1 << L_log
        if not (p & L):
            q = p ^ (2 * L - 1)
            if (before[k] >> q) & 1 and not (before[k] >> p) & 1:
                p = q
    return p


@numba.njit(cache=True)
def _sort_group_by_count(mu, lo, hi, uid, counts):
    """Stable sort of mu[lo:hi] (already by ascending key) by descending count: FBGEMM's radix
    sort on (set << 40) | (2^40 - 1 - count), lfu_cache_find_uncached_cuda."""
    n = hi - lo
    if n <= 32:
        for i in range(lo + 1, hi):
            x = mu[i]
            cx = counts[uid[x]]
            j = i - 1
            while j >= lo and counts[uid[mu[j]]] < cx:
                mu[j + 1] = mu[j]
                j -= 1
            mu[j + 1] = x
        return
    neg = np.empty(n, dtype=np.int64)
    for i in range(n):
        neg[i] = -counts[uid[mu[lo + i]]]
    order = np.argsort(neg, kind="mergesort")
    seg = mu[lo:hi].copy()
    for i in range(n):
        mu[lo + i] = seg[order[i]]


RADIX_MIN = 96     # misses in a batch from which a radix sort on sets beats a comparison sort
RADIX_BITS = 11    # bits of the set index per radix pass (2048 buckets: 2 passes up to 4M sets)


@numba.njit(cache=True)
def _order_misses(mu, nm, ukey, uset, comp, comp2, n_sets_total):
    """Sort the misses mu[:nm] by (set, key): FBGEMM's stable radix sort on the set of the
    ascending unique keys. Keys are distinct, so any exact sort on (set, key) agrees. From
    RADIX_MIN misses (a batch's first sight of many keys): an LSD radix sort of (set << 32 |
    unique index) on the set's bits, stable, then each set's few misses by key (insertion sort);
    numba's comparison sort costs 4-7x numpy's per element there, and was a fifth of a replay.
    `comp` and `comp2`: scratch, at least nm each."""
    if nm < RADIX_MIN or nm >= (1 << 32):
        big = np.int64(1) << 40
        fits = n_sets_total < (1 << 23)
        if fits:
            for j in range(nm):
                if ukey[mu[j]] >= big:
                    fits = False
                    break
        if fits:
            for j in range(nm):
                u = mu[j]
                comp[j] = (uset[u] << 40) | ukey[u]
            o = np.argsort(comp[:nm])
        else:
            by_key = np.argsort(ukey[mu[:nm]])
            sets = uset[mu[:nm][by_key]]
            o = by_key[np.argsort(sets, kind="mergesort")]
        tmp = mu[:nm][o]
        mu[:nm] = tmp
        return
    for j in range(nm):
        u = mu[j]
        comp[j] = (uset[u] << 32) | u
    bits = 1
    while (np.int64(1) << bits) < n_sets_total:
        bits += 1
    mask = (np.int64(1) << RADIX_BITS) - 1
    cnt = np.empty(1 << RADIX_BITS, np.int64)
    src, dst = comp, comp2
    shift = 32
    while shift < 32 + bits:
        cnt[:] = 0
        for j in range(nm):
            cnt[(src[j] >> shift) & mask] += 1
        at = 0
        for d in range(cnt.shape[0]):
            c = cnt[d]
            cnt[d] = at
            at += c
        for j in range(nm):
            v = src[j]
            g = (v >> shift) & mask
            dst[cnt[g]] = v
            cnt[g] += 1
        src, dst = dst, src
        shift += RADIX_BITS
    low = (np.int64(1) << 32) - 1
    j = 0
    while j < nm:  # each set's misses, now in unique order: by ascending key
        s = src[j] >> 32
        e = j + 1
        while e < nm and (src[e] >> 32) == s:
            e += 1
        for q in range(j, e):
            mu[q] = src[q] & low
        if e - j > 32:
            seg = mu[j:e].copy()
            o = np.argsort(ukey[seg])
            for q in range(e - j):
                mu[j + q] = seg[o[q]]
        elif e - j > 1:
            for q in range(j + 1, e):
                x = mu[q]
                kx = ukey[x]
                r = q - 1
                while r >= j and ukey[mu[r]] > kx:
                    mu[r + 1] = mu[r]
                    r -= 1
                mu[r + 1] = x
        j = e


@numba.njit(cache=True)
def _unlock(prev_lines, n_prev, lock_cnt, ways):
    """lxu_cache_locking_counter_decrement: each line of the previous batch, once. Returns 0."""
    for p in range(n_prev):
        ln = prev_lines[p]
        if lock_cnt[ln // ways, ln % ways] > 0:
            lock_cnt[ln // ways, ln % ways] -= 1
    return 0


@numba.njit(cache=True)
def max_batch(starts):
    """The largest batch of `starts` (batch b is [starts[b], starts[b + 1])): scratch size."""
    n = 0
    for b in range(starts.shape[0] - 1):
        n = max(n, starts[b + 1] - starts[b])
    return n


@numba.njit(cache=True, nogil=True)
def _run(keys, tables, ids, by_id, sel, sel_part, occ, starts, ts0, lfu, lock, ways, pairs,
         hash_off, set_base, tbl_sets, cache_key, cache_id, cache_tab, lru_state, counts,
         lock_cnt, mark, line_of, prev_lines, n_prev, out, tout):
    """Replay batches keys[starts[b]:starts[b+1]] (linear keys, their tables, and their ids:
    indices into `counts` and `mark`, one per distinct key) at time steps ts0, ts0 + 1, ...
    With `by_id`, `keys` and `tables` are per id instead (the key and table of id d at [d]):
    the batches are then ids[starts[b]:starts[b+1]] alone.
    State arrays are updated in place; per-batch counters go to out[b], and per-table ones are
    added to tout[table] (TABLE_COUNTERS; an eviction counts for the evicted key's table).
    With `sel` (not empty: an id per id of `ids`, (its number in its part << PART_BITS) | its
    part, as `partition` numbers them; needs `by_id`), a batch keeps only the accesses of part
    `sel_part`, under their numbers: a split replay's part reads the whole trace, and no copy of
    its share is made (branch-free: the part of an access is a coin toss).
    `line_of[d]` is the line (set x ways + way) holding id d, -1 when none: the lookup reads it
    instead of comparing the set's 32 ways (a key is in at most one way of its one set, so both
    find the same way), and every insert and eviction keeps it.
    Returns the number of lines of the last batch still locked (listed in prev_lines)."""
    n_sets_total = cache_key.shape[0]
    max_n = max_batch(starts)
    ukey = np.empty(max_n, np.int64)
    uid = np.empty(max_n, np.int64)
    uset = np.empty(max_n, np.int64)
    uocc = np.empty(max_n, np.int64)
    uline = np.empty(max_n, np.int64)
    utab = np.empty(max_n, np.int64)
    mu = np.empty(max_n, np.int64)
    comp = np.empty(max_n, np.int64)
    comp2 = np.empty(max_n, np.int64)
    cost = np.empty(ways, np.int64)
    slot = np.empty(ways, np.int64)
    masks = np.empty(15, np.int64)
    memo = np.full(2 << MEMO_BITS, -1, np.int64)
    deduped = occ.shape[0] > 0
    selecting = sel.shape[0] > 0 and not deduped
    sbuf = np.empty(max_n if selecting else 0, ids.dtype)
    for b in range(starts.shape[0] - 1):
        ts = ts0 + b
        lo, hi = starts[b], starts[b + 1]
        if deduped:  # the batch's distinct keys (`dedupe_batches`): the part's, under their numbers
            nu = 0
            n = 0
            for i in range(lo, hi):
                v = ids[i]
                keep = (v & PART_MASK) == sel_part
                uid[nu] = v >> PART_BITS
                uocc[nu] = occ[i]
                n += occ[i] * keep
                nu += keep
            if n == 0:
                if lock:
                    n_prev = _unlock(prev_lines, n_prev, lock_cnt, ways)
                continue
            for u in range(nu):
                if u + AHEAD < nu:
                    prefetch(keys, uid[u + AHEAD])
                    prefetch(tables, uid[u + AHEAD])
                d = uid[u]
                k = keys[d]
                t = tables[d]
                ukey[u] = k
                utab[u] = t
                h = np.uint64(k - hash_off[t])
                uset[u] = set_base[t] + np.int64(fmix64(h) % np.uint64(tbl_sets[t]))
        else:
            src = ids
            if selecting:  # the part's accesses of the batch, in order, under their numbers
                m = 0
                for i in range(lo, hi):
                    v = sel[ids[i]]
                    sbuf[m] = v >> PART_BITS
                    m += (v & PART_MASK) == sel_part
                src, lo, hi = sbuf, 0, m
            n = hi - lo
            if n == 0:  # lru_cache_populate returns before counting a call
                if lock:
                    n_prev = _unlock(prev_lines, n_prev, lock_cnt, ways)
                continue
            # 2. unique keys (ids index the per-key arrays; mark = (time step << 32) | unique index)
            nu = 0
            for i in range(lo, hi):
                if i + AHEAD < hi:
                    prefetch(mark, src[i + AHEAD])
                    if by_id:  # a new key's key and table are read at its id too
                        prefetch(keys, src[i + AHEAD])
                        prefetch(tables, src[i + AHEAD])
                d = src[i]
                m = mark[d]
                if (m >> 32) == ts:
                    uocc[m & 0xFFFFFFFF] += 1
                else:
                    mark[d] = (ts << 32) | nu
                    at = d if by_id else i  # (loop-invariant: LLVM unswitches it)
                    k = keys[at]
                    t = tables[at]
                    ukey[nu] = k
                    uid[nu] = d
                    uocc[nu] = 1
                    utab[nu] = t
                    h = np.uint64(k - hash_off[t])
                    uset[nu] = set_base[t] + np.int64(fmix64(h) % np.uint64(tbl_sets[t]))
                    nu += 1
        # 3. LFU counts
        if lfu:
            for u in range(nu):
                counts[uid[u]] += uocc[u]
        # 4. find (LRU: stamp and lock the hits)
        nm = 0
        n_miss = 0
        for u in range(nu):
            if u + AHEAD < nu:
                prefetch(line_of, uid[u + AHEAD])
                if lfu:
                    prefetch(counts, uid[u + AHEAD])
            if not lfu and u + AHEAD // 2 < nu:  # the stamp of a hit a few keys on
                ahead = line_of[uid[u + AHEAD // 2]]
                if ahead >= 0:
                    prefetch(lru_state, ahead)
            ln = line_of[uid[u]]
            uline[u] = ln
            if ln >= 0 and not lfu:
                s, w = ln // ways, ln % ways
                if lock and lru_state[s, w] != ts:
                    lock_cnt[s, w] += 1
                lru_state[s, w] = ts
            if ln < 0:
                mu[nm] = u
                nm += 1
                n_miss += uocc[u]
                tout[utab[u], T_UMISS] += 1
                tout[utab[u], T_MISSES] += uocc[u]
        # 5. misses by set, then insert set by set
        if nm > 1:
            _order_misses(mu, nm, ukey, uset, comp, comp2, n_sets_total)
        n_cum = 0
        n_fill = 0
        n_evict = 0
        j = 0
        while j < nm:
            if j + AHEAD < nm:
                for q in range(0, ways, 8):
                    prefetch(lru_state, uset[mu[j + AHEAD]] * ways + q)
                    prefetch(cache_id, uset[mu[j + AHEAD]] * ways + q)
                    prefetch(cache_tab, uset[mu[j + AHEAD]] * ways + q)
            s = uset[mu[j]]
            e = j + 1
            while e < nm and uset[mu[e]] == s:
                e += 1
            SL = e - j
            if lfu and SL > 1:
                _sort_group_by_count(mu, j, e, uid, counts)
            for w in range(ways):
                slot[w] = w
                if lfu:
                    cost[w] = counts[cache_id[s, w]] if cache_id[s, w] >= 0 else -1
                else:
                    cost[w] = lru_state[s, w]
            if ways == 32 and SL == 1:  # only lane 0 is read
                slot[0], cost[0] = _first_lane32(cost, masks, memo)
            elif ways == 32:
                sort32(cost, slot)
            else:
                _bitonic(pairs, cost, slot)
            n_ins = 0
            for l in range(min(SL, ways)):
                w = slot[l]
                if lfu:
                    u = mu[j + l]
                    if cost[l] > counts[uid[u]]:
                        break
                else:
                    if lock and lock_cnt[s, w] > 0:
                        continue  # cache slot is in use
                    if cost[l] == ts:
                        break
                    u = mu[j + n_ins]
                if cache_id[s, w] != -1:
                    n_evict += 1
                    tout[cache_tab[s, w], T_EVICT] += 1
                    line_of[cache_id[s, w]] = -1
                line_of[uid[u]] = s * ways + w
                cache_key[s, w] = ukey[u]
                cache_id[s, w] = uid[u]
                cache_tab[s, w] = utab[u]
                if not lfu:
                    lru_state[s, w] = ts
                    if lock:
                        lock_cnt[s, w] += 1
                uline[u] = s * ways + w
                n_ins += 1
            n_fill += n_ins
            n_cum += SL - n_ins
            for q in range(j + n_ins, e):  # the misses left without a way
                tout[utab[mu[q]], T_CUMISS] += 1
            j = e
        # 6. lookup after populate (LFU may have replaced a line the batch hit)
        n_cm = 0
        for u in range(nu):
            ln = uline[u]
            if ln >= 0 and line_of[uid[u]] != ln:
                ln = -1
                uline[u] = -1
            t = utab[u]
            tout[t, T_REQ] += uocc[u]
            tout[t, T_UNIQ] += 1
            if ln < 0:
                n_cm += uocc[u]
                tout[t, T_CMISS] += uocc[u]
        # 7. prefetch pipeline: the backward of the previous batch unlocks its lines
        if lock:
            n_prev = _unlock(prev_lines, n_prev, lock_cnt, ways)
            for u in range(nu):
                if uline[u] >= 0:
                    prev_lines[n_prev] = uline[u]
                    n_prev += 1
        o_ = out[b]
        if not lfu:
            o_[N_CALLS] = 1
            o_[N_REQ] = n
            o_[N_UNIQ] = nu
            o_[N_UMISS] = nm
            o_[N_CUMISS] = n_cum
        o_[N_CMISS] = n_cm
        o_[REQ] = n
        o_[UNIQ] = nu
        o_[UMISS] = nm
        o_[CUMISS] = n_cum
        o_[CMISS] = n_cm
        o_[FILLS] = n_fill
        o_[EVICTIONS] = n_evict
        o_[MISSES] = n_miss
    return n_prev


@numba.njit(cache=True, nogil=True)
def dedupe_batches(ids, starts, b0, b1, place, part_id, sv_out, occ_out, ustarts):
    """The distinct keys of each batch b0 <= b < b1 of the trace (`ids` by `starts`), for a
    split replay's parts to share (`_run` with `occ`): in order of first sight in the batch, as
    `_run` finds them, each as its key's part id (`part_id[id]`: number << PART_BITS | part)
    into sv_out, with its accesses in the batch into occ_out; ustarts[b - b0 + 1] = the
    distinct keys so far. Returns the count.
    `place` (int32, one per id, this thread's own, any contents: np.empty) is a sparse set: id
    d was seen in the batch when its place p lies in the batch's output and sv_out[p] == d."""
    nu = 0
    ustarts[0] = 0
    for b in range(b0, b1):
        first = nu
        lo, hi = starts[b], starts[b + 1]
        for i in range(lo, hi):
            if i + AHEAD < hi:
                prefetch(place, ids[i + AHEAD])
            d = ids[i]
            p = np.int64(place[d])
            if p >= first and p < nu and sv_out[p] == d:
                occ_out[p] += 1
            else:
                place[d] = nu
                occ_out[nu] = 1
                sv_out[nu] = d
                nu += 1
        ustarts[b - b0 + 1] = nu
    for u in range(nu):  # ids to part ids (a second pass: no store waits on that read)
        if u + AHEAD < nu:
            prefetch(part_id, sv_out[u + AHEAD])
        sv_out[u] = part_id[sv_out[u]]
    return nu


# -- Python API -----------------------------------------------------------------------------------
def _id_dtype(n_ids: int):
    """The dtype of the lines' key ids (-1 for an empty line): int32 while every id fits."""
    return np.int32 if n_ids < 1 << 31 else np.int64


class BatchCounters:
    """Counters kept per batch (`self.batches`: arrays of [n, len(COUNTER_NAMES)])."""

    def per_batch(self) -> np.ndarray:
        """Counters of every batch so far, [batches, len(COUNTER_NAMES)]."""
        if not self.batches:
            return np.zeros((0, len(COUNTER_NAMES)), dtype=np.int64)
        return np.concatenate(self.batches)

    def totals(self) -> dict:
        return dict(zip(COUNTER_NAMES, (int(v) for v in self.per_batch().sum(axis=0))))


class FbgemmCache(BatchCounters):
    """FBGEMM's training cache over tables of `table_rows` rows (num_embeddings) each.

    Give `cache_sets` or `load_factor` (a share of the tables' total rows, as FBGEMM's
    cache_load_factor). `per_table=True` gives each table its own cache (sets from its own rows,
    at least 1; or `cache_sets`, one for all or one per table), keyed by the table's own row.
    `prefetch_pipeline` (LRU only) locks the lines of each batch until after the next batch's
    insert, as FBGEMM's prefetch_pipeline=True with prefetch(b + 1) before backward(b).
    `step(table_ids, rows)` runs one batch and returns its counters (a dict, COUNTER_NAMES);
    `totals()` sums all batches so far; `table_counts` holds the per-table counters
    (TABLE_COUNTERS).
    """

    def __init__(self, table_rows, cache_sets: int | None = None, load_factor: float | None = None,
                 policy: str = "lru", ways: int = 32, prefetch_pipeline: bool = False,
                 per_table: bool = False, n_ids: int | None = None,
                 record_cache_miss_counter: bool = False, table_groups=None,
                 state: bool = True):
        # RecordCacheMetrics.record_cache_miss_counter: an extra lookup before each populate
        # (`_prefetch`), read by `fbgemm_result` from the per-batch counters (no kernel change)
        self.record_cache_miss_counter = bool(record_cache_miss_counter)
        self.table_rows = np.asarray(table_rows, dtype=np.int64).reshape(-1)
        if self.table_rows.size == 0 or (self.table_rows < 1).any():
            raise CachesimError(f"table_rows {self.table_rows.tolist()}: every table needs at "
                                "least one row (its num_embeddings)")
        if policy not in POLICIES:
            raise CachesimError(f"cache policy {policy!r}: FBGEMM's training cache is 'lru' or "
                                "'lfu'")
        if prefetch_pipeline and policy != "lru":
            raise CachesimError("prefetch_pipeline needs policy 'lru': FBGEMM asserts 'Only LRU "
                                "cache policy supports prefetch_pipeline'")
        self.pairs = bitonic_pairs(ways)
        self.ways, self.policy = int(ways), policy
        self.prefetch_pipeline, self.per_table = bool(prefetch_pipeline), bool(per_table)
        if (cache_sets is None) == (load_factor is None):
            raise CachesimError("give the cache size as cache_sets or load_factor, not both")
        if load_factor is not None and not float(load_factor) > 0:
            raise CachesimError(f"load_factor {load_factor}: must be > 0 (a share of the "
                                "tables' rows, e.g. 0.05)")
        T = self.table_rows.size
        if cache_sets is not None:
            cache_sets = np.atleast_1d(np.asarray(cache_sets, dtype=np.int64)).reshape(-1)
            if cache_sets.size == 0 or (cache_sets < 1).any():
                raise CachesimError(f"cache_sets {cache_sets.tolist()}: every cache needs at "
                                    "least 1 set")
        # the cache of each table: one for all, one per table, or one per TBE op (groups.py)
        if per_table and table_groups is not None:
            raise CachesimError("give per_table or table_groups, not both (per_table is one "
                                "group per table)")
        if table_groups is not None:
            raw = np.asarray(table_groups)
            if isinstance(table_groups, str) or not np.issubdtype(raw.dtype, np.integer):
                raise CachesimError(f"table_groups {table_groups!r}: give one whole group "
                                    "number per table, in table order (a spec such as "
                                    "'0/1-3' is read by simulate.groups.resolve_groups)")
            groups = raw.astype(np.int64).reshape(-1)
            n_g = int(groups.max()) + 1 if groups.size else 0
            if (groups.shape[0] != T or (groups < 0).any()
                    or np.unique(groups).shape[0] != n_g):
                raise CachesimError(f"table_groups {groups.tolist()}: give one group number per "
                                    f"table ({T}), numbered 0.. with none left empty")
        else:
            groups = np.arange(T) if per_table else np.zeros(T, dtype=np.int64)
        self.groups = groups
        self.n_groups = G = int(groups.max()) + 1
        if cache_sets is not None:
            if cache_sets.size not in (1, G):
                raise CachesimError(f"cache_sets: {cache_sets.size} set counts for {G} caches; "
                                    "give one, or one per cache (per table with per_table=True)")
        self.offsets = np.zeros(T, dtype=np.int64)
        np.cumsum(self.table_rows[:-1], out=self.offsets[1:])
        self.total_rows = int(self.table_rows.sum())
        group_rows = np.bincount(groups, weights=self.table_rows, minlength=G).astype(np.int64)
        if cache_sets is not None:
            sets = np.broadcast_to(cache_sets, (G,)).copy()
        else:
            sets = np.array([fbgemm_cache_sets(r, load_factor, ways) for r in group_rows],
                            dtype=np.int64)
        base = np.zeros(G, dtype=np.int64)
        np.cumsum(sets[:-1], out=base[1:])
        # a key within its op: the row + the rows of the op's earlier tables
        within = np.zeros(T, dtype=np.int64)
        seen = np.zeros(G, dtype=np.int64)
        for t in range(T):
            within[t] = seen[groups[t]]
            seen[groups[t]] += self.table_rows[t]
        self.group_sets = sets
        self.tbl_sets = sets[groups]
        self.set_base = base[groups]
        self.hash_off = self.offsets - within
        self.n_sets = int(sets.sum())
        if policy == "lfu" and int(self.tbl_sets.max()) >= 2 ** 24 - 1:
            raise CachesimError(f"{int(self.tbl_sets.max())} sets: FBGEMM's LFU cache needs "
                                "fewer than 2^24 - 1 sets; lower the load factor")
        S, W = self.n_sets, self.ways
        self._key_ids = None if n_ids is not None or self.total_rows <= DIRECT_IDS_MAX else {}
        self.n_ids = (self.total_rows if n_ids is None and self._key_ids is None
                      else int(n_ids or 1024))
        self._external_ids = n_ids is not None
        self.n_prev = 0
        self.timestep = FIRST_TIMESTEP
        self.batches: list[np.ndarray] = []
        self.table_counts = np.zeros((T, len(TABLE_COUNTERS)), dtype=np.int64)
        if state:  # (without: the geometry alone, as a split replay's template holds it)
            self._allocate_state()

    def _ensure_state(self) -> None:
        """The lines and per-key arrays of a cache built without them (`state=False`)."""
        if not hasattr(self, "cache_id"):
            self._allocate_state()

    def _allocate_state(self) -> None:
        """The cache's lines and per-key arrays, empty."""
        S, W = self.n_sets, self.ways
        # per line: key 8, table 4, time step 4, lock 4, id 4-8, previous line 8 bytes
        check_state_fits(S * W * 36 + self.n_ids * 24,
                         f"an FBGEMM cache of {S:,} sets of {W} ways ({S * W:,} rows)",
                         "give a smaller --size (a share such as 5% sizes it to the trace)")
        self.cache_key = np.full((S, W), -1, dtype=np.int64)   # lxu_cache_state
        # the kernel finds a key by its id (one per key): int32 halves the bytes a lookup reads
        self.cache_tab = np.zeros((S, W), dtype=np.int32)      # table of each line's key
        # lxu_state (LRU): FBGEMM's time steps, held as int32 (half the bytes a hit writes and a
        # miss reads): the batch marks already hold a time step in 31 bits (`run_batches`)
        self.lru_state = np.zeros((S, W), dtype=np.int32)
        self.lock_cnt = np.zeros((S, W), dtype=np.int32)       # lxu_cache_locking_counter
        # per-key arrays (LFU counts, batch marks) are indexed by an id per distinct key: the
        # row itself when the tables are small enough (as FBGEMM's lfu_state), else ids given
        # out in order of first sight (`_key_ids`); replay_fbgemm passes the trace's dense ids
        self.cache_id = np.full((S, W), -1, dtype=_id_dtype(self.n_ids))
        self.counts = np.zeros(self.n_ids, dtype=np.int64)     # lxu_state (LFU), per key
        self.mark = np.zeros(self.n_ids, dtype=np.int64)
        self.line_of = np.full(self.n_ids, -1, dtype=_id_dtype(S * W))  # the line of each id
        self.prev_lines = np.empty(S * W, dtype=np.int64)

    @property
    def capacity_rows(self) -> int:
        return self.n_sets * self.ways

    def run_batches(self, keys, tables, ids, starts, by_id: bool = False,
                    select=None, occ=None) -> np.ndarray:
        """Replay the batches ids[starts[b]:starts[b+1]] (their linear keys and tables: keys and
        tables, one per access, or with `by_id` one per id); their counters, one row a batch.
        `select` (part ids, part; with `by_id`): only that part's accesses, under their
        numbers within it (`_run`). With `occ` too, the batches are already deduplicated
        (`dedupe_batches`): ids[i] is a distinct key's part id, occ[i] its accesses in the
        batch."""
        n_b = starts.shape[0] - 1
        out = np.zeros((n_b, len(COUNTER_NAMES)), dtype=np.int64)
        if n_b == 0:
            return out
        self._ensure_state()
        if self.timestep + n_b >= STAMP32_END:
            raise CachesimError(f"{self.timestep - FIRST_TIMESTEP + n_b:,} batches: cachesim's "
                                "FBGEMM cache numbers batches in 31 bits (2,147,483,645 at "
                                "most); replay the trace in parts")
        if select is not None and not by_id:
            raise ValueError("select needs by_id (the part's keys and tables by number)")
        sel, sel_part = select if select is not None else (_NO_SELECT, 0)
        if occ is not None and (select is None or occ.shape != ids.shape):
            raise ValueError("occ needs select, and one count per distinct key")
        # (no distinct keys at all: every batch is empty, which the kernel reads alike)
        self.n_prev = _run(keys, tables, ids, bool(by_id), sel, np.int64(sel_part),
                           _NO_OCC if occ is None else occ, starts,
                           np.int64(self.timestep),
                           self.policy == "lfu", self.prefetch_pipeline, self.ways, self.pairs,
                           self.hash_off, self.set_base, self.tbl_sets, self.cache_key,
                           self.cache_id, self.cache_tab, self.lru_state, self.counts,
                           self.lock_cnt, self.mark, self.line_of, self.prev_lines,
                           np.int64(self.n_prev), out,
                           self.table_counts)
        self.timestep += n_b
        self.batches.append(out)
        return out

    def linearize(self, table_ids, rows) -> tuple[np.ndarray, np.ndarray]:
        """(linear keys, tables) of a batch, checking each row against its table."""
        tables = np.ascontiguousarray(table_ids, dtype=np.int64).reshape(-1)
        rows = np.ascontiguousarray(rows, dtype=np.int64).reshape(-1)
        if tables.shape != rows.shape:
            raise CachesimError(f"a batch has {tables.size} table ids but {rows.size} rows; "
                                "give one table id per row")
        T = self.table_rows.size
        if tables.size and (tables.min() < 0 or tables.max() >= T):
            raise CachesimError(f"table id {int(tables.max() if tables.max() >= T else tables.min())}"
                                f" is out of range: the cache has {T} tables (0..{T - 1})")
        bad = np.flatnonzero((rows < 0) | (rows >= self.table_rows[tables]))
        if bad.size:
            i = int(bad[0])
            raise CachesimError(f"row {int(rows[i])} (batch position {i}) is outside table "
                                f"{int(tables[i])}, which has {int(self.table_rows[tables[i]])} "
                                "rows; give the tables' num_embeddings as table_rows")
        return rows + self.offsets[tables], tables

    def _ids_of(self, keys: np.ndarray) -> np.ndarray:
        """Id of each key: the key itself, or (huge tables) a number given at first sight,
        growing the per-key arrays as needed."""
        if self._key_ids is None:
            return keys
        uniq, inv = np.unique(keys, return_inverse=True)
        table = self._key_ids
        ids = np.fromiter((table.setdefault(int(k), len(table)) for k in uniq.tolist()),
                          dtype=np.int64, count=uniq.size)
        if len(table) > self.n_ids:
            grow = max(len(table), 2 * self.n_ids)
            for name, fill in (("counts", 0), ("mark", 0), ("line_of", -1)):
                old = getattr(self, name)
                arr = np.full(grow, fill, dtype=old.dtype)
                arr[:self.n_ids] = old
                setattr(self, name, arr)
            self.n_ids = grow
            self.cache_id = self.cache_id.astype(_id_dtype(grow))
        return ids[inv.reshape(-1)]

    def step(self, table_ids, rows) -> dict:
        """Run one batch (one prefetch) and return its counters."""
        keys, tables = self.linearize(table_ids, rows)
        self._ensure_state()
        if self._external_ids:
            raise CachesimError("step() needs a cache built without n_ids (it numbers the keys "
                                "itself)")
        out = self.run_batches(keys, tables, self._ids_of(keys), np.array([0, keys.size], np.int64))
        return dict(zip(COUNTER_NAMES, (int(v) for v in out[0])))



@numba.njit(cache=True)
def _linear_keys(table, row, offsets, table_rows, out):
    """out[i] = row[i] + offsets[table[i]] (FBGEMM's linearisation on the cache's table_rows), in
    one pass; returns the first access whose row is outside its table, -1 if none."""
    for i in range(row.shape[0]):
        t = table[i]
        r = row[i]
        if r < 0 or r >= table_rows[t]:
            return i
        out[i] = r + offsets[t]
    return -1


def feed_arrays(trace, cache: "FbgemmCache"):
    """(linear keys, tables, dense ids, batch starts) of `trace` as `cache.run_batches` takes them; a
    CachesimError naming the access when a row is outside its table."""
    trace.require_nonempty()
    starts = trace.batch_starts
    tables = np.ascontiguousarray(trace.table)
    if tables.dtype not in (np.int32, np.int64):
        tables = tables.astype(np.int64)
    keys = np.empty(len(trace), dtype=np.int64)
    bad = int(_linear_keys(tables, np.ascontiguousarray(trace.row, dtype=np.int64),
                           cache.offsets, np.asarray(trace.table_rows, dtype=np.int64), keys))
    if bad >= 0:
        raise CachesimError(f"{trace.source or 'the trace'}: access {bad} has row "
                            f"{int(trace.row[bad])}, outside table {int(trace.table[bad])}'s "
                            f"{int(trace.table_rows[trace.table[bad]])} rows (table_rows); "
                            "FBGEMM needs every row in [0, num_embeddings)")
    ids = np.ascontiguousarray(trace.dense_ids)  # int32: the kernel reads it as is
    return keys, tables, ids, starts


def id_keys(trace, cache: "FbgemmCache") -> np.ndarray:
    """FBGEMM's linear key of each dense id of `trace` (its row + the rows of `cache`'s earlier
    tables)."""
    if np.array_equal(cache.offsets, trace.table_offsets):
        return trace.distinct_keys  # the trace's linearisation is FBGEMM's
    # a table of 0 rows (FBGEMM's tables have at least one), or one table
    kt = trace.key_table
    return cache.offsets[kt] + (trace.distinct_keys - trace.table_offsets[kt])


def row_outside_its_table(trace) -> bool:
    """Whether a key's row lies outside its table's rows (checked per distinct key: the trace
    checks its rows only where it linearises several tables)."""
    return bool(_any_row_outside(trace.distinct_keys, trace.key_table,
                                 np.asarray(trace.table_offsets, np.int64),
                                 np.asarray(trace.table_rows, np.int64)))


@numba.njit(cache=True, nogil=True)
def _any_row_outside(keys, key_table, offsets, table_rows):
    for d in range(keys.shape[0]):
        t = key_table[d]
        r = keys[d] - offsets[t]
        if r < 0 or r >= table_rows[t]:
            return True
    return False


def feed_trace(trace, cache: "FbgemmCache", bar=None) -> None:
    """Run every batch of `trace` through `cache`, about 4M accesses a kernel call. A training
    cache reads each new key's linear key and table by its dense id (`run_batches(...,
    by_id=True)`): no per-access key column to build, rows checked once per distinct key."""
    if type(cache) is FbgemmCache:
        if row_outside_its_table(trace):
            feed_arrays(trace, cache)  # raises the error that names the first such access
        keys, tables = id_keys(trace, cache), trace.key_table
        ids, starts, by_id = np.ascontiguousarray(trace.dense_ids), trace.batch_starts, True
    else:
        keys, tables, ids, starts = feed_arrays(trace, cache)
        by_id = False
    n_b = starts.shape[0] - 1
    per_chunk = max(1, (1 << 22) // max(1, len(trace) // n_b))
    for i in range(0, n_b, per_chunk):
        j = min(n_b, i + per_chunk)
        a, z = starts[i], starts[j]
        if by_id:
            cache.run_batches(keys, tables, ids[a:z], starts[i:j + 1] - a, by_id=True)
        else:
            cache.run_batches(keys[a:z], tables[a:z], ids[a:z], starts[i:j + 1] - a)
        if bar is not None:
            bar.update(int(z - a))


def replay_fbgemm(trace, policy: str = "lru", load_factor: float | None = None,
                  sets: int | None = None, *, per_table: bool = False,
                  prefetch_pipeline: bool = False, ways: int = 32) -> dict:
    """Replay `trace` (with batches) through FBGEMM's training cache.

    The tables' sizes are `trace.table_rows` (num_embeddings); `load_factor` is a share of their
    total rows (per table with `per_table`), or give `sets`. Returns {"per_batch": {name: array},
    "total": {name: int}, "n_sets", "ways", "capacity_rows", "policy"}.
    """
    cache = FbgemmCache(trace.table_rows, cache_sets=sets, load_factor=load_factor, policy=policy,
                        ways=ways, prefetch_pipeline=prefetch_pipeline, per_table=per_table,
                        n_ids=trace.n_distinct)
    feed_trace(trace, cache)
    pb = cache.per_batch()
    return {"policy": policy, "n_sets": cache.n_sets, "ways": cache.ways,
            "capacity_rows": cache.capacity_rows,
            "per_batch": {nm: pb[:, c] for c, nm in enumerate(COUNTER_NAMES)},
            "total": cache.totals()}


# -- the batch replay's `cache_model="fbgemm"` ----------------------------------------------------
class TableRowsInferredWarning(UserWarning):
    """FBGEMM's cache geometry was built on table sizes inferred from the largest row seen."""


def table_rows_warning(trace) -> str | None:
    """The warning to show when `trace`'s num_embeddings are inferred (None when given)."""
    if not getattr(trace, "table_rows_inferred", False):
        return None
    return (f"{trace.source or 'the trace'} has no table sizes; num_embeddings inferred from the "
            "largest row seen per table; pass --table-rows N1,N2,... or a Parquet file with "
            "metadata")


def with_table_rows(trace, table_rows):
    """`trace` with the tables' num_embeddings set to `table_rows` (one per table, each above
    the table's largest row), no longer inferred; keys linearise on them from then on."""
    import dataclasses

    from ..trace import rows_per_table
    rows = np.asarray(table_rows, dtype=np.int64).reshape(-1)
    if rows.shape[0] != trace.n_tables:
        raise CachesimError(f"--table-rows gives {rows.shape[0]} tables but "
                            f"{trace.source or 'the trace'} has {trace.n_tables}; give one "
                            "num_embeddings per table, in table order")
    seen = rows_per_table(trace.table, trace.row, trace.n_tables, trace.table_names)
    bad = np.flatnonzero(seen > rows)
    if bad.size:
        t = int(bad[0])
        raise CachesimError(f"--table-rows: table {trace.table_names[t]} has {int(rows[t]):,} "
                            f"rows, but {trace.source or 'the trace'} uses row {int(seen[t]) - 1:,}"
                            " of it; give at least the largest row + 1")
    return dataclasses.replace(trace, table_rows=rows, table_rows_inferred=False)


def check_fbgemm_ways(ways, warp=None) -> int:
    """The ways of FBGEMM's cache: the warp size (32, or 64 on AMD CDNA with warp=64); `ways` may
    be 32 (the default) or the warp size. CachesimError naming both options otherwise."""
    if warp is not None and int(warp) not in (32, 64):
        raise CachesimError(f"--warp {warp}: FBGEMM's cache has one way per warp lane; use 32 "
                            "(NVIDIA) or 64 (AMD CDNA)")
    if ways is None or int(ways) not in (32, 64) or (warp is not None and int(ways) not in
                                                      (32, int(warp))):
        shown = "full" if ways is None else ways
        raise CachesimError(f"--ways {shown} with --cache-model fbgemm: FBGEMM's cache has one "
                            "way per warp lane, 32 (or 64 with --warp 64, AMD CDNA); use "
                            "--cache-model ideal for other ways")
    return int(warp) if warp is not None else int(ways)


def fbgemm_geometry(trace, capacity, ways: int = 32, per_table: bool = False,
                    grouped: bool = False):
    """(FbgemmCache size arguments, the size as text, the load factor or None) for `capacity`.

    - a share ('5%') is FBGEMM's cache_load_factor: of the tables' total rows (num_embeddings),
      or of each table's rows with `per_table` (of each group's with `grouped`);
    - rows (1000) are lines: ceil(rows / ways) sets (at least 1); with `per_table` (or
      `grouped`), the load factor rows / total rows applied to every table (group), as TorchRec
      gives each table one;
    - bytes (128MiB) are lines of fp32 rows at the widest table's dim (FBGEMM's cache rows are
      max_D wide), whole sets that fit (at least 1); with `per_table` (`grouped`), the load
      factor that spends the bytes on every table alike;
    - a list (with `per_table`): rows per table, ceil(rows / ways) sets each.
    """
    from ..sizes import parse_size
    if grouped and isinstance(capacity, (list, tuple, np.ndarray)):
        raise CachesimError("one row count per table needs per-table caches (--per-table), not "
                            "--table-groups; give one size (a share, rows or bytes)")
    split = per_table or grouped
    rows = np.asarray(trace.table_rows, dtype=np.int64)
    total = int(rows.sum())
    if isinstance(capacity, (list, tuple, np.ndarray)):
        caps = np.asarray(capacity, dtype=np.int64).reshape(-1)
        if not per_table:
            raise CachesimError("one row count per table needs per-table caches (per_table=True)")
        if caps.shape[0] != trace.n_tables or (caps < 1).any():
            raise CachesimError(f"per-table capacities: got {caps.size} row counts for "
                                f"{trace.n_tables} tables; give one per table, each at least 1")
        sets = np.maximum(1, -(-caps // ways))
        return {"cache_sets": sets}, ",".join(str(int(c)) for c in caps), None
    cap = parse_size(capacity)
    if cap.kind == "fraction":
        return {"load_factor": cap.value}, cap.text, cap.value
    if cap.kind == "rows":
        if split:
            lf = int(cap.value) / max(1, total)
            return {"load_factor": lf}, cap.text, lf
        return {"cache_sets": max(1, -(-int(cap.value) // ways))}, cap.text, None
    row_bytes = 4 * np.asarray(trace.table_dims, dtype=np.int64)
    if split:
        lf = int(cap.value) / max(1, int((rows * row_bytes).sum()))
        return {"load_factor": lf}, cap.text, lf
    lines = int(cap.value) // int(row_bytes.max())
    return {"cache_sets": max(1, lines // ways)}, cap.text, None


def replay_batch_fbgemm(trace, policy: str = "lru", capacity="5%", ways=32, *,
                        per_table: bool = False, inference: bool = False,
                        prefetch_pipeline: bool = False, warp: int | None = None,
                        progress: bool = False, record_cache_miss_counter: bool = False,
                        table_groups=None):
    """`replay_batch(..., cache_model="fbgemm")`: `trace` through FBGEMM's training cache,
    wrapped in a `Result` (mode 'batch', cache_model 'fbgemm'). `table_groups` says which tables
    share a cache (`groups.resolve_groups`: 'torchrec', 'table', '0-12/13-25', or a group per
    table); None: one cache for all, or one per table with `per_table`.

    The geometry is `fbgemm_geometry`'s, on `trace.table_rows` as num_embeddings (a
    `TableRowsInferredWarning` when they were inferred). hits/misses count accesses whose row
    was cached when their batch began, as in the ideal model. The FBGEMM-named fields
    (`num_calls` ... `num_conflict_misses`) are FBGEMM's uvm cache stats exactly (under LFU
    FBGEMM fills only num_conflict_misses); `calls`, `unique_misses`, `conflict_unique_misses`,
    `evictions` and the rest are cachesim's own counts, defined alike for LRU and LFU (under LRU
    they equal FBGEMM's).
    """
    import time

    from ..progress import bar as progress_bar
    t0 = time.perf_counter()
    cache, size_text, load_factor = fbgemm_cache_for(trace, policy, capacity, ways,
                                                     per_table=per_table, warp=warp,
                                                     prefetch_pipeline=prefetch_pipeline,
                                                     stacklevel=4,
                                                     record_cache_miss_counter=record_cache_miss_counter,
                                                     table_groups=table_groups)
    bar = progress_bar(len(trace), f"{cache.policy} {size_text} fbgemm", progress, unit="req",
                       unit_scale=True, delay=2.0)
    feed_trace(trace, cache, bar)
    if bar is not None:
        bar.close()
    return fbgemm_result(trace, cache, size_text, load_factor, time.perf_counter() - t0,
                         inference=inference)


def fbgemm_cache_for(trace, policy, capacity, ways, *, per_table=False, warp=None,
                     prefetch_pipeline=False, stacklevel=3, record_cache_miss_counter=False,
                     table_groups=None, state: bool = True):
    """(an empty FbgemmCache for `trace`, the size as text, the load factor or None): the
    geometry of `replay_batch_fbgemm` (its checks, and its TableRowsInferredWarning)."""
    from .groups import resolve_caches

    from ..policies import get_policy
    pol = policy if hasattr(policy, "name") else get_policy(str(policy))
    name = pol.name
    if name not in POLICIES:
        if getattr(pol, "batch_rule", None) is not None:  # a batch rule of cachesim's own
            raise CachesimError(f"policy {name!r}: FBGEMM's training cache is lru or lfu; use "
                                f"--cache-model ideal to replay {name}'s batch rule")
        raise CachesimError(f"batch mode supports lru and lfu, FBGEMM's two; use mode=\"access\" "
                            f"for {name}")
    if prefetch_pipeline and name != "lru":
        raise CachesimError("--prefetch-pipeline needs policy lru: FBGEMM asserts 'Only LRU cache "
                            "policy supports prefetch_pipeline'")
    w = check_fbgemm_ways(ways, warp)
    per_table, groups = resolve_caches(table_groups, trace, prefetch_pipeline, per_table)
    size_kw, size_text, load_factor = checked_geometry(trace, capacity, w, per_table,
                                                       stacklevel + 1, grouped=groups is not None)
    cache = FbgemmCache(np.maximum(trace.table_rows, 1), policy=name, ways=w,
                        prefetch_pipeline=prefetch_pipeline, per_table=per_table,
                        n_ids=trace.n_distinct, record_cache_miss_counter=record_cache_miss_counter,
                        table_groups=groups, state=state, **size_kw)
    return cache, size_text, load_factor


def checked_geometry(trace, capacity, ways: int, per_table: bool, stacklevel: int = 2,
                     grouped: bool = False):
    """`fbgemm_geometry` of a non-empty trace, warning (TableRowsInferredWarning, at the
    caller's caller's `stacklevel`) when its num_embeddings were inferred."""
    import warnings
    trace.require_nonempty()
    msg = table_rows_warning(trace)
    if msg:
        warnings.warn(msg, TableRowsInferredWarning, stacklevel=stacklevel + 1)
    return fbgemm_geometry(trace, capacity, ways, per_table, grouped)


def fbgemm_result(trace, cache: FbgemmCache, size_text: str, load_factor, seconds: float = 0.0,
                  inference: bool = False):
    """The `Result` (mode 'batch', cache_model 'fbgemm') of `cache`'s counters over `trace`."""
    from .result import batch_result_of
    tot = cache.totals()
    extra = {}
    several = cache.per_table or cache.n_groups > 1  # several TBE ops
    if cache.record_cache_miss_counter:
        extra = record_cache_miss_counter(cache.per_batch(), several)
        tot["num_conflict_misses"] += extra["lookup_misses"]
    per, groups = {}, None
    if several:  # each table's cache (its own, or its group's)
        per = {"n_sets": cache.tbl_sets.tolist(),
               "n_lines": (cache.tbl_sets * cache.ways).tolist()}
    if cache.n_groups > 1 and not cache.per_table:
        from .groups import groups_text
        per["group"] = cache.groups.tolist()
        groups = groups_text(cache.groups, trace.table_names)
    return batch_result_of(
        trace, TABLE_COUNTERS, cache.table_counts, policy=cache.policy, size=size_text,
        capacity=cache.capacity_rows, ways=cache.ways, seconds=seconds, n_sets=cache.n_sets,
        n_lines=cache.capacity_rows, per_table_caches=cache.per_table, inference=bool(inference),
        calls=int(np.count_nonzero(cache.per_batch()[:, REQ])), cache_model="fbgemm",
        load_factor=load_factor, prefetch_pipeline=cache.prefetch_pipeline,
        table_rows_inferred=bool(trace.table_rows_inferred),
        **{nm: tot[nm] for nm in FBGEMM_COUNTERS}, per_table=per,
        record_cache_miss_counter=cache.record_cache_miss_counter,
        cache_miss_counter=extra.get("cache_miss_counter"), table_groups=groups)


def record_cache_miss_counter(per_batch: np.ndarray, several: bool) -> dict:
    """What FBGEMM's `RecordCacheMetrics(record_cache_miss_counter=True)` adds, from the per-batch
    counters (`split_table_batched_embeddings_ops_training.py`, `_prefetch`): before each
    populate it runs `lxu_cache_lookup` with the uvm cache stats, so `num_conflict_misses` also
    counts the batch's accesses not cached before the populate (`lxu_cache.cu:
    lxu_cache_lookup_kernel` adds `n_indices - n_hits`): our `misses`, under LRU and LFU alike.
    `_update_cache_miss_counter` keeps `cache_miss_counter` = [forwards with a unique miss,
    unique misses] from that lookup; with `several` TBE ops (one per table, or per group) the
    forward count is per op and is not kept here (None)."""
    lookup = int(per_batch[:, MISSES].sum())
    umiss = per_batch[:, UMISS]
    counter = None if several else [int(np.count_nonzero(umiss)), int(umiss.sum())]
    return {"lookup_misses": lookup, "cache_miss_counter": counter}
