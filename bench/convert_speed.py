"""Trace conversion speed: read an oracleGeneral file and number its keys (dense ids).

Writes a 10M-record oracleGeneral file (Zipf(1.0) over 2M objects with random 64-bit ids) in a
temp folder, then times, in the same run:
- cachesim: read_trace(path) + trace.dense_ids (numbering in order of first appearance), and the
  full `cachesim convert` path (read, number, write Parquet);
- libCacheSim (wheel 0.3.5): TraceReader(...).get_working_set_size(), its C reader walking every
  record into a hash table of objects (it counts distinct objects; it does not number them).
Also times the Criteo TSV reader on the shared 10,000-line head repeated 20 times.
Prints keys/s (wall and CPU: the shared 2-core machine is often loaded, and CPU seconds say
more there) and the ratio ours / libCacheSim's. Target: at least 30 M keys/s for read + number.

    .venv/bin/python bench/convert_speed.py [--records 10000000]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cachesim.io import read_trace, write_trace
from cachesim.io.libcachesim import ORACLE_DTYPE


def make_trace(path, n_records: int, n_objects: int = 2_000_000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, n_objects + 1))
    cdf /= cdf[-1]
    rank = np.searchsorted(cdf, rng.random(n_records))
    ids = rng.integers(1, 2**63 - 1, n_objects, dtype=np.int64)
    rec = np.zeros(n_records, dtype=ORACLE_DTYPE)
    rec["t"] = np.arange(n_records) // 1000
    rec["id"] = ids[rank].view(np.uint64)
    rec["size"] = 4096
    rec["next"] = -1
    rec.tofile(path)


def best_of(fn, repeat: int):
    """(best wall seconds, its CPU seconds, result) over `repeat` runs."""
    best = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w, time.process_time() - c
        if best is None or w < best[0]:
            best = (w, c, out)
    return best


def ours(path):
    trace = read_trace(path)
    return trace.n_distinct


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "zipf.oracleGeneral.bin")
        make_trace(path, args.records)
        small = os.path.join(tmp, "warm.oracleGeneral.bin")
        make_trace(small, 1000)
        ours(small)  # load the numba kernels once, outside the timing
        n = args.records
        w, c, distinct = best_of(lambda: ours(path), args.repeat)
        print(f"cachesim read + dense ids: {n / w / 1e6:6.1f} M keys/s wall, "
              f"{n / c / 1e6:6.1f} M keys/s CPU ({w:.3f} s wall, {c:.3f} s CPU; "
              f"{distinct:,} distinct of {n:,})")
        out = os.path.join(tmp, "zipf.parquet")

        def convert():
            trace = read_trace(path)
            trace.dense_ids
            write_trace(trace, out)

        wc, cc, _ = best_of(convert, 1)
        print(f"cachesim convert to Parquet (read, number, write): {n / wc / 1e6:6.1f} M keys/s "
              f"wall ({wc:.3f} s wall, {cc:.3f} s CPU)")
        criteo_speed(tmp)
        try:
            import libcachesim as lcs
        except ImportError:
            print("libcachesim not installed: no peer timing")
            return

        def peer():
            reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
            with _quiet_stdout():  # its C logger prints INFO lines
                return reader.get_working_set_size()[0]

        wp, cp, peer_distinct = best_of(peer, args.repeat)
        assert peer_distinct == distinct, (peer_distinct, distinct)
        print(f"libCacheSim reader + working set: {n / wp / 1e6:6.1f} M keys/s wall, "
              f"{n / cp / 1e6:6.1f} M keys/s CPU ({wp:.3f} s wall, {cp:.3f} s CPU)")
        print(f"ratio ours / libCacheSim: {wp / w:.2f}x wall, {cp / c:.2f}x CPU")


def criteo_speed(tmp, copies: int = 20):
    """Criteo TSV parsing: the shipped 10,000-line Kaggle head repeated `copies` times."""
    head = Path(__file__).resolve().parents[1] / "tests/data/criteo/kaggle_train_head10k.tsv"
    if not head.exists():
        print(f"{head} not found: no Criteo timing")
        return
    path = os.path.join(tmp, "criteo.tsv")
    with open(path, "wb") as fh:
        fh.write(head.read_bytes() * copies)
    read_trace(head)
    w, c, trace = best_of(lambda: read_trace(path), 1)
    print(f"cachesim criteo TSV ({copies * 10_000:,} lines, {len(trace):,} accesses): "
          f"{len(trace) / w / 1e6:6.1f} M accesses/s wall, {len(trace) / c / 1e6:6.1f} M "
          f"accesses/s CPU ({w:.3f} s wall, {c:.3f} s CPU; polars uses both cores)")


class _quiet_stdout:
    """Send file descriptors 1 and 2 to /dev/null (C code's logging) for a while."""

    def __enter__(self):
        import sys
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)


if __name__ == "__main__":
    main()
