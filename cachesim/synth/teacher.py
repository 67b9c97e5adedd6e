"""The planted teacher: labels (and Criteo-like dense counts) drawn from a fixed hidden function
of each sample's rows, so that a model trained on a synthetic trace has something to learn.
The one teacher: `generate(..., teacher=True)` plants it, and the executor draws labels from it
for a trace that has none."""
from __future__ import annotations

import numpy as np

from ..hashing import fmix64_array
from ..trace import Trace
from ..io.criteo import N_DENSE
from .criteo import CRITEO_DENSE_MU, CRITEO_DENSE_SD, CRITEO_POSITIVE_RATE


def teacher_row_scores(table: np.ndarray, row: np.ndarray, seed: int,
                       scale: float = 0.6) -> np.ndarray:
    """The teacher's score of each (table, row): a fixed function of (seed, table, row), roughly
    normal with standard deviation `scale` (sum of two hashed uniforms), so that no table of
    scores needs storing."""
    base = (np.asarray(row, np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            ^ (np.asarray(table, np.int64).astype(np.uint64) << np.uint64(40))
            ^ np.uint64(((seed & 0xFFFFFFFF) * 0xD6E8FEB86659FD93) & 0xFFFFFFFFFFFFFFFF))
    h1 = fmix64_array(base)
    h2 = fmix64_array(base ^ np.uint64(0x5851F42D4C957F2D))
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
    labels, bias = _draw_labels(rng, sample_scores(trace, trace.sample, n_samples, seed) + z @ w,
                                positive_rate)
    trace.labels = labels
    trace.dense = dense
    trace.source += f" teacher(seed={seed}, bias={bias:.4f})"


def teacher_labels(trace: Trace, sample: np.ndarray, n_samples: int, seed: int,
                   positive_rate: float = CRITEO_POSITIVE_RATE) -> np.ndarray:
    """Labels only (float32 0/1 per sample, `sample` giving each access's sample) from the same
    teacher without dense features: logit = bias + `sample_scores`, label ~ Bernoulli(sigmoid);
    drawn from default_rng([seed, 1])."""
    rng = np.random.default_rng([seed, 1])
    return _draw_labels(rng, sample_scores(trace, sample, n_samples, seed), positive_rate)[0]


def sample_scores(trace: Trace, sample: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
    """Per sample, the sum over tables of the mean `teacher_row_scores` of its rows there."""
    rs = teacher_row_scores(trace.table, trace.row, seed)
    cell = sample * trace.n_tables + trace.table          # (sample, table) of each access
    s_tab = np.bincount(cell, weights=rs, minlength=n_samples * trace.n_tables)
    c_tab = np.bincount(cell, minlength=n_samples * trace.n_tables)
    return (s_tab / np.maximum(c_tab, 1)).reshape(n_samples, trace.n_tables).sum(axis=1)


def _draw_labels(rng, logit: np.ndarray, positive_rate: float) -> tuple[np.ndarray, float]:
    """(labels ~ Bernoulli(sigmoid(logit + bias)) as float32, bias), the bias set so that the
    expected positive rate is `positive_rate`."""
    bias = _bias_for_rate(logit, positive_rate)
    p = 1.0 / (1.0 + np.exp(-(logit + bias)))
    return (rng.random(logit.shape[0]) < p).astype(np.float32), bias


def _bias_for_rate(logit: np.ndarray, rate: float) -> float:
    lo, hi = -20.0, 20.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if np.mean(1.0 / (1.0 + np.exp(-(logit + mid)))) < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
