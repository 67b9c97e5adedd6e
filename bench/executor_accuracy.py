"""Executor accuracy and speed: does INT8/INT4 storage behind an FP32 cache keep DLRM's AUC?

Parts (run one or several with --part):
  a  Criteo-shaped synthetic trace (cachesim.synth.generate.criteo_like, planted teacher):
     fp32 all-on-device, int8 no cache, int8 + 5% LRU cache, int4 no cache, int4 + 1% LRU cache,
     over several seeds; mean and spread of the test AUC; the requirement is int8 + 5% within
     0.002 AUC of fp32.
  b  the real Criteo Kaggle sample (10,000 lines), the same table over several seeds.
  c  speed: one epoch of the real Criteo sample, kaggle preset, per configuration.

Examples:
  python bench/executor_accuracy.py --part a --samples 1000000 --seeds 0,1,2 --model medium
  python bench/executor_accuracy.py --part b,c --seeds 0,1,2,3,4

BLAS runs on one thread (OPENBLAS_NUM_THREADS=1 unless set): on a shared 2-core machine
OpenBLAS's second thread made the kaggle MLP's matmuls ~10x slower, not faster.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

CRITEO = str(Path(__file__).resolve().parents[1] / "tests/data/criteo/kaggle_train_head10k.tsv")
CONFIGS = [("fp32", "all"), ("int8", "0"), ("int8", "5%"), ("int4", "0"), ("int4", "1%")]


def run_configs(trace, seeds, model, policy="lru", ways=32, **kw):
    from cachesim.executor import train
    out = []
    for seed in seeds:
        for prec, size in CONFIGS:
            rec, = train(trace, precision=prec, size=size, policy=policy, ways=ways, seed=seed,
                         model=model, baselines=False, progress=sys.stderr.isatty(), **kw)
            out.append(rec)
            print(f"  seed {seed} {prec:>4} {size:>3}: auc {rec['auc']:.4f} logloss "
                  f"{rec['logloss']:.4f} hit {rec['hit_ratio']:.3f} "
                  f"{rec['samples_per_s']:,.0f} samples/s", flush=True)
    return out


def summarize(records, title):
    print(f"\n{title}")
    print(f"{'precision':>9} {'size':>4} {'AUC mean':>9} {'AUC sd':>7} {'min':>7} {'max':>7} "
          f"{'dAUC vs fp32':>13} {'logloss':>8} {'hit':>6} {'h2d B/step':>11} "
          f"{'d2h B/step':>11} {'samples/s':>10}")
    base = {r["seed"]: r["auc"] for r in records if r["size"] == "all"}
    rows = []
    for prec, size in CONFIGS:
        rs = [r for r in records if r["precision"] == prec and r["size"] == size]
        if not rs:
            continue
        auc = np.array([r["auc"] for r in rs])
        diff = np.array([r["auc"] - base[r["seed"]] for r in rs if r["seed"] in base])
        row = {"precision": prec, "size": size, "n_seeds": len(rs),
               "auc_mean": float(auc.mean()), "auc_sd": float(auc.std(ddof=1)) if len(rs) > 1
               else 0.0, "auc_min": float(auc.min()), "auc_max": float(auc.max()),
               "dauc_mean": float(diff.mean()), "dauc_min": float(diff.min()),
               "logloss": float(np.mean([r["logloss"] for r in rs])),
               "hit_ratio": float(np.mean([r["hit_ratio"] for r in rs])),
               "h2d_per_step": float(np.mean([r["h2d_bytes_per_step"] for r in rs])),
               "d2h_per_step": float(np.mean([r["d2h_bytes_per_step"] for r in rs])),
               "samples_per_s": float(np.mean([r["samples_per_s"] for r in rs]))}
        rows.append(row)
        print(f"{prec:>9} {size:>4} {row['auc_mean']:9.4f} {row['auc_sd']:7.4f} "
              f"{row['auc_min']:7.4f} {row['auc_max']:7.4f} {row['dauc_mean']:+13.4f} "
              f"{row['logloss']:8.4f} {row['hit_ratio']:6.3f} {row['h2d_per_step']:11,.0f} "
              f"{row['d2h_per_step']:11,.0f} {row['samples_per_s']:10,.0f}")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="a,b,c")
    ap.add_argument("--samples", type=int, default=1_000_000, help="part a: samples")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--model", default="medium", help="part a's MLP preset (b, c: kaggle)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--json", default=None, help="write every record and summary here")
    args = ap.parse_args(argv)
    import cachesim
    from cachesim.synth.generate import criteo_like
    seeds = [int(s) for s in args.seeds.split(",")]
    parts = args.part.split(",")
    dump = {"args": vars(args), "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
    if "a" in parts:
        t0 = time.perf_counter()
        trace = criteo_like(args.samples, seed=0, batch_size=args.batch_size)
        print(f"part a: {trace.source}: {len(trace):,} accesses, {trace.n_distinct:,} distinct "
              f"rows, positives {trace.labels.mean():.3f}; model {args.model}, batch "
              f"{args.batch_size}, lr {args.lr}, seeds {seeds} (made in "
              f"{time.perf_counter() - t0:.1f} s)", flush=True)
        recs = run_configs(trace, seeds, args.model, lr=args.lr)
        dump["a"] = {"records": recs, "summary": summarize(
            recs, f"part a: criteo_like({args.samples:,}), {args.model} MLP, "
                  f"{len(seeds)} seed(s)")}
        del trace
    if "b" in parts or "c" in parts:
        trace = cachesim.read_trace(CRITEO, batch_size=args.batch_size)
    if "b" in parts:
        print(f"\npart b: {CRITEO}: {trace.n_distinct:,} distinct rows, kaggle MLP, seeds "
              f"{seeds}", flush=True)
        recs = run_configs(trace, seeds, "kaggle", lr=args.lr)
        dump["b"] = {"records": recs, "summary": summarize(
            recs, f"part b: real Criteo sample (10k lines), kaggle MLP, {len(seeds)} seed(s)")}
    if "c" in parts:
        print("\npart c: one epoch of the real Criteo sample, kaggle MLP (seconds of training "
              "steps; the 10% test split is not counted)", flush=True)
        from cachesim.executor import train
        t0 = time.perf_counter()
        recs = train(trace, precision=["int8", "int4"], size=["1%", "5%"], policy="lru",
                     ways=32, model="kaggle", progress=False, seed=0, lr=args.lr)
        wall = time.perf_counter() - t0
        for r in recs:
            print(f"  {r['precision']:>4} {r['size']:>3} {r['policy']:>4}: "
                  f"{r['train_samples']:,} samples in {r['seconds']:.2f} s = "
                  f"{r['samples_per_s']:,.0f} samples/s")
        print(f"  all {len(recs)} configurations, with data loading and evaluation: "
              f"{wall:.1f} s")
        dump["c"] = {"records": recs, "wall_s": wall}
    if args.json:
        for part in ("a", "b", "c"):
            for r in dump.get(part, {}).get("records", []):
                r.pop("_state", None)
        tmp = args.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(dump, fh, indent=1, default=float)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
