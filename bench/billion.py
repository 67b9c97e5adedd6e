"""Traces of a billion accesses kept on disk: peak memory and whole-process time of a streamed
`cachesim replay` and of libCacheSim's C simulator on the same file, and of the streamed exact
LRU curve and SHARDS (issue 12).

One generator writes the longest trace (`--lengths`' largest, default 1e9) as a libCacheSim
oracleGeneral file (24 bytes a record; unit object sizes, next-access -1), a chunk of 2^22
records at a time: P(rank r) ~ 1/r over `--keys` ranks (default 2^24), ranks scattered to row
ids by a seeded permutation (small non-negative ids, as an embedding table's rows), the same
law as bench/stream_memory.py. The shorter traces are prefixes of it (copied). For each length,
each command runs once in its own process (through a wrapper that reads that child's peak
RSS, `ru_maxrss`, and the whole process's wall time):

- `cachesim replay FILE --mode access -p lru -s N --ways full -q --json --stream`, N = 1% of
  the distinct keys of that length;
- the C simulator: `FILE oracleGeneral lru N --ignore-obj-size 1 --print-head-req false`
  (bench/out/libcachesim, built by bench/startup.py), run in bench/out/ (it writes a file
  there); its hits come from its 4-digit miss ratio, so they agree to about 1e-4 x requests;
- with `--parquet`: the same accesses as a Parquet folder per length (a `row` column, zstd,
  parts of 2^24 accesses), replayed with the same cachesim command (a one-table Parquet trace
  streams in access mode); the C simulator reads only oracleGeneral;
- with `--curves`: `cachesim mrc FILE --stream` (exact LRU curve, every size) and
  `cachesim mrc FILE --method shards --rate 0.001 --stream`.

Files live in bench/out/billion/ (about 24 GB at 1e9) and are deleted at the end unless
`--keep`.

    flock /tmp/bench.lock .venv/bin/python bench/billion.py --parquet --curves  # 1e8, 3e8, 1e9
    ... --reuse --keep                  # the files of an earlier --keep run, kept again
    flock /tmp/bench.lock .venv/bin/python bench/billion.py --lengths 2e6,5e6   # a quick check
    .venv/bin/python bench/billion.py --parquet-only   # the 1e9 Parquet folder alone (dask_sweep)
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import OUT, build_libcachesim, c_miss_ratio, libcachesim_source  # noqa: E402
from stream_memory import CLI, DTYPE, measure  # noqa: E402

FOLDER = OUT / "billion"


def accesses(n: int, n_keys: int, seed: int = 0, chunk: int = 1 << 22):
    """The generator's accesses, a chunk at a time: (start, ranks, row ids)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_keys).astype(np.uint64)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        rank = np.minimum((n_keys ** rng.random(m)).astype(np.int64), n_keys) - 1
        yield start, rank, perm[rank]


def generate(path: Path, n: int, n_keys: int, marks: list[int], seed: int = 0) -> dict[int, int]:
    """Write n records; return the distinct keys of each prefix length in `marks`."""
    seen = np.zeros(n_keys, dtype=bool)
    distinct, marks = {}, sorted(marks)
    with open(path, "wb") as f:
        for start, rank, ids in accesses(n, n_keys, seed):
            m = len(rank)
            for mark in marks:  # a prefix that ends inside this chunk
                if start < mark <= start + m:
                    head = seen.copy()
                    head[rank[:mark - start]] = True
                    distinct[mark] = int(head.sum())
            seen[rank] = True
            rec = np.zeros(m, dtype=DTYPE)
            rec["t"] = (start + np.arange(m)) // 1000
            rec["id"] = ids
            rec["size"] = 1
            rec["next"] = -1
            f.write(rec.tobytes())
    return distinct


