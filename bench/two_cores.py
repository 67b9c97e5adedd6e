"""What two cores of this machine give two independent processes: the ceiling for any 2-worker
speed-up here (issue 12's Dask sweep), measured with loops that share nothing.

Each loop runs alone, then as two processes at once (interleaved, `--repeat` times); the ideal
speed-up of two workers over one for that loop is 2 x (time alone) / (time of the slower of the
two at once). The loops use no cachesim code:

- `alu`: a multiply-xorshift chain in registers (no memory);
- `cache`: a FIFO cache over a Zipf trace (30M accesses, 9.7M keys, 1% cache), its resident flags
  one bit a key (1.2 MB: the processor's own caches), as cachesim's FIFO kernel does;
- `stream`: a sum over 1 GiB (memory bandwidth).

    flock /tmp/bench.lock .venv/bin/python bench/two_cores.py --repeat 5
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

N_KEYS, N_ACCESSES, CAPACITY = 9_727_707, 30_000_000, 97_277


def child(kind: str) -> float:
    import numba
    import numpy as np

    @numba.njit
    def alu(n):
        x = 1
        for _ in range(n):
            x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFF
            x ^= x >> 7
        return x

    @numba.njit
    def fifo(keys, n_keys, cap):
        bits = np.zeros((n_keys + 7) >> 3, np.uint8)
        ring = np.zeros(cap, np.int32)
        head = count = hits = 0
        for i in range(keys.shape[0]):
            k = keys[i]
            if (bits[k >> 3] >> (k & 7)) & 1:
                hits += 1
                continue
            if count == cap:
                v = ring[head]
                bits[v >> 3] &= 0xFF ^ (1 << (v & 7))
                head = head + 1 if head + 1 < cap else 0
                count -= 1
            slot = head + count
            ring[slot - cap if slot >= cap else slot] = k
            count += 1
            bits[k >> 3] |= 1 << (k & 7)
        return hits

    @numba.njit
    def total(a):
        s = 0
        for i in range(a.shape[0]):
            s += a[i]
        return s

    if kind == "alu":
        alu(10)
        t = time.perf_counter()
        alu(300_000_000)
    elif kind == "cache":
        rng = np.random.default_rng(0)
        keys = (np.minimum((N_KEYS ** rng.random(N_ACCESSES)).astype(np.int64), N_KEYS)
                - 1).astype(np.int32)
        fifo(keys[:100], N_KEYS, CAPACITY)
        t = time.perf_counter()
        fifo(keys, N_KEYS, CAPACITY)
    else:
        a = np.ones(1 << 27, dtype=np.int64)
        total(a[:10])
        t = time.perf_counter()
        for _ in range(3):
            total(a)
    return time.perf_counter() - t


def run(kind: str, k: int) -> float:
    procs = [subprocess.Popen([sys.executable, __file__, "--child", kind], stdout=subprocess.PIPE,
                              text=True) for _ in range(k)]
    return max(float(p.communicate()[0]) for p in procs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--child", default=None)
    a = ap.parse_args()
    if a.child:
        print(child(a.child))
        return
    print("| loop | alone s (median) | two at once s (median) | ideal 2-worker speed-up (median, range) |")
    print("|---|---:|---:|---:|")
    for kind in ("alu", "cache", "stream"):
        pairs = [(run(kind, 1), run(kind, 2)) for _ in range(a.repeat)]
        ups = [2 * x / y for x, y in pairs]
        print(f"| {kind} | {statistics.median(x for x, _ in pairs):.2f} | "
              f"{statistics.median(y for _, y in pairs):.2f} | {statistics.median(ups):.2f}x "
              f"({min(ups):.2f}-{max(ups):.2f}) |", flush=True)


if __name__ == "__main__":
    main()
