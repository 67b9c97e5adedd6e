"""Error of sampled miss-ratio curves against the exact ones, by sampled cache size (size x rate),
on the shipped Criteo sample: the evidence for `reliable` (>= MIN_SAMPLED_ROWS sampled rows) and
the small-sample warning (README, "When a sampled curve cannot be trusted").

    .venv/bin/python bench/mrc_reliability.py        # about 30 s
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import cachesim  # noqa: E402
from cachesim.analysis import mrc as M  # noqa: E402
from cachesim.io import read_trace  # noqa: E402

BANDS = ((0, 1), (1, 10), (10, 100), (100, np.inf))


def _bands(err, sampled_rows, positive):
    out = []
    for lo, hi in BANDS:
        sel = (sampled_rows >= lo) & (sampled_rows < hi) & positive
        out.append(f"{err[sel].max():.3f}" if sel.any() else "  -  ")
    return "  ".join(f"{x:>7}" for x in out)


def main() -> None:
    tr = read_trace(str(ROOT / "cachesim/data/criteo_kaggle_head10k.parquet"))
    print(f"{len(tr):,} accesses, {tr.n_distinct:,} keys; max |error| by sampled rows "
          f"[0,1) [1,10) [10,100) [100,inf)")
    exact = M.lru_curve(tr)
    sizes = np.arange(tr.n_distinct + 1)
    for kw in ([dict(rate=r) for r in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)]
               + [dict(s_max=k) for k in (1024, 2048, 4096, 8192)]):
        _, miss, info = M.shards_curve(tr.keys, sizes, **kw)
        err = np.abs(miss - exact)
        warn = "warns" if M.sample_warning(info) else "     "
        bands = _bands(err, sizes * info["rate"], sizes > 0)
        print(f"shards {kw!s:16} keys {info['sampled_keys']:>5} accesses "
              f"{info['sample_accesses']:>7,.0f} {warn} {bands}")
    grid = M._default_grid(tr.n_distinct)
    whole = M.sample_trace(tr, 1.0)  # access by access, no batches
    for policy in ("lru", "fifo"):
        ref = np.array([1.0] + [cachesim.replay(whole, policy, int(c), ways=None).miss_ratio
                                for c in grid[1:]])
        for rate in (0.01, 0.03, 0.1):
            est = M.mini_curve(tr, policy, grid, rate=rate)
            print(f"mini {policy:4} rate {rate:<5}{'':27} "
                  f"{_bands(np.abs(est - ref), grid * rate, grid > 0)}")


if __name__ == "__main__":
    main()
