"""Batch replay: FBGEMM's embedding-cache semantics, one training batch at a time.

An embedding cache does not see single accesses: each training step looks up a whole batch of
rows, deduplicates it, and fills the cache for the batch's misses set by set. The rules
(README, "Embedding-cache semantics"), for batch b, with LRU and LFU as the two built-in
`policies.BatchRule`s: any registered policy that declares one replays here, "LFU" below
standing for order 'count' (and admission 'count-at-least'), "an LRU hit stamps" for
`stamp_on_hit`, "LRU" for order 'stamp':

1. keys are linearised over tables (`trace.keys`); kernels index per-row arrays by dense id;
2. a cache of C rows and W ways has S = ceil(C / W) sets (W above C is lowered to C; W = C is
   fully associative); the set of a key is fmix64(key) mod S; line = set * W + way;
3. LFU first adds the batch's accesses to each row's count (every row, cached or not); then each
   unique key is looked up and an LRU hit stamps its line with b;
4. per set, the missing keys in ascending key order (LFU: descending count, ties ascending key)
   take the set's empty lines (lowest way first), then the lines whose key the batch does not use,
   oldest stamp first (LFU: lowest count first, ties oldest stamp, then lowest way; LRU ties:
   lowest way); under LFU a key takes a valid line only if its count is at least the count of
   the line's key. A key that gets no line is a conflict unique miss; a taken line gets stamp b;
   a valid key pushed out is an eviction;
5. `conflict_misses` counts the batch's accesses whose key is still not cached after step 4;
   `misses` counts the batch's accesses whose key was not cached before step 2 (every access to
   a unique miss), so hits = requested_indices - misses, per access as in access mode.

Per-table caches (`per_table=True`) give each table its own cache of C_t rows, S_t sets and
W_t = min(W, C_t) ways; lines are numbered table after table.

`BatchCache` holds all the state in arrays, so `step(ids)` can be called once per training step
(the executor does) and `replay_batch(trace)` is exactly `step` on every batch in order.
"""
from __future__ import annotations

import time
from collections import namedtuple
from dataclasses import dataclass

import numba
import numpy as np

from ..errors import CachesimError
from ..hashing import fmix64, set_geometry
from ..numba_util import prefetch
from .result import (DEFAULT_WAYS, FBGEMM_MODELS, INFERENCE_CACHE_MODEL, Result,
                     batch_result_of, resolve_cache_model)
from ..sizes import check_state_fits, parse_size

# counters per table: columns of `BatchCache.counters`, defined once in policies/base.py
from ..policies.base import (BATCH_COUNTER_NAMES as COUNTER_NAMES,  # noqa: E402
                             BATCH_EVICTIONS as EVICTIONS, BATCH_MISSES as MISSES,
                             CONFLICT_MISSES, CONFLICT_UNIQUE_MISSES, REQUESTED, UNIQUE,
                             UNIQUE_MISSES)

#: A policy's `BatchRule` as the kernel takes it (`kernel_rule`): order the set's lines by the
#: key's count (else by stamp), restamp a line on a hit, admit a miss only at a count at least
#: the line key's.
KernelRule = namedtuple("KernelRule", "by_count stamp_on_hit admit_by_count")
#: A cache's arrays (the KR_* and per-line comments below); `step` and `run` resume from them.
BatchState = namedtuple("BatchState", "keyrec count set_start line_id line_stamp line_used "
                                      "line_count set_mark set_head")
#: Per-step working arrays (`_batch_step`'s docstring says which hold its output).
Scratch = namedtuple("Scratch", "uniq ucnt ukey utab uslot inverse was_hit miss_next touched "
                                "mid mkey mcnt ev_slot ev_id fill_slot fill_id ckey ccnt way_buf")


# -- kernels -------------------------------------------------------------------------------------
# Per-key state is one int64 row per dense id, so that a batch touches one memory line per key
# (a batch's keys are mostly cold rows of large tables):
KR_MARK = 0   # (last batch that used the key << 32) | its position among that batch's unique keys
KR_SLOT = 1   # line that last received the key, -1 if none; the key is cached there only while
              # line_id still names it (an eviction does not touch the evicted key's row)
KR_SET = 2    # (set << TABLE_BITS) | table
KR_KEY = 3    # linearised key (misses are served in key order)
# Per-line state, one array per field, indexed by line: line_id = (dense id << TABLE_BITS) | table
# (-1 when empty), line_stamp (batch of the last LRU hit or fill, 0 when empty), line_used (last
# batch that used the line's key), line_count (LFU: count of the line's key, -1 when empty).
TABLE_BITS = 20
_TABLE_MASK = np.int64((1 << TABLE_BITS) - 1)
_POS_MASK = np.int64(0xFFFFFFFF)
_NONE = np.int64(np.iinfo(np.int64).max)
_SMALL = 32          # up to this many misses in a set, insertion sort instead of argsort
_SMALL_SET = 64      # up to this many ways, pick each line by a min scan instead of a sort
_AHEAD = 32          # prefetch the row of the key this many accesses ahead


