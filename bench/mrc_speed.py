"""Miss-ratio curves: speed, accuracy and memory, against one-size replays, same run.

On a Zipf trace (default 10M accesses over 1M keys, alpha 1.0, key ids shuffled):
- the exact LRU curve at every size (one stack-distance pass) against one `lru` replay at one
  size (ours), and against libcachesim's LRU at one size (it replays once per size: the number of
  sizes it would need to match one exact pass is printed);
- SHARDS at 1% (fixed rate) and fixed size (8,192 keys): time to the estimated step function,
  mean/max absolute error against the exact curve over every size, and the bytes of the kernel's own state (bounded by the
  sampled keys: the same on a 5x shorter prefix of the trace);
- miniature simulation at 1% for lru and fifo at 8 sizes, against full replays.

    .venv/bin/python bench/mrc_speed.py
    .venv/bin/python bench/mrc_speed.py --requests 1e6 --keys 1e5     # a quick look
    .venv/bin/python bench/mrc_speed.py --accuracy     # SHARDS and mini errors, Zipf shapes x seeds
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import cachesim  # noqa: E402
from cachesim.analysis import mrc as M  # noqa: E402


class Clock:
    """Wall and CPU seconds of a block (CPU time is steadier on a shared machine)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def __str__(self):
        return f"{self.wall:6.2f} s wall, {self.cpu:6.2f} s CPU"


