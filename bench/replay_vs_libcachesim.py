"""Access-mode replay speed and memory: cachesim against the libcachesim wheel, same run.

A Zipf trace (default 10 million requests over 1 million keys, alpha 1.0, numpy default_rng) is
written as libCacheSim's oracleGeneral binary (unit object sizes, next-access column filled) and
as Parquet. For each cache size and each policy that both have, it times

- ours: `cachesim.replay` on the in-memory trace (dense ids and, for opt, the next-access column
  computed beforehand, as the oracleGeneral file carries them), numba kernels warmed up first;
- theirs: `cache.process_trace(reader)` on the oracleGeneral file, counting objects
  (`ReaderInitParam(ignore_obj_size=True)`, cache size in objects, hashpower 20 as in
  libCacheSim's own tests); its time includes reading the file;

checks that the miss counts are equal (random: the generators differ, so counts are not
compared), and prints requests per second and ours / theirs. End to end: read the Parquet file,
build the trace, replay LRU, make the Result, against libcachesim's LRU (which also reads its
file). Memory: the peak of numpy allocations during a replay (tracemalloc: the policy's state)
and the peak RSS of a fresh process doing the end-to-end run, against the bytes of the trace's
own arrays.

    .venv/bin/python bench/replay_vs_libcachesim.py                 # the full run
    .venv/bin/python bench/replay_vs_libcachesim.py --requests 1e6 --keys 1e5   # a quick look
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cachesim  # noqa: E402
from cachesim.io.libcachesim import ORACLE_DTYPE  # noqa: E402

# ours -> the wheel's class; policies written by other helpers are used when registered.
TWINS = [("lru", "LRU"), ("fifo", "FIFO"), ("clock", "Clock"), ("lfu", "LFU"),
         ("opt", "Belady"), ("random", "Random"), ("sieve", "Sieve"), ("arc", "ARC"),
         ("s3fifo", "S3FIFO")]
TARGET = {"lru": 10.0, "opt": 5.0, "fifo": 3.0, "clock": 3.0, "sieve": 3.0, "arc": 3.0,
          "s3fifo": 3.0}


def zipf_keys(n: int, n_keys: int, alpha: float, seed: int) -> np.ndarray:
    """n draws from a Zipf(alpha) law over n_keys keys (inverse CDF), hot keys scattered."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_keys + 1, dtype=np.float64) ** alpha
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    ranks = np.minimum(np.searchsorted(cdf, rng.random(n)), n_keys - 1)
    return rng.permutation(n_keys).astype(np.int64)[ranks]


def write_oracle_general(path: Path, keys: np.ndarray, next_access: np.ndarray) -> None:
    rec = np.zeros(keys.shape[0], dtype=ORACLE_DTYPE)
    rec["t"] = np.arange(keys.shape[0]) // 1000
    rec["id"] = keys
    rec["size"] = 1
    rec["next"] = next_access
    rec.tofile(path)


def write_parquet(path: Path, trace) -> str:
    """Our Parquet trace file (cachesim's writer when present); returns how it was written."""
    writer = getattr(cachesim.io, "write_trace", None)
    if writer is not None:
        writer(trace, path)
        return "cachesim.io.write_trace"
    import polars as pl
    pl.DataFrame({"table": trace.table, "row": trace.row}).write_parquet(path)
    return "polars (cachesim has no Parquet writer yet)"


def read_parquet(path: Path):
    """Our Parquet reader when registered, else polars + Trace."""
    if "parquet" in cachesim.io.format_names():
        return cachesim.read_trace(path)
    import polars as pl
    df = pl.read_parquet(path)
    return cachesim.Trace(table=df["table"].to_numpy(), row=df["row"].to_numpy(),
                          source=str(path))