@numba.njit(cache=True)
def _order_misses(mid, mkey, mcnt, n, lfu):
    """Sort the set's misses (parallel arrays: unique index, key, LFU count; first n) into the
    order they are served: ascending key (LFU: descending count, ties ascending key)."""
    if n <= _SMALL:
        for i in range(1, n):
            xi, xk, xc = mid[i], mkey[i], mcnt[i]
            j = i - 1
            while j >= 0:
                if lfu and xc != mcnt[j]:
                    before = xc > mcnt[j]
                else:
                    before = xk < mkey[j]
                if not before:
                    break
                mid[j + 1], mkey[j + 1], mcnt[j + 1] = mid[j], mkey[j], mcnt[j]
                j -= 1
            mid[j + 1], mkey[j + 1], mcnt[j + 1] = xi, xk, xc
        return
    order = np.argsort(mkey[:n])  # keys are distinct: any sort is exact
    if lfu:
        neg = np.empty(n, dtype=np.int64)
        for i in range(n):
            neg[i] = -mcnt[order[i]]
        order = order[np.argsort(neg, kind="mergesort")]
    ids, keys, cnts = mid[:n].copy(), mkey[:n].copy(), mcnt[:n].copy()
    for i in range(n):
        mid[i], mkey[i], mcnt[i] = ids[order[i]], keys[order[i]], cnts[order[i]]


@numba.njit(cache=True, inline="always")  # called per miss: no call overhead
def _candidate_lines(line_stamp, line_used, line_count, l0, nw, b, way_bits, lfu, ckey, ccnt):
    """Sort keys of the set's lines l0..l0+nw-1, by way: ckey = (stamp << way_bits) | way (an
    empty line has stamp 0, so it comes first); LFU also ccnt = the line key's count (-1 for an
    empty line). A line whose key the batch uses gets _NONE in both (it may not be taken).
    Branch-free, so that it vectorises."""
    for w in range(nw):
        ln = l0 + w
        used = line_used[ln] == b
        ckey[w] = _NONE if used else (np.int64(line_stamp[ln]) << way_bits) | w
        if lfu:
            ccnt[w] = _NONE if used else line_count[ln]


@numba.njit(cache=True, inline="always")  # called per miss: no call overhead
def _next_line(ckey, ccnt, n, lfu, way_mask):
    """Way of the next line to take (smallest (ccnt, ckey) under LFU, smallest ckey under LRU),
    or -1 when no line is left."""
    if lfu:
        best, bc, bk = -1, _NONE, _NONE
        for w in range(n):
            c = ccnt[w]
            if c < bc or (c == bc and ckey[w] < bk):
                best, bc, bk = w, c, ckey[w]
        return best
    m = _NONE
    for w in range(n):  # a min reduction: vectorised
        v = ckey[w]
        m = v if v < m else m
    return -1 if m == _NONE else m & way_mask


@numba.njit(cache=True, inline="always")  # called per set with misses
def _oldest_ways(ckey, n, k, out, way_mask):
    """LRU: the ways of the (up to) k smallest takeable ckeys of the set, smallest first, in
    out[:m]; returns m. One pass with a sorted buffer of k instead of k min scans (ckeys are
    distinct, so the order is the one repeated min scans give)."""
    m = 0
    for w in range(n):
        v = ckey[w]
        if v == _NONE:
            continue
        if m == k:
            if v >= out[m - 1]:
                continue
            i = m - 1
        else:
            i = m
            m += 1
        while i > 0 and out[i - 1] > v:
            out[i] = out[i - 1]
            i -= 1
        out[i] = v
    for i in range(m):
        out[i] &= way_mask
    return m


@numba.njit(cache=True)
def _line_order(ckey, ccnt, n, lfu, out):
    """All the set's takeable ways in the order they are taken (large sets); returns how many."""
    order = np.argsort(ckey[:n])  # keys are distinct except _NONE, which is never taken
    if lfu:
        cnt = np.empty(n, dtype=np.int64)
        for i in range(n):
            cnt[i] = ccnt[order[i]]
        order = order[np.argsort(cnt, kind="mergesort")]
    m = 0
    for i in range(n):
        if ckey[order[i]] != _NONE:
            out[m] = order[i]
            m += 1
    return m


@numba.njit(cache=True)
def _first_lines(ckey, ccnt, n, lfu, k, out):
    """The first k of the set's takeable ways in the order `_line_order` gives (ascending ckey;
    LFU: ascending (ccnt, ckey)), in out[:m]; returns m = min(k, takeable ways). One pass keeps
    the k smallest in a max-heap, then sorts those: O(n + k log k) for the usual few misses,
    not O(n log n). A fully associative cache is one set of C lines, and each batch with a
    miss must not sort all of them (ckeys are distinct, so the order is exact)."""
    if k >= n:
        return _line_order(ckey, ccnt, n, lfu, out)
    hp = np.empty(k, np.int64)  # heap: primary key (LFU count, else 0), ckey, way; root largest
    hs = np.empty(k, np.int64)
    hw = np.empty(k, np.int64)
    m = 0
    for w in range(n):
        s = ckey[w]
        if s == _NONE:
            continue
        p = ccnt[w] if lfu else np.int64(0)
        if m < k:  # push, sift up
            i = m
            m += 1
            while i > 0:
                up = (i - 1) >> 1
                if hp[up] > p or (hp[up] == p and hs[up] > s):
                    break
                hp[i], hs[i], hw[i] = hp[up], hs[up], hw[up]
                i = up
            hp[i], hs[i], hw[i] = p, s, w
        elif p < hp[0] or (p == hp[0] and s < hs[0]):  # replace the largest, sift down
            i = 0
            while True:
                c = 2 * i + 1
                if c >= k:
                    break
                if c + 1 < k and (hp[c + 1] > hp[c] or (hp[c + 1] == hp[c] and hs[c + 1] > hs[c])):
                    c += 1
                if hp[c] > p or (hp[c] == p and hs[c] > s):
                    hp[i], hs[i], hw[i] = hp[c], hs[c], hw[c]
                    i = c
                else:
                    break
            hp[i], hs[i], hw[i] = p, s, w
    order = np.argsort(hs[:m])  # distinct
    if lfu:
        cnt = np.empty(m, dtype=np.int64)
        for i in range(m):
            cnt[i] = hp[order[i]]
        order = order[np.argsort(cnt, kind="mergesort")]
    for i in range(m):
        out[i] = hw[order[i]]
    return m


