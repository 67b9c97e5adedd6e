"""One batch replay split into parts that never interact, run on separate threads (cores) and
merged exactly (`replay_partitioned`, `cachesim replay --jobs N`).

Within a batch, and from batch to batch, a set-associative cache's sets never interact: a key's
set is fixed by its key (fmix64 of the linearised key mod S, in both cache models), and every
rule (lookup, the order of a set's misses, the bitonic network or the ideal model's way choice,
LFU counts, the prefetch pipeline's locks) reads and writes only the key's own set. So the
accesses are split once by their key's set range, part p holding sets [p S / P, (p + 1) S / P);
per-table caches are split by tables instead (each table's cache is its own), tables given out
greedily by accesses. Each part keeps every batch, empty ones included, so batch numbers (the
LRU time steps) stay aligned; each part replays on a cache of the whole geometry whose per-key
arrays hold only its own keys (numbered 0, 1, ... within the part, in id order).

Taking the parts (`replay_partitioned`): under the fbgemm model the P threads (the caller is
thread 0) share the deduplication, step by step (`_run_shared`): thread c finds the distinct
keys of each batch of its run of the step (`fbgemm.dedupe_batches`), then replays part c from
every run of the step before (`FbgemmCache.run_batches(..., select=(part ids, c), occ=...)`),
so each access is deduplicated once and nothing is copied whole. A Dask worker's one part
(`replay_part`) reads the whole trace, its kernel keeping the part's accesses of each batch
(`select` alone, branch-free into a one-batch buffer). Under the ideal model (and an access replay) the batches are cut into
P runs of whole batches with about equal accesses; thread c sorts run c's accesses by part
(stable) into one buffer, and once every run is taken, replays part c from every run in turn
(a cache's state carries over between kernel calls); the buffer is kept for the next split
replay of the same trace (`_take_buffer`). The kernels release the GIL (`nogil=True`), so the
threads run on separate cores with no fork, no pickling and no shared mappings.

On a cluster (`cachesim replay --dask`, `sweep.replay_split_dask`): `plan_parts` (in the
client: the replay's checks, and the parts used) gives a small picklable `PartPlan`; a worker
runs `replay_part(trace, plan, p)` on its own copy of the trace (read from a path it sees,
checked by fingerprint), which takes part p; `merge_parts` sums the parts' counters.

Merging: per-table and per-batch counters are sums over the parts; the batch count is not (each
part sees every batch): FBGEMM's `num_calls` counts the trace's non-empty batches (LRU; 0 under
LFU, as FBGEMM), the ideal model's `calls` the batches.
"""
from __future__ import annotations

import contextlib
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numba
import numpy as np

from ..errors import CachesimError
from ..hashing import fmix64, n_sets_for, set_index
from .result import DEFAULT_WAYS, Result, resolve_cache_model

MAX_PARTS = 127  # a key's part is an int8
# a local split uses a thread per part only while each gets at least this many accesses: the
# fixed costs (each part's empty cache of the whole geometry, the part ids of every key, the
# merge) outweigh what 2 cores save below a few million accesses (bench/RESULTS.md,
# "Set split": 0.54x on the 260,000-access Criteo sample, 0.92x on 2M accesses, 1.1-1.6x on 10M)
MIN_PART_ACCESSES = 1 << 21


@dataclass(frozen=True)
class PartPlan:
    """One batch replay split into `parts` parts that never interact (`plan_parts`). Small and
    picklable: a worker rebuilds the cache's geometry and the parts from its own copy of the
    trace (the same trace: the caller checks its fingerprint), so only this travels."""

    policy: str
    capacity: object
    ways: object
    cache_model: str  # 'fbgemm' or 'ideal'
    parts: int  # parts used: at most those asked, and at most the cache's sets (or tables)
    per_table: bool = False
    inference: bool = False
    prefetch_pipeline: bool = False
    warp: int | None = None
    table_groups: tuple | None = None  # fbgemm: the TBE group of each table (groups.py)

    @property
    def by_cache(self) -> bool:
        """Whether the parts are whole caches (one per table, or per table group), not set
        ranges of one cache."""
        return self.per_table or self.table_groups is not None


# a key's part id: (its number among its part's keys) << PART_BITS | its part (the fbgemm
# kernel reads them to select a part's accesses: `FbgemmCache.run_batches(select=...)`)
from .fbgemm import PART_BITS, PART_MASK as _PART_MASK  # noqa: E402


