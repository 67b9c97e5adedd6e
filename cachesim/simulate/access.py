"""The replay engine: one trace, one policy, one cache size, per access.

`replay(trace, policy, capacity, ways=32)` checks its inputs, builds the policy's state, feeds
the trace to the kernel in chunks (so progress can be shown and a replay could resume from the
state after any chunk), and wraps the counters in a `Result` (`cachesim.simulate.result`); on a trace
with batches it hands over to `cachesim.simulate.batch.replay_batch`, which returns the same type.
"""
from __future__ import annotations

import os
import time

import numpy as np

from ..errors import CachesimError
from ..hashing import n_sets_for, set_geometry, set_index
from ..policies import EVICTIONS, HITS, MISS_BYTES, MISSES, N_COUNTERS, Setup, get_policy
from ..policies.base import Policy
from ..progress import bar as progress_bar
from .result import DEFAULT_WAYS, Result, ratio
from ..sizes import Capacity, parse_size

CHUNK = 1 << 20


class Replayer:
    """Holds a policy's state across chunks: `feed(start, stop)` replays accesses [start, stop)."""

    def __init__(self, trace, policy: Policy, capacity: int, unit: bool, ways: int | None = None,
                 seed: int = 0):
        self.trace = trace
        self.policy = policy
        self.capacity = int(capacity)
        self.unit = unit
        self.ways = ways
        n_sets, set_of = 1, None
        if ways is not None:
            n_sets = n_sets_for(capacity, ways)
            set_of = set_index(trace.distinct_keys, n_sets)
            if n_sets > set_of.shape[0]:
                # more sets than keys: only the sets some key maps to are ever used, so the
                # state holds those alone, renumbered in order (sets never interact; a key keeps
                # its set-mates), and a cache far above the trace costs its keys, not its size
                touched, set_of = np.unique(set_of, return_inverse=True)
                n_sets = max(1, touched.shape[0])
        self.setup = Setup(n_keys=trace.n_distinct, capacity=self.capacity, unit=unit,
                           n_tables=trace.n_tables, ways=ways, n_sets=n_sets, set_of=set_of,
                           seed=seed)
        self.counters = np.zeros((trace.n_tables, N_COUNTERS), dtype=np.int64)
        self.position = 0
        if policy.is_python:
            self.state = policy.python_class(self.capacity, unit, seed)
        else:
            self.state = policy.init(self.setup)
        self._empty = np.zeros(0, dtype=np.int64)

    def feed(self, start: int, stop: int) -> None:
        if start != self.position:
            raise ValueError(f"chunks must be fed in order: expected start {self.position}")
        tr = self.trace
        sizes = tr.size[start:stop] if tr.size is not None else self._empty
        nxt = tr.next_access[start:stop] if self.policy.needs_next else self._empty
        self.feed_arrays(tr.dense_ids[start:stop], sizes, nxt)

    def feed_arrays(self, keys, sizes, nxt) -> None:
        """Replay the next accesses given as arrays: dense ids, sizes (empty: none) and, for a
        policy that `needs_next`, their next access (global index, -1 if none). A streamed
        replay feeds chunks this way (`cachesim.simulate.stream`)."""
        start = self.position
        if self.policy.is_python:
            self._feed_python(keys, sizes)
        else:
            self.policy.kernel(keys, sizes, nxt if self.policy.needs_next else self._empty,
                               self.trace.key_table, self.unit, self.capacity, start,
                               self.state, self.counters)
        self.position = start + int(keys.shape[0])

    def _feed_python(self, keys, sizes) -> None:
        obj, kt, c = self.state, self.trace.key_table, self.counters
        has_sizes = sizes.shape[0] > 0
        for i, k in enumerate(keys.tolist()):
            s = int(sizes[i]) if has_sizes else 1
            t = kt[k]
            if obj.access(k, 1 if self.unit else s):
                c[t, HITS] += 1
            else:
                c[t, MISSES] += 1
                if has_sizes:
                    c[t, MISS_BYTES] += s
        for k in obj.evictions:
            c[kt[k], EVICTIONS] += 1
        obj.evictions.clear()