@numba.njit(cache=True)
def _batch_step(ids, lo, hi, b, rule, way_bits, state, scratch, counters):
    """Apply the batch ids[lo:hi] (dense ids) as batch number `b` (>= 1, increasing) under the
    `KernelRule` `rule`, to the `BatchState` `state`.

    Writes into the `Scratch` `scratch` (each array at least hi - lo long, ckey, ccnt and way_buf
    at least the largest set): uniq[:nu] (first-occurrence order), uslot[:nu] (line after the
    step, -1 for a conflict miss), inverse[:hi-lo], was_hit[:nu], ev_slot/ev_id[:ne],
    fill_slot/fill_id[:nf]. Returns (nu, ne, nf).
    """
    lfu = rule.by_count  # lines ordered by their key's count (LFU), else by stamp
    stamp_on_hit = rule.stamp_on_hit
    admit_by_count = rule.admit_by_count
    keyrec, count, set_start = state.keyrec, state.count, state.set_start
    line_id, line_stamp, line_used = state.line_id, state.line_stamp, state.line_used
    line_count, set_mark, set_head = state.line_count, state.set_mark, state.set_head
    uniq, ucnt, ukey, utab = scratch.uniq, scratch.ucnt, scratch.ukey, scratch.utab
    uslot, inverse, was_hit = scratch.uslot, scratch.inverse, scratch.was_hit
    miss_next, touched = scratch.miss_next, scratch.touched
    mid, mkey, mcnt = scratch.mid, scratch.mkey, scratch.mcnt
    ev_slot, ev_id, fill_slot, fill_id = (scratch.ev_slot, scratch.ev_id, scratch.fill_slot,
                                          scratch.fill_id)
    ckey, ccnt, way_buf = scratch.ckey, scratch.ccnt, scratch.way_buf
    bb = np.int64(b) << 32
    way_mask = (np.int64(1) << way_bits) - 1
    # 1. deduplicate, count, look up each key at its first access (its row is in cache then);
    #    misses are chained per set (set_head, miss_next), the sets listed in `touched`
    nu = 0
    nt = 0
    for i in range(lo, hi):
        if i + _AHEAD < hi:
            prefetch(keyrec, ids[i + _AHEAD] * 4)
        k = ids[i]
        m = keyrec[k, KR_MARK]
        if (m >> 32) == b:  # a repeat: only its multiplicity (counters and LFU counts below)
            p = m & _POS_MASK
            ucnt[p] += 1
            inverse[i - lo] = p
            continue
        st = keyrec[k, KR_SET]
        t = st & _TABLE_MASK
        u = nu
        nu += 1
        keyrec[k, KR_MARK] = bb | u
        uniq[u] = k
        ucnt[u] = 1
        utab[u] = t
        inverse[i - lo] = u
        s = keyrec[k, KR_SLOT]
        if s >= 0 and line_id[s] == ((k << TABLE_BITS) | t):
            was_hit[u] = 1
            uslot[u] = s
            line_used[s] = b
            if stamp_on_hit:
                line_stamp[s] = b
        else:
            was_hit[u] = 0
            uslot[u] = -1
            ukey[u] = keyrec[k, KR_KEY]
            counters[t, UNIQUE_MISSES] += 1
            g = st >> TABLE_BITS
            if set_mark[g] != b:
                set_mark[g] = b
                set_head[g] = -1
                touched[nt] = g
                nt += 1
            miss_next[u] = set_head[g]
            set_head[g] = u
    for u in range(nu):  # per unique key, not per access: its multiplicity ucnt[u]
        t = utab[u]
        counters[t, REQUESTED] += ucnt[u]
        counters[t, UNIQUE] += 1
        if not was_hit[u]:
            counters[t, MISSES] += ucnt[u]
    if lfu:  # counts of the batch's keys; a hit line keeps its key's count, final now
        for u in range(nu):
            k = uniq[u]
            c = count[k] + ucnt[u]
            count[k] = c
            if was_hit[u]:
                line_count[uslot[u]] = c
    # 2. per set with misses: order the misses and the lines they may take, assign
    ne = 0
    nf = 0
    for ti in range(nt):
        g = touched[ti]
        nm = 0
        u = set_head[g]
        while u != -1:
            mid[nm] = u
            mkey[nm] = ukey[u]
            mcnt[nm] = count[uniq[u]] if lfu else 0
            nm += 1
            u = miss_next[u]
        _order_misses(mid, mkey, mcnt, nm, lfu)
        l0 = set_start[g]
        nw = set_start[g + 1] - l0
        _candidate_lines(line_stamp, line_used, line_count, l0, nw, b, way_bits, lfu, ckey, ccnt)
        small = nw <= _SMALL_SET
        if not lfu and nm > 1 and (small or nm <= _SMALL):
            n_order = _oldest_ways(ckey, nw, nm, way_buf, way_mask)
            small = False  # take way_buf in order
        else:
            n_order = 0 if small else _first_lines(ckey, ccnt, nw, lfu, nm, way_buf)
        j = 0
        full = False  # no line left, or a refusal (admission by count): every later key of
        #               the set conflicts
        for mi in range(nm):
            u = mid[mi]
            if not full:
                if small:
                    w = _next_line(ckey, ccnt, nw, lfu, way_mask)
                else:
                    w = way_buf[j] if j < n_order else -1
                ln = l0 + w
                if w >= 0 and not (admit_by_count and mcnt[mi] < line_count[ln]):  # empty: -1
                    if small:
                        ckey[w] = _NONE
                        ccnt[w] = _NONE
                    else:
                        j += 1
                    k = uniq[u]
                    old = line_id[ln]
                    if old >= 0:
                        counters[old & _TABLE_MASK, EVICTIONS] += 1
                        ev_slot[ne] = ln
                        ev_id[ne] = old >> TABLE_BITS
                        ne += 1
                    line_id[ln] = (k << TABLE_BITS) | utab[u]
                    line_stamp[ln] = b
                    line_used[ln] = b
                    if lfu:
                        line_count[ln] = mcnt[mi]
                    keyrec[k, KR_SLOT] = ln
                    uslot[u] = ln
                    fill_slot[nf] = ln
                    fill_id[nf] = k
                    nf += 1
                    continue
                full = True
            t = utab[u]
            counters[t, CONFLICT_UNIQUE_MISSES] += 1
            counters[t, CONFLICT_MISSES] += ucnt[u]
    return nu, ne, nf


