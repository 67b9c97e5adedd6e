"""A streamed sweep on a real Dask cluster on loopback: 1 worker against 2 (issue 12).

Starts `dask scheduler` and N `dask worker --nthreads 1 --no-nanny` processes on 127.0.0.1,
runs `cachesim sweep FILE --mode access -p lru,fifo,clock,sieve -s 0.5%,1%,2%,5% --ways full
--stream --dask tcp://... -q -o OUT.json` (16 configurations) as a user would, whole process,
then stops the cluster; for N = 1 and N = 2 (`--workers`), and checks that the two tables are
equal. The trace is any streamable file (an oracleGeneral file or Parquet folder of
bench/billion.py, kept with `--keep`). The client makes one first pass; workers on its host
(all of them here) replay from its first-pass files (`StreamSource.attach`), so only that pass
does not shrink with more workers (workers on other hosts would make their own).

    flock /tmp/bench.lock .venv/bin/python bench/dask_sweep.py bench/out/billion/zipf_100000000.oracleGeneral.bin
    ... --rounds 3     # 1 worker, 2 workers, three times in turn: each round's speed-up and the median
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


@contextlib.contextmanager
def cluster(n: int, folder: Path):
    procs, address = [], None
    log = folder / "scheduler.log"
    try:
        with open(log, "w") as f:
            procs.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                                           "--port", "0", "--no-dashboard"], stdout=f,
                                          stderr=subprocess.STDOUT))
        t0 = time.monotonic()
        while address is None and time.monotonic() - t0 < 30:
            m = re.search(r"tcp://127\.0\.0\.1:\d+", log.read_text())
            address = m.group(0) if m else None
            time.sleep(0.1)
        if address is None:
            raise SystemExit(f"the scheduler did not start:\n{log.read_text()}")
        for i in range(n):
            procs.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--name", f"w{i}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(folder)))
        from dask.distributed import Client
        with Client(address, timeout=30) as client:
            client.wait_for_workers(n, timeout=60)
        yield address
    finally:
        if address is not None:
            from dask.distributed import Client
            with contextlib.suppress(Exception), Client(address, timeout=10) as client:
                client.shutdown()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def sweep_once(a, n: int) -> tuple[float, list, dict]:
    """One sweep on a fresh cluster of n workers: (wall seconds, the table, each
    configuration's replay seconds)."""
    with tempfile.TemporaryDirectory(prefix="cachesim-dask-bench-") as tmp:
        folder = Path(tmp)
        with cluster(n, folder) as address:
            out = folder / "sweep.json"
            t0 = time.perf_counter()
            proc = subprocess.run(
                [str(BIN / "cachesim"), "sweep", a.trace, "--mode", "access", "-p",
                 a.policies, "-s", a.sizes, "--ways", "full", "--precision", "fp32",
                 "--stream", "--dask", address, "-q", "-o", str(out)],
                capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if proc.returncode:
                raise SystemExit(f"sweep failed:\n{proc.stderr}")
            rows = json.loads(out.read_text())
    table = sorted((r["policy"], r["size"], r["hits"], r["misses"]) for r in rows)
    return seconds, table, {(r["policy"], r["size"]): r["replay_seconds"] for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--policies", default="lru,fifo,clock,sieve")
    ap.add_argument("--sizes", default="0.5%,1%,2%,5%")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the worker counts in turn this many times (the machine's speed "
                         "drifts: each round's speed-up is from runs next to each other)")
    a = ap.parse_args()
    ns = [int(x) for x in a.workers.split(",")]
    lo, hi = ns[0], ns[-1]
    ups, first = [], None
    for r in range(a.rounds):
        times, each = {}, {}
        for n in ns:
            times[n], table, each[n] = sweep_once(a, n)
            first = table if first is None else first
            busy = sum(each[n].values())
            print(f"round {r + 1}, {n} worker(s): {len(table)} configurations, {times[n]:.1f} s;"
                  f" replays {busy:.1f} s in all ({busy / n:.1f} s a worker); table equal to the"
                  f" first run's: {table == first}", flush=True)
        if hi != lo:
            ups.append(times[lo] / times[hi])
            print(f"round {r + 1}: speed-up {hi} vs {lo} workers {ups[-1]:.2f}x; a replay's "
                  f"seconds with {hi} workers against {lo}: " + ", ".join(
                      f"{p} {s} {each[hi][p, s] / each[lo][p, s]:.2f}"
                      for p, s in sorted(each[lo])), flush=True)
    if ups:
        print(f"speed-up {hi} vs {lo} workers over {len(ups)} round(s): median "
              f"{statistics.median(ups):.2f}x, range {min(ups):.2f}-{max(ups):.2f}x")


if __name__ == "__main__":
    main()
