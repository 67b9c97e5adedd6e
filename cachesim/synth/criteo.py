"""The Criteo profile: per-table popularity and dense-feature statistics of the Criteo Kaggle
sample (kaggle_train_head10k.tsv, the first 10,000 lines of train.txt), built in
(cachesim/data/criteo_kaggle_profile.json), and `criteo_profile(path)` to measure them on any
Criteo TSV."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..costs import CRITEO_KAGGLE_ROWS
from ..io.criteo import N_SPARSE, read_criteo

CRITEO_POSITIVE_RATE = 0.2182          # 2,182 positives in the 10,000-line sample
#: Rows per table of the full Criteo Kaggle data as DLRM uses it (C1..C26).
CRITEO_FULL_ROWS = np.array(CRITEO_KAGGLE_ROWS, dtype=np.int64)
#: The built-in profile, measured on kaggle_train_head10k.tsv by `criteo_profile(path)` (an empty
#: field is one more value); tests/test_generate.py checks that a refit gives these numbers.
PROFILE_FILE = Path(__file__).resolve().parents[1] / "data" / "criteo_kaggle_profile.json"
CRITEO_TOP = 32
#: log1p(count) mean and standard deviation of I1..I13 on the sample (missing fields left out).
CRITEO_DENSE_MU = np.array([0.796, 2.125, 2.249, 1.728, 7.237, 3.584, 1.54, 2.056, 3.609, 0.376,
                            0.852, 0.299, 1.88])
CRITEO_DENSE_SD = np.array([0.976, 2.133, 1.278, 0.961, 2.897, 1.807, 1.358, 1.179, 1.691, 0.394,
                            0.739, 0.606, 1.059])


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
        c = json.loads(PROFILE_FILE.read_text())
        return CriteoProfile(**{k: (np.array(v) if isinstance(v, list) else v)
                                for k, v in c.items() if k != "about"})
    from ..analysis.profile import zipf_fit
    trace = read_criteo(path)   # per table, one row id per distinct value (row 0: empty)
    top = np.zeros((N_SPARSE, CRITEO_TOP), np.int64)
    cols = {k: [] for k in ("n_head", "rest_mass", "rest_alpha", "singles", "distinct", "alpha",
                            "r2")}
    for t in range(N_SPARSE):
        counts = np.bincount(trace.row[trace.table == t])
        counts = np.sort(counts[counts > 0])[::-1]
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
    return CriteoProfile(top=top, n_lines=len(trace) // N_SPARSE, source=str(path),
                         **{k: np.array(v) for k, v in cols.items()})