@numba.njit(cache=True, nogil=True)
def _replay_batches(ids, starts, b0, rule, way_bits, state, scratch, counters):
    """Batches ids[starts[i]:starts[i+1]] in order, numbered b0, b0 + 1, ..."""
    for i in range(starts.shape[0] - 1):
        _batch_step(ids, starts[i], starts[i + 1], b0 + i, rule, way_bits, state, scratch,
                    counters)


@numba.njit(cache=True)
def _key_records(keys, key_table, group, group_sets, group_set_offset, keyrec):
    """Fill the static columns of the per-key rows: set and table, key."""
    for i in range(keys.shape[0]):
        g = group[i]
        st = group_set_offset[g] + np.int64(fmix64(np.uint64(keys[i])) % np.uint64(group_sets[g]))
        keyrec[i, KR_SET] = (st << TABLE_BITS) | key_table[i]
        keyrec[i, KR_KEY] = keys[i]


# -- the cache -----------------------------------------------------------------------------------
def batch_policy(policy):
    """The registered policy of a name, an alias or a Policy, if it declares a batch rule;
    CachesimError naming the policies that do otherwise."""
    from ..policies import batch_policy_names, get_policy
    pol = get_policy(getattr(policy, "name", policy))
    if pol.batch_rule is None:
        raise CachesimError(f"policy {pol.name!r} has no batch rule, so it cannot replay in batch "
                            f"mode (the policies with one: {', '.join(batch_policy_names())}; a "
                            "policy declares one with Policy(batch_rule=...)); use "
                            f"mode=\"access\" for {pol.name}")
    return pol


def kernel_rule(rule) -> KernelRule:
    """The kernel's form of a `policies.BatchRule`."""
    return KernelRule(rule.order == "count", bool(rule.stamp_on_hit),
                      rule.admission == "count-at-least")


@dataclass
class BatchStep:
    """What one `BatchCache.step` did. Ids are dense ids; slots are cache lines."""

    unique_ids: np.ndarray      # the batch's unique keys, ascending linearised key
    inverse: np.ndarray         # per access: index into unique_ids
    slot: np.ndarray            # per unique id: its line after the step, -1 for a conflict miss
    was_hit: np.ndarray         # per unique id: cached before the step (bool)
    evicted_slots: np.ndarray
    evicted_ids: np.ndarray
    filled_slots: np.ndarray
    filled_ids: np.ndarray
    counters: dict


