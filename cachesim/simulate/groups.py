"""Which tables share one FBGEMM cache: TorchRec's TBE groups (`--table-groups`).

FBGEMM builds one cache per `SplitTableBatchedEmbeddingBagsCodegen` op (a TBE), over that op's
tables: its sets are `(int(rows x load factor) + 31) // 32` of the op's rows, and a key is the
row plus the rows of the op's earlier tables (`_apply_cache_state`; `linearize_cache_indices`
over the op's `cache_hash_size_cumsum`). Which tables share an op is the caller's choice, and
TorchRec makes it in `torchrec/distributed/embedding_sharding.py: group_tables`: on one rank,
tables with the same data type, pooling, feature processor, fused parameters (all but
`cache_load_factor`) and compute kernel share one TBE, in the order TorchRec meets them, and

- without the prefetch pipeline, tables of every embedding dim share it
  (`EmbDimBucketerPolicy.SINGLE_BUCKET`);
- with `prefetch_pipeline=True` on a caching kernel (`_prefetch_and_cached`), each embedding
  dim gets its own TBE (`EmbDimBucketerPolicy.ALL_BUCKETS`);
- `use_one_tbe_per_table` gives every table its own (`_get_grouping_fused_params`): cachesim's
  `--per-table`;
- the group's `cache_load_factor` is its tables' average weighted by num_embeddings
  (`_get_weighted_avg_cache_load_factor`): with one load factor for all tables, that one.

A trace holds one rank's tables of one configuration, so `torchrec_groups` applies the dim rule
only; `parse_groups` reads an explicit grouping. Groups are numbered in the order of their
first table, and a group's tables keep the trace's table order.
"""
from __future__ import annotations

import numpy as np

from ..errors import CachesimError

BOTH_GIVEN = ("--table-groups and --per-table both say which tables share a cache; give one "
              "(--per-table is --table-groups table)")


def torchrec_groups(table_dims, n_tables: int, prefetch_pipeline: bool) -> np.ndarray:
    """TorchRec's group of each table (`group_tables` on one rank): one group, or with the
    prefetch pipeline one group per embedding dim, numbered by first table."""
    if not prefetch_pipeline:
        return np.zeros(n_tables, dtype=np.int64)
    return _renumbered(np.broadcast_to(np.asarray(table_dims, dtype=np.int64).reshape(-1),
                                       (n_tables,)))


def _table_index(item: str, names: list, n_tables: int, spec: str) -> int:
    if item in names:
        return names.index(item)
    try:
        t = int(item)
    except ValueError:
        raise CachesimError(f"--table-groups {spec!r}: {item!r} is neither a table index "
                            f"(0..{n_tables - 1}) nor a table name ({', '.join(names[:4])}"
                            f"{', ...' if len(names) > 4 else ''})") from None
    if not 0 <= t < n_tables:
        raise CachesimError(f"--table-groups {spec!r}: table {t} is out of range: the trace "
                            f"has tables 0..{n_tables - 1}")
    return t


def parse_groups(spec: str, table_names, n_tables: int) -> np.ndarray:
    """The group of each table from '0-12/13-25' (groups split by '/', tables by ',', ranges of
    indices or names with '-'); every table in exactly one group."""
    names = list(table_names) if table_names else [str(t) for t in range(n_tables)]
    out = np.full(n_tables, -1, dtype=np.int64)
    for g, group in enumerate(str(spec).split("/")):
        items = [x.strip() for x in group.split(",") if x.strip()]
        if not items:
            raise CachesimError(f"--table-groups {spec!r}: group {g + 1} is empty; give "
                                "each group's tables, e.g. '0-12/13-25'")
        for item in items:
            lo, _, hi = item.partition("-") if item not in names else (item, "", "")
            a = _table_index(lo.strip(), names, n_tables, spec)
            b = _table_index(hi.strip(), names, n_tables, spec) if hi else a
            if b < a:
                raise CachesimError(f"--table-groups {spec!r}: range {item!r} runs backwards; "
                                    f"give it as {names[b]}-{names[a]}")
            for t in range(a, b + 1):
                if out[t] >= 0:
                    where = (f"twice in group {g + 1}" if out[t] == g else
                             f"in groups {out[t] + 1} and {g + 1}")
                    raise CachesimError(f"--table-groups {spec!r}: table {names[t]} is {where}; "
                                        "give each table once")
                out[t] = g
    missing = np.flatnonzero(out < 0)
    if missing.size:
        shown = ", ".join(names[t] for t in missing[:5]) + (", ..." if missing.size > 5 else "")
        raise CachesimError(f"--table-groups {spec!r}: no group has table(s) {shown}; give "
                            "every table once (each TBE op holds its own tables)")
    return _renumbered(out)


