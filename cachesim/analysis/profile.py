"""Trace analysis: sizes, popularity (Zipf fit, hot-set coverage), reuse, working set, drift.

`analyze(trace, window=None) -> dict` (JSON-safe). Aggregations run in polars; the per-access
passes (reuse time) are numba kernels; stack distances come from `cachesim.analysis.stack`.
"""
from __future__ import annotations

import numba
import numpy as np

from ..errors import CachesimError

#: Zipf fit: ranks 1..R where R is the last rank with at least this many accesses (the tail
#: below it is the sampling floor, whose flat steps bias the slope).
ZIPF_MIN_COUNT = 20
ZIPF_MIN_POINTS = 10
COVERAGE_SHARES = (0.001, 0.01, 0.05, 0.1)


def zipf_fit(counts, min_count: int = ZIPF_MIN_COUNT) -> dict:
    """Fit frequency ~ rank ** -alpha by least squares of log frequency on log rank.

    counts: accesses per key, any order. Ranks 1..R are used, R the last rank with at least
    `min_count` accesses; when fewer than 10 ranks qualify, the ranks with at least 2 accesses;
    when fewer than 2 of those, all ranks. Returns alpha, r2, rank_min (1), rank_max (R),
    min_count (the floor used; 1 when all ranks) and count_at_rank1 (the fitted line's value
    at rank 1)."""
    c = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    c = c[c > 0]
    if c.shape[0] < 2:
        return {"alpha": 0.0, "r2": 1.0, "rank_min": 1, "rank_max": int(c.shape[0]),
                "min_count": 1, "count_at_rank1": float(c[0]) if c.shape[0] else 0.0}
    floor = min_count
    r_max = int(np.count_nonzero(c >= floor))
    if r_max < ZIPF_MIN_POINTS:
        floor = 2
        r_max = int(np.count_nonzero(c >= floor))
    if r_max < 2:
        floor = 1
        r_max = c.shape[0]
    x = np.log(np.arange(1, r_max + 1, dtype=np.float64))
    y = np.log(c[:r_max])
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid ** 2)) / ss_tot if ss_tot > 0 else 1.0
    return {"alpha": float(-slope), "r2": r2, "rank_min": 1, "rank_max": r_max,
            "min_count": floor, "count_at_rank1": float(np.exp(intercept))}


# -- per-access kernels ---------------------------------------------------------------------------
@numba.njit(cache=True)
def _reuse_times(ids, n_ids, out):
    last = np.full(n_ids, -1, dtype=np.int64)
    for i in range(ids.shape[0]):
        k = ids[i]
        p = last[k]
        out[i] = i - p if p >= 0 else -1
        last[k] = i


def reuse_times(dense_ids: np.ndarray, n_distinct: int) -> np.ndarray:
    """Reuse time of every access (int64): accesses since the previous access to the same key
    (1 for an immediate repeat), -1 for a first access. ids must lie in 0..n_distinct-1."""
    ids = np.ascontiguousarray(dense_ids)
    if ids.dtype not in (np.int32, np.int64):
        ids = ids.astype(np.int64)
    out = np.empty(ids.shape[0], dtype=np.int64)
    if ids.shape[0] and (int(ids.min()) < 0 or int(ids.max()) >= n_distinct):
        raise CachesimError(f"reuse_times: ids must lie in 0..{n_distinct - 1}; pass a Trace's "
                            "dense_ids and n_distinct")
    _reuse_times(ids, int(n_distinct), out)
    return out


def log2_bins(values: np.ndarray, groups: np.ndarray | None = None, n_groups: int = 1):
    """Histogram of positive integers in log2 bins: bin b holds [2**b, 2**(b+1)). Values <= 0
    are left out. Returns (counts (n_groups x n_bins) int64, lower edges) with n_bins covering
    the largest value."""
    v = np.asarray(values)
    keep = v > 0
    v = v[keep]
    if v.size == 0:
        return np.zeros((n_groups, 0), np.int64), []
    b = (np.frexp(v.astype(np.float64))[1] - 1).astype(np.int64)
    n_bins = int(b.max()) + 1
    g = np.zeros(v.shape[0], np.int64) if groups is None else np.asarray(groups)[keep]
    counts = np.bincount(g * n_bins + b, minlength=n_groups * n_bins).reshape(n_groups, n_bins)
    return counts, [1 << i for i in range(n_bins)]