class BatchCache:
    """One embedding cache (or one per table) whose state lives in arrays; `step` applies a batch.

    `capacity_rows` is one int (one cache over all tables, keys linearised) or one int per table
    (a cache per table). `ways=None` is fully associative; ways above a cache's rows are lowered
    to its rows. `distinct_keys` maps dense ids to linearised keys, `key_table` to tables.
    """

    def __init__(self, n_keys, distinct_keys, key_table, n_tables, capacity_rows, ways=None,
                 policy="lru"):
        pol = batch_policy(policy)
        self.policy = pol.name
        self.rule = pol.batch_rule
        self._rule = kernel_rule(pol.batch_rule)
        self.lfu = self._rule.by_count  # per-row counts are kept
        self.n_keys = int(n_keys)
        self.n_tables = int(n_tables)
        self.distinct_keys = np.ascontiguousarray(distinct_keys, dtype=np.int64)
        self.key_table = np.ascontiguousarray(key_table, dtype=np.int32)
        if self.distinct_keys.shape[0] != self.n_keys or self.key_table.shape[0] != self.n_keys:
            raise ValueError("distinct_keys and key_table need one entry per dense id (n_keys)")
        if self.n_keys and (self.key_table.min() < 0 or self.key_table.max() >= self.n_tables):
            raise ValueError(f"key_table holds a table outside 0..{self.n_tables - 1}")
        if self.n_keys >= 1 << 31:
            raise CachesimError(f"{self.n_keys:,} distinct keys: batch replay handles fewer "
                                "than 2^31")
        if self.n_tables > 1 << TABLE_BITS:
            raise CachesimError(f"{self.n_tables:,} tables: batch replay handles at most "
                                f"{1 << TABLE_BITS:,}")
        if ways is not None:
            ways = int(ways)
            if ways < 1:
                raise CachesimError(f"ways={ways}: the number of ways must be at least 1 "
                                    "(ways=None: fully associative)")
        self.fully_associative = ways is None
        self.per_table_caches = np.ndim(capacity_rows) > 0
        caps = np.atleast_1d(np.asarray(capacity_rows, dtype=np.int64))
        if self.per_table_caches and caps.shape[0] != self.n_tables:
            raise CachesimError(f"per-table capacities: got {caps.shape[0]} row counts for "
                                f"{self.n_tables} tables; give one per table")
        if (caps < 1).any():
            raise CachesimError(f"cache capacity {caps.tolist()} rows: every cache needs at least "
                                "1 row")
        requested = caps.copy()
        capped = ways is None and not self.per_table_caches and int(caps[0]) > max(1, self.n_keys)
        if capped:
            # fully associative: lines beyond the distinct keys never fill, so a cache larger
            # than the keys replays as one of exactly their size (one set stays scannable);
            # the requested size is still what is reported and costed
            caps = np.minimum(caps, max(1, int(self.n_keys)))
        # `hashing.set_geometry`, the access replay's rule too: W = min(W, C), S = ceil(C / W)
        group_sets, group_ways = set_geometry(caps, caps if ways is None else ways)
        group_lines = group_sets * group_ways
        self.capacity_rows = int(requested.sum())
        self.group_capacity = requested
        self.group_ways = group_ways
        self.group_sets = group_sets
        self.ways = int(group_ways.max())  # W used (per-table caches: the largest table's)
        self.n_sets = int(group_sets.sum())
        self.n_lines = int(group_lines.sum())
        self.reported_lines = self.capacity_rows if capped else self.n_lines
        self.reported_ways = self.capacity_rows if capped else self.ways
        if self.n_lines >= 1 << 31:
            raise CachesimError(f"a cache of {self.n_lines:,} lines: batch replay handles fewer "
                                "than 2^31")
        check_state_fits(self.n_lines * (16 + 8 * self.lfu) + self.n_sets * 24 + self.n_keys * 40,
                         f"a cache of {self.n_sets:,} sets of {self.ways} ways "
                         f"({self.n_lines:,} lines)",
                         "give a smaller --size (a share such as 5% sizes it to the trace)")
        set_offset = np.zeros(len(caps), dtype=np.int64)
        np.cumsum(group_sets[:-1], out=set_offset[1:])
        group = self.key_table if self.per_table_caches else np.zeros(self.n_keys, np.int32)
        n, L, S = self.n_keys, self.n_lines, self.n_sets
        keyrec = np.zeros((n, 4), dtype=np.int64)      # columns KR_*
        keyrec[:, KR_SLOT] = -1
        _key_records(self.distinct_keys, self.key_table, group, group_sets, set_offset, keyrec)
        set_start = np.zeros(S + 1, dtype=np.int64)    # first line of each set
        np.cumsum(np.repeat(group_ways, group_sets), out=set_start[1:])
        self.max_set_lines = int(group_ways.max())
        self.way_bits = max(1, (self.max_set_lines - 1).bit_length())
        self._state = BatchState(
            keyrec,
            np.zeros(n if self.lfu else 0, np.int64),  # LFU count of every key
            set_start,
            np.full(L, -1, np.int64),                  # line_id
            np.zeros(L, np.int32),                     # line_stamp
            np.zeros(L, np.int32),                     # line_used
            np.full(L if self.lfu else 0, -1, np.int64),  # line_count (LFU), -1: empty
            np.zeros(S, np.int64),                     # set_mark: last batch with misses here
            np.full(S, -1, np.int64),                  # set_head: first miss of the set (its unique index)
        )
        self.counters = np.zeros((self.n_tables, len(COUNTER_NAMES)), dtype=np.int64)
        self.calls = 0
        self._scratch = None
        self._scratch_len = -1

    @classmethod
    def for_trace(cls, trace, capacity_rows, ways=None, policy="lru") -> "BatchCache":
        return cls(n_keys=trace.n_distinct, distinct_keys=trace.distinct_keys,
                   key_table=trace.key_table, n_tables=trace.n_tables,
                   capacity_rows=capacity_rows, ways=ways, policy=policy)

    # -- state views ---------------------------------------------------------------------------
    @property
    def key_sets(self) -> np.ndarray:
        """Set of each dense id (a copy)."""
        return self._state.keyrec[:, KR_SET] >> TABLE_BITS

    @property
    def line_ids(self) -> np.ndarray:
        """Dense id held by each line, -1 when empty (a copy)."""
        return self._state.line_id >> TABLE_BITS

    @property
    def slot_of(self) -> np.ndarray:
        """Line of each dense id, -1 when not cached (a copy)."""
        out = np.full(self.n_keys, -1, dtype=np.int64)
        ids = self.line_ids
        held = np.flatnonzero(ids >= 0)
        out[ids[held]] = held
        return out

    def totals(self) -> dict:
        """Running counters summed over tables, with `calls`."""
        out = {"calls": self.calls}
        out.update(zip(COUNTER_NAMES, (int(x) for x in self.counters.sum(axis=0))))
        return out

    # -- stepping -------------------------------------------------------------------------------
    def _scratch_for(self, n: int):
        if n > self._scratch_len:
            n, w = max(n, 1), self.max_set_lines
            self._scratch = Scratch(
                # per unique key (int32 where it fits: these are touched at random)
                np.empty(n, np.int32), np.empty(n, np.int32),                         # uniq ucnt
                np.empty(n, np.int64), np.empty(n, np.int32),                         # ukey utab
                np.empty(n, np.int32), np.empty(n, np.int32),                         # uslot inverse
                np.empty(n, np.uint8), np.empty(n, np.int32), np.empty(n, np.int32),  # was_hit next touched
                np.empty(n, np.int32), np.empty(n, np.int64), np.empty(n, np.int64),  # mid mkey mcnt
                np.empty(n, np.int64), np.empty(n, np.int64),                         # ev_slot ev_id
                np.empty(n, np.int64), np.empty(n, np.int64),                         # fill_slot fill_id
                np.empty(w, np.int64), np.empty(w, np.int64), np.empty(w, np.int64),  # ckey ccnt way_buf
            )
            self._scratch_len = n
        return self._scratch

    def _check_stamps(self, n_batches: int) -> None:
        limit = min(1 << 31, 1 << (62 - self.way_bits))  # batch numbers are packed in int64s
        if self.calls + n_batches >= limit:
            raise CachesimError(f"more than {limit:,} batches for one BatchCache: start a new one")

    def _check_ids(self, ids) -> np.ndarray:
        ids = np.ascontiguousarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError("step takes a 1-d integer array of dense ids")
        if ids.shape[0] >= 1 << 32:
            raise CachesimError(f"a batch of {ids.shape[0]:,} accesses is too large (at most 2^32)")
        if ids.shape[0] and (ids.min() < 0 or ids.max() >= self.n_keys):
            raise ValueError(f"dense ids must lie in 0..{self.n_keys - 1}")
        return ids

    def step(self, ids) -> BatchStep:
        """Apply one batch (dense ids, repeats allowed) and say what happened to it."""
        ids = self._check_ids(ids)
        n = ids.shape[0]
        sc = self._scratch_for(n)
        before = self.counters.copy()
        self._check_stamps(1)
        self.calls += 1
        nu, ne, nf = _batch_step(ids, 0, n, self.calls, self._rule, self.way_bits, self._state,
                                 sc, self.counters)
        uslot, inverse, was_hit = sc.uslot, sc.inverse, sc.was_hit
        ev_slot, ev_id, fill_slot, fill_id = sc.ev_slot, sc.ev_id, sc.fill_slot, sc.fill_id
        uniq_first = sc.uniq[:nu]
        order = np.argsort(self.distinct_keys[uniq_first], kind="stable")
        unique_ids = uniq_first[order].astype(np.int64)
        rank = np.empty(nu, dtype=np.int64)
        rank[order] = np.arange(nu, dtype=np.int64)
        step_counts = (self.counters - before).sum(axis=0)
        counters = {"calls": 1}
        counters.update(zip(COUNTER_NAMES, (int(x) for x in step_counts)))
        return BatchStep(unique_ids=unique_ids, inverse=rank[inverse[:n]],
                         slot=uslot[:nu][order].astype(np.int64),
                         was_hit=was_hit[:nu][order].astype(bool),
                         evicted_slots=ev_slot[:ne].copy(), evicted_ids=ev_id[:ne].copy(),
                         filled_slots=fill_slot[:nf].copy(), filled_ids=fill_id[:nf].copy(),
                         counters=counters)

    def run(self, ids, starts) -> None:
        """Apply the batches ids[starts[i]:starts[i+1]] in order (counters only, no step output)."""
        ids = self._check_ids(ids)
        starts = np.ascontiguousarray(starts, dtype=np.int64)
        if starts.shape[0] < 2:
            return
        if starts[0] != 0 or starts[-1] != ids.shape[0] or (np.diff(starts) < 0).any():
            raise ValueError("starts must rise from 0 to len(ids)")
        sc = self._scratch_for(int(np.diff(starts).max()))
        self._check_stamps(starts.shape[0] - 1)
        _replay_batches(ids, starts, self.calls + 1, self._rule, self.way_bits, self._state, sc,
                        self.counters)
        self.calls += starts.shape[0] - 1


