"""Synthetic embedding traces: Zipf popularity per table, batches, multi-hot bags, hot-set drift,
planted-teacher labels, a Criteo-shaped preset, and traces fitted to a real one.

- `generate(n_samples, ...)`: T tables, each sample looks up a bag of rows in every table (bag
  size fixed or Poisson), rows drawn from a Zipf law over the table's rows by inverse CDF
  (`np.searchsorted` on the cumulative weights), ranks mapped to rows by a random permutation per
  table so that hot rows are not 0..k. Drift: every K batches the ranking rotates by a share of
  the rows (the rows at ranks s..2s-1 take ranks 0..s-1, the top s rows fall to the bottom).
- `criteo_like(n_samples, seed, ...)`: 26 tables with the per-table popularity of the shipped
  Criteo Kaggle sample, 13 lognormal dense counts and planted-teacher labels.
- `fit_profile(trace)` and `generate_like(profile, n_accesses, seed)`: a longer trace with the same
  per-table LRU stack-distance distribution (an LRU-stack generator, as DLRM's
  `generate_stack_distance` / `trace_generate_lru`).
All randomness comes from `numpy.random.default_rng(seed)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from ..errors import CachesimError
from ..trace import Trace

# -- Criteo constants -----------------------------------------------------------------------------
CRITEO_SAMPLE = Path(__file__).resolve().parents[2] / "tests" / "data" / "criteo" / \
    "kaggle_train_head10k.tsv"  # in a checkout of the repository
CRITEO_SAMPLE_LINES = 10_000
CRITEO_POSITIVE_RATE = 0.2182          # 2,182 positives in the 10,000-line sample
#: Rows per table of the full Criteo Kaggle data as DLRM uses it (C1..C26).
CRITEO_FULL_ROWS = np.array([
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992,
    5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572], dtype=np.int64)
#: Measured on kaggle_train_head10k.tsv by `criteo_profile(CRITEO_SAMPLE)` (an empty field is one
#: more value); tests/test_generate.py checks that a refit gives these numbers.
CRITEO_TOP = 32
CRITEO_PROFILE_CONSTANTS = {
    "top": [
        [5005, 1717, 840, 480, 341, 220, 171, 146, 115, 74, 73, 56, 48, 46, 39, 39, 39, 34,
         22, 22, 20, 18, 17, 15, 14, 13, 13, 12, 11, 10, 9, 9],
        [1235, 652, 467, 348, 346, 331, 303, 229, 224, 189, 165, 164, 136, 132, 130, 119,
         119, 119, 115, 109, 109, 102, 100, 97, 84, 83, 82, 82, 75, 73, 71, 67],
        [470, 357, 331, 271, 169, 149, 126, 105, 90, 73, 68, 50, 49, 49, 45, 44, 39, 37, 34,
         34, 33, 29, 28, 28, 25, 22, 22, 20, 18, 18, 17, 16],
        [730, 619, 357, 340, 180, 133, 105, 99, 90, 81, 75, 69, 61, 50, 50, 48, 46, 45, 39,
         37, 34, 34, 32, 30, 30, 29, 29, 28, 26, 24, 22, 22],
        [6656, 1538, 641, 353, 226, 134, 91, 74, 48, 41, 26, 21, 15, 14, 12, 10, 9, 8, 7, 7,
         5, 5, 5, 4, 4, 3, 3, 3, 3, 2, 2, 2],
        [4593, 1940, 1332, 1229, 414, 343, 146, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
         0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [105, 86, 83, 82, 75, 66, 65, 57, 56, 52, 51, 49, 46, 44, 44, 43, 43, 42, 42, 41,
         39, 38, 36, 36, 35, 35, 34, 34, 34, 33, 31, 29],
        [5888, 1701, 768, 414, 268, 165, 131, 99, 83, 54, 42, 40, 32, 31, 23, 19, 17, 15,
         14, 13, 12, 12, 11, 8, 7, 6, 6, 6, 6, 6, 5, 5],
        [8871, 1125, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
         0, 0, 0, 0, 0, 0],
        [2757, 105, 104, 69, 67, 65, 64, 52, 51, 45, 42, 41, 39, 37, 37, 37, 31, 29, 26, 26,
         26, 24, 23, 22, 22, 21, 21, 20, 20, 20, 20, 19],
        [203, 197, 133, 102, 92, 83, 78, 78, 70, 67, 66, 65, 64, 64, 63, 60, 59, 56, 55, 54,
         54, 53, 47, 46, 44, 43, 41, 39, 38, 37, 36, 36],
        [470, 357, 331, 271, 169, 149, 126, 105, 99, 90, 73, 68, 50, 49, 49, 48, 45, 44, 39,
         37, 34, 34, 33, 29, 28, 28, 25, 22, 22, 22, 20, 18],
        [221, 204, 149, 129, 119, 118, 110, 102, 82, 78, 78, 76, 70, 70, 69, 67, 66, 64, 60,
         59, 56, 55, 54, 54, 52, 51, 46, 43, 43, 41, 41, 40],
        [3629, 3456, 1604, 362, 245, 226, 140, 108, 70, 45, 26, 25, 12, 8, 7, 6, 6, 6, 5, 5,
         4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [195, 150, 119, 100, 99, 99, 91, 88, 78, 77, 77, 72, 68, 68, 67, 65, 62, 61, 60, 58,
         56, 55, 54, 52, 51, 51, 49, 48, 46, 45, 42, 42],
        [470, 357, 331, 271, 169, 149, 126, 105, 99, 90, 80, 77, 73, 68, 62, 50, 49, 45, 44,
         40, 39, 39, 37, 36, 34, 34, 33, 32, 29, 28, 28, 25],
        [4304, 1333, 1269, 769, 602, 494, 442, 420, 367, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [510, 290, 223, 205, 189, 175, 164, 149, 146, 136, 123, 122, 121, 115, 109, 109,
         102, 99, 92, 90, 85, 75, 73, 73, 71, 71, 68, 66, 66, 63, 63, 62],
        [4496, 3310, 201, 121, 85, 48, 47, 45, 42, 38, 37, 36, 34, 30, 28, 28, 27, 26, 25,
         20, 19, 19, 19, 18, 17, 16, 13, 12, 12, 12, 11, 10],
        [4496, 1990, 1772, 1742, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
         0, 0, 0, 0, 0, 0, 0, 0],
        [470, 357, 331, 271, 169, 149, 126, 105, 99, 90, 80, 73, 68, 62, 50, 49, 49, 45, 44,
         39, 37, 34, 34, 33, 29, 28, 28, 25, 25, 24, 22, 22],
        [8182, 956, 698, 68, 58, 33, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
         0, 0, 0, 0, 0, 0, 0, 0],
        [4515, 2024, 1045, 724, 605, 406, 315, 141, 107, 49, 45, 24, 0, 0, 0, 0, 0, 0, 0, 0,
         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [755, 746, 688, 578, 357, 338, 230, 151, 106, 92, 90, 89, 75, 70, 67, 64, 61, 53,
         50, 44, 43, 40, 39, 39, 37, 36, 36, 34, 33, 33, 30, 30],
        [4496, 1807, 1093, 622, 360, 247, 241, 192, 154, 152, 125, 96, 65, 65, 38, 29, 26,
         22, 22, 22, 20, 16, 14, 13, 9, 8, 7, 7, 5, 5, 5, 4],
        [4496, 454, 180, 151, 130, 124, 110, 108, 107, 82, 57, 50, 39, 36, 36, 33, 30, 29,
         29, 27, 26, 26, 25, 25, 23, 21, 20, 19, 18, 18, 18, 18],
    ],
    "n_head": [84, 311, 700, 895, 36, 8, 1563, 52, 3, 1092, 1244, 718, 1103, 22, 1065, 795,
        9, 702, 254, 4, 743, 7, 12, 783, 34, 584],
    "rest_mass": [221, 3268, 2313, 3268, 8, 0, 6793, 52, 0, 4124, 6937, 2450, 6811, 0, 6685,
        2922, 0, 5448, 805, 0, 2639, 0, 0, 3124, 7, 2080],
    "rest_alpha": [0.5274, 0.9506, 0.5005, 0.5657, 0.0, 0.0, 0.6179, 0.3622, 0.0, 0.5441,
        0.7078, 0.5231, 0.739, 0.0, 0.7768, 0.5712, 0.0, 0.876, 0.4869, 0.0, 0.5491, 0.0,
        0.0, 0.6151, 0.415, 0.5535],
    "singles": [91, 75, 4821, 3138, 20, 0, 1621, 41, 0, 1894, 840, 4566, 622, 2, 970, 3929,
        0, 447, 293, 0, 4294, 1, 0, 1742, 6, 1355],
    "distinct": [175, 386, 5521, 4033, 56, 8, 3184, 93, 3, 2986, 2084, 5284, 1725, 24, 2035,
        4724, 9, 1149, 547, 4, 5037, 8, 12, 2525, 40, 1939],
    "alpha": [1.8378, 0.9807, 1.0732, 1.1088, 2.2977, 2.5451, 0.4665, 2.0686, 6.5784,
        0.9798, 0.5943, 1.0384, 0.6198, 2.2281, 0.5411, 0.9672, 1.0831, 0.7318, 1.7176,
        0.7025, 1.016, 3.5675, 2.0348, 1.197, 1.8809, 1.3625],
    "r2": [0.995, 0.9842, 0.9663, 0.9866, 0.9952, 0.621, 0.9639, 0.997, 0.8398, 0.8157,
        0.9765, 0.9696, 0.9834, 0.9318, 0.971, 0.979, 0.9728, 0.9696, 0.8619, 0.8693,
        0.9745, 0.9252, 0.9033, 0.9638, 0.9677, 0.9361],
    "n_lines": 10000,
}
#: log1p(count) mean and standard deviation of I1..I13 on the sample (missing fields left out).
CRITEO_DENSE_MU = np.array([0.796, 2.125, 2.249, 1.728, 7.237, 3.584, 1.54, 2.056, 3.609, 0.376,
                            0.852, 0.299, 1.88])
CRITEO_DENSE_SD = np.array([0.976, 2.133, 1.278, 0.961, 2.897, 1.807, 1.358, 1.179, 1.691, 0.394,
                            0.739, 0.606, 1.059])
N_DENSE = 13


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
        return cls(mean=mean, poisson=poisson)

    def draw(self, rng, n_samples: int) -> np.ndarray:
        """Bag lengths, shape (n_samples, n_tables), int64."""
        if self.poisson:
            return rng.poisson(self.mean, size=(n_samples, self.mean.shape[0])).astype(np.int64)
        return np.broadcast_to(self.mean.astype(np.int64), (n_samples, self.mean.shape[0])).copy()


def parse_locality(spec) -> tuple[float, int]:
    """`"P:W"` (a share P of accesses repeats one of the table's last W accesses) -> (P, W)."""
    if spec is None:
        return 0.0, 1
    if isinstance(spec, tuple):
        p, w = spec
    else:
        text = str(spec)
        p_text, _, w_text = text.partition(":")
        try:
            p, w = float(p_text), int(w_text or 1000)
        except ValueError:
            raise CachesimError(f"locality {text!r}: expected P:W, e.g. 0.3:1000 (30% of accesses "
                                "repeat one of the table's last 1000)") from None
    if not 0.0 <= p <= 1.0 or w < 1:
        raise CachesimError(f"locality {spec!r}: P must lie in [0, 1] and W be >= 1")
    return float(p), int(w)


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
    if spec is None:
        return 0.0, 1
    if isinstance(spec, tuple):
        share, every = spec
    else:
        text = str(spec)
        share_text, _, every_text = text.partition(":")
        try:
            share, every = float(share_text), int(every_text or 1)
        except ValueError:
            raise CachesimError(f"drift {text!r}: expected SHARE or SHARE:K, e.g. 0.01 or "
                                "0.01:10 (1% of the rows every 10 batches)") from None
    if not 0.0 <= share <= 1.0 or every < 1:
        raise CachesimError(f"drift {spec!r}: the share must lie in [0, 1] and K be >= 1")
    return float(share), int(every)


# -- the generator --------------------------------------------------------------------------------
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
    rows_t = _per_table(rows, tables, "rows", kind=np.int64)
    alpha_t = _per_table(alpha, tables, "alpha")
    if np.any(rows_t < 1):
        raise CachesimError(f"rows {rows}: every table needs at least 1 row")
    if np.any(alpha_t < 0):
        raise CachesimError(f"alpha {alpha}: Zipf exponents must be >= 0 (0 is uniform)")
    bags = BagSize.parse(bag_size, tables)
    share, every = parse_drift(drift)
    repeat_p, repeat_w = parse_locality(locality)
    rng = np.random.default_rng(seed)

    lengths = bags.draw(rng, n_samples)                      # (n_samples, tables)
    flat = lengths.ravel()
    n = int(flat.sum())
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


# -- planted teacher ------------------------------------------------------------------------------
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)