@numba.njit(cache=True)
def _number_parts(part_of_id, out):
    """out[d] = (d's number among the keys of its part, in id order) << PART_BITS | d's part
    (part_of_id[d]); returns each part's key count."""
    n = np.zeros(MAX_PARTS + 1, np.int64)
    for d in range(part_of_id.shape[0]):
        p = part_of_id[d]
        out[d] = (n[p] << PART_BITS) | p
        n[p] += 1
    return n


@numba.njit(cache=True, nogil=True)
def _number_set_parts(keys, n_sets, parts, out):
    """`_number_parts` of the set ranges (`_set_ranges`) of the linear `keys` in a cache of
    `n_sets` sets (fmix64(key) mod n_sets, as `hashing.set_index`), in one pass."""
    n = np.zeros(MAX_PARTS + 1, np.int64)
    S = np.uint64(n_sets)
    for d in range(keys.shape[0]):
        p = np.int64(fmix64(np.uint64(keys[d])) % S) * parts // n_sets
        out[d] = (n[p] << PART_BITS) | p
        n[p] += 1
    return n


@numba.njit(cache=True, nogil=True)
def _take_chunk(part_id, ids, col, starts, b0, b1, ids_out, col_out, cnt, scratch):
    """Batches [b0, b1) of the trace, their accesses ordered by part (stable; an access's part
    and its key's number within the part from its key's `part_id`): into positions [starts[b0],
    starts[b1]) of the outputs, part 0's first, then part 1's, .... cnt[b, p] = part p's
    accesses in batch b. `col` (empty: none) is a column carried along, one value an access,
    into `col_out` (the sizes of an access replay). `scratch` (part_id's dtype, one per access
    of the chunk) keeps each access's part id between the passes.

    Why three passes: no address the loop stores to or loads from may wait on the random read
    of part_id (a counter or cursor chosen by it makes the core guess whether the next access's
    counter is the same one, and it often guesses wrong: 2-5x slower, measured). So the part ids
    are read once, into `scratch` (sequential stores), counted from there, and the last pass
    picks each cursor from `scratch` too."""
    parts = cnt.shape[1]
    carry = col.shape[0] > 0
    a, z = starts[b0], starts[b1]
    for i in range(a, z):
        scratch[i - a] = part_id[ids[i]]
    tot = np.zeros((8, parts), np.int64)
    for i in range(z - a):
        tot[i & 7, scratch[i] & _PART_MASK] += 1
    cur = np.zeros(parts, np.int64)
    at = a
    for p in range(parts):
        cur[p] = at
        for k in range(8):
            at += tot[k, p]
    for b in range(b0, b1):
        for p in range(parts):
            cnt[b, p] = cur[p]
        for i in range(starts[b], starts[b + 1]):
            v = scratch[i - a]
            p = v & _PART_MASK
            j = cur[p]
            cur[p] = j + 1
            ids_out[j] = v >> PART_BITS
            if carry:  # loop-invariant: LLVM unswitches it
                col_out[j] = col[i]
        for p in range(parts):
            cnt[b, p] = cur[p] - cnt[b, p]


def balance_tables(accesses, parts: int) -> np.ndarray:
    """Part of each table: the tables by descending accesses, each to the least loaded part."""
    load = np.zeros(parts, dtype=np.int64)
    out = np.zeros(len(accesses), dtype=np.int8)
    for t in np.argsort(-np.asarray(accesses), kind="stable"):
        p = int(np.argmin(load))
        out[t] = p
        load[p] += int(accesses[t])
    return out


