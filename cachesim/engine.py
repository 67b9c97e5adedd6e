"""The replay engine: one trace, one policy, one cache size, per access.

`replay(trace, policy, capacity, ways=None)` checks its inputs, builds the policy's state, feeds
the trace to the kernel in chunks (so progress can be shown and a replay could resume from the
state after any chunk), and wraps the counters in a `Result`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import CachesimError
from .hashing import n_sets_for, set_index
from .policies import EVICTIONS, HITS, MISS_BYTES, MISSES, N_COUNTERS, Setup, get_policy
from .policies.base import Policy
from .sizes import Capacity, parse_size

CHUNK = 1 << 20


@dataclass
class Result:
    """Counts of one replay. `miss_bytes` is the bytes of the missed objects: the trace's own
    object sizes where it has them, else each table's fp32 row (4 x dim bytes)."""

    policy: str
    size: str
    capacity: int
    capacity_unit: str
    ways: int | None
    requests: int
    hits: int
    misses: int
    hit_ratio: float
    miss_ratio: float
    miss_bytes: int
    request_bytes: int
    evictions: int
    seconds: float
    per_table: dict = field(default_factory=dict, repr=False)

    def to_record(self, per_table: bool = False) -> dict:
        rec = asdict(self)
        if not per_table:
            rec.pop("per_table")
        return rec


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
        keys = tr.dense_ids[start:stop]
        sizes = tr.size[start:stop] if tr.size is not None else self._empty
        if self.policy.is_python:
            self._feed_python(keys, sizes)
        else:
            nxt = tr.next_access[start:stop] if self.policy.needs_next else self._empty
            self.policy.kernel(keys, sizes, nxt, tr.key_table, self.unit, self.capacity, start,
                               self.state, self.counters)
        self.position = stop

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


def replay(trace, policy, capacity, ways: int | None = None, *, seed: int = 0,
           progress: bool = False, mode: str | None = None, per_table: bool = False):
    """Replay `trace` through `policy` (a name or a Policy) with a cache of `capacity`.

    `capacity` is a row count, a share of the distinct keys ('5%'), or bytes ('128MiB': needs
    object sizes). `ways` makes lru, lfu and fifo set-associative (1 = direct-mapped).
    `mode`: "access" (one access at a time, a `Result`), "batch" (embedding-cache semantics per
    training batch, a `cachesim.batch.BatchResult`; `per_table` gives each table its own cache),
    or None: batch when the trace has batches, else access.
    """
    trace.require_nonempty()
    if mode is None:
        mode = "batch" if trace.has_batches else "access"
    if mode == "batch":
        from .batch import replay_batch
        return replay_batch(trace, policy, capacity, ways=ways, per_table=per_table,
                            progress=progress)
    if mode != "access":
        raise CachesimError(f"--mode {mode!r}: use access or batch")
    if per_table:
        raise CachesimError("per-table caches (--per-table) need batch mode (--mode batch)")
    pol = get_policy(policy) if isinstance(policy, str) else policy
    cap, capacity_value, unit = resolve_capacity(trace, capacity)
    if ways is not None:
        ways = int(ways)
        if ways < 1:
            raise CachesimError(f"--ways {ways}: the number of ways must be at least 1")
        if not unit:
            raise CachesimError("a set-associative cache counts rows: give --size as rows or %, "
                                "not bytes, with --ways")
        if pol.set_associative is None:
            raise CachesimError(f"policy {pol.name!r} has no set-associative form; --ways works "
                                "with lru, lfu and fifo")
        pol_run = pol.set_associative
    else:
        pol_run = pol
    if not unit and not pol_run.supports_bytes:
        raise CachesimError(f"policy {pol.name!r} counts rows only: give --size as rows or %")
    t_start = time.perf_counter()
    r = Replayer(trace, pol_run, capacity_value, unit, ways, seed)
    n = len(trace)
    bar = _progress_bar(n, f"{pol.name} {cap.text}", progress)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        r.feed(start, stop)
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t_start
    return _result(trace, pol.name, cap, capacity_value, unit, ways, r.counters, seconds)


def _result(trace, name, cap, capacity_value, unit, ways, counters, seconds) -> Result:
    hits_t, misses_t = counters[:, HITS], counters[:, MISSES]
    req_t = hits_t + misses_t
    if trace.has_sizes:
        miss_bytes_t = counters[:, MISS_BYTES]
        req_bytes = int(trace.size.sum())
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
    return Result(policy=name, size=cap.text, capacity=int(capacity_value),
                  capacity_unit="rows" if unit else "bytes", ways=ways, requests=requests,
                  hits=hits, misses=misses, hit_ratio=hits / requests if requests else 0.0,
                  miss_ratio=misses / requests if requests else 0.0,
                  miss_bytes=int(miss_bytes_t.sum()), request_bytes=req_bytes,
                  evictions=int(counters[:, EVICTIONS].sum()), seconds=seconds,
                  per_table=per_table)


def _progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr when asked for and stderr is a terminal; else None."""
    import sys
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="req", unit_scale=True, file=sys.stderr,
                leave=False, delay=2.0)
