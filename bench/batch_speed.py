"""Batch replay speed: a 10-million-access, 26-table Zipf trace in batches of 2048 samples,
32-way LRU at 5%, on one core: the FBGEMM-exact model (the default), the ideal model, and the
FBGEMM-exact replay split by set ranges over 2 threads (`replay_partitioned`) against 1; our
own access-mode LRU on the same trace is the reference point (libCacheSim has no batch mode).
Each timing is a whole `replay_batch` call after a warm-up (kernels compiled, the trace's dense
ids derived once); wall and CPU seconds (the split's CPU time is both of its threads').
Run under `flock /tmp/bench.lock` on a shared machine; about a minute.

    .venv/bin/python bench/batch_speed.py [--accesses 10000000] [--alpha 1.05] [--repeat 3]
        [--split-only] [--split-sizes 5%,1%,0.5%]
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import cachesim  # noqa: E402
from cachesim.costs import CRITEO_KAGGLE_ROWS as CRITEO_ROWS  # noqa: E402
from cachesim.simulate.batch import replay_batch  # noqa: E402
from cachesim.simulate.partition import replay_partitioned  # noqa: E402


def zipf_trace(n_accesses: int, batch_samples: int = 2048, alpha: float = 1.05,
               seed: int = 0) -> cachesim.Trace:
    """Per-table Zipf(alpha) over each table's rows; one sample looks up one row per table."""
    rng = np.random.default_rng(seed)
    n_tables = len(CRITEO_ROWS)
    n_samples = -(-n_accesses // n_tables)
    rows = np.empty((n_samples, n_tables), dtype=np.int64)
    for t, n_rows in enumerate(CRITEO_ROWS):
        cdf = np.cumsum(np.arange(1, n_rows + 1, dtype=np.float64) ** -alpha)
        cdf /= cdf[-1]
        rank = np.minimum(np.searchsorted(cdf, rng.random(n_samples)), n_rows - 1)
        # scatter ranks over the table so that hot rows are not the lowest ids
        rows[:, t] = (rank * 2654435761) % n_rows
    table = np.broadcast_to(np.arange(n_tables, dtype=np.int32), rows.shape)
    batch = np.repeat(np.arange(n_samples) // batch_samples, n_tables)
    return cachesim.Trace(table=table.ravel()[:n_accesses], row=rows.ravel()[:n_accesses],
                          batch=batch[:n_accesses], table_rows=np.array(CRITEO_ROWS),
                          source="zipf-26-tables")


def best_of(fn, repeat):
    """Best wall time, best CPU time of this process (the machine is shared), last result."""
    best, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        t, c = time.perf_counter(), cpu_seconds()
        out = fn()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, cpu_seconds() - c)
    return best, best_cpu, out


def cpu_seconds() -> float:
    """CPU seconds of this process (every thread) and of its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def part_thread_seconds():
    """Record the CPU seconds each part thread other than the caller's spends in the split's
    take and replay (`partition._Setup.take` / `.replay` wrapped): returns the dict, reset by
    the caller, {thread name: CPU seconds}."""
    import threading

    from cachesim.simulate import partition
    spent: dict = {}

    def timed(fn):
        def run(*args, **kw):
            c = time.thread_time()
            try:
                return fn(*args, **kw)
            finally:
                name = threading.current_thread().name
                if name != "MainThread":
                    spent[name] = spent.get(name, 0.0) + time.thread_time() - c
        return run
    partition._Setup.take = timed(partition._Setup.take)
    partition._Setup.replay = timed(partition._Setup.replay)
    return spent


def set_split(tr, repeat, size="5%"):
    """The set split's rows (what, wall s, CPU s) at `size`: 1 thread, 2 threads, and the first
    split replay of the trace; prints the speed-ups."""
    from cachesim.simulate.partition import MIN_PART_ACCESSES
    # load the split's kernels on another trace big enough to split (a trace below
    # 2 x MIN_PART_ACCESSES replays in one thread, and loads none of them)
    replay_partitioned(tr.slice(0, min(len(tr), 2 * MIN_PART_ACCESSES + 4096)), "lru", "5%",
                       parts=2)
    replay_batch(tr, "lru", size, ways=32)  # the trace's derived columns, shared by every replay
    spent = part_thread_seconds()
    # the first split replay of a trace allocates its take buffer; later ones (another size,
    # policy, or a repeat) reuse it: timed apart
    t, c = time.perf_counter(), cpu_seconds()
    replay_partitioned(tr, "lru", size, parts=2)
    first = (time.perf_counter() - t, cpu_seconds() - c)
    # 1 and 2 threads interleaved, so that the shared machine's drift hits both alike
    s1 = c1 = s2 = c2 = crit = float("inf")
    for _ in range(repeat):
        s, c, one = best_of(lambda: replay_batch(tr, "lru", size, ways=32), 1)
        s1, c1 = min(s1, s), min(c1, c)
        spent.clear()
        s, c, two = best_of(lambda: replay_partitioned(tr, "lru", size, parts=2), 1)
        s2, c2 = min(s2, s), min(c2, c)
        # the busier thread's CPU seconds (this one: setup, its take and part, the merge; or
        # the other): the wall time on 2 idle cores, whatever else the machine runs
        other = sum(spent.values())
        crit = min(crit, max(c - other, other))
    rows = [(f"batch lru {size} 32-way, fbgemm, 1 thread", s1, c1)]
    rows.append((f"batch lru {size} 32-way, fbgemm, 2 threads (set split)", s2, c2))
    rows.append(("  the same, first split replay of the trace", *first))
    same = two.to_record(per_table=True)
    same.pop("seconds")
    ref = one.to_record(per_table=True)
    ref.pop("seconds")
    print(f"{size}: evictions {one.evictions:,}; "
          f"2-thread split / 1 thread speedup (wall): {s1 / s2:.2f}x, first split replay "
          f"{s1 / first[0]:.2f}x  (goal 1.7x on 2 idle cores; merged result identical to 1 "
          f"thread: {same == ref}); by CPU seconds, 1 thread / the busier of the 2: "
          f"{c1 / crit:.2f}x ({c1:.3f} s / {crit:.3f} s)")
    return rows


def print_rows(rows, n):
    print(f"\n{'replay':<56} {'wall s':>7} {'CPU s':>7} {'M acc/s wall':>13} {'M acc/s CPU':>12}")
    for what, s, c in rows:
        print(f"{what:<56} {s:7.3f} {c:7.3f} {n / s / 1e6:13.1f} {n / c / 1e6:12.1f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other jobs slow every number)\n")


def whole_process(path, batch_size, repeat):
    """`cachesim replay PATH --mode batch -p lru -s 5% --json -q` as a user runs it (a new
    Python process each time: start-up, reading, kernel loads), without and with --jobs 2,
    interleaved; best wall times."""
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "cachesim", "replay", str(path), "--mode", "batch", "-p", "lru",
           "-s", "5%", "--json", "-q"] + ([] if batch_size is None else
                                          ["--batch-size", str(batch_size)])
    best = {1: float("inf"), 2: float("inf")}
    out = {}
    for _ in range(repeat):
        for jobs in (1, 2):
            t = time.perf_counter()
            run = subprocess.run(cmd + ["--jobs", str(jobs)], capture_output=True, text=True,
                                 check=True)
            best[jobs] = min(best[jobs], time.perf_counter() - t)
            out[jobs] = [{k: v for k, v in r.items() if k != "seconds"}
                         for r in json.loads(run.stdout)]
    print(f"whole process, {path}: 1 process {best[1]:.3f} s, --jobs 2 {best[2]:.3f} s: "
          f"{best[1] / best[2]:.2f}x (same counts: {out[1] == out[2]})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accesses", type=int, default=10_000_000)
    ap.add_argument("--alpha", type=float, default=1.05)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--split-only", action="store_true", help="Only the set split's rows.")
    ap.add_argument("--split-sizes", default="5%",
                    help="Comma-separated cache sizes for the split's rows (default 5%%).")
    ap.add_argument("--whole-process", metavar="TRACE", default=None,
                    help="Also time `cachesim replay TRACE` with and without --jobs 2 as whole "
                         "processes ('generated': this trace, written to a temporary Parquet "
                         "file).")
    ap.add_argument("--batch-size", type=int, default=None, help="For --whole-process.")
    args = ap.parse_args()
    tr = zipf_trace(args.accesses, alpha=args.alpha)
    tr.dense_ids, tr.key_table  # derived once, outside the timing (as every replay shares them)
    n = len(tr)
    print(f"trace: {n:,} accesses, {tr.n_tables} tables, {tr.n_distinct:,} distinct keys, "
          f"batches of 2048 samples ({2048 * tr.n_tables:,} accesses)")
    small = tr.slice(0, 2048 * 26 * 2)
    replay_batch(small, "lru", "5%", ways=32)  # compile / load the kernels
    if args.whole_process:
        if args.whole_process == "generated":
            import tempfile

            from cachesim.io.tabular import write_trace
            with tempfile.TemporaryDirectory() as tmp:
                whole_process(write_trace(tr, os.path.join(tmp, "zipf.parquet")),
                              args.batch_size, args.repeat)
        else:
            whole_process(args.whole_process, args.batch_size, args.repeat)
    sizes = [x.strip() for x in args.split_sizes.split(",") if x.strip()]
    if args.split_only:
        print_rows([row for size in sizes for row in set_split(tr, args.repeat, size)], n)
        return
    cachesim.replay(small, "lru", "5%", mode="access")
    for pol in ("lru", "lfu"):
        s, c, r = best_of(lambda: replay_batch(tr, pol, "5%", ways=32), args.repeat)
        print(f"batch {pol} 5% 32-way: {s:.3f} s  {n / s / 1e6:.1f} M accesses/s wall, "
              f"{n / c / 1e6:.1f} M/s CPU  (hit ratio {r.hit_ratio:.4f}, unique "
              f"{r.unique_indices:,}, unique misses {r.unique_misses:,}, conflict unique misses "
              f"{r.conflict_unique_misses:,})")
        if pol == "lru":
            batch_lru = c
    rows = []  # (what, seconds wall, seconds CPU)
    s, c, one = best_of(lambda: replay_batch(tr, "lru", "5%", ways=32, cache_model="ideal"),
                        args.repeat)
    rows.append(("batch lru 5% 32-way, ideal model", s, c))
    rows += [row for size in sizes for row in set_split(tr, args.repeat, size)]
    print_rows(rows, n)
    ways = 32 if cachesim.get_policy("lru").set_associative is not None else None
    s, c, r = best_of(lambda: cachesim.replay(tr, "lru", "5%", ways=ways, mode="access"),
                      args.repeat)
    print(f"access lru 5% {'32-way' if ways else 'fully associative'}: {s:.3f} s  "
          f"{n / s / 1e6:.1f} M accesses/s wall, {n / c / 1e6:.1f} M/s CPU  "
          f"(hit ratio {r.hit_ratio:.4f})")
    print(f"ratio batch lru / access lru throughput (CPU time): {c / batch_lru:.2f}")


if __name__ == "__main__":
    main()