def generate_parquet(folder: Path, n: int, n_keys: int, seed: int = 0,
                     part: int = 1 << 24) -> None:
    """The same n accesses straight to a Parquet folder (`write_parquet`'s layout), without
    the oracleGeneral file: for bench/dask_sweep.py, which needs only the folder."""
    import polars as pl
    folder.mkdir(parents=True, exist_ok=True)
    buf, i = [], 0
    for start, _, ids in accesses(n, n_keys, seed):
        buf.append(ids.astype(np.int64))
        if sum(len(b) for b in buf) == part or start + len(ids) == n:
            pl.DataFrame({"row": np.concatenate(buf)}).write_parquet(folder / f"part-{i}.parquet")
            buf, i = [], i + 1


def prefix(src: Path, dst: Path, records: int) -> None:
    with open(src, "rb") as f, open(dst, "wb") as g:
        left = records * DTYPE.itemsize
        while left:
            buf = f.read(min(left, 1 << 26))
            g.write(buf)
            left -= len(buf)


def write_parquet(src: Path, folders: dict[int, Path], part: int = 1 << 24) -> None:
    """The same accesses as Parquet folders (a `row` column, int64; zstd), one per length:
    the first n records of `src`, in parts of `part` accesses."""
    import polars as pl
    n_max = max(folders)
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fh:
        for i, start in enumerate(range(0, n_max, part)):
            m = min(part, n_max - start)
            rec = np.fromfile(fh, dtype=DTYPE, count=m)
            rows = rec["id"].astype(np.int64)
            for n, folder in folders.items():
                if start < n:
                    pl.DataFrame({"row": rows[:n - start]}).write_parquet(
                        folder / f"part-{i}.parquet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="1e8,3e8,1e9")
    ap.add_argument("--keys", type=int, default=1 << 24)
    ap.add_argument("--curves", action="store_true", help="also the exact curve and SHARDS")
    ap.add_argument("--curves-at", default=None,
                    help="lengths to run the curves at (default: the longest)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--parquet", action="store_true",
                    help="also replay the same accesses from Parquet folders (`row` column)")
    ap.add_argument("--parquet-only", action="store_true",
                    help="only write the longest length's Parquet folder (kept), then stop")
    ap.add_argument("--reuse", action="store_true",
                    help="use the files (and distinct.json) a --keep run left, if all are there")
    a = ap.parse_args()
    lengths = sorted(int(float(x)) for x in a.lengths.split(","))
    curves_at = ({int(float(x)) for x in a.curves_at.split(",")} if a.curves_at
                 else {lengths[-1]})
    if a.parquet_only:
        t0, folder = time.perf_counter(), FOLDER / f"zipf_{lengths[-1]}.parquet.d"
        generate_parquet(folder, lengths[-1], a.keys)
        size = sum(f.stat().st_size for f in folder.iterdir()) / 2**30
        print(f"wrote {folder} ({lengths[-1]:,} accesses, {size:.2f} GiB) in "
              f"{time.perf_counter() - t0:.0f} s")
        return
    binary, label = build_libcachesim(libcachesim_source(None))
    if binary is None:
        raise SystemExit(f"the C simulator is not built: {label}")
    FOLDER.mkdir(parents=True, exist_ok=True)
    longest = FOLDER / f"zipf_{lengths[-1]}.oracleGeneral.bin"
    files = {n: FOLDER / f"zipf_{n}.oracleGeneral.bin" for n in lengths}
    sidecar = FOLDER / "distinct.json"
    t0 = time.perf_counter()
    known = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    if a.reuse and all(str(n) in known and files[n].exists() and
                       files[n].stat().st_size == n * DTYPE.itemsize for n in lengths):
        distinct = {n: known[str(n)] for n in lengths}
        print("reusing the files of an earlier --keep run")
    else:
        distinct = generate(longest, lengths[-1], a.keys, lengths)
        for n in lengths[:-1]:
            prefix(longest, files[n], n)
        sidecar.write_text(json.dumps({str(n): d for n, d in distinct.items()}))
    print(f"generated {', '.join(f'{n:,}' for n in lengths)} accesses over {a.keys:,} ranks in "
          f"{time.perf_counter() - t0:.0f} s ({longest.stat().st_size / 2**30:.1f} GiB at "
          f"{lengths[-1]:,}); C: {label}")
    rows = []
    if a.parquet:
        t0 = time.perf_counter()
        pq = {n: FOLDER / f"zipf_{n}.parquet.d" for n in lengths}
        parts = {n: -(-n // (1 << 24)) for n in lengths}  # write_parquet's parts
        if not (a.reuse and all(f.is_dir() and len(list(f.glob("part-*.parquet"))) == parts[n]
                                for n, f in pq.items())):
            write_parquet(longest, pq)
        else:
            print("reusing the Parquet folders of an earlier --keep run")
        size = sum(f.stat().st_size for f in pq[lengths[-1]].iterdir()) / 2**30
        print(f"Parquet ready in {time.perf_counter() - t0:.0f} s ({size:.2f} GiB at "
              f"{lengths[-1]:,})", flush=True)
    try:
        for n in lengths:
            path, cap = files[n], max(1, distinct[n] // 100)
            ours = measure([str(CLI), "replay", str(path), "--mode", "access", "-p", "lru",
                            "-s", str(cap), "--ways", "full", "-q", "--json", "--stream"])
            ours_hits = json.loads(ours["out"].split("@@")[0])[0]["hits"]
            c = measure([str(binary), str(path), "oracleGeneral", "lru", str(cap),
                         "--ignore-obj-size", "1", "--print-head-req", "false"])
            c_hits = round(n * (1 - c_miss_ratio(c["out"])))
            rows.append((n, distinct[n], cap, ours, ours_hits, c, c_hits, "oracleGeneral"))
            if a.parquet:
                pqr = measure([str(CLI), "replay", str(pq[n]), "--mode", "access", "-p", "lru",
                               "-s", str(cap), "--ways", "full", "-q", "--json", "--stream"])
                pq_hits = json.loads(pqr["out"].split("@@")[0])[0]["hits"]
                rows.append((n, distinct[n], cap, pqr, pq_hits, c, c_hits, "Parquet"))
                print(f"{'':>13}  cachesim from Parquet: {pqr['peak_rss_gib']:.2f} GiB "
                      f"{pqr['seconds']:.1f} s; hits {pq_hits:,}", flush=True)
            print(f"{n:>13,} accesses, {distinct[n]:,} distinct, LRU {cap:,}: cachesim "
                  f"{ours['peak_rss_gib']:.2f} GiB {ours['seconds']:.1f} s, C "
                  f"{c['peak_rss_gib']:.2f} GiB {c['seconds']:.1f} s; hits {ours_hits:,} vs "
                  f"~{c_hits:,}", flush=True)
            if a.curves and n in curves_at:
                for name, extra in (("exact LRU curve", []),
                                    ("SHARDS 0.1%", ["--method", "shards", "--rate", "0.001"])):
                    r = measure([str(CLI), "mrc", str(path), "--stream", *extra])
                    print(f"{'':>13}  cachesim mrc, {name}: {r['peak_rss_gib']:.2f} GiB, "
                          f"{r['seconds']:.1f} s", flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(FOLDER)
    print()
    print("| accesses | distinct keys | LRU size | cachesim reads | cachesim peak GiB | C peak GiB |"
          " cachesim s | C s | C / cachesim time | hits agree (C: 4-digit ratio) |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for n, d, cap, ours, oh, c, ch, fmt in rows:
        print(f"| {n:,} | {d:,} | {cap:,} | {fmt} | {ours['peak_rss_gib']:.2f} | "
              f"{c['peak_rss_gib']:.2f} | {ours['seconds']:.1f} | {c['seconds']:.1f} | "
              f"{c['seconds'] / ours['seconds']:.2f}x | {abs(oh - ch) <= n * 1e-4 + 1} |")


if __name__ == "__main__":
    main()
