"""TorchRec's `EmbeddingOffloadStats` export: per-table expected lookups and the LRU
miss-ratio curve in the shape TorchRec's cache planner reads, and the miss rate it derives."""
from __future__ import annotations

import numpy as np

from ..errors import CachesimError
from .stack import lru_curve, stack_distances




def expected_lookups(trace) -> np.ndarray:
    """Distinct ids per batch, per table (mean over batches): TorchRec's `expected_lookups`.
    Without a batch column every access is its own batch (accesses of the table / accesses)."""
    n_t = trace.n_tables
    if trace.batch is None:
        return np.bincount(trace.table, minlength=n_t) / len(trace)
    import polars as pl
    df = pl.DataFrame({"b": trace.batch, "t": trace.table, "k": trace.row})
    per = df.group_by(["b", "t"]).agg(pl.col("k").n_unique().alias("n"))
    sums = per.group_by("t").agg(pl.col("n").sum())
    out = np.zeros(n_t, dtype=np.float64)
    out[sums["t"].to_numpy()] = sums["n"].to_numpy()
    return out / df["b"].n_unique()


def torchrec_stats(trace, bins: int = 100) -> dict:
    """Per-table LRU statistics in the shape of TorchRec's `EmbeddingOffloadStats`.

    {table: {"mrc_hist_counts": [bins ints], "height": rows, "expected_lookups": distinct ids
    per batch, "cacheability": area under the exact miss-ratio curve over load factors 0..1}}.
    Bin i counts the accesses whose stack distance lies in [i, i+1) x height / bins, as
    `np.histogram` over `linspace(0, height, bins + 1)`; first accesses go to the last bin, so
    TorchRec's miss rate at load factor c = 1 - cumsum(hist)/sum(hist) at the bin of c x height
    - 1 equals the exact curve (compulsory misses included) wherever c x height is a bin edge
    below the last bin. TorchRec takes the last bin to give a miss rate of 0.
    """
    trace.require_nonempty()
    if bins < 1:
        raise CachesimError(f"bins {bins}: need at least one histogram bin")
    lookups = expected_lookups(trace)
    out = {}
    for t, tr in trace.per_table():
        name = tr.table_names[0]
        height = max(int(trace.table_rows[t]), tr.n_distinct)
        d = stack_distances(tr.dense_ids, tr.n_distinct)
        edges = np.linspace(0, height, bins + 1)
        hist, _ = np.histogram(d[d >= 0], bins=edges)
        hist[-1] += int((d < 0).sum())
        miss = lru_curve(tr)
        # area under the step function miss(C) for C in [0, height), per row of height
        area = miss[:min(height, miss.shape[0])].sum() + max(0, height - miss.shape[0]) * miss[-1]
        out[name] = {"mrc_hist_counts": hist.astype(np.int64).tolist(), "height": height,
                     "expected_lookups": float(lookups[t]),
                     "cacheability": float(area / height)}
    return out


def tables_with_accesses(trace) -> list[int]:
    if trace.n_tables == 1:
        return [0]
    return np.flatnonzero(np.bincount(trace.table, minlength=trace.n_tables)).tolist()


def torchrec_miss_rate(stats: dict, load_factor: float) -> float:
    """Miss rate at `load_factor` from one exported table, computed as TorchRec's
    `EmbeddingOffloadStats.expected_miss_rate` does (for checking an export)."""
    hist = np.asarray(stats["mrc_hist_counts"], dtype=np.float64)
    edges = np.linspace(0, stats["height"], hist.shape[0] + 1)
    ys = np.cumsum(hist)
    if ys[-1] == 0:
        return 0.0
    ys = np.concatenate([1.0 - ys / ys[-1], [0.0, 1.0]])
    idx = int(np.searchsorted(edges, load_factor * stats["height"] - 1, side="right"))
    return float(ys[idx - 1])
