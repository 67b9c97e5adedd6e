"""Traces fitted to a real one (`cachesim generate --like`): `fit_profile(trace)` measures each
table's popularity and LRU stack-distance distribution, `generate_like(profile, n_accesses,
seed)` draws a longer trace with the same distributions (an LRU-stack generator, as DLRM's
`generate_stack_distance` / `trace_generate_lru`), and `compare_curves` / `plot_curves` show how
well the exact LRU miss-ratio curves match."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from ..errors import CachesimError
from ..trace import Trace


@dataclass
class Profile:
    """What `generate_like` reproduces of a trace.

    Per table (lists, one entry per table): `accesses`, `distinct`, `counts` (accesses per row,
    descending: the empirical rank-frequency), `zipf` (its fit, `analysis.zipf_fit`) and
    `depth_counts`: LRU stack distances within the table, `depth_counts[t][0]` first accesses and
    `depth_counts[t][d + 1]` re-accesses at distance d (distinct other rows of the table since
    the previous access to the row). The layout (table, sample and batch of each access) is kept
    to be repeated: a generated trace has the same interleaving of tables, samples and batches.
    """
    table_names: list
    table_dims: np.ndarray
    accesses: np.ndarray
    distinct: np.ndarray
    counts: list
    zipf: list
    depth_counts: list
    layout_table: np.ndarray
    layout_sample: np.ndarray | None = None
    layout_batch: np.ndarray | None = None
    source: str = ""

    @property
    def n_tables(self) -> int:
        return len(self.table_names)


def _group_by_table(table: np.ndarray, n_tables: int) -> np.ndarray:
    """Access indices grouped by table, in order within a table (a radix sort for < 32768
    tables)."""
    key = table.astype(np.int16) if n_tables < 32768 else table
    return np.argsort(key, kind="stable")


def local_ids(trace) -> np.ndarray:
    """For each access, the row's id within its own table (0..distinct in the table - 1, in order
    of first access within the table)."""
    kt = trace.key_table
    order = _group_by_table(kt, trace.n_tables)  # dense ids by table, in id order
    start = np.concatenate([[0], np.cumsum(np.bincount(kt, minlength=trace.n_tables))])
    local = np.empty(trace.n_distinct, dtype=np.int64)
    local[order] = np.arange(trace.n_distinct) - np.repeat(start[:-1], np.diff(start))
    return local[trace.dense_ids]


def fit_profile(trace) -> Profile:
    """Profile of `trace` for `generate_like`: per-table popularity and per-table LRU
    stack-distance distribution (exact, `mrc.stack_distances` on the table's own accesses)."""
    from ..analysis.profile import zipf_fit
    from ..analysis.stack import stack_distances
    trace.require_nonempty()
    local = local_ids(trace)
    counts, zipf, depth = [], [], []
    acc = np.bincount(trace.table, minlength=trace.n_tables)
    dist = np.bincount(trace.key_table, minlength=trace.n_tables)
    order = _group_by_table(trace.table, trace.n_tables)
    start = np.concatenate([[0], np.cumsum(acc)])
    for t in range(trace.n_tables):
        ids = local[order[start[t]:start[t + 1]]]
        c = np.sort(np.bincount(ids, minlength=int(dist[t])))[::-1] if ids.size else \
            np.zeros(0, np.int64)
        counts.append(c)
        zipf.append(zipf_fit(c) if c.size else None)
        d = stack_distances(ids, int(dist[t])) if ids.size else np.zeros(0, np.int64)
        depth.append(np.bincount(d + 1).astype(np.int64) if d.size else np.zeros(1, np.int64))
    return Profile(table_names=list(trace.table_names), table_dims=trace.table_dims.copy(),
                   accesses=acc.astype(np.int64), distinct=dist.astype(np.int64),
                   counts=counts, zipf=zipf, depth_counts=depth,
                   layout_table=trace.table.copy(),
                   layout_sample=None if trace.sample is None else trace.sample.copy(),
                   layout_batch=None if trace.batch is None else trace.batch.copy(),
                   source=trace.source)


@numba.njit(cache=True)
def _lru_stack_generate(table, depth, seg_off, seg_len, key_out, n_keys_out):
    """Per access i of table t: depth[i] < 0 means a new row of t; else the row at LRU depth
    depth[i] of t's stack (0 = most recent), or a new row when t's stack is not that deep.

    Each table's stack is a Fenwick tree over its own access times (segment seg_off[t], 1-based,
    seg_len[t] slots): a 1 marks the time of a row's latest access; `owner` maps a time back to
    its row. The row at depth d is the (live - d)-th marked time."""
    n_tables = seg_off.shape[0]
    tree = np.zeros(seg_off[n_tables - 1] + seg_len[n_tables - 1] + 1, dtype=np.int32)
    owner = np.empty(tree.shape[0], dtype=np.int64)
    clock = np.zeros(n_tables, dtype=np.int64)
    live = np.zeros(n_tables, dtype=np.int64)
    top_bit = np.zeros(n_tables, dtype=np.int64)
    for t in range(n_tables):
        b = 1
        while b * 2 <= seg_len[t]:
            b *= 2
        top_bit[t] = b
    for i in range(table.shape[0]):
        t = table[i]
        off = seg_off[t]
        size = seg_len[t]
        d = depth[i]
        if d < 0 or d >= live[t]:
            row = n_keys_out[t]
            n_keys_out[t] += 1
        else:
            k = live[t] - d               # k-th marked time, 1-based
            pos = 0
            b = top_bit[t]
            while b > 0:
                nxt = pos + b
                if nxt <= size and tree[off + nxt] < k:
                    pos = nxt
                    k -= tree[off + nxt]
                b >>= 1
            p = pos + 1                   # 1-based time of the row at depth d
            row = owner[off + p]
            j = p                         # unmark its old time
            while j <= size:
                tree[off + j] -= 1
                j += j & (-j)
            live[t] -= 1
        clock[t] += 1
        p = clock[t]
        owner[off + p] = row
        j = p
        while j <= size:
            tree[off + j] += 1
            j += j & (-j)
        live[t] += 1
        key_out[i] = row


def lru_stack_rows(table: np.ndarray, depth: np.ndarray, n_tables: int):
    """The LRU-stack generator: per access, the row of its table at LRU depth depth[i] (0 = most
    recent; a new row, numbered 0, 1, ... per table, when depth[i] < 0 or the table's stack is not
    that deep). Returns (rows int64, rows generated per table)."""
    table = np.ascontiguousarray(table, dtype=np.int64)
    depth = np.ascontiguousarray(depth, dtype=np.int64)
    if table.shape != depth.shape:
        raise ValueError("table and depth need one entry per access")
    if table.size and (table.min() < 0 or table.max() >= n_tables):
        raise CachesimError(f"table ids must lie in 0..{n_tables - 1}")
    acc = np.bincount(table, minlength=n_tables)
    seg_len = np.maximum(acc, 1).astype(np.int64)
    seg_off = np.concatenate([[0], np.cumsum(seg_len + 1)[:-1]]).astype(np.int64)
    rows = np.empty(table.shape[0], dtype=np.int64)
    n_rows = np.zeros(n_tables, dtype=np.int64)
    _lru_stack_generate(table, depth, seg_off, seg_len, rows, n_rows)
    return rows, n_rows


def generate_like(profile: Profile, n_accesses: int, seed: int = 0) -> Trace:
    """A trace of `n_accesses` accesses with the profile's per-table LRU stack-distance
    distribution: table, sample and batch of each access repeat the profiled layout; in table t
    each access is a new row with t's first-access share, else the row at a stack distance drawn
    from t's distribution of re-access distances (a new row when t's stack is not yet that deep).
    Rows are numbered in a random order per table; `table_rows` = rows generated."""
    if n_accesses < 1:
        raise CachesimError(f"accesses {n_accesses}: need at least 1")
    rng = np.random.default_rng(seed)
    n0 = profile.layout_table.shape[0]
    idx = np.arange(n_accesses, dtype=np.int64)
    cycle, within = idx // n0, idx % n0
    table = profile.layout_table[within]
    sample = batch = None
    if profile.layout_sample is not None:
        span = int(profile.layout_sample.max()) + 1
        sample = profile.layout_sample[within] + cycle * span
    if profile.layout_batch is not None:
        span = int(profile.layout_batch.max()) + 1
        batch = profile.layout_batch[within] + cycle * span
    depth = np.full(n_accesses, -1, dtype=np.int64)
    acc = np.bincount(table, minlength=profile.n_tables)
    order = _group_by_table(table, profile.n_tables)
    start = np.concatenate([[0], np.cumsum(acc)])
    for t in range(profile.n_tables):
        pos = order[start[t]:start[t + 1]]
        w = profile.depth_counts[t].astype(np.float64)
        if pos.size == 0 or w.sum() == 0:
            continue
        cdf = np.cumsum(w)
        cdf /= cdf[-1]
        outcome = np.searchsorted(cdf, rng.random(pos.shape[0]), side="right")
        depth[pos] = np.minimum(outcome, w.shape[0] - 1) - 1      # -1: a new row
    rows, n_rows = lru_stack_rows(table, depth, profile.n_tables)
    for t in range(profile.n_tables):     # rows in a random order per table
        pos = order[start[t]:start[t + 1]]
        if pos.size:
            rows[pos] = rng.permutation(int(n_rows[t]))[rows[pos]]
    return Trace(table=table, row=rows, batch=batch, sample=sample,
                 table_names=list(profile.table_names), table_rows=np.maximum(n_rows, 1),
                 table_dims=profile.table_dims.copy(),
                 source=f"generate_like({profile.source or 'profile'}, accesses={n_accesses}, "
                        f"seed={seed})")


# -- showing the match ----------------------------------------------------------------------------
def lru_miss_ratio_curve(trace, sizes) -> np.ndarray:
    """Exact LRU miss ratio of `trace` (one cache over all tables) at each size in rows
    (`mrc.lru_curve`; sizes past the distinct rows get the compulsory miss ratio)."""
    from ..analysis.stack import lru_curve
    curve = lru_curve(trace)
    return curve[np.minimum(np.asarray(sizes, dtype=np.int64), curve.shape[0] - 1)]


def curve_sizes(n_distinct: int, points: int = 60) -> np.ndarray:
    """Log-spaced cache sizes 1..n_distinct rows."""
    return np.unique(np.geomspace(1, max(1, n_distinct), points).round().astype(np.int64))


def compare_curves(real, generated, points: int = 60) -> dict:
    """Exact LRU miss-ratio curves of both traces at log-spaced sizes up to the real trace's
    distinct rows; `mae` is their mean absolute difference, `max_abs` the largest."""
    sizes = curve_sizes(real.n_distinct, points)
    a = lru_miss_ratio_curve(real, sizes)
    b = lru_miss_ratio_curve(generated, sizes)
    return {"sizes": sizes.tolist(), "real": a.tolist(), "generated": b.tolist(),
            "mae": float(np.mean(np.abs(a - b))), "max_abs": float(np.max(np.abs(a - b)))}


def plot_curves(cmp: dict, path, real_name: str, generated_name: str) -> Path:
    """Both miss-ratio curves of `compare_curves` on one plot (PNG, written atomically)."""
    from ..plotting import figure, legend, save
    fig, ax = figure(f"Exact LRU miss-ratio curves (mean abs. difference {cmp['mae']:.4f})",
                     trace=real_name, xlabel="cache size (rows, one cache for all tables)",
                     ylabel="miss ratio", xlog=True)
    ax.plot(cmp["sizes"], cmp["real"], color="black", lw=2.0,
            label=f"real: {Path(str(real_name)).name}")
    ax.plot(cmp["sizes"], cmp["generated"], color="tab:orange", lw=1.5, ls="--",
            label=f"generated: {Path(str(generated_name)).name}")
    ax.set_ylim(0, 1.02)
    legend(ax, 2)
    return save(fig, path)
