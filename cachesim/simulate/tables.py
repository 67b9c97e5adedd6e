"""Table-partitioned batch replay: per-table caches (`per_table=True`) never interact, so table
t's accesses can be replayed on their own (on another process or Dask worker) and the per-table
results merged into exactly the `Result` of one `replay_batch(..., per_table=True)`.

`table_plan(trace, ...)` fixes each table's cache from the whole trace (the ideal model's rows
per table, `batch.table_capacities`; the fbgemm model's sets per table, `fbgemm.fbgemm_geometry`),
so a table's sub-trace (`Trace.per_table()`) replays with the cache the whole replay gives it.
`replay_table(sub, plan, t)` replays one table; `merge_tables(trace, plan, parts)` sums the
counters (`calls`, the number of batches, is the whole trace's, not a sum), recomputes the ratios
and assembles `per_table`. `replay_by_table(trace, ...)` does all three, with any `map`.

FBGEMM's prefetch pipeline keeps the previous batch's lines locked, and a table's sub-trace lacks
the batches where the table is absent, so a pipelined replay is not split (`splittable`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CachesimError
from .result import DEFAULT_WAYS, Result, batch_result_of, resolve_cache_model


@dataclass(frozen=True)
class TablePlan:
    """Each table's cache, fixed from the whole trace: `caps` (one capacity list entry per
    table: rows for the ideal model, lines = sets x ways for the fbgemm model)."""

    policy: str
    size: str
    ways: int | None
    cache_model: str
    caps: tuple
    inference: bool = False
    warp: int | None = None
    load_factor: float | None = None
    offsets: tuple = ()  # each table's linearisation offset in the whole trace (ideal model)


def splittable(per_table: bool, n_tables: int, prefetch_pipeline: bool = False) -> bool:
    """Whether a batch replay can be split by table and merged exactly."""
    return bool(per_table) and n_tables > 1 and not prefetch_pipeline


def table_plan(trace, policy="lru", capacity="5%", ways=DEFAULT_WAYS, *, cache_model=None,
               inference=False, warp=None) -> TablePlan:
    """The per-table caches of `replay_batch(trace, ..., per_table=True)`."""
    from ..policies import get_policy
    model = resolve_cache_model(cache_model)
    name = get_policy(str(policy)).name
    if model == "fbgemm":
        from .fbgemm import check_fbgemm_ways, fbgemm_cache_sets, fbgemm_geometry
        w = check_fbgemm_ways(ways, warp)
        size_kw, size_text, lf = fbgemm_geometry(trace, capacity, w, per_table=True)
        if "cache_sets" in size_kw:
            sets = np.asarray(size_kw["cache_sets"], dtype=np.int64)
        else:
            sets = np.array([fbgemm_cache_sets(r, lf, w)
                             for r in np.maximum(trace.table_rows, 1)], dtype=np.int64)
        caps = tuple(int(s) * w for s in sets)
    else:
        from .batch import table_capacities
        caps_arr, size_text = table_capacities(trace, capacity)
        caps, lf = tuple(int(c) for c in caps_arr), None
    return TablePlan(name, size_text, ways, model, caps, bool(inference), warp, lf,
                     tuple(int(o) for o in trace.table_offsets))


def replay_table(sub, plan: TablePlan, t: int) -> Result:
    """Table t's one-table sub-trace (`Trace.per_table()`) through the cache `plan` gives it."""
    from .batch import replay_batch
    if plan.cache_model == "ideal" and plan.offsets[t]:
        # the ideal model hashes a key's set from its key linearised over all tables: give the
        # sub-trace the whole trace's keys (rows shifted by the table's offset; the caches and
        # byte counts do not read table_rows)
        from dataclasses import replace
        off = plan.offsets[t]
        sub = replace(sub, row=sub.row + off, table_rows=sub.table_rows + off)
    return replay_batch(sub, plan.policy, [plan.caps[t]], ways=plan.ways, per_table=True,
                        inference=plan.inference, cache_model=plan.cache_model, warp=plan.warp)


def merge_tables(trace, plan: TablePlan, parts: dict) -> Result:
    """One `Result` from {table: its Result}: exactly `replay_batch(trace, ..., per_table=True)`
    (tables without accesses count zeros); `seconds` is the parts' sum."""
    seconds = float(sum(p.seconds for p in parts.values()))
    calls = int(trace.batch_starts.shape[0] - 1)
    if plan.cache_model == "fbgemm":
        from .fbgemm import FBGEMM_COUNTERS, TABLE_COUNTERS, check_fbgemm_ways
        w = check_fbgemm_ways(plan.ways, plan.warp)
        names = TABLE_COUNTERS
        sets = np.asarray(plan.caps, dtype=np.int64) // w
        fb = {nm: sum(int(getattr(p, nm) or 0) for p in parts.values()) for nm in FBGEMM_COUNTERS}
        # FBGEMM counts calls (batches), 0 under LFU; the rest are sums over tables
        fb["num_calls"] = calls if any(p.num_calls for p in parts.values()) else 0
        fields = dict(capacity=int(sets.sum()) * w, ways=w, n_sets=int(sets.sum()),
                      n_lines=int(sets.sum()) * w, cache_model="fbgemm",
                      load_factor=plan.load_factor, prefetch_pipeline=False,
                      table_rows_inferred=bool(trace.table_rows_inferred),
                      per_table={"n_sets": sets.tolist(), "n_lines": (sets * w).tolist()}, **fb)
    else:
        from ..hashing import set_geometry
        from .batch import COUNTER_NAMES
        names = COUNTER_NAMES
        caps = np.asarray(plan.caps, dtype=np.int64)
        g_sets, g_ways = set_geometry(caps, caps if plan.ways is None else plan.ways)
        lines = int((g_sets * g_ways).sum())
        fields = {"capacity": lines, "n_lines": lines, "n_sets": int(g_sets.sum()),
                  "ways": None if plan.ways is None else int(g_ways.max()),
                  "cache_model": "ideal"}
    counts = np.zeros((trace.n_tables, len(names)), dtype=np.int64)
    for t, p in parts.items():
        if p.cache_model != plan.cache_model or p.policy != plan.policy:
            raise CachesimError(f"table {t}: its part replayed {p.policy}/{p.cache_model}, not "
                                f"{plan.policy}/{plan.cache_model}; the parts must come from "
                                "one plan")
        counts[t] = [p.per_table[nm][0] for nm in names]
    return batch_result_of(trace, names, counts, policy=plan.policy, size=plan.size,
                           seconds=seconds, per_table_caches=True, inference=plan.inference,
                           calls=calls, **fields)


def replay_by_table(trace, policy="lru", capacity="5%", ways=DEFAULT_WAYS, *, cache_model=None,
                    inference=False, warp=None, map=map) -> Result:
    """`replay_batch(trace, ..., per_table=True)`, table by table: `map(fn, items)` runs the
    tables (the builtin map: one after another; an executor's or Dask client's map: in
    parallel) and the results are merged exactly."""
    trace.require_nonempty()
    plan = table_plan(trace, policy, capacity, ways, cache_model=cache_model,
                      inference=inference, warp=warp)
    items = [(sub, plan, t) for t, sub in trace.per_table()]
    results = list(map(_replay_item, items))
    return merge_tables(trace, plan, {t: r for (_, _, t), r in zip(items, results)})


def _replay_item(item) -> Result:
    sub, plan, t = item
    return replay_table(sub, plan, t)
