"""Peak memory of a large replay: streamed (`cachesim replay --stream`), in memory
(`--no-stream`) and libCacheSim's C simulator (issue 12).

Writes an oracleGeneral file of `--requests` accesses (Zipf-like keys: P(rank r) ~ 1/r over
`--keys` ranks, hashed to 64-bit ids; 4 KiB objects) to bench/out/stream_memory.oracleGeneral.bin,
then runs each command once in its own process and reads its peak resident set (`ru_maxrss` of
that one child, through a wrapper process) and wall time: fully associative LRU, a cache of 1% of
the distinct keys, unit object sizes. The hit counts of all three are checked to agree. The file
is deleted at the end (`--keep` keeps it).

    flock /tmp/bench.lock .venv/bin/python bench/stream_memory.py --requests 50000000

`--batch`: the same for a batched trace through FBGEMM's cache model (`cachesim replay`'s
default, batch mode): `--tables` tables of `--rows` rows each, Zipf-like rows per table, batches
of `--batch-accesses` accesses, written as a folder of cachesim Parquet parts (4M accesses each,
bench/out/stream_memory_parts/) and, unless `--no-single`, one Parquet file made from them by
polars' streaming sink (bench/out/stream_memory.parquet). Measured: `--stream` on the file and on
the folder, and `--no-stream` on the file (unless `--no-in-memory`; a folder of Parquet files
has no in-memory reader), LRU at `--size` (default 1%: FBGEMM's load factor on the rows); the
hit counts are checked to agree.

    flock /tmp/bench.lock .venv/bin/python bench/stream_memory.py --batch --requests 5000000
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import (OUT, ROOT, build_libcachesim, c_miss_ratio,  # noqa: E402
                     libcachesim_source)

CLI = ROOT / ".venv" / "bin" / "cachesim"
DTYPE = np.dtype([("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
WRAP = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "w = time.perf_counter() - t; sys.stderr.write(p.stderr); sys.stdout.write(p.stdout); "
        "print('@@', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, w, p.returncode)")


def generate(path: Path, n: int, n_keys: int, seed: int = 0, chunk: int = 1 << 22) -> int:
    """Write the trace; return its number of distinct keys."""
    rng = np.random.default_rng(seed)
    seen = np.zeros(n_keys, dtype=bool)
    with open(path, "wb") as f:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            rank = np.minimum((n_keys ** rng.random(m)).astype(np.int64), n_keys) - 1
            seen[rank] = True
            rec = np.zeros(m, dtype=DTYPE)
            rec["t"] = (start + np.arange(m)) // 1000
            rec["id"] = (rank.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
            rec["size"] = 4096
            rec["next"] = -1
            f.write(rec.tobytes())
    return int(seen.sum())


def measure(cmd: list[str]) -> dict:
    # in bench/out/: libCacheSim's simulator writes TRACE.cachesim into the working folder
    proc = subprocess.run([sys.executable, "-c", WRAP, *cmd], capture_output=True, text=True,
                          cwd=OUT)
    tail = proc.stdout.rstrip().splitlines()[-1].split()
    if tail[0] != "@@" or tail[3] != "0":
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return {"peak_rss_gib": int(tail[1]) / 2**20, "seconds": float(tail[2]),
            "out": proc.stdout}


def generate_batched(folder: Path, n: int, tables: int, rows: int, batch: int, seed: int = 0,
                     part: int = 1 << 22) -> None:
    """Write the batched trace as cachesim Parquet parts of `part` accesses (whole batches need
    not fit a part: the streamed reader joins them), one part in memory at a time."""
    from cachesim.io import write_trace
    from cachesim.trace import Trace
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=False)
    for i, start in enumerate(range(0, n, part)):
        m = min(part, n - start)
        rank = np.minimum((rows ** rng.random(m)).astype(np.int64), rows) - 1
        scatter = (rank * 0x9E3779B1) % rows  # hot rows spread over the table's row ids
        write_trace(Trace(table=rng.integers(0, tables, m).astype(np.int32), row=scatter,
                          batch=(start + np.arange(m)) // batch,
                          table_rows=np.full(tables, rows, np.int64), source="bench"),
                    folder / f"part-{i}.parquet")


def single_file(folder: Path, path: Path) -> None:
    """One Parquet file of the parts (polars' streaming sink, cachesim's metadata kept)."""
    import polars as pl

    from cachesim.io.tabular import METADATA_KEY, read_parquet_metadata
    meta = read_parquet_metadata(next(folder.glob("*.parquet")))
    files = sorted(folder.glob("*.parquet"), key=lambda f: int(f.stem.split("-")[1]))
    pl.scan_parquet([str(f) for f in files]).sink_parquet(
        path, compression="lz4", metadata={METADATA_KEY: json.dumps(meta)})


def main_batch(args) -> None:
    import shutil
    folder, path = OUT / "stream_memory_parts", OUT / "stream_memory.parquet"
    t0 = time.perf_counter()
    generate_batched(folder, args.requests, args.tables, args.rows, args.batch_accesses)
    gib = sum(f.stat().st_size for f in folder.iterdir()) / 2**30
    print(f"{folder.relative_to(ROOT)}: {args.requests:,} accesses, {args.tables} tables of "
          f"{args.rows:,} rows, batches of {args.batch_accesses:,}, {gib:.2f} GiB, written in "
          f"{time.perf_counter() - t0:.0f} s")
    ours = [str(CLI), "replay", "-p", "lru", "-s", args.size, "-q", "--json"]
    runs = [("cachesim --stream (folder)", [str(folder), "--stream"])]
    if not args.no_single:
        single_file(folder, path)
        runs.insert(0, ("cachesim --stream (file)", [str(path), "--stream"]))
        if not args.no_in_memory:
            runs.append(("cachesim --no-stream (file)", [str(path), "--no-stream"]))
    rows = {}
    try:
        for label, extra in runs:
            r = measure(ours[:2] + extra[:1] + ours[2:] + extra[1:])
            rec = json.loads(r["out"].split("@@")[0])[0]
            r["hits"], r["model"] = rec["hits"], rec["cache_model"]
            rows[label] = r
    finally:
        if not args.keep:
            shutil.rmtree(folder)
            path.unlink(missing_ok=True)
    hits = {r["hits"] for r in rows.values()}
    print(f"LRU, {rows[runs[0][0]]['model']} cache model, --size {args.size}, "
          f"{args.requests:,} accesses; hits agree: {len(hits) == 1}")
    print(f"{'command':40} {'peak RSS GiB':>12} {'B/access':>10} {'seconds':>8} {'hits':>12}")
    for label, r in rows.items():
        per = r["peak_rss_gib"] * 2**30 / args.requests
        print(f"{label:40} {r['peak_rss_gib']:12.2f} {per:10.1f} {r['seconds']:8.1f} "
              f"{r['hits']:>12}")
    if len(hits) != 1:
        raise SystemExit("the replays disagree")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20_000_000)
    ap.add_argument("--keys", type=int, default=1 << 24, help="Zipf ranks (default 2^24)")
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--batch", action="store_true",
                    help="a batched Parquet trace through FBGEMM's cache model instead")
    ap.add_argument("--tables", type=int, default=26, help="--batch: tables (default 26)")
    ap.add_argument("--rows", type=int, default=1 << 20, help="--batch: rows per table")
    ap.add_argument("--batch-accesses", type=int, default=26 * 2048,
                    help="--batch: accesses per batch (default 26 x 2048)")
    ap.add_argument("--size", default="1%", help="--batch: cache size (default 1%%)")
    ap.add_argument("--no-single", action="store_true",
                    help="--batch: only the folder (no single file, no in-memory run)")
    ap.add_argument("--no-in-memory", action="store_true",
                    help="--batch: skip the in-memory (--no-stream) run")
    args = ap.parse_args()
    if args.batch:
        OUT.mkdir(parents=True, exist_ok=True)
        return main_batch(args)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "stream_memory.oracleGeneral.bin"
    t0 = time.perf_counter()
    distinct = generate(path, args.requests, args.keys)
    print(f"{path.relative_to(ROOT)}: {args.requests:,} requests, {distinct:,} distinct keys, "
          f"{path.stat().st_size / 2**30:.2f} GiB, written in {time.perf_counter() - t0:.0f} s")
    objects = max(1, distinct // 100)
    ours = [str(CLI), "replay", str(path), "--mode", "access", "-p", "lru", "-s",
            str(objects), "--ways", "full", "-q", "--json"]
    rows = {}
    try:
        for label, flag in (("cachesim --stream", "--stream"),
                            ("cachesim --no-stream", "--no-stream")):
            r = measure(ours + [flag])
            rec = json.loads(r["out"].split("@@")[0])[0]
            r["hits"] = rec["hits"]
            rows[label] = r
        binary, c_label = build_libcachesim(libcachesim_source(None))
        if binary is not None:
            r = measure([str(binary), str(path), "oracleGeneral", "lru", str(objects),
                         "--ignore-obj-size", "1", "--print-head-req", "false"])
            mr = c_miss_ratio(r["out"])  # printed to 4 digits: hits to about 1e-4 x requests
            r["hits"] = None if mr is None else round(args.requests * (1 - mr))
            rows["libCacheSim C (" + c_label.split("(")[0].strip() + ")"] = r
        else:
            print(f"C simulator not built: {c_label}")
    finally:
        if not args.keep:
            path.unlink()
    print(f"LRU, fully associative, {objects:,} objects (1% of {distinct:,} distinct keys), "
          f"{args.requests:,} requests")
    print(f"{'command':40} {'peak RSS GiB':>12} {'B/request':>10} {'seconds':>8} {'hits':>12}")
    for label, r in rows.items():
        per = r["peak_rss_gib"] * 2**30 / args.requests
        print(f"{label:40} {r['peak_rss_gib']:12.2f} {per:10.1f} {r['seconds']:8.1f} "
              f"{r['hits'] if r['hits'] is not None else '-':>12}")


if __name__ == "__main__":
    main()