# -- popularity ----------------------------------------------------------------------------------
def coverage(counts, shares=COVERAGE_SHARES) -> dict:
    """Share of accesses taken by the top `share` of keys (ceil(share x keys), at least 1 key),
    keys ranked by access count. Keys are those with at least one access."""
    c = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    c = c[c > 0]
    total = int(c.sum())
    cum = np.cumsum(c)
    out = {}
    for s in shares:
        k = max(1, int(np.ceil(s * c.shape[0])))
        out[_share_name(s)] = float(cum[k - 1] / total) if total else 0.0
    return out


def _share_name(s: float) -> str:
    return f"top {s * 100:g}%"


def rank_frequency(counts, points: int = 200) -> dict:
    """Access count at log-spaced ranks 1..keys (the full curve has one point per key)."""
    c = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    c = c[c > 0]
    if c.shape[0] == 0:
        return {"rank": [], "count": []}
    ranks = np.unique(np.geomspace(1, c.shape[0], points).round().astype(np.int64))
    return {"rank": ranks.tolist(), "count": c[ranks - 1].tolist()}


def _popularity(counts) -> dict:
    return {"zipf": zipf_fit(counts), "coverage": coverage(counts),
            "rank_frequency": rank_frequency(counts)}


# -- windows: working set and hot-set drift -------------------------------------------------------
def _windows(trace, window):
    """Window id per access (0, 1, ... consecutive) and its description."""
    n = len(trace)
    if window is None and trace.batch is not None:
        return consecutive_runs(trace.batch), "batch"
    window = window_accesses(n, window)
    return np.arange(n, dtype=np.int64) // window, f"{window} accesses"


