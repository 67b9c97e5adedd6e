"""GPU check of the executor: the CuPy path against the NumPy path, then speed and bytes.

Prints everything; exits 0 when every check passes, 1 when one fails, 2 when there is no GPU.
1. Same trace, same configurations (int8 + 5% LRU, int4 + 1% LFU, int8 no cache, fp32 on the
   device), deterministic rounding, on CuPy and on NumPy: the cache counters and the
   h2d/d2h bytes must be equal; the final weights (MLP and every embedding row) must agree to
   float32 tolerance (|a - b| <= 1e-4 + 1e-3 |b| for all but 1 in 10,000 elements: float32
   sums in another order can push a value across a rounding boundary now and then).
2. On a larger Criteo-shaped synthetic trace (criteo_like, kaggle MLP, batch 2048): samples/s
   and host<->device bytes per step for fp32 all-on-device, int8 + 5% cache, int4 + 1% cache,
   and the ratio of those bytes to fetching every row of every batch from the host (every
   lookup in FP32: requested x 4D bytes; and every unique row at the storage precision).
Meant to finish in under 5 minutes on one H200 (the default sizes); --time-budget skips the
speed runs that would not fit.

    python bench/gpu_check.py                 # on a GPU machine with CuPy (cachesim[gpu])
    python bench/gpu_check.py --dry-run       # no GPU: the same code on NumPy twice, small trace
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

COUNTERS = ("calls", "requested_indices", "unique_indices", "unique_misses",
            "conflict_unique_misses", "conflict_misses", "evictions", "h2d_bytes", "d2h_bytes")
CHECK_CONFIGS = [("fp32", "all", "lru"), ("int8", "0", "lru"), ("int8", "5%", "lru"),
                 ("int4", "1%", "lfu")]
SPEED_CONFIGS = [("fp32", "all"), ("int8", "5%"), ("int4", "1%")]


def compare(trace, dev_a, dev_b, model, batch_size):
    from cachesim.executor import train
    ok = True
    print(f"\n1. {dev_a} path vs {dev_b} path on {trace.source} ({len(trace):,} accesses), "
          f"deterministic rounding, model {model}, batch {batch_size}")
    for prec, size, pol in CHECK_CONFIGS:
        kw = dict(precision=prec, size=size, policy=pol, ways=32, rounding="deterministic",
                  model=model, baselines=False, progress=False, return_state=True,
                  test_fraction=0.1, batch_size=batch_size)
        a, = train(trace, device=dev_a, **kw)
        b, = train(trace, device=dev_b, **kw)
        same = {k: (a[k], b[k]) for k in COUNTERS if a[k] != b[k]}
        print(f"   {prec} {size:>3} {pol}: counters and bytes "
              f"{'equal' if not same else 'DIFFER ' + str(same)}; "
              f"calls {a['calls']}, unique_misses {a['unique_misses']:,}, "
              f"h2d {a['h2d_bytes']:,} B, d2h {a['d2h_bytes']:,} B")
        ok &= not same
        worst, n_bad, n_all = 0.0, 0, 0
        pairs = [(a["_state"]["rows"], b["_state"]["rows"])]
        pairs += [(a["_state"]["params"][k], b["_state"]["params"][k])
                  for k in b["_state"]["params"]]
        for x, y in pairs:
            d = np.abs(x.astype(np.float64) - y)
            worst = max(worst, float(d.max()))
            n_bad += int((d > 1e-4 + 1e-3 * np.abs(y)).sum())
            n_all += d.size
        # float32 sums in another order can move a value across a rounding boundary now and
        # then (one quantization step, then training drifts a little): allow 1 in 10,000
        print(f"      final weights: max |{dev_a} - {dev_b}| = {worst:.3g}; {n_bad} of {n_all:,} "
              f"elements beyond 1e-4 + 1e-3|w| (allowed: {int(1e-4 * n_all)}); test AUC "
              f"{_f(a['auc'])} vs {_f(b['auc'])}")
        ok &= n_bad <= 1e-4 * n_all
    return ok


def _f(v):
    return "-" if v is None else f"{v:.5f}"


def speed(trace, dev, model, budget_end):
    from cachesim.executor import train
    from cachesim.executor.quant import row_bytes
    dim = int(trace.table_dims[0])
    print(f"\n2. speed and bytes on {dev}: {trace.source}, {len(trace):,} accesses, "
          f"{trace.n_distinct:,} distinct rows, model {model}")
    print(f"   {'config':>10} {'samples/s':>11} {'steps':>6} {'h2d B/step':>12} "
          f"{'d2h B/step':>12} {'vs every lookup fp32':>21} {'vs unique rows':>15} "
          f"{'hit':>6} {'device MiB':>11} {'host MiB':>9}")
    for prec, size in SPEED_CONFIGS:
        if time.perf_counter() > budget_end:
            print(f"   {prec} {size}: skipped (time budget)")
            continue
        r, = train(trace, precision=prec, size=size, policy="lru", ways=32, device=dev,
                   model=model, baselines=False, progress=False, test_fraction=0.02)
        steps = r["calls"]
        moved = (r["h2d_bytes"] + r["d2h_bytes"]) / steps
        every_lookup = r["requested_indices"] / steps * 4 * dim
        unique_rows = 2 * r["unique_indices"] / steps * row_bytes(prec, dim)
        print(f"   {prec + ' ' + size:>10} {r['samples_per_s']:11,.0f} {steps:6d} "
              f"{r['h2d_bytes_per_step']:12,.0f} {r['d2h_bytes_per_step']:12,.0f} "
              f"{moved / every_lookup:21.3f} {moved / unique_rows:15.3f} "
              f"{r['hit_ratio']:6.3f} {r['device_bytes'] / 2**20:11.1f} "
              f"{r['host_bytes'] / 2**20:9.1f}")
    print("   (vs every lookup fp32: (h2d + d2h) / (lookups x 4D bytes) per step; vs unique rows:"
          " / (2 x unique rows x storage row bytes), the no-cache read-and-write-back)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU needed: run the same code on NumPy twice, on small traces")
    ap.add_argument("--check-samples", type=int, default=None)
    ap.add_argument("--speed-samples", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--time-budget", type=float, default=270.0, help="seconds")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    from cachesim.errors import CachesimError
    from cachesim.executor.xp import get_xp
    if args.dry_run:
        dev_a, model = "cpu", "small"
        check_n = args.check_samples or 3000
        speed_n = args.speed_samples or 20000
        batch = min(args.batch_size, 256)
        print("dry run: NumPy on both sides (no GPU); the real check runs without --dry-run")
    else:
        try:
            get_xp("gpu")
        except CachesimError:
            print("gpu_check: needs CuPy and a CUDA GPU, and none was found, so nothing was "
                  "checked; run it on a GPU machine with cachesim[gpu] (cupy-cuda12x) installed, "
                  "or pass --dry-run to run the same code on NumPy here.", file=sys.stderr)
            return 2
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        print(f"GPU: {props['name'].decode()}, CuPy {cupy.__version__}, "
              f"{props['totalGlobalMem'] / 2**30:.0f} GiB")
        dev_a, model = "gpu", "kaggle"
        check_n = args.check_samples or 20000
        speed_n = args.speed_samples or 500_000
        batch = args.batch_size
    from cachesim.synth.generate import criteo_like
    small = criteo_like(check_n, seed=0, batch_size=256)
    ok = compare(small, dev_a, "cpu", model, 256)
    t1 = time.perf_counter()
    print(f"   ({t1 - t0:.1f} s so far)")
    big = criteo_like(speed_n, seed=1, batch_size=batch)
    speed(big, dev_a, model, t0 + args.time_budget)
    print(f"\n{'PASS' if ok else 'FAIL'}: counters, bytes and weights "
          f"{'agree' if ok else 'differ'} between the {dev_a} and cpu paths "
          f"({time.perf_counter() - t0:.1f} s in all)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