class Clock:
    """Wall and CPU seconds of a block (CPU time is steadier on a shared machine)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


E2E_RUNS = 3  # end-to-end rows: best of this many runs, ours and libCacheSim's alike


def wheel_run(path: Path, name: str, capacity: int, n: int) -> tuple[int, Clock]:
    import libcachesim
    reader = libcachesim.TraceReader(str(path), libcachesim.TraceType.ORACLE_GENERAL_TRACE,
                                     libcachesim.ReaderInitParam(ignore_obj_size=True))
    cache = getattr(libcachesim, name)(capacity, hashpower=20)
    with Clock() as c:
        miss_ratio, _ = cache.process_trace(reader)
    return round(miss_ratio * n), c


def ours_run(trace, name: str, capacity: int) -> tuple[int, Clock, int]:
    """Misses, time, and the peak of numpy allocations during the replay (bytes)."""
    tracemalloc.start()
    with Clock() as c:
        r = cachesim.replay(trace, name, capacity, ways=None)  # fully associative, as theirs
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return r.misses, c, peak


def warm_up(names) -> None:
    tiny = cachesim.Trace.from_keys(np.arange(400) % 37)
    for name in names:
        cachesim.replay(tiny, name, 20, ways=None)


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def e2e_child(path: str, capacity: int) -> None:
    """Run in a fresh process: read the Parquet trace, replay LRU, print JSON (seconds, misses,
    resident memory before and its peak during the run, bytes)."""
    warm_up(["lru"])
    base_rss = _proc_status_kib("VmRSS") * 1024
    try:  # reset the peak-RSS mark so that it covers only the run (Linux)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    with Clock() as c:
        trace = read_parquet(Path(path))
        r = cachesim.replay(trace, "lru", capacity, ways=None)
    peak = _proc_status_kib("VmHWM") * 1024  # Linux: the peak since clear_refs
    print(json.dumps({"wall": c.wall, "cpu": c.cpu, "misses": r.misses, "base_rss": base_rss,
                      "peak_rss": peak}))


def trace_bytes(trace) -> int:
    """Bytes of the trace's own arrays: table, row, dense ids."""
    return trace.table.nbytes + trace.row.nbytes + trace.dense_ids.nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=float, default=10e6)
    ap.add_argument("--keys", type=float, default=1e6)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--sizes", default="10000,100000", help="cache sizes in objects")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--e2e-child", nargs=2, metavar=("PARQUET", "CAPACITY"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.e2e_child:
        e2e_child(args.e2e_child[0], int(args.e2e_child[1]))
        return
    import libcachesim
    n, n_keys = int(args.requests), int(args.keys)
    sizes = [int(s) for s in args.sizes.split(",")]
    registered = set(cachesim.policy_names())
    twins = [(o, t) for o, t in TWINS if o in registered and hasattr(libcachesim, t)]
    print(f"libcachesim {libcachesim.__version__}, cachesim {cachesim.__version__}, "
          f"{os.cpu_count()} cpus; policies: {', '.join(o for o, _ in twins)}")

    t = time.perf_counter()
    keys = zipf_keys(n, n_keys, args.alpha, args.seed)
    trace = cachesim.Trace.from_keys(keys, source="zipf")
    t_gen = time.perf_counter() - t
    t = time.perf_counter()
    trace.dense_ids
    t_remap = time.perf_counter() - t
    t = time.perf_counter()
    trace.next_access
    t_next = time.perf_counter() - t
    print(f"trace: {n:,} requests, {trace.n_distinct:,} distinct keys (Zipf {args.alpha}); "
          f"generated in {t_gen:.1f} s, dense ids {t_remap:.2f} s, next access {t_next:.2f} s")
    warm_up([o for o, _ in twins])

    with tempfile.TemporaryDirectory() as tmp:
        og = Path(tmp) / "zipf.oracleGeneral.bin"
        write_oracle_general(og, keys, trace.next_access)
        pq_path = Path(tmp) / "zipf.parquet"
        how = write_parquet(pq_path, trace)
        rows = []
        for cap in sizes:
            for ours, theirs in twins:
                m_ours, c_ours, peak = ours_run(trace, ours, cap)
                m_theirs, c_theirs = wheel_run(og, theirs, cap, n)
                same = "other RNG" if ours == "random" else str(m_ours == m_theirs)
                rows.append(_row(n, cap, ours, m_ours, m_theirs, same, c_ours.wall, c_ours.cpu,
                                 c_theirs.wall, c_theirs.cpu, peak))
            # end to end from Parquet, each in a fresh process (its own peak RSS); both sides
            # best of E2E_RUNS, since one run of either swings by up to 1.5x on this machine
            runs = []
            for _ in range(E2E_RUNS):
                out = subprocess.run([sys.executable, __file__, "--e2e-child", str(pq_path),
                                      str(cap)], capture_output=True, text=True, check=True)
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            e2e = min(runs, key=lambda r: r["wall"])
            lru = next(r for r in rows if r["size"] == cap and r["policy"] == "lru")
            theirs = [wheel_run(og, "LRU", cap, n)[1] for _ in range(E2E_RUNS - 1)]
            t_wall = min([lru["theirs_wall"]] + [c.wall for c in theirs])
            t_cpu = min([lru["theirs_cpu"]] + [c.cpu for c in theirs])
            rows.append(_row(n, cap, f"lru end-to-end (Parquet)", e2e["misses"],
                             lru["their_misses"], str(e2e["misses"] == lru["their_misses"]),
                             e2e["wall"], min(r["cpu"] for r in runs), t_wall, t_cpu,
                             max(r["peak_rss"] - r["base_rss"] for r in runs), target=5.0))

    tb = trace_bytes(trace)
    print(f"Parquet written by {how}; trace arrays (table int32, row int64, dense ids int32): "
          f"{tb / 2**20:.0f} MiB")
    hdr = (f"{'size':>7} {'policy':<25} {'misses':>9} {'same':>9} {'ours M/s':>9} "
           f"{'theirs M/s':>10} {'x wall':>7} {'x cpu':>7} {'target':>6} {'mem/trace':>9}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        tgt = f"{r['target']:.0f}x" if r["target"] else "-"
        x_wall, x_cpu = r["theirs_wall"] / r["ours_wall"], r["theirs_cpu"] / r["ours_cpu"]
        print(f"{r['size']:>7} {r['policy']:<25} {r['misses']:>9} {r['same']:>9} "
              f"{n / r['ours_wall'] / 1e6:>9.1f} {n / r['theirs_wall'] / 1e6:>10.2f} "
              f"{x_wall:>6.1f}x {x_cpu:>6.1f}x {tgt:>6} {r['memory'] / tb:>8.2f}x")
    print("M/s: million requests per second, wall clock; x wall, x cpu: ours / theirs in "
          "throughput by wall-clock and by CPU seconds (libcachesim's time includes reading its "
          "file). mem/trace: replay rows = peak numpy allocations during the replay (the policy "
          "state); end-to-end row = peak RSS growth of a fresh process reading the Parquet file "
          "and replaying; both over the bytes of the trace's arrays.")


def _row(n, cap, policy, misses, their_misses, same, ours_wall, ours_cpu, theirs_wall,
         theirs_cpu, memory, target=None):
    return {"size": cap, "policy": policy, "misses": misses, "their_misses": their_misses,
            "same": same, "ours_wall": ours_wall, "ours_cpu": ours_cpu,
            "theirs_wall": theirs_wall, "theirs_cpu": theirs_cpu, "memory": memory,
            "target": target if target is not None else TARGET.get(policy)}


if __name__ == "__main__":
    main()