# -- replay --------------------------------------------------------------------------------------
BatchResult = Result  # the one result type; this name stays for old callers


def batch_starts(trace) -> np.ndarray:
    """Start of each batch (consecutive equal `trace.batch` values), then len(trace): the trace's
    own `batch_starts` (derived once per batch column, checked there)."""
    return trace.batch_starts


def table_capacities(trace, capacity) -> tuple[np.ndarray, str]:
    """Rows per table for per-table caches, and the size as text.

    A share ('5%') is that share of each table's distinct keys (at least 1 row); a row count is
    split over the tables in proportion to their distinct keys (at least 1 row each); a list
    gives each table's rows.
    """
    distinct = np.bincount(trace.key_table, minlength=trace.n_tables).astype(np.int64)
    if isinstance(capacity, (list, tuple, np.ndarray)):
        caps = np.asarray(capacity, dtype=np.int64)
        if caps.shape != (trace.n_tables,):
            raise CachesimError(f"per-table capacities: got {caps.size} row counts for "
                                f"{trace.n_tables} tables; give one per table")
        return caps, ",".join(str(int(c)) for c in caps)
    cap = parse_size(capacity)
    if cap.is_bytes:
        raise CachesimError(f"cache size {cap.text!r}: batch mode counts rows; give rows (1000) "
                            "or a share of the distinct keys (5%)")
    if cap.kind == "fraction":
        return np.array([cap.resolve(int(d)) for d in distinct], dtype=np.int64), cap.text
    total = int(cap.value)
    if total < trace.n_tables:
        raise CachesimError(f"cache size {total} rows cannot give each of the {trace.n_tables} "
                            "tables a row; give at least one row per table, or a share (5%)")
    spare = total - trace.n_tables
    share = spare * distinct / max(1, distinct.sum())
    caps = 1 + np.floor(share).astype(np.int64)
    left = total - int(caps.sum())
    if left:  # largest remainders first, ties to the lower table
        caps[np.argsort(-(share - np.floor(share)), kind="stable")[:left]] += 1
    return caps, cap.text