def resolve_capacity(trace, size) -> tuple[Capacity, int, bool]:
    """(parsed size, capacity as rows or bytes, unit?) for this trace."""
    cap = parse_size(size)
    if cap.is_bytes and not trace.has_sizes:
        raise CachesimError(
            f"cache size {cap.text!r} is in bytes, but {trace.source or 'the trace'} has no "
            "object sizes; give a row count (1000) or a share of the distinct keys (5%)")
    return cap, cap.resolve(trace.n_distinct), not cap.is_bytes


def replay(trace, policy, capacity, ways: int | None = DEFAULT_WAYS, *, seed: int = 0,
           progress: bool = False, mode: str | None = None, per_table: bool = False,
           cache_model: str | None = None, prefetch_pipeline: bool = False,
           warp: int | None = None, record_cache_miss_counter: bool = False,
           table_groups=None):
    """Replay `trace` (a `Trace`, or a path `cachesim.read_trace` reads) through `policy` (a name
    or a Policy; a list of them gives a list of Results, in order) with a cache of `capacity`.

    `capacity` is a row count, a share of the distinct keys ('5%'), or bytes ('128MiB': needs
    object sizes). `ways`: 32 by default (FBGEMM's), None for fully associative; a cache of C
    rows has ceil(C / W) sets, W above C is lowered to C (one set: the fully associative
    policy, exactly). In access mode ways apply to lru, lfu and fifo with a row capacity; the
    other policies, and byte capacities, are fully associative (`Result.ways` is None) and take
    no other ways than the default. `mode`: "access" (one access at a time, every policy),
    "batch" (FBGEMM's embedding-cache rules per training batch, lru and lfu; `per_table` gives
    each table its own cache), or None: batch when the trace has batches, else access. Either
    way a `Result` (see its docstring: hit_ratio is per access in both modes). Batch mode only:
    `cache_model` ("fbgemm": FBGEMM's training cache exactly, "ideal": cachesim's own, None:
    `result.DEFAULT_CACHE_MODEL`), and for fbgemm `prefetch_pipeline`, `warp` (32 or 64) and
    `record_cache_miss_counter` (FBGEMM's RecordCacheMetrics: the lookup before each populate)
    and `table_groups` (which tables share a cache: TorchRec's TBE ops, `simulate.groups`);
    see `cachesim.simulate.batch.replay_batch`.
    """
    if isinstance(trace, (str, os.PathLike)):
        from ..io import read_trace
        trace = read_trace(trace)
    if isinstance(policy, (list, tuple)):
        return [replay(trace, p, capacity, ways, seed=seed, progress=progress, mode=mode,
                       per_table=per_table, cache_model=cache_model,
                       prefetch_pipeline=prefetch_pipeline, warp=warp,
                       record_cache_miss_counter=record_cache_miss_counter,
                       table_groups=table_groups) for p in policy]
    trace.require_nonempty()
    if mode is None:
        mode = "batch" if trace.has_batches else "access"
    if mode == "batch":
        from .batch import replay_batch
        return replay_batch(trace, policy, capacity, ways=ways, per_table=per_table,
                            progress=progress, cache_model=cache_model,
                            prefetch_pipeline=prefetch_pipeline, warp=warp,
                            record_cache_miss_counter=record_cache_miss_counter,
                            table_groups=table_groups)
    if mode != "access":
        raise CachesimError(f"mode={mode!r}: use mode=\"access\" or mode=\"batch\"")
    if cache_model is not None or prefetch_pipeline or warp is not None or \
            record_cache_miss_counter:
        raise CachesimError("--cache-model, --prefetch-pipeline, --warp and "
                            "--record-cache-miss-counter choose the batch replay's cache; they "
                            "need batch mode (mode=\"batch\")")
    if per_table or table_groups is not None:
        raise CachesimError("per-table caches (per_table=True) and table groups need batch mode "
                            "(mode=\"batch\")")
    pol, pol_run, cap, capacity_value, unit, ways = plan(trace, policy, capacity, ways)
    t_start = time.perf_counter()
    r = Replayer(trace, pol_run, capacity_value, unit, ways, seed)
    n = len(trace)
    bar = progress_bar(n, f"{pol.name} {cap.text}", progress, unit="req", unit_scale=True,
                       delay=2.0)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        r.feed(start, stop)
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t_start
    return access_result(trace, pol.name, cap, capacity_value, unit, ways, r.counters, seconds)


