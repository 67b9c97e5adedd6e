"""Synthetic embedding traces: Zipf popularity per table, batches, multi-hot bags, hot-set drift,
planted-teacher labels (`teacher.py`), and a Criteo-shaped preset (`criteo.py`'s profile).

- `generate(n_samples, ...)`: T tables, each sample looks up a bag of rows in every table (bag
  size fixed or Poisson), rows drawn from a Zipf law over the table's rows by inverse CDF
  (`np.searchsorted` on the cumulative weights), ranks mapped to rows by a random permutation per
  table so that hot rows are not 0..k. Drift: every K batches the ranking rotates by a share of
  the rows (the rows at ranks s..2s-1 take ranks 0..s-1, the top s rows fall to the bottom).
- `criteo_like(n_samples, seed, ...)`: 26 tables with the per-table popularity of the shipped
  Criteo Kaggle sample, 13 lognormal dense counts and planted-teacher labels.
Traces fitted to a real one (the LRU-stack generator) are in `fit.py`.
All randomness comes from `numpy.random.default_rng(seed)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..errors import CachesimError
from ..trace import Trace
from .criteo import criteo_profile
from .teacher import plant_teacher

# -- Zipf sampling --------------------------------------------------------------------------------
def zipf_cdf(n_rows: int, alpha: float) -> np.ndarray:
    """Cumulative probabilities of ranks 0..n_rows-1 under p(rank) ~ (rank + 1) ** -alpha."""
    w = np.arange(1, n_rows + 1, dtype=np.float64) ** -float(alpha)
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    return cdf


def zipf_ranks(rng, n_rows: int, alpha: float, n: int, cdf=None) -> np.ndarray:
    """`n` ranks in 0..n_rows-1 (0 the most popular), by inverse CDF. Over a large CDF the
    uniforms are sorted first (searching in order stays in cache) and the ranks shuffled after:
    the same distribution, since iid draws in a uniformly random order are iid."""
    cdf = zipf_cdf(n_rows, alpha) if cdf is None else cdf
    u = rng.random(n)
    if cdf.shape[0] > 1 << 16:
        u.sort()
        r = np.searchsorted(cdf, u, side="right")
        rng.shuffle(r)
    else:
        r = np.searchsorted(cdf, u, side="right")
    np.minimum(r, n_rows - 1, out=r)   # guards against cdf[-1] rounding below 1
    return r


# -- options --------------------------------------------------------------------------------------
def _per_table(value, n_tables: int, name: str, kind=float) -> np.ndarray:
    """A scalar or one value per table, as an array of n_tables."""
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.shape[0] == 1:
        arr = np.full(n_tables, arr[0])
    if arr.shape[0] != n_tables:
        raise CachesimError(f"{name}: got {arr.shape[0]} values for {n_tables} tables; give one "
                            f"value for all tables or exactly one per table")
    return arr.astype(kind)


@dataclass(frozen=True)
class BagSize:
    """Rows looked up per sample and table: `mean` per table; fixed, or Poisson with that mean."""
    mean: np.ndarray
    poisson: bool = False

    @classmethod
    def parse(cls, spec, n_tables: int) -> "BagSize":
        """`1`, `[1, 4, ...]`, `"20"`, `"poisson:20"` or `"poisson:1,20,..."`."""
        if isinstance(spec, BagSize):
            return spec
        poisson = False
        if isinstance(spec, str):
            text = spec.strip()
            if text.lower().startswith("poisson:"):
                poisson, text = True, text.split(":", 1)[1]
            try:
                spec = [float(p) for p in text.split(",") if p.strip()]
            except ValueError:
                raise CachesimError(f"bag size {text!r}: expected numbers, e.g. 1, 1,4,8 or "
                                    "poisson:20") from None
        mean = _per_table(spec, n_tables, "bag size")
        if np.any(mean < 0) or (not poisson and np.any(mean != np.round(mean))):
            raise CachesimError(f"bag size {spec}: fixed bag sizes must be whole numbers >= 0 "
                                "(write poisson:MEAN for a Poisson bag size)")
        if not np.any(mean > 0):  # (some tables may be empty, not all: a trace of no access)
            raise CachesimError(f"bag size {spec}: every table's is 0, so the trace would hold "
                                "no access; give at least one table a bag size above 0")
        return cls(mean=mean, poisson=poisson)

    def draw(self, rng, n_samples: int) -> np.ndarray:
        """Bag lengths, shape (n_samples, n_tables), int64."""
        if self.poisson:
            return rng.poisson(self.mean, size=(n_samples, self.mean.shape[0])).astype(np.int64)
        return np.broadcast_to(self.mean.astype(np.int64), (n_samples, self.mean.shape[0])).copy()


def _share_and_count(spec, name: str, default_count: int, expected: str,
                     rule: str) -> tuple[float, int]:
    """`"SHARE:N"` (N defaults to `default_count`) or (SHARE, N) -> (SHARE in [0, 1], N >= 1);
    None -> (0.0, 1). `expected` and `rule` complete the two error messages."""
    if spec is None:
        return 0.0, 1
    if isinstance(spec, tuple):
        share, count = spec
    else:
        text = str(spec)
        share_text, _, count_text = text.partition(":")
        try:
            share, count = float(share_text), int(count_text or default_count)
        except ValueError:
            raise CachesimError(f"{name} {text!r}: expected {expected}") from None
    if not 0.0 <= share <= 1.0 or count < 1:
        raise CachesimError(f"{name} {spec!r}: {rule}")
    return float(share), int(count)


def parse_locality(spec) -> tuple[float, int]:
    """`"P:W"` (a share P of accesses repeats one of the table's last W accesses) -> (P, W)."""
    return _share_and_count(spec, "locality", 1000, "P:W, e.g. 0.3:1000 (30% of accesses "
                            "repeat one of the table's last 1000)",
                            "P must lie in [0, 1] and W be >= 1")


@numba.njit(cache=True)
def _copy_from_earlier(vals, src):
    for i in range(vals.shape[0]):
        j = src[i]
        if j >= 0:
            vals[i] = vals[j]


def copy_from_earlier(vals: np.ndarray, src: np.ndarray) -> None:
    """In place, in order: vals[i] = vals[src[i]] where src[i] >= 0 (src[i] < i), so a copy of a
    copy takes the final value."""
    if np.any(src >= np.arange(src.shape[0])):
        raise ValueError("src[i] must be < i (or -1)")
    _copy_from_earlier(vals, src)


def parse_drift(spec) -> tuple[float, int]:
    """`"SHARE"` or `"SHARE:K"` (a share of each table's rows every K batches) -> (share, K)."""
    return _share_and_count(spec, "drift", 1, "SHARE or SHARE:K, e.g. 0.01 or 0.01:10 (1% of "
                            "the rows every 10 batches)",
                            "the share must lie in [0, 1] and K be >= 1")


# -- the generator --------------------------------------------------------------------------------
MAX_GENERATED_ROWS = 1 << 31
"""Rows of one generated table at most: its Zipf CDF is 8 bytes a row (16 GiB here)."""


def generate(n_samples: int, *, tables: int = 26, rows=1_000_000, alpha=1.05, bag_size=1,
             batch_size: int | None = None, drift=None, seed: int = 0, teacher: bool = False,
             table_names=None, dim: int = 16, source: str | None = None,
             weights=None, locality=None) -> Trace:
    """A synthetic multi-table embedding trace of `n_samples` samples.

    rows, alpha: one value for all tables or one per table (rows >= 1, alpha >= 0).
    bag_size: rows per sample and table: an int, a list per table, or "poisson:MEAN[,MEAN...]".
    batch_size: samples per batch (None: no batches). drift: None, SHARE, "SHARE:K" or (SHARE, K):
    every K batches (every K*1024 samples without batches) the popularity ranking rotates by
    SHARE x rows. teacher: add 13 dense counts and labels from a planted teacher (its seed is the
    trace's seed and is written in `trace.source`).
    weights: instead of Zipf, one array per table of (unnormalised) weights over its ranks
    (its length is the table's rows).
    locality: None, "P:W" or (P, W): temporal locality; a share P of each table's accesses
    repeats the row of one of the table's previous W accesses (uniformly chosen). A copy of a
    Zipf draw is a Zipf draw, so popularity is kept; reuse times get shorter.
    Accesses are in sample order, then table, then bag position; `trace.sample` is the sample.
    """
    if n_samples < 1:
        raise CachesimError(f"samples {n_samples}: need at least 1 sample")
    if tables < 1:
        raise CachesimError(f"tables {tables}: need at least 1 table")
    if batch_size is not None and batch_size < 1:
        raise CachesimError(f"batch size {batch_size}: must be >= 1")
    asked = np.atleast_1d(np.asarray(rows, dtype=object))  # (as given: no float rounding)
    if any(int(r) < 1 for r in asked):
        raise CachesimError(f"rows {rows}: every table needs at least 1 row")
    if any(int(r) > MAX_GENERATED_ROWS for r in asked):
        raise CachesimError(f"rows {rows}: at most {MAX_GENERATED_ROWS:,} rows a table (the "
                            "generator holds each table's Zipf distribution, 8 bytes a row)")
    rows_t = _per_table(rows, tables, "rows", kind=np.int64)
    alpha_t = _per_table(alpha, tables, "alpha")
    if not np.all(np.isfinite(alpha_t)) or np.any(alpha_t < 0):
        raise CachesimError(f"alpha {alpha}: Zipf exponents must be finite numbers >= 0 (0 is "
                            "uniform)")
    bags = BagSize.parse(bag_size, tables)
    share, every = parse_drift(drift)
    repeat_p, repeat_w = parse_locality(locality)
    rng = np.random.default_rng(seed)

    lengths = bags.draw(rng, n_samples)                      # (n_samples, tables)
    flat = lengths.ravel()
    n = int(flat.sum())
    if n == 0:  # (Poisson bags of a small mean over few samples)
        raise CachesimError(f"bag size {bag_size} drew no access in {n_samples:,} samples, so "
                            "the trace would be empty; give more samples or a larger bag size")
    if bags.poisson:
        table = np.repeat(np.tile(np.arange(tables, dtype=np.int32), n_samples), flat)
        sample = np.repeat(np.repeat(np.arange(n_samples, dtype=np.int64), tables), flat)
    else:
        per_sample = lengths[0]
        table = np.tile(np.repeat(np.arange(tables, dtype=np.int32), per_sample), n_samples)
        sample = np.repeat(np.arange(n_samples, dtype=np.int64), int(per_sample.sum()))
    epoch_len = (batch_size or 1024) * every
    row = np.empty(n, dtype=np.int64)
    if bags.poisson:
        first = np.zeros(flat.shape[0], dtype=np.int64)    # first position of each (sample, table)
        np.cumsum(flat[:-1], out=first[1:])
        first = first.reshape(n_samples, tables)
    else:   # fixed bags: a (sample, position-in-sample) grid, table t owns columns col[t]:col[t+1]
        fixed = lengths[0]
        col = np.concatenate([[0], np.cumsum(fixed)])
        grid = row.reshape(n_samples, int(col[-1]))
    for t in range(tables):
        len_t = lengths[:, t]
        count = int(len_t.sum())
        if count == 0:
            continue
        cdf = None
        if weights is not None:
            cdf = np.cumsum(np.asarray(weights[t], dtype=np.float64))
            cdf /= cdf[-1]
        ranks = zipf_ranks(rng, int(rows_t[t]), alpha_t[t], count, cdf=cdf)
        perm = rng.permutation(int(rows_t[t]))
        if share > 0.0:
            s_of = np.repeat(np.arange(n_samples, dtype=np.int64), len_t)  # sample of each draw
            shift = int(round(share * rows_t[t]))
            ranks = (ranks + (s_of // epoch_len) * shift) % rows_t[t]
        vals = perm[ranks]
        if repeat_p > 0.0:
            src = np.arange(count, dtype=np.int64) - rng.integers(1, repeat_w + 1, count)
            src[(rng.random(count) >= repeat_p) | (src < 0)] = -1
            copy_from_earlier(vals, src)
        if bags.poisson:
            bag_start = np.zeros(n_samples, dtype=np.int64)
            np.cumsum(len_t[:-1], out=bag_start[1:])
            pos = np.repeat(first[:, t] - bag_start, len_t)
            pos += np.arange(count, dtype=np.int64)
            row[pos] = vals
        else:
            grid[:, col[t]:col[t + 1]] = vals.reshape(n_samples, int(fixed[t]))
    names = list(table_names) if table_names is not None else [f"t{i}" for i in range(tables)]
    batch = None if batch_size is None else sample // batch_size
    desc = source or (f"generate(samples={n_samples}, tables={tables}, seed={seed}"
                      f"{', drift=%g:%d' % (share, every) if share else ''}"
                      f"{', locality=%g:%d' % (repeat_p, repeat_w) if repeat_p else ''})")
    trace = Trace(table=table, row=row, batch=batch, sample=sample, table_names=names,
                  table_rows=rows_t, table_dims=np.full(tables, dim, np.int64), source=desc)
    if teacher:
        plant_teacher(trace, n_samples, seed)
    return trace


def criteo_like(n_samples: int, seed: int = 0, batch_size: int | None = 128,
                profile_from=None, teacher: bool = True) -> Trace:
    """A Criteo-shaped synthetic trace: 26 one-hot tables C1..C26, dim 16, with the per-table
    popularity of the Criteo Kaggle sample, 13 dense counts and planted-teacher labels.

    criteo_like(n_samples, seed=0, batch_size=128, profile_from=None, teacher=True) -> Trace
    - n_samples: samples (lines); the trace has 26 * n_samples accesses, sample-major
      (`trace.sample`; `trace.batch` = sample // batch_size, None when batch_size is None).
    - Table t draws rows by inverse CDF from `CriteoProfile.weights(t, scale)`, scale =
      max(1, n_samples / 10,000): the sample's top-32 counts, a Zipf continuation over the other
      values seen twice or more, and a uniform tail for the values seen once whose row pool grows
      with n_samples (capped by the full Kaggle table, CRITEO_FULL_ROWS). Ranks map to rows by a
      random permutation per table. `trace.table_rows` holds the rows of each table.
    - profile_from: None (built-in constants measured on kaggle_train_head10k.tsv) or the path of
      a Criteo TSV to profile instead.
    - teacher: `trace.dense` (n_samples x 13 float32 counts, lognormal like I1..I13) and
      `trace.labels` (float32 0/1, ~22% positive) from a fixed teacher seeded by `seed`; the seed
      is written in `trace.source`.
    Same (n_samples, seed, batch_size, profile) -> the same trace.
    """
    prof = criteo_profile(profile_from)
    scale = max(1.0, n_samples / prof.n_lines)
    weights = [prof.weights(t, scale) for t in range(26)]
    return generate(n_samples, tables=26, rows=[w.shape[0] for w in weights], weights=weights,
                    bag_size=1, batch_size=batch_size, seed=seed, teacher=teacher,
                    table_names=[f"C{i}" for i in range(1, 27)],
                    source=f"criteo_like(samples={n_samples}, seed={seed}, "
                           f"profile={prof.source})")
