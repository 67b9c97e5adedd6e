"""The streamed first pass (`sweep_stream.StreamedTrace.open`) and the hash of its fingerprint.

Every streamed command (replay, sweep, mrc, analyze, report) starts with one pass over the trace:
read, number the keys, write each access's dense id to a temporary file and hash it for the
trace's fingerprint. This times that pass, wall and CPU, and then the hash alone on the pass's
own ids file: `hashing.digest` (XXH3-128) against hashlib's BLAKE2b-128 (what the fingerprint
used before), in the same run, on the same bytes read into memory a block at a time.

    flock /tmp/bench.lock .venv/bin/python bench/first_pass.py \
        bench/out/billion/zipf_1000000000.parquet.d
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import time

import numpy as np

BLOCK = 1 << 26  # bytes a read


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _hash_file(path, make) -> tuple[float, float]:
    """(seconds hashing, seconds reading) of the file at `path` through the hasher `make()`."""
    h, hashing, reading = make(), 0.0, 0.0
    buf = np.empty(BLOCK, dtype=np.uint8)
    with open(path, "rb") as f:
        while True:
            t0 = time.perf_counter()
            got = f.readinto(buf)
            t1 = time.perf_counter()
            if not got:
                break
            h.update(memoryview(buf)[:got])
            hashing += time.perf_counter() - t1
            reading += t1 - t0
    return hashing, reading


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--mode", default="access", choices=("access", "batch"))
    a = ap.parse_args()
    from cachesim.hashing import digest
    from cachesim.sweep_stream import StreamedTrace
    c0, t0 = _cpu(), time.perf_counter()
    st = StreamedTrace.open(a.trace, a.mode)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"first pass: {st.n:,} accesses, {st.n_distinct:,} distinct keys; {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU ({st.n / wall / 1e6:.1f} M accesses/s), peak {peak:.2f} GiB")
    try:
        ids = getattr(st._src, "_ids_path", None)
        if ids is None:
            return  # (batch mode keeps no ids file)
        size = os.path.getsize(ids)
        xx, read = _hash_file(ids, digest)
        b2, _ = _hash_file(ids, lambda: hashlib.blake2b(digest_size=16))
        print(f"hash of the ids file ({size / 2**30:.2f} GiB, read in {read:.1f} s): XXH3-128 "
              f"{xx:.2f} s ({size / xx / 1e9:.2f} GB/s), BLAKE2b-128 {b2:.2f} s "
              f"({size / b2 / 1e9:.2f} GB/s): {b2 / xx:.1f}x")
    finally:
        st.close()


if __name__ == "__main__":
    main()
