"""Peak memory and wall time of `cachesim mrc` streamed (`--stream`) against in memory
(`--no-stream`): the exact LRU curve for every size, and SHARDS at a fixed rate and a fixed
size (issue 12).

Writes an oracleGeneral file of `--requests` accesses (the generator of bench/stream_memory.py:
Zipf-like keys over `--keys` ranks, hashed to 64-bit ids) to bench/out/mrc_stream.oracleGeneral.bin,
then runs each command once in its own process and reads its peak resident set and wall time
(the whole process: start, reading, the curve, the output). Every command computes the whole
curve and prints it at three sizes, 0.1%, 1% and 10% of the distinct keys given as rows (a
share would make SHARDS count the distinct keys too), so the output stays small; the streamed and in-memory answers are checked to be equal. `--no-memory` skips
the in-memory runs (a 1-billion-access trace does not fit in memory). The file is deleted at
the end (`--keep` keeps it; an existing file of the right size is reused with `--reuse`).

    flock /tmp/bench.lock .venv/bin/python bench/mrc_stream.py --requests 20000000
    flock /tmp/bench.lock .venv/bin/python bench/mrc_stream.py --requests 1000000000 \\
        --keys 200000000 --no-memory
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_memory import CLI, DTYPE, OUT, ROOT, generate, measure  # noqa: E402

METHODS = {
    "exact LRU, every size": ["-m", "exact"],
    "SHARDS rate 0.01": ["-m", "shards", "--rate", "0.01"],
    "SHARDS --s-max 8192": ["-m", "shards", "--s-max", "8192"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20_000_000)
    ap.add_argument("--keys", type=int, default=1 << 24, help="Zipf ranks (default 2^24)")
    ap.add_argument("--no-memory", action="store_true", help="only the streamed runs")
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--reuse", action="store_true", help="reuse the file if its size fits")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "mrc_stream.oracleGeneral.bin"
    t0 = time.perf_counter()
    side = path.with_suffix(".json")  # the distinct keys of the file written
    if args.reuse and path.is_file() and side.is_file() \
            and path.stat().st_size == args.requests * DTYPE.itemsize:
        distinct, how = json.loads(side.read_text())["distinct"], "reused"
    else:
        distinct = generate(path, args.requests, args.keys)
        side.write_text(json.dumps({"distinct": distinct}))
        how = f"written in {time.perf_counter() - t0:.0f} s"
    sizes = ",".join(str(max(1, round(f * distinct))) for f in (0.001, 0.01, 0.1))
    print(f"{path.relative_to(ROOT)}: {args.requests:,} requests, {distinct:,} distinct keys, "
          f"{path.stat().st_size / 2**30:.2f} GiB, {how}")
    rows = []
    tiny = OUT / "mrc_stream_tiny.oracleGeneral.bin"  # the process's own memory: a 1,000-access
    with open(path, "rb") as f:                        # prefix, streamed
        tiny.write_bytes(f.read(1000 * DTYPE.itemsize))
    base = measure([str(CLI), "mrc", str(tiny), "-s", "10", "--json", "--stream"])
    tiny.unlink()
    try:
        for label, opts in METHODS.items():
            got = {}
            for flag in ("--stream",) + (() if args.no_memory else ("--no-stream",)):
                r = measure([str(CLI), "mrc", str(path), *opts, "-s", sizes, "--json", flag])
                got[flag] = json.loads(r["out"].split("@@")[0])
                rows.append((label, flag, r, got[flag]))
            if len(got) == 2 and got["--stream"] != got["--no-stream"]:
                raise SystemExit(f"{label}: streamed and in-memory curves differ:\n{got}")
    finally:
        if not args.keep:
            path.unlink()
            side.unlink()
    print(f"`cachesim mrc`, {args.requests:,} requests, {distinct:,} distinct keys; miss ratio "
          f"at {sizes} rows (0.1%, 1%, 10% of the distinct keys)")
    print(f"process baseline (`cachesim mrc` of a 1,000-access prefix): "
          f"{base['peak_rss_gib']:.2f} GiB, {base['seconds']:.1f} s")
    print("| curve | mode | peak RSS GiB | B/request | B/distinct key above the baseline | "
          "seconds | miss ratios |")
    print("|---|---|---:|---:|---:|---:|---|")
    for label, flag, r, recs in rows:
        rss = r["peak_rss_gib"] * 2**30
        per_key = f"{(rss - base['peak_rss_gib'] * 2**30) / distinct:.0f}"
        mr = " ".join(f"{rec['miss_ratio']:.4f}" for rec in recs)
        print(f"| {label} | {flag} | {r['peak_rss_gib']:.2f} | {rss / args.requests:.1f} | "
              f"{per_key} | {r['seconds']:.1f} | {mr} |")


if __name__ == "__main__":
    main()