def window_accesses(n: int, window: int | None) -> int:
    """Accesses per window: `window`, or by default 1/50 of the n accesses (at least 1)."""
    window = max(1, -(-n // 50)) if window is None else int(window)
    if window < 1:
        raise CachesimError(f"--window {window}: a window holds at least 1 access")
    return window


def default_top_k(n_keys: int) -> int:
    """Hot-set size for drift: 1% of the distinct keys, between 10 and 1000."""
    return int(min(1000, max(10, round(0.01 * n_keys))))


def consecutive_runs(batch: np.ndarray) -> np.ndarray:
    change = np.empty(batch.shape[0], dtype=np.int64)
    if batch.shape[0]:
        change[0] = 0
        np.not_equal(batch[1:], batch[:-1], out=change[1:])
    return np.cumsum(change)


def working_set_and_drift(window_ids: np.ndarray, dense_ids: np.ndarray, top_k: int) -> dict:
    """Per window: accesses, distinct keys; between consecutive windows: Jaccard overlap of the
    top-k keys (ranked by count in the window, ties by lower dense id) and the share of the
    window's accesses that go to the previous window's top-k keys."""
    import polars as pl
    lf = pl.LazyFrame({"w": window_ids, "k": dense_ids})
    cnt = lf.group_by(["w", "k"]).len().collect()
    per = (cnt.lazy().group_by("w").agg(distinct=pl.len(), accesses=pl.col("len").sum())
           .sort("w").collect())
    top = (cnt.lazy().group_by("w")
           .agg(pl.col("k").top_k_by(["len", "k"], top_k, reverse=[False, True]))
           .explode("k"))
    prev = top.with_columns(pl.col("w") + 1)
    inter = prev.join(top, on=["w", "k"]).group_by("w").len(name="inter")
    size = top.group_by("w").len(name="size")
    prev_size = size.with_columns(pl.col("w") + 1).rename({"size": "prev_size"})
    hits = (prev.join(cnt.lazy(), on=["w", "k"]).group_by("w")
            .agg(pl.col("len").sum().alias("hot_accesses")))
    drift = (per.lazy().select("w", "accesses").filter(pl.col("w") > 0)
             .join(size, on="w", how="left").join(prev_size, on="w", how="left")
             .join(inter, on="w", how="left").join(hits, on="w", how="left")
             .fill_null(0).sort("w")
             .with_columns(jaccard=pl.col("inter") / (pl.col("size") + pl.col("prev_size")
                                                     - pl.col("inter")),
                           share=pl.col("hot_accesses") / pl.col("accesses"))
             .collect())
    return {"accesses": per["accesses"].to_list(), "distinct": per["distinct"].to_list(),
            "top_k": int(top_k), "jaccard": drift["jaccard"].to_list(),
            "share": drift["share"].to_list()}


def _stats(values) -> dict:
    v = np.asarray(values)
    if v.size == 0:
        return {"mean": 0.0, "min": 0, "max": 0}
    return {"mean": float(v.mean()), "min": int(v.min()), "max": int(v.max())}


# -- the analysis ---------------------------------------------------------------------------------
def analyze(trace, window: int | None = None, top_k: int | None = None) -> dict:
    """Analyse a trace: sizes, popularity, reuse, working set and drift (a JSON-safe dict).

    window: accesses per window for the working set and drift (default: the batch when the trace
    has batches, else 1/50 of the trace). top_k: hot-set size for drift (default 1% of the
    distinct keys, between 10 and 1000). Per-table entries in `tables`; the stack distance is
    the one in a single LRU stack shared by all tables (`mrc.stack_distances`), binned as the
    LRU depth (distance + 1: the rows an LRU cache needs to hit)."""
    from .stack import stack_distances
    trace.require_nonempty()
    ids, n_keys, n_tables = trace.dense_ids, trace.n_distinct, trace.n_tables
    counts = np.bincount(ids, minlength=n_keys)
    acc_t = np.bincount(trace.table, minlength=n_tables)
    reuse = log2_bins(reuse_times(ids, n_keys), trace.table, n_tables)
    depth = log2_bins(stack_distances(ids, n_keys) + 1, trace.table, n_tables)  # 0: first
    win, win_desc = _windows(trace, window)
    ws = working_set_and_drift(win, ids, int(default_top_k(n_keys) if top_k is None else top_k))
    batches = None
    if trace.batch is not None:
        b = consecutive_runs(trace.batch)
        per_b = working_set_and_drift(b, ids, 1) if win_desc != "batch" else ws
        batches = {"count": int(b[-1]) + 1, "accesses": _stats(per_b["accesses"]),
                   "distinct": _stats(per_b["distinct"])}
    res = report(trace.source, trace.table_names, trace.table_rows, trace.key_table, counts,
                 acc_t, reuse, depth, win_desc, ws, batches)
    res["rows_inferred"] = bool(trace.table_rows_inferred)
    return res


def report(source, table_names, table_rows, key_table, counts, acc_t, reuse, depth, win_desc,
           ws, batches) -> dict:
    """`analyze`'s dict from its counts: accesses per key (`counts`, by dense id; `key_table`
    its table) and per table (`acc_t`), reuse times and stack depths as `log2_bins` per table,
    the working set and drift (`working_set_and_drift`) and batch statistics (or None)."""
    n_keys, n_tables = counts.shape[0], len(table_names)
    n = int(acc_t.sum())
    keys_t = np.bincount(key_table, minlength=n_tables)
    (r_counts, r_edges), (s_counts, s_edges) = reuse, depth
    order = np.argsort(key_table, kind="stable")
    split = np.cumsum(keys_t)[:-1]
    counts_t = np.split(counts[order], split)
    tables = []
    for t in range(n_tables):
        pop = _popularity(counts_t[t])
        tables.append({
            "table": table_names[t], "rows": int(table_rows[t]),
            "accesses": int(acc_t[t]), "distinct": int(keys_t[t]),
            "compulsory_miss_ratio": float(keys_t[t] / acc_t[t]) if acc_t[t] else 0.0,
            **pop,
            "reuse_time": {"bin_lo": r_edges, "counts": r_counts[t].tolist(),
                           "first_accesses": int(keys_t[t])},
            "stack_depth": {"bin_lo": s_edges, "counts": s_counts[t].tolist(),
                            "first_accesses": int(keys_t[t])},
        })
    out = {
        "source": source, "accesses": n, "distinct": n_keys, "n_tables": n_tables,
        "rows": sum(int(r) for r in table_rows),  # Python ints: exact past 2^63
        "compulsory_miss_ratio": n_keys / n,
        "batches": batches,
        **_popularity(counts),
        "reuse_time": {"bin_lo": r_edges, "counts": r_counts.sum(axis=0).tolist(),
                       "first_accesses": n_keys,
                       "unit": "accesses since the previous access to the key"},
        "stack_depth": {"bin_lo": s_edges, "counts": s_counts.sum(axis=0).tolist(),
                        "first_accesses": n_keys,
                        "unit": "LRU stack depth (distinct keys since the previous access + 1)"},
        "working_set": {"window": win_desc, **ws},
        "tables": tables,
    }
    out["zipf"]["note"] = (f"least squares of log count on log rank over ranks "
                           f"{out['zipf']['rank_min']}..{out['zipf']['rank_max']} (keys with "
                           f">= {out['zipf']['min_count']} accesses)")
    return out


# -- text summary --------------------------------------------------------------------------------
def format_summary(res: dict) -> str:
    """A readable summary of `analyze`'s result."""
    rows_from = "inferred: largest row + 1" if res.get("rows_inferred") else "metadata"
    lines = [f"trace: {res['source'] or '-'}",
             f"accesses {res['accesses']:,}   distinct rows {res['distinct']:,}   tables "
             f"{res['n_tables']}   rows ({rows_from}) {res['rows']:,}   compulsory miss ratio "
             f"{res['compulsory_miss_ratio']:.4f}"]
    if res["batches"]:
        b = res["batches"]
        lines.append(f"batches {b['count']:,}: accesses per batch mean {b['accesses']['mean']:,.1f}"
                     f" (min {b['accesses']['min']:,}, max {b['accesses']['max']:,}); distinct "
                     f"per batch mean {b['distinct']['mean']:,.1f} (min {b['distinct']['min']:,},"
                     f" max {b['distinct']['max']:,})")
    z = res["zipf"]
    cov = "  ".join(f"{k} {v:.3f}" for k, v in res["coverage"].items())
    lines.append(f"Zipf alpha {z['alpha']:.3f} (R^2 {z['r2']:.3f}, {z['note']})")
    lines.append(f"hot-set coverage (share of accesses): {cov}")
    rt = res["reuse_time"]
    med = _median_bin(rt)
    sd = _median_bin(res["stack_depth"])
    lines.append(f"median reuse time in [{med}, {2 * med}) accesses; median LRU stack depth in "
                 f"[{sd}, {2 * sd}) rows (re-accesses only)")
    ws = res["working_set"]
    if ws["distinct"]:
        lines.append(f"working set per window ({ws['window']}): distinct rows mean "
                     f"{np.mean(ws['distinct']):,.1f}, min {min(ws['distinct']):,}, max "
                     f"{max(ws['distinct']):,} over {len(ws['distinct'])} windows")
    if ws["jaccard"]:
        lines.append(f"hot-set drift (top {ws['top_k']} rows, consecutive windows): Jaccard mean "
                     f"{np.mean(ws['jaccard']):.3f}; share of accesses to the previous top-k mean"
                     f" {np.mean(ws['share']):.3f}")
    if res.get("streamed"):
        st = res["streamed"]
        exact = (f"estimated: {', '.join(st['estimated'])}; every other number is exact"
                 if st["estimated"] else "every number is exact")
        lines.append(f"streamed in {st['passes']} passes of {st['chunk_accesses']:,}-access "
                     f"chunks: {exact}")
    lines.append("")
    head = ["table", "rows", "accesses", "distinct", "compulsory", "alpha", "R^2", "top 1%"]
    rows = [[t["table"], f"{t['rows']:,}", f"{t['accesses']:,}", f"{t['distinct']:,}",
             f"{t['compulsory_miss_ratio']:.4f}", f"{t['zipf']['alpha']:.3f}",
             f"{t['zipf']['r2']:.3f}", f"{t['coverage']['top 1%']:.3f}"]
            for t in res["tables"]]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    lines.extend("  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows)
    return "\n".join(lines)


def _median_bin(h: dict) -> int:
    c = np.asarray(h["counts"])
    if c.sum() == 0:
        return 0
    i = int(np.searchsorted(np.cumsum(c), c.sum() / 2))
    return int(h["bin_lo"][i])


# -- plots ---------------------------------------------------------------------------------------
PLOT_FILES = ("rank_frequency.png", "reuse_time.png", "stack_distance.png", "working_set.png",
              "drift.png")


def _shown_tables(res: dict, max_lines: int):
    """Tables drawn one line each: all when few, else the ones with the most distinct rows."""
    tabs = [t for t in res["tables"] if t["accesses"] > 0]
    if len(tabs) <= 1:
        return [], ""
    if len(tabs) <= max_lines:
        return tabs, ""
    tabs = sorted(tabs, key=lambda t: -t["distinct"])[:max_lines]
    return tabs, f" ({max_lines} of {len(res['tables'])} tables: most distinct rows)"


def write_plots(res: dict, folder, trace_name: str | None = None, *, force: bool = False,
                option: str = "--plots") -> list:
    """Write the five PNGs of `analyze`'s result into `folder`; returns their paths. The folder
    follows `cachesim.files.output_dir`'s rule: a user's non-empty folder needs `force`, and
    a file cachesim did not write is never overwritten."""
    from pathlib import Path
    from ..files import output_dir
    with output_dir(folder, option, force=force, command="analyze") as staging:
        names = [p.name for p in _draw_plots(res, staging, trace_name)]
    return [Path(folder) / n for n in names]


def _draw_plots(res: dict, folder, trace_name: str | None = None) -> list:
    from pathlib import Path
    from ..plotting import MAX_TABLE_LINES, figure, legend, save, table_colors
    folder = Path(folder)
    name = trace_name or res["source"]
    shown, note = _shown_tables(res, MAX_TABLE_LINES)
    colors = table_colors(len(shown))
    overall = "all tables" if res["n_tables"] > 1 else "all accesses"
    paths = []

    fig, ax = figure("Rank-frequency" + note, trace=name, xlabel="rank (1 = most accessed row)",
                     ylabel="accesses to the row", xlog=True, ylog=True)
    for t, c in zip(shown, colors):
        rf = t["rank_frequency"]
        ax.plot(rf["rank"], rf["count"], color=c, lw=1.0,
                label=f"{t['table']} (alpha {t['zipf']['alpha']:.2f})")
    rf, z = res["rank_frequency"], res["zipf"]
    ax.plot(rf["rank"], rf["count"], color="black", lw=2.0,
            label=f"{overall} (alpha {z['alpha']:.2f}, R^2 {z['r2']:.2f})")
    r = np.array([z["rank_min"], z["rank_max"]], dtype=np.float64)
    ax.plot(r, z["count_at_rank1"] * r ** -z["alpha"], color="black", ls="--", lw=1.0,
            label=f"Zipf fit, ranks {z['rank_min']}..{z['rank_max']}")
    legend(ax, len(shown) + 2)
    paths.append(save(fig, folder / "rank_frequency.png"))

    for key, fname, title, xlabel in (
            ("reuse_time", "reuse_time.png", "Reuse time (log2 bins)" + note,
             "reuse time (accesses since the previous access to the row)"),
            ("stack_depth", "stack_distance.png", "LRU stack distance (log2 bins)" + note,
             "LRU stack depth (rows an LRU cache needs to hit)")):
        fig, ax = figure(title, trace=name, xlabel=xlabel, ylabel="re-accesses in bin",
                         xlog=True, ylog=True)
        h = res[key]
        edges = np.array(h["bin_lo"] + [2 * h["bin_lo"][-1]] if h["bin_lo"] else [1, 2])
        for t, c in zip(shown, colors):
            _step(ax, edges, t[key]["counts"], color=c, lw=1.0, label=t["table"])
        _step(ax, edges, h["counts"], color="black", lw=2.0, label=overall)
        legend(ax, len(shown) + 1)
        paths.append(save(fig, folder / fname))

    ws = res["working_set"]
    x = np.arange(len(ws["distinct"]))
    fig, ax = figure(f"Working set per window ({ws['window']})", trace=name,
                     xlabel="window (" + ("batch" if ws["window"] == "batch" else
                                          f"{ws['window']} each") + ")",
                     ylabel="rows per window")
    ax.plot(x, ws["accesses"], color="tab:gray", lw=1.0, label="accesses")
    ax.plot(x, ws["distinct"], color="tab:blue", lw=1.5, label="distinct rows")
    ax.set_ylim(bottom=0)
    legend(ax, 2)
    paths.append(save(fig, folder / "working_set.png"))

    fig, ax = figure(f"Hot-set drift: top {ws['top_k']} rows of consecutive windows", trace=name,
                     xlabel="window (" + ("batch" if ws["window"] == "batch" else
                                          f"{ws['window']} each") + ")",
                     ylabel="overlap with the previous window (0..1)")
    xd = np.arange(1, len(ws["jaccard"]) + 1)
    ax.plot(xd, ws["jaccard"], color="tab:red", lw=1.2, label="Jaccard of the top-k sets")
    ax.plot(xd, ws["share"], color="tab:green", lw=1.2,
            label="share of accesses to the previous top-k")
    ax.set_ylim(0, 1.02)
    legend(ax, 2)
    paths.append(save(fig, folder / "drift.png"))
    return paths


def _step(ax, edges, counts, **kw):
    """A log2-bin histogram as a step line (bins with 0 counts drawn at the axis floor)."""
    c = np.asarray(counts, dtype=np.float64)
    if c.size == 0:
        return
    c = np.where(c > 0, c, np.nan)
    ax.stairs(c, edges[: c.size + 1], baseline=None, **kw)
