"""Accuracy against FP32, paired by seed: the verdict a report states for a configuration."""
from __future__ import annotations

import math

import numpy as np

AUC_TOLERANCE = 0.002  # the paper's "accuracy held": within 0.002 test AUC of FP32


def auc_comparison(training: list[dict] | None, precision: str, size, policy) -> dict:
    """Test AUC of one configuration against FP32's, paired by seed (same seed, same test
    samples). `verdict`: 'held' when |mean| + 2 std/sqrt(n) of the per-seed differences is
    below AUC_TOLERANCE, 'lost' when mean + 2 std/sqrt(n) is below -AUC_TOLERANCE, 'not
    distinguishable' otherwise (or with one seed), 'not measured' without training rows,
    'baseline' for FP32 itself. `text` says it with the numbers."""
    out = {"verdict": "not measured", "seeds": 0, "diff_mean": None, "diff_std": None,
           "diff_se": None, "auc_std": None, "test_samples": None, "text": "not measured"}
    if not training:
        return out
    base = {r.get("seed"): r["auc"] for r in training
            if r["precision"] == "fp32" and r.get("auc") is not None}
    if precision == "fp32":
        return {**out, "verdict": "baseline", "text": "the baseline (FP32)", "diff_mean": 0.0}
    mine = [r for r in training if r["precision"] == precision and str(r["size"]) == str(size)
            and (r.get("policy") or "none") == (policy or "none") and r.get("auc") is not None]
    diffs = np.array([r["auc"] - base[r.get("seed")] for r in mine if r.get("seed") in base])
    if not diffs.size:
        return out
    n = int(diffs.size)
    tests = sorted({int(r["test_samples"]) for r in mine if r.get("test_samples") is not None})
    n_test = tests[0] if len(tests) == 1 else None
    mean = float(diffs.mean())
    std = float(diffs.std(ddof=1)) if n > 1 else float("nan")
    se = std / math.sqrt(n) if n > 1 else float("nan")
    aucs = np.array([r["auc"] for r in mine], dtype=float)
    out.update(seeds=n, diff_mean=mean, diff_std=None if n < 2 else std,
               diff_se=None if n < 2 else se, test_samples=n_test,
               auc_std=float(aucs.std(ddof=1)) if aucs.size > 1 else None)
    band = AUC_TOLERANCE
    samples = "" if n_test is None else f"{n_test:,} test samples, "
    nums = (f"ΔAUC {mean:+.4f}" + ("" if n < 2 else f" ± {std:.4f}") +
            f" over {n} seed{'s' if n > 1 else ''}")
    if n > 1 and abs(mean) + 2 * se < band:
        out["verdict"] = "held"
        out["text"] = f"held, within ±{band:g}: {nums} ({samples}paired by seed)"
    elif n > 1 and mean + 2 * se < -band:
        out["verdict"] = "lost"
        out["text"] = f"lost, over {band:g} below FP32: {nums} ({samples}paired by seed)"
    else:
        out["verdict"] = "not distinguishable"
        spread = "one seed, no spread" if n < 2 else f"seed spread {std:.4f}"
        out["text"] = (f"not distinguishable at this sample size ({samples}{spread}; "
                       f"ΔAUC {mean:+.4f}, band ±{band:g})")
    return out