def plan(trace, policy, capacity, ways):
    """Check an access replay's policy, size and ways against `trace` (a `Trace`, or anything
    with its `source`, `has_sizes` and `n_distinct`): (policy, the policy that runs (its
    set-associative form or itself), parsed size, capacity in rows or bytes, unit?, ways or
    None)."""
    pol = get_policy(policy) if isinstance(policy, str) else policy
    cap, capacity_value, unit = resolve_capacity(trace, capacity)
    if ways is not None:
        ways = int(ways)
        if ways < 1:
            raise CachesimError(f"ways={ways}: the number of ways must be at least 1 "
                                "(ways=None: fully associative)")
    set_assoc = ways is not None and unit and pol.set_associative is not None
    if ways is not None and not set_assoc and ways != DEFAULT_WAYS:
        if not unit:
            raise CachesimError(f"ways={ways}: a set-associative cache counts rows; give the size "
                                "as rows or %, not bytes, or ways=None")
        raise CachesimError(f"policy {pol.name!r} has no set-associative form; ways={ways} works "
                            "with lru, lfu and fifo (others: ways=None)")
    if set_assoc:  # FBGEMM's rounding, as batch mode: `capacity` is the lines used
        n_sets, ways = set_geometry(capacity_value, ways)
        capacity_value = n_sets * ways
        pol_run = pol.set_associative
    else:
        ways = None
        pol_run = pol
    if not unit and not pol_run.supports_bytes:
        raise CachesimError(f"policy {pol.name!r} counts rows only: give the size as rows or %")
    return pol, pol_run, cap, capacity_value, unit, ways


def access_result(trace, name, cap, capacity_value, unit, ways, counters, seconds,
                  req_bytes: int | None = None) -> Result:
    """The Result of an access replay from its per-table counters (`trace`: what `plan` reads
    of it, an in-memory Trace or a streamed file's metadata)."""
    hits_t, misses_t = counters[:, HITS], counters[:, MISSES]
    req_t = hits_t + misses_t
    if trace.has_sizes:
        miss_bytes_t = counters[:, MISS_BYTES]
        req_bytes = int(trace.size.sum()) if req_bytes is None else req_bytes
    else:
        row_bytes = trace.row_bytes_fp32()
        miss_bytes_t = misses_t * row_bytes
        req_bytes = int((req_t * row_bytes).sum())
    requests, hits, misses = int(req_t.sum()), int(hits_t.sum()), int(misses_t.sum())
    per_table = {
        "table": list(trace.table_names),
        "requests": req_t.tolist(), "hits": hits_t.tolist(), "misses": misses_t.tolist(),
        "miss_bytes": miss_bytes_t.tolist(), "evictions": counters[:, EVICTIONS].tolist(),
    }
    n_sets = n_lines = None
    if unit:  # rows: the lines the cache allocates
        n_sets = 1 if ways is None else n_sets_for(capacity_value, ways)
        n_lines = int(capacity_value) if ways is None else n_sets * ways
    return Result(policy=name, size=cap.text, capacity=int(capacity_value),
                  capacity_unit="rows" if unit else "bytes", ways=ways, mode="access",
                  requests=requests, hits=hits, misses=misses, hit_ratio=ratio(hits, requests),
                  miss_ratio=ratio(misses, requests), miss_bytes=int(miss_bytes_t.sum()),
                  request_bytes=req_bytes, evictions=int(counters[:, EVICTIONS].sum()),
                  seconds=seconds, n_sets=n_sets, n_lines=n_lines, per_table=per_table)
