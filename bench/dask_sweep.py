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
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--policies", default="lru,fifo,clock,sieve")
    ap.add_argument("--sizes", default="0.5%,1%,2%,5%")
    a = ap.parse_args()
    times, tables, busy, each = {}, {}, {}, {}
    for n in (int(x) for x in a.workers.split(",")):
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
                times[n] = time.perf_counter() - t0
                if proc.returncode:
                    raise SystemExit(f"sweep failed:\n{proc.stderr}")
                rows = json.loads(out.read_text())
                tables[n] = sorted((r["policy"], r["size"], r["hits"], r["misses"]) for r in rows)
                busy[n] = sum(r["replay_seconds"] for r in rows)
                each[n] = {(r["policy"], r["size"]): r["replay_seconds"] for r in rows}
        print(f"{n} worker(s): {len(tables[n])} configurations, {times[n]:.1f} s; replays "
              f"{busy[n]:.1f} s in all ({busy[n] / n:.1f} s a worker)", flush=True)
    ns = sorted(times)
    print(f"speed-up {ns[-1]} vs {ns[0]} workers: {times[ns[0]] / times[ns[-1]]:.2f}x; "
          f"tables equal: {all(tables[n] == tables[ns[0]] for n in ns)}")
    if len(ns) > 1:  # each configuration's replay seconds, alone and beside another worker's
        lo, hi = ns[0], ns[-1]
        print(f"a replay's seconds with {hi} workers against {lo}, by configuration: " + ", ".join(
            f"{p} {s} {each[hi][p, s] / each[lo][p, s]:.2f}" for p, s in sorted(each[lo])))


if __name__ == "__main__":
    main()