def _renumbered(groups: np.ndarray) -> np.ndarray:
    """Groups numbered 0, 1, ... by their first table."""
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    rank = np.empty(first.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
    return rank[inverse.reshape(-1)]


def resolve_groups(table_groups, trace, prefetch_pipeline: bool = False,
                   per_table: bool = False) -> np.ndarray | None:
    """The group of each of `trace`'s tables for `table_groups` ('torchrec', 'table', a spec
    for `parse_groups`, or one group number per table), or None for no grouping (one cache of
    every table: `table_groups` None, or one group)."""
    if table_groups is None:
        return None
    if per_table:
        raise CachesimError(BOTH_GIVEN)
    n = trace.n_tables
    if isinstance(table_groups, str):
        spec = table_groups.strip()
        if spec == "torchrec":
            groups = torchrec_groups(trace.table_dims, n, prefetch_pipeline)
        elif spec == "table":
            groups = np.arange(n, dtype=np.int64)
        else:
            groups = parse_groups(spec, trace.table_names, n)
    else:
        groups = np.asarray(table_groups, dtype=np.int64).reshape(-1)
        if groups.shape[0] != n or (groups < 0).any():
            raise CachesimError(f"table_groups: {groups.shape[0]} group numbers for {n} tables; "
                                "give one (>= 0) per table, in table order")
        groups = _renumbered(groups)
    return None if int(groups.max()) == 0 else groups


def canonical_groups(groups) -> str:
    """The grouping as table indices, '0,2/1,3-25' (groups in order of their first table), which
    `parse_groups` reads back to the same groups."""
    return groups_text(groups, [str(t) for t in range(len(groups))])


def check_groups_model(table_groups, model) -> None:
    """CachesimError unless `table_groups` (None: none given) goes with cache model `model`:
    only FBGEMM's training cache has TBE ops."""
    if table_groups is not None and model != "fbgemm":
        raise CachesimError("--table-groups models TorchRec's TBE ops on FBGEMM's training "
                            "cache: it needs --cache-model fbgemm (the ideal model and the "
                            "inference cache have --per-table)")


def resolve_caches(table_groups, trace, prefetch_pipeline: bool = False,
                   per_table: bool = False) -> tuple[bool, np.ndarray | None]:
    """(per_table, groups) of the caches `table_groups` asks for (`resolve_groups`): a group per
    table is --per-table's caches, (True, None); one group is the shared cache, (per_table,
    None)."""
    groups = resolve_groups(table_groups, trace, prefetch_pipeline, per_table)
    if groups is not None and int(groups.max()) == groups.shape[0] - 1:
        return True, None
    return per_table, groups


def groups_text(groups, table_names) -> str:
    """'C1-C13/C14-C26' style text of a grouping (runs of 3 or more consecutive tables as
    first-last)."""
    names = list(table_names)
    parts = []
    for g in range(int(np.max(groups)) + 1):
        ts = np.flatnonzero(np.asarray(groups) == g).tolist()
        runs, start = [], ts[0]
        for a, b in zip(ts, ts[1:] + [None]):
            if b != a + 1:  # a run of 3 or more tables as first-last
                runs.append(f"{names[start]}-{names[a]}" if a - start > 1 else
                            ",".join(names[start:a + 1]))
                start = b
        parts.append(",".join(runs))
    return "/".join(parts)
