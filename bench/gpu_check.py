"""GPU check of the executor: the CuPy path against the NumPy path, then speed and bytes.

Prints everything; exits 0 when every check passes, 1 when one fails, 2 when there is no GPU.
1. Same trace, same configurations (int8 + 5% LRU, int4 + 1% LFU, int8 no cache, fp32 on the
   device), deterministic rounding, on CuPy and on NumPy: the cache counters and the
   h2d/d2h bytes must be equal; the final weights (MLP and every embedding row) must agree to
   float32 tolerance (|a - b| <= 1e-4 + 1e-3 |b| for all but 1 in 10,000 elements: float32
   sums in another order can push a value across a rounding boundary now and then).
2. The executor's FBGEMM cache step as array code (`cachesim.executor.fbgemm_step`) on CuPy
   against the numba kernel (`cachesim.simulate.fbgemm.FbgemmCache`) on the same batches
   (made here with NumPy: multi-table, skewed, multi-hot): LRU, LFU, LRU with the prefetch
   pipeline, unified and per table, a realistic cache and a 2-set one (over-full sets, ties).
   The counters of every batch and the final lines, stamps and locks must be equal.
3. `train` per step on the GPU with the cache on the device (cache_model 'fbgemm': the index
   in CuPy arrays next to the lines) and on the host (cache_model 'ideal': `BatchCache` on the
   host, its slots copied to the device every step; the old path).
4. On a larger Criteo-shaped synthetic trace (criteo_like, kaggle MLP, batch 2048): samples/s
   and host<->device bytes per step for fp32 all-on-device, int8 + 5% cache, int4 + 1% cache,
   and the ratio of those bytes to fetching every row of every batch from the host (every
   lookup in FP32: requested x 4D bytes; and every unique row at the storage precision).
Meant to finish in under 5 minutes on one H200 (the default sizes); --time-budget skips the
speed runs that would not fit. No polars: the traces are made in the script.

    python bench/gpu_check.py                 # on a GPU machine with CuPy (cachesim[gpu])
    python bench/gpu_check.py --cpu-dry-run   # no GPU: the same code on NumPy, small sizes
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
    print(f"\n4. speed and bytes on {dev}: {trace.source}, {len(trace):,} accesses, "
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


def _step_batches(rng, table_rows, n_batches, accesses):
    """Skewed multi-hot batches (table ids, rows), made with NumPy."""
    rows = np.asarray(table_rows)
    out = []
    for _ in range(n_batches):
        t = rng.integers(0, rows.shape[0], accesses)
        out.append((t, (rng.zipf(1.2, accesses) - 1) % rows[t]))
    return out


def step_check(xp, n_batches, tables, rows, accesses):
    """2. The xp cache step against the numba kernel, batch by batch."""
    from cachesim.executor.fbgemm_step import XpFbgemmCache
    from cachesim.simulate.fbgemm import FbgemmCache, fbgemm_cache_sets
    name = "CuPy" if xp is not np else "NumPy"
    table_rows = [rows] * tables
    rng = np.random.default_rng(11)
    batches = _step_batches(rng, table_rows, n_batches, accesses)
    big = fbgemm_cache_sets(rows * tables, 0.05)
    print(f"\n2. xp cache step on {name} vs the numba kernel: {n_batches} batches of "
          f"{accesses:,} accesses over {tables} tables of {rows:,} rows")
    ok = True
    for label, kw in [("lru", dict(policy="lru", cache_sets=big)),
                      ("lfu", dict(policy="lfu", cache_sets=big)),
                      ("lru pipeline", dict(policy="lru", cache_sets=big, prefetch_pipeline=True)),
                      ("lru per table", dict(policy="lru", load_factor=0.05, per_table=True)),
                      ("lfu per table", dict(policy="lfu", load_factor=0.05, per_table=True)),
                      ("lru 2 sets", dict(policy="lru", cache_sets=2)),
                      ("lfu 2 sets", dict(policy="lfu", cache_sets=2))]:
        ref, dev = FbgemmCache(table_rows, **kw), XpFbgemmCache(xp, table_rows, **kw)
        t_ref = t_dev = 0.0
        bad = []
        for b, (t, r) in enumerate(batches):
            a = time.perf_counter()
            want = ref.step(t, r)
            t_ref += time.perf_counter() - a
            a = time.perf_counter()
            got = dev.step(t, r)
            _sync(xp)
            t_dev += time.perf_counter() - a
            if got != want:
                bad.append(b)
        for nm in ("cache_key", "cache_id", "lru_state", "lock_cnt"):
            host = getattr(dev, nm)
            host = host.get() if xp is not np else host
            if not np.array_equal(host, getattr(ref, nm)):
                bad.append(nm)
        tot = ref.totals()
        print(f"   {label:>13}: {'equal' if not bad else 'DIFFER at ' + str(bad[:5])}; "
              f"{ref.n_sets:,} sets, unique misses {tot['unique_misses']:,}, evictions "
              f"{tot['evictions']:,}, conflict misses {tot['conflict_misses']:,}; "
              f"{1e3 * t_dev / n_batches:.2f} ms/batch on {name}, "
              f"{1e3 * t_ref / n_batches:.2f} numba (first batch compiles)")
        ok &= not bad
    print(f"   {'xp cache step equals the numba kernel' if ok else 'xp cache step DIFFERS'}")
    return ok


def _sync(xp):
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


def step_timing(trace, dev, model, budget_end):
    """3. train per step with the cache on the device (fbgemm) vs on the host (ideal)."""
    from cachesim.executor import train
    print(f"\n3. train per step on {dev}, cache on the device vs on the host: {trace.source}, "
          f"{len(trace):,} accesses, model {model}")
    for prec, size in (("int8", "5%"), ("int4", "1%")):
        for where, cache_model in (("on the device", "fbgemm"), ("on the host", "ideal")):
            if time.perf_counter() > budget_end:
                print(f"   {prec} {size} cache {where}: skipped (time budget)")
                continue
            r, = train(trace, precision=prec, size=size, policy="lru", ways=32, device=dev,
                       model=model, baselines=False, progress=False, test_fraction=0.02,
                       cache_model=cache_model)
            print(f"   {prec} {size} cache {where} ({cache_model}): "
                  f"{1e3 * r['seconds'] / max(r['calls'], 1):8.2f} ms/step, "
                  f"{r['samples_per_s']:12,.0f} samples/s, hit {r['hit_ratio']:.3f}, "
                  f"h2d {r['h2d_bytes_per_step']:,.0f} B/step")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", "--cpu-dry-run", dest="dry_run", action="store_true",
                    help="no GPU needed: run the same code on NumPy, on small sizes")
    ap.add_argument("--step-batches", type=int, default=None,
                    help="batches for the cache step check (2.)")
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
        xp, step_sizes = np, (args.step_batches or 4, 4, 2000, 512)
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
        xp, step_sizes = cupy, (args.step_batches or 30, 26, 100_000, 26 * 2048)
    from cachesim.synth.generate import criteo_like
    small = criteo_like(check_n, seed=0, batch_size=256)
    ok = compare(small, dev_a, "cpu", model, 256)
    t1 = time.perf_counter()
    print(f"   ({t1 - t0:.1f} s so far)")
    big = criteo_like(speed_n, seed=1, batch_size=batch)
    ok &= step_check(xp, *step_sizes)
    step_timing(big, dev_a, model, t0 + args.time_budget)
    speed(big, dev_a, model, t0 + args.time_budget)
    verdict = (f"PASS: counters, bytes and weights agree between the {dev_a} and cpu paths, "
               "and the xp cache step equals the numba kernel" if ok else
               "FAIL: a check differs (DIFFER above)")
    print(f"\n{verdict} ({time.perf_counter() - t0:.1f} s in all)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