def zipf_keys(seed, n_keys, alpha, n):
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(np.arange(1, n_keys + 1, dtype=np.float64) ** -alpha)
    cdf /= cdf[-1]
    r = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), n_keys - 1)
    return rng.permutation(n_keys)[r].astype(np.int64)


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def libcachesim_lru(keys, capacity):
    try:
        import libcachesim
    except ImportError:
        return None, None
    from cachesim.io.libcachesim import ORACLE_DTYPE
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "zipf.oracleGeneral.bin"
        rec = np.zeros(keys.shape[0], dtype=ORACLE_DTYPE)
        rec["id"] = keys
        rec[rec.dtype.names[2]] = 1
        rec[rec.dtype.names[3]] = -1
        rec.tofile(path)
        reader = libcachesim.TraceReader(str(path), libcachesim.TraceType.ORACLE_GENERAL_TRACE,
                                         libcachesim.ReaderInitParam(ignore_obj_size=True))
        cache = libcachesim.LRU(capacity, hashpower=20)
        with Clock() as c:
            miss_ratio, _ = cache.process_trace(reader)
    return miss_ratio, c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=float, default=10e6)
    ap.add_argument("--keys", type=float, default=1e6)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5, help="Replay/exact pairs to time.")
    ap.add_argument("--accuracy", action="store_true",
                    help="Instead: SHARDS and mini errors over Zipf shapes and seeds (2M accesses).")
    args = ap.parse_args()
    if args.accuracy:
        return accuracy()
    n, n_keys = int(args.requests), int(args.keys)

    warm = cachesim.Trace.from_keys(np.arange(3000) % 97)  # compile every kernel first
    M.lru_curve(warm), cachesim.replay(warm, "lru", 10), cachesim.replay(warm, "fifo", 10)
    M.shards(warm.keys, 0.5), M.shards(warm.keys, 0.5, s_max=16), M.sample_mask(warm.keys, 0.5)

    keys = zipf_keys(args.seed, n_keys, args.alpha, n)
    trace = cachesim.Trace.from_keys(keys, source="zipf")
    with Clock() as c_remap:
        trace.dense_ids
    m = trace.n_distinct
    cap = max(1, m // 20)
    print(f"Zipf trace: {n:,} accesses, {m:,} distinct keys (of {n_keys:,}), alpha "
          f"{args.alpha}; dense ids (shared by replay and the exact curve) {c_remap}")

    reps, exs = [], []
    for _ in range(args.repeat):  # interleaved, so both see the same load on a shared machine
        with Clock() as c_rep:
            r = cachesim.replay(trace, "lru", cap)
        with Clock() as c_ex:
            exact = M.lru_curve(trace)
        reps.append(c_rep)
        exs.append(c_ex)
    assert exact[cap] == r.miss_ratio
    c_rep = sorted(reps, key=lambda c: c.cpu)[len(reps) // 2]   # the median run by CPU time
    c_ex = sorted(exs, key=lambda c: c.cpu)[len(exs) // 2]
    ratios = sorted(a.cpu / b.cpu for a, b in zip(reps, exs))
    print(f"\ncachesim lru replay at 1 size ({cap:,} rows)  {c_rep}  "
          f"{n / c_rep.wall / 1e6:5.1f} M req/s (median of {args.repeat})")
    print(f"exact LRU curve, all {m + 1:,} sizes         {c_ex}  {n / c_ex.wall / 1e6:5.1f} M req/s")
    print(f"  exact-curve throughput / one-size replay (CPU time, pairwise): median "
          f"{ratios[len(ratios) // 2]:.2f}, range {ratios[0]:.2f}-{ratios[-1]:.2f}; "
          "target >= 0.33")
    lmr, c_lcs = libcachesim_lru(keys, cap)
    if c_lcs is not None:
        print(f"libcachesim LRU at 1 size                    {c_lcs}  "
              f"{n / c_lcs.wall / 1e6:5.1f} M req/s (miss ratio {lmr:.6f} vs ours "
              f"{r.miss_ratio:.6f})")
        print(f"  one exact pass costs {c_ex.wall / c_lcs.wall:.1f} libcachesim replays; it needs "
              f"{m + 1:,} replays for the same curve ({(m + 1) * c_lcs.wall / 3600:,.0f} h)")

    all_sizes = np.arange(m + 1)
    print()
    for label, kw in (("SHARDS 1% fixed rate", dict(rate=0.01)),
                      ("SHARDS fixed size 8192", dict(rate=0.1, s_max=8192))):
        rss0 = maxrss_mib()
        runs = []
        for _ in range(args.repeat):
            with Clock() as c_sh:  # the estimate as its step function (like the exact array)
                steps, step_miss, info = M.shards_curve(trace.keys, None, **kw)
            runs.append(c_sh)
        c_sh = sorted(runs, key=lambda c: c.cpu)[len(runs) // 2]
        est = step_miss[np.searchsorted(steps, all_sizes, side="right") - 1]
        err = np.abs(est - exact)
        _, _, info_short = M.shards_curve(trace.keys[: n // 5], all_sizes[:2], **kw)
        print(f"{label:24s} {c_sh}  {c_ex.wall / c_sh.wall:6.1f}x faster than exact (wall), "
              f"{c_ex.cpu / c_sh.cpu:6.1f}x (CPU; medians of {args.repeat})"
              + ("; target >= 20x" if "s_max" not in kw else ""))
        print(f"  MAE {err.mean():.4f}, max {err.max():.4f}; final rate {info['rate']:.5f}, "
              f"sampled keys {info['sampled_keys']:,}, estimated distinct {info['estimated_keys']:,.0f}")
        print(f"  kernel state {info['state_bytes'] / 2**20:.2f} MiB on {n:,} accesses, "
              f"{info_short['state_bytes'] / 2**20:.2f} MiB on the first {n // 5:,} "
              f"(sampled keys {info_short['sampled_keys']:,}); maxrss grew "
              f"{maxrss_mib() - rss0:.1f} MiB")

    sizes = (np.array([0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8]) * m).astype(np.int64)
    print()
    for policy in ("lru", "fifo"):
        with Clock() as c_mini:
            est = M.mini_curve(trace, policy, sizes, rate=0.01)
        plain = M.mini_curve(trace, policy, sizes, rate=0.01, adj=False)
        with Clock() as c_full:
            ref = np.array([cachesim.replay(trace, policy, int(s)).miss_ratio for s in sizes])
        print(f"mini {policy:4s} 1%, 8 sizes  {c_mini}  vs 8 full replays {c_full}: "
              f"{c_full.wall / c_mini.wall:5.1f}x faster, MAE {np.abs(est - ref).mean():.4f}, "
              f"max {np.abs(est - ref).max():.4f} (without adj: MAE "
              f"{np.abs(plain - ref).mean():.4f})")
    print(f"\nmaxrss {maxrss_mib():.0f} MiB; sample share of accesses at 1%: "
          f"{M.sample_mask(trace.keys, 0.01).mean():.4f}")


def accuracy():
    """Mean absolute error of SHARDS (1%, with and without adj; fixed size 4,096) over every size
    and of mini (lru, 1% and 5%, with and without adj, 6 sizes from 1% to 40% of the keys) on
    2M-access Zipf traces."""
    print("     keys alpha seed  share@1%  shards1%   no-adj  fixed4096 mini1%  no-adj  "
          "mini5%   no-adj")
    for n_keys, alpha in ((100_000, 0.8), (1_000_000, 0.8), (100_000, 1.0), (1_000_000, 1.0)):
        for seed in range(3):
            tr = cachesim.Trace.from_keys(zipf_keys(seed, n_keys, alpha, 2_000_000))
            exact = M.lru_curve(tr)
            sizes = np.arange(exact.shape[0])
            errs = []
            for kw in (dict(rate=0.01), dict(rate=0.01, adj=False), dict(rate=0.1, s_max=4096)):
                errs.append(np.abs(M.shards_curve(tr.keys, sizes, **kw)[1] - exact).mean())
            few = (np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.4]) * tr.n_distinct).astype(np.int64)
            for rate in (0.01, 0.05):
                for adj in (True, False):
                    est = M.mini_curve(tr, "lru", few, rate, adj=adj)
                    errs.append(np.abs(est - exact[few]).mean())
            share = M.sample_mask(tr.keys, 0.01).mean()
            print(f"{n_keys:>9,}  {alpha:4.1f}  {seed:4d}  {share:8.4f}  "
                  + "  ".join(f"{e:7.4f}" for e in errs))


if __name__ == "__main__":
    main()
