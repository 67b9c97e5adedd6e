"""Miniature simulation (Waldspurger et al., ATC'17): any policy's miss-ratio curve from a replay
of the hashed sample of the keys (`shards.sample_mask`) with every cache size scaled down."""
from __future__ import annotations

import numpy as np

from ..errors import CachesimError
from .shards import sample_mask


def sample_trace(trace, rate: float):
    """The accesses whose key is in the hashed sample, as a Trace with the same tables (and no
    batch column: a miniature simulation replays access by access)."""
    return trace.take(sample_mask(trace.keys, rate), batches=False,
                      source=f"{trace.source} (sample {rate:g})")


def mini_curve(trace, policy: str, sizes, rate: float = 0.01, bytes: bool = False,
               adj: bool = True) -> np.ndarray:
    """Miniature simulation (Waldspurger et al., ATC'17): replay the hashed sample at rate R with
    each cache size scaled by R (at least 1 row or 1 byte); miss ratio per size (1 at size 0).

    `adj` (ours, after SHARDS_adj): divide the sample's misses by the expected sampled accesses,
    N x R, instead of the actual ones, i.e. count the sample's surplus or shortfall of accesses
    (hot keys caught or missed by the hash) as hits. On skewed traces this cuts the error several
    fold (bench/RESULTS.md); `adj=False` is the paper's estimator."""
    return run_mini(trace, policy, sizes, rate, bytes, adj)[0]


def run_mini(trace, policy, sizes, rate, bytes, adj):
    """`mini_curve`'s miss ratios and the sample's size: (curve, {"rate", "sampled_keys",
    "sample_accesses"})."""
    from ..simulate.access import replay
    sub = sample_trace(trace, rate)
    sizes = np.asarray(sizes, dtype=np.int64)
    out = np.ones(sizes.shape[0], dtype=np.float64)
    if len(sub) == 0:
        raise CachesimError(f"the sample at rate {rate:g} has no accesses: raise the rate")
    for i, c in enumerate(sizes.tolist()):
        if c <= 0:
            continue
        scaled = max(1, int(round(c * rate)))
        res = replay(sub, policy, f"{scaled}B" if bytes else scaled, ways=None)  # fully assoc.
        out[i] = min(1.0, res.misses / (len(trace) * rate)) if adj else res.miss_ratio
    return out, {"rate": float(rate), "sampled_keys": int(sub.n_distinct),
                 "sample_accesses": float(len(sub))}