def ideal_capacity(trace, capacity, per_table: bool = False):
    """(the ideal model's `capacity_rows`: rows, or rows per table with `per_table`, the size as
    text) for `capacity` as `replay_batch` takes it."""
    if per_table:
        return table_capacities(trace, capacity)
    if isinstance(capacity, (list, tuple, np.ndarray)):
        raise CachesimError("one row count per table needs per-table caches (per_table=True)")
    cap = parse_size(capacity)
    if cap.is_bytes:
        raise CachesimError(f"cache size {cap.text!r}: batch mode counts rows; give rows "
                            "(1000) or a share of the distinct keys (5%)")
    return cap.resolve(trace.n_distinct), cap.text


def check_model_options(cache_model, policies=(), ways=(DEFAULT_WAYS,), per_table=(False,),
                        prefetch_pipeline: bool = False, warp=None) -> str:
    """The batch cache model's name (`resolve_cache_model`, fbgemm-inference included) once its
    options go together, before anything runs: `policies` (names), every `ways` and
    `per_table` setting a sweep will run, `prefetch_pipeline` and `warp`. CachesimError
    naming the value and what is allowed otherwise (the rules `replay_batch` applies)."""
    model = resolve_cache_model(cache_model, inference=True)
    if warp is not None and model not in FBGEMM_MODELS:
        raise CachesimError(f"--warp {warp} with --cache-model {model}: the warp is the ways of "
                            f"FBGEMM's caches; use --cache-model fbgemm or {INFERENCE_CACHE_MODEL}"
                            ", or drop --warp")
    if prefetch_pipeline and model != "fbgemm":
        raise CachesimError(f"--prefetch-pipeline with --cache-model {model}: only FBGEMM's "
                            "training cache has the prefetch pipeline; use --cache-model fbgemm, "
                            "or drop --prefetch-pipeline")
    if model == "ideal":
        return model
    from .fbgemm import POLICIES, check_fbgemm_ways
    other = [p for p in policies if p not in POLICIES]
    if other:
        what = "cache model" if model == "fbgemm" else "inference cache"
        raise CachesimError(f"policy {other[0]!r}: FBGEMM's {what} runs only "
                            f"{' and '.join(POLICIES)}; pass --cache-model ideal for "
                            f"{other[0]}'s batch rule")
    if prefetch_pipeline and any(p != "lru" for p in policies):
        raise CachesimError("--prefetch-pipeline needs policy lru: FBGEMM asserts 'Only LRU cache "
                            "policy supports prefetch_pipeline'")
    if model == "fbgemm":
        for w in ways:
            check_fbgemm_ways(w, warp)
        return model
    if any(per_table):
        raise CachesimError(f"--per-table with --cache-model {model}: the inference op keeps one "
                            "cache over all its tables; drop --per-table, or use --cache-model "
                            "fbgemm")
    from .fbgemm_inference import check_inference_ways
    for w in ways:
        if check_inference_ways(w, warp) == 1 and any(p != "lru" for p in policies):
            raise CachesimError(f"policy lfu with --ways 1 and --cache-model {model}: FBGEMM's "
                                "direct-mapped cache is LRU only ('Direct Mapped for LRU only'); "
                                "use --ways 32 for lfu")
    return model