def _set_ranges(sets, n_sets: int, parts: int) -> np.ndarray:
    """Part of each set: contiguous ranges of (nearly) n_sets / parts sets."""
    return (np.asarray(sets, dtype=np.int64) * parts // n_sets).astype(np.int8)


# -- the plan: geometry (the replay's own checks) and each key's part ----------------------------
def _template(trace, plan: PartPlan):
    """(the whole replay's empty cache, its size as text, the load factor (fbgemm) or the ideal
    model's capacity_rows): the geometry, checks and warnings of one `replay_batch`."""
    if plan.cache_model == "fbgemm":
        from .fbgemm import fbgemm_cache_for
        return fbgemm_cache_for(trace, plan.policy, plan.capacity, plan.ways,
                                per_table=plan.per_table, warp=plan.warp,
                                prefetch_pipeline=plan.prefetch_pipeline, stacklevel=4,
                                table_groups=plan.table_groups, state=plan.parts == 1)
    from .batch import BatchCache, ideal_capacity
    if plan.prefetch_pipeline or plan.warp is not None:
        raise CachesimError("--prefetch-pipeline and --warp model FBGEMM's cache: they need "
                            "--cache-model fbgemm (the ideal model has no pipeline or warp)")
    from .groups import check_groups_model
    check_groups_model(plan.table_groups, plan.cache_model)
    cap_arg, size_text = ideal_capacity(trace, plan.capacity, plan.per_table)
    cache = BatchCache.for_trace(trace, cap_arg, ways=plan.ways, policy=plan.policy)
    return cache, size_text, cap_arg


def _unit_count(trace, plan: PartPlan, template) -> int:
    """Parts that can be used: at most the cache's sets (unified), the trace's tables
    (per-table caches) or its table groups."""
    if plan.table_groups is not None:
        return max(1, min(plan.parts, max(plan.table_groups) + 1))
    if plan.per_table:
        return max(1, min(plan.parts, trace.n_tables))
    return max(1, min(plan.parts, template.n_sets))


def _part_of_id(trace, plan: PartPlan, template) -> np.ndarray:
    """Part of each dense id (int8): its set's range in the ideal model's cache, or its cache's
    part (per-table caches, table groups). (The fbgemm model's set ranges: `_number_set_parts`.)"""
    if plan.parts == 1:
        return np.zeros(trace.n_distinct, dtype=np.int8)
    if plan.by_cache:  # whole caches (tables, or table groups) to parts, by accesses
        per_table = np.bincount(trace.table, minlength=trace.n_tables)
        group = (np.asarray(plan.table_groups, np.int64) if plan.table_groups is not None
                 else np.arange(trace.n_tables))
        group_part = balance_tables(np.bincount(group, weights=per_table), plan.parts)
        return group_part[group][trace.key_table]
    return _set_ranges(template.key_sets, template.n_sets, plan.parts)


def _checked_parts(parts) -> int:
    parts = int(parts)
    if parts < 1 or parts > MAX_PARTS:
        raise CachesimError(f"--jobs {parts}: give 1 to {MAX_PARTS} processes")
    return parts


def _plan(trace, policy, capacity, parts, ways, per_table, inference, cache_model,
          prefetch_pipeline, warp, table_groups=None):
    """(PartPlan, the whole replay's empty cache, its size text, load factor or capacity)."""
    parts = _checked_parts(parts)
    model = resolve_cache_model(cache_model)
    from .batch import batch_policy
    trace.require_nonempty()
    plan = PartPlan(batch_policy(policy).name, capacity, ways, model, parts, bool(per_table),
                    bool(inference), bool(prefetch_pipeline), warp, table_groups)
    template, size_text, extra = _template(trace, plan)
    if model == "fbgemm":  # the groups as resolved ('torchrec', one group, one per table ...)
        grouped = template.n_groups > 1 and not template.per_table
        plan = replace(plan, per_table=template.per_table,
                       table_groups=tuple(template.groups.tolist()) if grouped else None)
    plan = replace(plan, parts=_unit_count(trace, plan, template))
    return plan, template, size_text, extra


def plan_parts(trace, policy="lru", capacity="5%", parts: int = 2, ways=DEFAULT_WAYS, *,
               per_table: bool = False, inference: bool = False, cache_model=None,
               prefetch_pipeline: bool = False, warp=None, table_groups=None) -> PartPlan:
    """The split of `replay_batch(trace, policy, capacity, ways, ...)` into at most `parts`
    parts (by set ranges, or by whole caches: tables with `per_table`, table groups with
    `table_groups`), checked as the replay checks it. Run each part with `replay_part(trace,
    plan, p)` (anywhere the same trace is), then `merge_parts(trace, plan, [part 0's, ...])`."""
    return _plan(trace, policy, capacity, parts, ways, per_table, inference, cache_model,
                 prefetch_pipeline, warp, table_groups)[0]


_HELD: dict = {}  # the last take buffer: {"buf": array, "trace": weakref to its trace}
_HELD_LOCK = threading.Lock()  # held by the split replay using that buffer


def _take_buffer(trace, nbytes: int) -> np.ndarray:
    """At least `nbytes` bytes for the take, kept for the next split replay of the same trace
    while the trace lives (another size or policy on the same trace is the common case: its
    pages are then already mapped). Only under _HELD_LOCK (`held_arrays`)."""
    held, owner = _HELD.get("buf"), _HELD.get("trace")
    if held is not None and owner is not None and owner() is trace and held.shape[0] >= nbytes:
        return held
    _HELD.clear()  # the old buffer goes when its last view does
    buf = np.empty(max(8, int(nbytes)), dtype=np.uint8)
    _HELD.update(buf=buf, trace=weakref.ref(trace, lambda _: _HELD.clear()))
    return buf


@contextlib.contextmanager
def held_arrays(trace, specs):
    """Empty arrays of (dtype, length) `specs`, views of the held take buffer (`_take_buffer`)
    for the length of the `with`; of a buffer of their own while another split replay in this
    process (another thread) holds it."""
    sizes = [-(-np.dtype(dt).itemsize * int(k) // 8) * 8 for dt, k in specs]
    mine = _HELD_LOCK.acquire(blocking=False)
    try:
        buf = (_take_buffer(trace, sum(sizes)) if mine
               else np.empty(max(8, sum(sizes)), dtype=np.uint8))
        arrays, at = [], 0
        for (dt, k), size in zip(specs, sizes):
            arrays.append(buf[at:at + size].view(dt)[:int(k)])
            at += size
        yield arrays
    finally:
        if mine:
            _HELD_LOCK.release()


class _Setup:
    """A planned replay's arrays, derived once: each key's part id, the trace's columns as the
    take reads them, and the chunks of whole batches each process takes."""

    def __init__(self, trace, plan: PartPlan, template):
        self.plan, self.template = plan, template
        self.fbgemm = plan.cache_model == "fbgemm"
        self.bad = False
        if self.fbgemm:  # the kernel reads each key's linear key and table by its id
            from .fbgemm import id_keys, row_outside_its_table
            self.key_of_id = np.ascontiguousarray(id_keys(trace, template), np.int64)
            self.tab_of_id = trace.key_table
            self.bad = row_outside_its_table(trace)
        # int32 part ids (half the bytes to read at random) while every key's fits
        wide = trace.n_distinct >= 1 << (31 - PART_BITS)
        self.part_id = np.empty(trace.n_distinct, dtype=np.int64 if wide else np.int32)
        if self.fbgemm and not plan.by_cache and plan.parts > 1:
            # set ranges of one cache: sets, parts and numbers in one pass
            self.n_keys = _number_set_parts(self.key_of_id, template.n_sets, plan.parts,
                                            self.part_id)[:plan.parts]
        else:
            self.n_keys = _number_parts(_part_of_id(trace, plan, template),
                                        self.part_id)[:plan.parts]
        self.starts = trace.batch_starts
        self.ids = np.ascontiguousarray(trace.dense_ids)
        # the take (ideal model, access replay) carries no column but an access replay's sizes
        self.col = np.zeros(0, np.int64)
        self.trace = trace

    def buffer_specs(self):
        """(dtype, length) of the take's outputs (`buffers`)."""
        n, n_b = self.ids.shape[0], self.starts.shape[0] - 1
        return [(np.int64, n if self.col.shape[0] else 0), (np.int64, n_b * self.plan.parts),
                (self.ids.dtype, n), (self.part_id.dtype, n)]

    def buffers(self, arrays=None):
        """(column, ids, cnt, scratch): the take's outputs (the carried column, empty without
        one) and its scratch: `arrays` of `buffer_specs` (`held_arrays`), or new ones."""
        if arrays is None:
            arrays = [np.empty(k, dtype=dt) for dt, k in self.buffer_specs()]
        col, cnt, ids, scratch = arrays
        return col, ids, cnt.reshape(self.starts.shape[0] - 1, self.plan.parts), scratch

    def take(self, out, b0: int, b1: int) -> None:
        """_take_chunk of batches [b0, b1) into `out` (`buffers`)."""
        col, ids, cnt, scratch = out
        a, z = int(self.starts[b0]), int(self.starts[b1])
        _take_chunk(self.part_id, self.ids, self.col, self.starts, np.int64(b0), np.int64(b1),
                    ids, col, cnt, scratch[a:z])

    def part_cache(self, p: int):
        """An empty cache of the whole geometry for part p, its per-key arrays sized by the
        part's keys (numbered 0.. within the part); the template itself when there is one part."""
        plan, tpl = self.plan, self.template
        if plan.parts == 1:
            return tpl
        n_p = max(1, int(self.n_keys[p]))
        if self.fbgemm:
            from .fbgemm import FbgemmCache
            if plan.by_cache:  # every cache of the geometry; the part's keys only
                return FbgemmCache(tpl.table_rows, cache_sets=tpl.group_sets, policy=tpl.policy,
                                   ways=tpl.ways, prefetch_pipeline=tpl.prefetch_pipeline,
                                   per_table=tpl.per_table, n_ids=n_p,
                                   table_groups=None if tpl.per_table else tpl.groups)
            # unified: only the part's sets [lo, hi) (`_set_ranges`), which the kernel finds
            # at row set - lo: a key's set is still fmix64(key) mod S (tbl_sets), plus set_base
            S, P = tpl.n_sets, plan.parts
            lo, hi = -(-p * S // P), -(-(p + 1) * S // P)
            cache = FbgemmCache(tpl.table_rows, cache_sets=hi - lo, policy=tpl.policy,
                                ways=tpl.ways, prefetch_pipeline=tpl.prefetch_pipeline,
                                n_ids=n_p)
            cache.tbl_sets[:] = S
            cache.set_base[:] = -lo
            return cache
        from .batch import BatchCache
        mine = np.flatnonzero((self.part_id & _PART_MASK) == p)
        return BatchCache(n_keys=mine.shape[0], distinct_keys=self.trace.distinct_keys[mine],
                          key_table=self.trace.key_table[mine], n_tables=self.trace.n_tables,
                          capacity_rows=tpl.group_capacity if tpl.per_table_caches
                          else tpl.capacity_rows, ways=plan.ways, policy=tpl.policy)

    def part_keys(self, p: int):
        """(linear key, table) of each of part p's keys, by its number in the part."""
        mine = (np.flatnonzero((self.part_id & _PART_MASK) == p) if self.plan.parts > 1
                else slice(None))
        return (np.ascontiguousarray(self.key_of_id[mine]),
                np.ascontiguousarray(self.tab_of_id[mine]))

    def replay_selected(self, p: int):
        """Part p of the fbgemm model, read from the whole trace: the kernel keeps the part's
        accesses of each batch itself (`run_batches(..., select=...)`), so nothing is taken
        first; its counters. About 4M accesses a kernel call. (A Dask worker's part; the
        local split shares its deduplication instead, `_run_shared`.)"""
        cache = self.part_cache(p)
        split = self.plan.parts > 1
        keys, tabs = self.part_keys(p)
        select = (self.part_id, p) if split else None
        starts, ids = self.starts, self.ids
        n_b = starts.shape[0] - 1
        per_call = max(1, (1 << 22) // max(1, ids.shape[0] // max(1, n_b)))
        for b0 in range(0, n_b, per_call):
            b1 = min(n_b, b0 + per_call)
            a, z = int(starts[b0]), int(starts[b1])
            cache.run_batches(keys, tabs, ids[a:z], starts[b0:b1 + 1] - a, by_id=True,
                              select=select)
        return cache.table_counts.copy(), cache.per_batch()

    def replay(self, out, p: int, chunks):
        """Part p's accesses (taken into `out` by `take`, batch chunk by chunk: `chunks` holds
        each chunk's first batch, then the batch count) through `part_cache(p)` (the ideal
        model's: the fbgemm model's parts select their own, `replay_selected`); its counters."""
        ids, cnt = out[1:3]
        cache = self.part_cache(p)
        for c in range(len(chunks) - 1):
            b0, b1 = int(chunks[c]), int(chunks[c + 1])
            if b0 == b1:
                continue
            sub = cnt[b0:b1]
            at = int(self.starts[b0]) + int(sub[:, :p].sum())
            st = np.zeros(b1 - b0 + 1, dtype=np.int64)
            np.cumsum(sub[:, p], out=st[1:])
            z = at + int(st[-1])
            cache.run(ids[at:z], st)
        return cache.counters.copy(), cache.calls


def _bad_row(trace, template):
    """Raise the replay's own error for the first row outside its table (a part found one)."""
    from .fbgemm import feed_arrays
    feed_arrays(trace, template)
    raise AssertionError("a part found a row outside its table; feed_arrays did not")


def replay_part(trace, plan: PartPlan, p: int):
    """Part p of `plan` on `trace` (the trace the plan was made on): its counters, for
    `merge_parts`. Reads the whole trace and takes part p's accesses (a Dask worker's
    step; `replay_partitioned` shares the take between its processes instead)."""
    if not 0 <= int(p) < plan.parts:
        raise CachesimError(f"part {p}: the plan has parts 0..{plan.parts - 1}")
    template = _template(trace, plan)[0]
    setup = _Setup(trace, plan, template)
    if setup.bad:
        _bad_row(trace, template)
    if setup.fbgemm:  # the kernel keeps part p's accesses itself
        return setup.replay_selected(int(p))
    out = setup.buffers()
    n_b = setup.starts.shape[0] - 1
    setup.take(out, 0, n_b)  # every part's (one pass): part p's are a slice
    return setup.replay(out, int(p), np.array([0, n_b]))


def merge_parts(trace, plan: PartPlan, results, seconds: float = 0.0, *,
                _template_info=None) -> Result:
    """One `Result` from every part's counters (`replay_part`, in part order): exactly the
    `Result` of `replay_batch` on the whole trace, but for `seconds` (given here)."""
    results = list(results)
    if len(results) != plan.parts:
        raise CachesimError(f"merge_parts: {len(results)} results for a plan of {plan.parts} "
                            "parts; give every part's, in order")
    if _template_info is None:
        import warnings
        with warnings.catch_warnings():  # plan_parts warned already
            warnings.simplefilter("ignore")
            _template_info = _template(trace, plan)
    cache, size_text, extra = _template_info
    if plan.cache_model == "fbgemm":
        from .fbgemm import N_CALLS, REQ, fbgemm_result
        cache.table_counts = sum(r[0] for r in results)
        pb = sum(r[1] for r in results)
        pb[:, N_CALLS] = (pb[:, REQ] > 0) if cache.policy == "lru" else 0
        cache.batches = [pb]
        return fbgemm_result(trace, cache, size_text, extra, seconds, inference=plan.inference)
    from .batch import batch_result
    cache.counters = sum(r[0] for r in results)
    cache.calls = int(results[0][1])  # every part sees every batch
    return batch_result(trace, cache, size_text, seconds, inference=plan.inference)


# -- local processes ------------------------------------------------------------------------------
def chunk_batches(starts, chunks: int) -> np.ndarray:
    """The first batch of each of `chunks` runs of whole batches holding about equal numbers of
    accesses, then the batch count (a run may be empty)."""
    n_b = starts.shape[0] - 1
    cuts = np.searchsorted(starts, np.arange(chunks + 1) * (float(starts[-1]) / chunks))
    cuts = np.maximum.accumulate(np.minimum(cuts, n_b))
    cuts[0], cuts[-1] = 0, n_b
    return cuts.astype(np.int64)


def _in_threads(pool, fn, n: int) -> list:
    """[fn(0), ..., fn(n - 1)]: fn(1..) on the pool's threads, fn(0) on this one (the kernels
    release the GIL, so the parts run on separate cores); the first error is raised once all
    have stopped."""
    futures = [pool.submit(fn, c) for c in range(1, n)]
    try:
        first = fn(0)
    finally:
        done = [f.exception() for f in futures]  # waits for every part
    for e in done:
        if e is not None:
            raise e
    return [first] + [f.result() for f in futures]


def _run_local(setup: _Setup):
    """Every part's counters, or None when a row is outside its table. Thread c (this one is
    thread 0) first takes chunk c of the batches for every part into one buffer, then, once all
    chunks are taken, replays part c from every chunk. Threads, not processes: the take and the
    replay kernels run without the GIL, and threads share the trace's pages and the take buffer
    with no fork and no shared mappings (which get no huge pages: 2-3x slower to fault in)."""
    P = setup.plan.parts
    if setup.bad:
        return None
    if setup.fbgemm:
        if P == 1:
            return [setup.replay_selected(0)]
        return _run_shared(setup)
    chunks = chunk_batches(setup.starts, P)
    with held_arrays(setup.trace, setup.buffer_specs()) as arrays:
        out = setup.buffers(arrays)

        def take(c):
            return setup.take(out, int(chunks[c]), int(chunks[c + 1]))

        if P == 1:
            take(0)
            return [setup.replay(out, 0, chunks)]
        with ThreadPoolExecutor(P - 1, thread_name_prefix="cachesim-part") as pool:
            _in_threads(pool, take, P)
            return _in_threads(pool, lambda p: setup.replay(out, p, chunks), P)


SHARED_STEP = 1 << 21  # accesses a step of `_run_shared` covers (two steps' buffers are held)


def _run_shared(setup: _Setup):
    """Every part's counters, the fbgemm model on P threads that share the deduplication. The
    trace goes by steps of whole batches (about SHARED_STEP accesses each), each cut into P
    runs of about equal accesses. At step k thread c finds the distinct keys of run c of step k
    (`fbgemm.dedupe_batches`: each batch's keys in order of first sight, as the kernel finds
    them, with their part ids and accesses), then replays its part p = c from every run of step
    k - 1 (`run_batches(..., occ=...)`: the kernel keeps the part's keys of each batch); then
    all wait for each other. So each access is deduplicated once, by one thread, and a part's
    kernel reads only distinct keys: what each thread does is half the replay's. Two steps'
    buffers (8 bytes an access) and a place per key per thread (4 bytes) are held."""
    from .fbgemm import dedupe_batches
    P = setup.plan.parts
    starts, ids, part_id = setup.starts, setup.ids, setup.part_id
    n_steps = max(1, -(-int(starts[-1]) // SHARED_STEP))
    cuts = chunk_batches(starts, n_steps)
    runs = [int(cuts[k]) + chunk_batches(starts[cuts[k]:cuts[k + 1] + 1] - starts[cuts[k]], P)
            for k in range(n_steps)]  # runs[k][c]: the first batch of run c of step k
    cap = max(int(starts[r[c + 1]] - starts[r[c]]) for r in runs for c in range(P))
    most = max(int(r[c + 1] - r[c]) for r in runs for c in range(P))
    specs = ([(part_id.dtype, cap), (np.int32, cap), (np.int64, most + 1)] * (2 * P)
             + [(np.int32, setup.trace.n_distinct)] * P)
    bufs: list = []  # bufs[step % 2][c]: run c's part ids, accesses, batch starts
    places: list = []  # each thread's places (`dedupe_batches`)
    found = [[0] * P for _ in range(2)]
    barrier = threading.Barrier(P)

    def thread(c: int):
        cache = setup.part_cache(c)
        keys, tabs = setup.part_keys(c)
        place = places[c]
        for k in range(n_steps + 1):
            if k < n_steps:
                sv, oc, us = bufs[k % 2][c]
                found[k % 2][c] = int(dedupe_batches(ids, starts, np.int64(runs[k][c]),
                                                     np.int64(runs[k][c + 1]), place, part_id,
                                                     sv, oc, us))
            if k:
                r = runs[k - 1]
                for c2 in range(P):
                    b0, b1 = int(r[c2]), int(r[c2 + 1])
                    if b1 > b0:
                        sv, oc, us = bufs[(k - 1) % 2][c2]
                        n = found[(k - 1) % 2][c2]
                        cache.run_batches(keys, tabs, sv[:n], us[:b1 - b0 + 1], by_id=True,
                                          select=(part_id, c), occ=oc[:n])
            barrier.wait()
        return cache.table_counts.copy(), cache.per_batch()

    errors: list = [None] * P

    def guarded(c: int):
        try:
            return thread(c)
        except BaseException as err:  # (a Ctrl-C in this thread too) the others stop at
            errors[c] = err           # their next wait
            barrier.abort()
            return None

    with held_arrays(setup.trace, specs) as views, \
            ThreadPoolExecutor(P - 1, thread_name_prefix="cachesim-part") as pool:
        bufs[:] = [[tuple(views[3 * (P * h + c):3 * (P * h + c) + 3]) for c in range(P)]
                   for h in range(2)]
        places[:] = views[6 * P:]
        results = _in_threads(pool, guarded, P)
    # the error that stopped a thread, not the broken wait it left the others
    raised = [e for e in errors if e is not None]
    if raised:
        raise next((e for e in raised if not isinstance(e, threading.BrokenBarrierError)),
                   raised[0])
    return results


class _AccessSetup(_Setup):
    """An access replay of a set-associative cache, split by set ranges: part p's accesses, in
    the trace's order, replay on a cache of the whole geometry (`access.Replayer`). Every set
    rule (lru, fifo, lfu with its lru ties, a plugin's) compares the time stamps of one set's
    lines only, and a part's stamps (its own access count) keep the trace's order within each
    set, so the parts' counters sum to the one replay's exactly. The take (`_take_chunk`, over
    P runs of accesses) carries each access's global dense id, and its size in the carried column
    when the trace has sizes."""

    def __init__(self, trace, pol_run, capacity_value, unit, ways, seed, parts):
        n_sets = n_sets_for(capacity_value, ways)
        P = max(1, min(int(parts), n_sets))
        self.plan = PartPlan(pol_run.name, capacity_value, ways, "access", P)
        self.trace, self.template = trace, None
        self.args = (pol_run, capacity_value, unit, ways, seed)
        part_of_id = _set_ranges(set_index(trace.distinct_keys, n_sets), n_sets, P)
        n_keys, n = trace.n_distinct, len(trace)
        dtype = np.int64 if n_keys >= 1 << (31 - PART_BITS) else np.int32
        self.part_id = (np.arange(n_keys, dtype=dtype) << PART_BITS) | part_of_id
        self.ids = np.ascontiguousarray(trace.dense_ids)
        self.starts = (np.arange(P + 1, dtype=np.int64) * n) // P  # P runs, no batches
        self.fbgemm = self.bad = False
        self.col = (np.ascontiguousarray(trace.size, dtype=np.int64) if trace.has_sizes
                    else np.zeros(0, np.int64))  # the sizes, carried to each part

    def replay(self, out, p: int, chunks):
        from .access import Replayer
        sizes, ids, cnt = out[:3]
        r = Replayer(self.trace, *self.args)
        empty = np.zeros(0, dtype=np.int64)
        for c in range(len(chunks) - 1):
            b0, b1 = int(chunks[c]), int(chunks[c + 1])
            if b0 == b1:
                continue
            at = int(self.starts[b0]) + int(cnt[b0:b1, :p].sum())
            z = at + int(cnt[b0:b1, p].sum())
            r.feed_arrays(ids[at:z], sizes[at:z] if sizes.shape[0] else empty, empty)
        return r.counters.copy()


def replay_access_partitioned(trace, policy="lru", capacity="5%", parts: int = 2,
                              ways=DEFAULT_WAYS, *, seed: int = 0) -> Result:
    """`access.replay(trace, policy, capacity, ways, mode="access")` of a set-associative cache
    (lru, lfu, fifo or a plugin's set rule, a size in rows or %) split into `parts` processes by
    ranges of sets (`cachesim replay --mode access --jobs N`), merged to exactly its Result
    (only `seconds` differs). A cache of fewer sets than `parts` runs in that many, and a trace
    of fewer than MIN_PART_ACCESSES accesses a process in fewer processes."""
    from .access import access_result, plan, replay
    t0 = time.perf_counter()
    asked = ways
    trace.require_nonempty()
    pol, pol_run, cap, capacity_value, unit, ways = plan(trace, policy, capacity, ways)
    if ways is None or pol_run.needs_next:
        raise CachesimError(f"--jobs {parts} splits an access replay by cache sets, but "
                            f"{pol.name} at {cap.text} is one fully associative cache here; give "
                            "--ways W with lru, lfu or fifo and a size in rows or %, or drop "
                            "--jobs")
    parts = min(_checked_parts(parts), max(1, len(trace) // MIN_PART_ACCESSES))
    if parts == 1:  # the one-process replay itself
        return replay(trace, policy, capacity, asked, seed=seed, mode="access")
    setup = _AccessSetup(trace, pol_run, capacity_value, unit, ways, seed, parts)
    counters = sum(_run_local(setup))
    return access_result(trace, pol.name, cap, capacity_value, unit, ways, counters,
                         time.perf_counter() - t0)


def replay_partitioned(trace, policy="lru", capacity="5%", parts: int = 2, ways=DEFAULT_WAYS, *,
                       per_table: bool = False, inference: bool = False, cache_model=None,
                       prefetch_pipeline: bool = False, warp=None, table_groups=None) -> Result:
    """`replay_batch(trace, policy, capacity, ways, ...)` split into `parts` processes (by set
    ranges, or by whole caches: tables with `per_table`, table groups), merged to exactly its `Result` (only `seconds`, the
    wall time of the whole split replay, differs). A cache with fewer sets (tables) than `parts`
    runs in that many parts; a fully associative unified cache (one set) runs in one, and so
    does a trace of fewer than MIN_PART_ACCESSES accesses a process (2 processes would be slower
    than one)."""
    t0 = time.perf_counter()
    if _checked_parts(parts) == 1 or len(trace) < 2 * MIN_PART_ACCESSES:
        from .batch import replay_batch  # one process: the one-process replay itself
        return replay_batch(trace, policy, capacity, ways, per_table=per_table,
                            inference=inference, cache_model=cache_model,
                            prefetch_pipeline=prefetch_pipeline, warp=warp,
                            table_groups=table_groups)
    plan, template, size_text, extra = _plan(trace, policy, capacity, parts, ways, per_table,
                                             inference, cache_model, prefetch_pipeline, warp,
                                             table_groups)
    if len(trace) < MIN_PART_ACCESSES * plan.parts:
        plan = replace(plan, parts=len(trace) // MIN_PART_ACCESSES)
    setup = _Setup(trace, plan, template)
    res = _run_local(setup)
    if res is None:
        _bad_row(trace, template)
    return merge_parts(trace, plan, res, time.perf_counter() - t0,
                       _template_info=(template, size_text, extra))