def _fmix64_np(k: np.ndarray) -> np.ndarray:
    k = k.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        k ^= k >> np.uint64(33)
        k *= _M1
        k ^= k >> np.uint64(33)
        k *= _M2
        k ^= k >> np.uint64(33)
    return k


def teacher_row_scores(table: np.ndarray, row: np.ndarray, seed: int,
                       scale: float = 0.6) -> np.ndarray:
    """The teacher's score of each (table, row): a fixed function of (seed, table, row), roughly
    normal with standard deviation `scale` (sum of two hashed uniforms), so that no table of
    scores needs storing."""
    base = (np.asarray(row, np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            ^ (np.asarray(table, np.int64).astype(np.uint64) << np.uint64(40))
            ^ np.uint64(((seed & 0xFFFFFFFF) * 0xD6E8FEB86659FD93) & 0xFFFFFFFFFFFFFFFF))
    h1 = _fmix64_np(base)
    h2 = _fmix64_np(base ^ np.uint64(0x5851F42D4C957F2D))
    u = ((h1 >> np.uint64(11)).astype(np.float64) + (h2 >> np.uint64(11)).astype(np.float64))
    u *= 1.0 / float(1 << 53)
    return (u - 1.0) * (scale * np.sqrt(6.0))


def plant_teacher(trace: Trace, n_samples: int, seed: int,
                  positive_rate: float = CRITEO_POSITIVE_RATE) -> None:
    """Add `dense` (n_samples x 13 lognormal counts, float32) and `labels` (n_samples, float32
    0/1) to `trace`: logit = bias + sum over tables of the row scores (`teacher_row_scores`, mean
    over a bag) + w . z, where z ~ N(0, 1) per dense feature and the feature is
    floor(expm1(max(0, mu + sd z))) (so z is about (log1p(dense) - mu) / sd); label ~
    Bernoulli(sigmoid(logit)); the bias is set so the positive rate is near `positive_rate`.
    Drawn from default_rng([seed, 1]); the trace's `source` records the teacher seed and bias."""
    rng = np.random.default_rng([seed, 1])
    z = rng.standard_normal((n_samples, N_DENSE))
    logd = CRITEO_DENSE_MU + CRITEO_DENSE_SD * z
    dense = np.floor(np.expm1(np.maximum(logd, 0.0))).astype(np.float32)
    w = rng.normal(0.0, 0.35, N_DENSE)
    rs = teacher_row_scores(trace.table, trace.row, seed)
    cell = trace.sample * trace.n_tables + trace.table          # (sample, table) of each access
    s_tab = np.bincount(cell, weights=rs, minlength=n_samples * trace.n_tables)
    c_tab = np.bincount(cell, minlength=n_samples * trace.n_tables)
    score = (s_tab / np.maximum(c_tab, 1)).reshape(n_samples, trace.n_tables).sum(axis=1)
    logit = score + z @ w
    bias = _bias_for_rate(logit, positive_rate)
    p = 1.0 / (1.0 + np.exp(-(logit + bias)))
    trace.labels = (rng.random(n_samples) < p).astype(np.float32)
    trace.dense = dense
    trace.source += f" teacher(seed={seed}, bias={bias:.4f})"


def _bias_for_rate(logit: np.ndarray, rate: float) -> float:
    lo, hi = -20.0, 20.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if np.mean(1.0 / (1.0 + np.exp(-(logit + mid)))) < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# -- Criteo-shaped preset -------------------------------------------------------------------------
@dataclass
class CriteoProfile:
    """Per-table popularity of a Criteo-format sample of `n_lines` lines, in three parts:
    the top 32 values' counts (`top`, zero-padded), the other values seen at least twice
    (`n_head` values in all, counting the top; their accesses `rest_mass`, spread as a Zipf law of
    exponent `rest_alpha`), and the values seen once (`singles`). `alpha`/`r2` is the whole
    table's Zipf fit (`analysis.zipf_fit`), reported, not used to draw."""
    top: np.ndarray
    n_head: np.ndarray
    rest_mass: np.ndarray
    rest_alpha: np.ndarray
    singles: np.ndarray
    distinct: np.ndarray
    alpha: np.ndarray
    r2: np.ndarray
    n_lines: int
    source: str = "built-in constants (kaggle_train_head10k.tsv)"

    def weights(self, t: int, scale: float) -> np.ndarray:
        """Weights over ranks of table t at `scale` x the sample's size: the top values, the
        Zipf continuation, then a uniform tail holding the singles' share over
        min(full rows - head, 20 x singles x scale) rows (so rare values stay rare as the trace
        grows)."""
        k = int(min(CRITEO_TOP, self.n_head[t]))
        parts = [self.top[t, :k].astype(np.float64)]
        n_rest = int(self.n_head[t]) - k
        if n_rest > 0:
            w = np.arange(k + 1, k + n_rest + 1, dtype=np.float64) ** -float(self.rest_alpha[t])
            parts.append(w * (float(self.rest_mass[t]) / w.sum()))
        if self.singles[t] > 0:
            pool = int(min(CRITEO_FULL_ROWS[t] - self.n_head[t],
                           max(self.singles[t], np.ceil(20 * self.singles[t] * scale))))
            parts.append(np.full(pool, float(self.singles[t]) / pool))
        return np.concatenate(parts)


def criteo_profile(path=None) -> CriteoProfile:
    """Per-table popularity of each C column of a Criteo TSV (an empty field counts as one more
    value). With no path: the built-in constants measured on kaggle_train_head10k.tsv."""
    if path is None:
        c = CRITEO_PROFILE_CONSTANTS
        return CriteoProfile(**{k: (np.array(v) if isinstance(v, list) else v)
                                for k, v in c.items()})
    import polars as pl
    from ..analysis.profile import zipf_fit
    names = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    try:
        df = pl.read_csv(path, separator="\t", has_header=False, new_columns=names,
                         schema_overrides={c: pl.Utf8 for c in names[14:]}, quote_char=None)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise CachesimError(f"{path}: cannot read it as a Criteo TSV (40 tab-separated fields a "
                            f"line: label, I1..I13, C1..C26): {err}") from None
    top = np.zeros((26, CRITEO_TOP), np.int64)
    cols = {k: [] for k in ("n_head", "rest_mass", "rest_alpha", "singles", "distinct", "alpha",
                            "r2")}
    for t, c in enumerate(names[14:]):
        counts = np.sort(df[c].value_counts()["count"].to_numpy())[::-1]
        n_head = int(np.count_nonzero(counts >= 2))
        k = min(CRITEO_TOP, n_head)
        top[t, :k] = counts[:k]
        rest = counts[k:n_head]
        rest_fit = zipf_fit(rest, min_count=2) if rest.shape[0] >= 2 else {"alpha": 0.0}
        whole = zipf_fit(counts)
        for key, v in (("n_head", n_head), ("rest_mass", int(rest.sum())),
                       ("rest_alpha", round(rest_fit["alpha"], 4)),
                       ("singles", int(counts.shape[0] - n_head)),
                       ("distinct", int(counts.shape[0])), ("alpha", round(whole["alpha"], 4)),
                       ("r2", round(whole["r2"], 4))):
            cols[key].append(v)
    return CriteoProfile(top=top, n_lines=df.height, source=str(path),
                         **{k: np.array(v) for k, v in cols.items()})


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


# -- fitted to a real trace: per-table LRU stack-distance profile ---------------------------------
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
    from ..analysis.mrc import stack_distances
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
    from ..analysis.mrc import lru_curve
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