def replay_batch(trace, policy="lru", capacity="5%", ways=DEFAULT_WAYS, *, per_table=False,
                 inference=False, progress=False, cache_model=None, prefetch_pipeline=False,
                 warp=None, record_cache_miss_counter=False, table_groups=None) -> Result:
    """Replay `trace` batch by batch through an FBGEMM-style cache, under the batch rule of
    `policy` (lru, lfu, or any registered policy that declares a `BatchRule`).
    `table_groups` (fbgemm model only): which tables share one cache, as TorchRec's TBE ops
    (`simulate.groups`: 'torchrec', 'table', '0-12/13-25' or a group number per table).

    `cache_model`: "fbgemm" (FBGEMM's training cache exactly: `simulate.fbgemm.
    replay_batch_fbgemm`, where a share is the load factor on num_embeddings and `warp`,
    `prefetch_pipeline` apply), "fbgemm-inference" (FBGEMM's inference cache: `simulate.
    fbgemm_inference`, ways 32 or 1), "ideal" (this module's cache, below), or None for
    `result.DEFAULT_CACHE_MODEL`. The rest of this docstring is the ideal model's.

    `capacity`: rows (1000) or a share of the distinct keys ('5%'); with `per_table` also a list of
    rows, one per table. `ways`: 32 (FBGEMM's) by default, None for fully associative.
    `inference` is recorded for the cost model (the cache rules are the same). The trace needs
    batches (`trace.batch`). Returns a `Result` with mode 'batch'.
    """
    from .groups import check_groups_model
    check_groups_model(table_groups, resolve_cache_model(cache_model, True))
    if cache_model is not None and str(cache_model).strip().lower() == INFERENCE_CACHE_MODEL:
        if record_cache_miss_counter:
            raise CachesimError("--record-cache-miss-counter: the inference cache's extra lookup "
                                "is given no uvm cache stats, so it changes no counter; leave "
                                "the flag out (FbgemmInferenceCache.cache_miss_counter() has its "
                                "own counter)")
        from .fbgemm_inference import replay_batch_fbgemm_inference  # FBGEMM's inference cache
        return replay_batch_fbgemm_inference(trace, policy, capacity, ways, per_table=per_table,
                                             prefetch_pipeline=prefetch_pipeline, warp=warp,
                                             progress=progress)
    model = resolve_cache_model(cache_model)
    if model == "fbgemm":
        from .fbgemm import POLICIES as FBGEMM_POLICIES, replay_batch_fbgemm
        name = batch_policy(policy).name
        if name not in FBGEMM_POLICIES:
            raise CachesimError(f"policy {name!r}: FBGEMM's cache model runs only "
                                f"{' and '.join(FBGEMM_POLICIES)}; use cache_model=\"ideal\" "
                                f"for {name}'s batch rule")
        return replay_batch_fbgemm(trace, policy, capacity, ways, per_table=per_table,
                                   inference=inference, prefetch_pipeline=prefetch_pipeline,
                                   warp=warp, progress=progress,
                                   record_cache_miss_counter=record_cache_miss_counter,
                                   table_groups=table_groups)
    if prefetch_pipeline or warp is not None:
        raise CachesimError("--prefetch-pipeline and --warp model FBGEMM's cache: they need "
                            "--cache-model fbgemm (the ideal model has no pipeline or warp)")
    if record_cache_miss_counter:
        raise CachesimError("--record-cache-miss-counter models FBGEMM's training cache: it needs "
                            "--cache-model fbgemm")
    trace.require_nonempty()
    name = batch_policy(policy).name
    starts = batch_starts(trace)
    cap_arg, size_text = ideal_capacity(trace, capacity, per_table)
    t0 = time.perf_counter()
    cache = BatchCache.for_trace(trace, cap_arg, ways=ways, policy=name)
    ids = trace.dense_ids
    from ..progress import bar as progress_bar
    bar = progress_bar(len(trace), f"{name} {size_text} batch", progress, unit="req",
                       unit_scale=True, delay=2.0)
    n_b = starts.shape[0] - 1
    per_chunk = max(1, (1 << 22) // max(1, len(trace) // n_b))  # ~4M accesses a call
    for i in range(0, n_b, per_chunk):
        j = min(n_b, i + per_chunk)
        cache.run(ids[starts[i]:starts[j]], starts[i:j + 1] - starts[i])
        if bar is not None:
            bar.update(int(starts[j] - starts[i]))
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    return batch_result(trace, cache, size_text, seconds, inference=inference)


def batch_result(trace, cache: BatchCache, size_text: str, seconds: float = 0.0,
                 inference: bool = False) -> Result:
    """The `Result` (mode 'batch') of a cache's running counters."""
    return batch_result_of(trace, COUNTER_NAMES, cache.counters, policy=cache.policy,
                           size=size_text, capacity=cache.reported_lines,
                           ways=None if cache.fully_associative else cache.ways, seconds=seconds,
                           n_sets=cache.n_sets, n_lines=cache.reported_lines,
                           per_table_caches=cache.per_table_caches, inference=bool(inference),
                           cache_model="ideal", calls=cache.calls)
