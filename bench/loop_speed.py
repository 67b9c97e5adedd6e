"""Access-mode kernel speed of every policy, one checkout against others, same machine, same run.

Each checkout (a folder holding a `cachesim` package: this one, or an old commit exported with
`git archive REV | tar -x -C bench/out/tree-REV`) is timed in its own fresh process, the
checkouts alternating, `--rounds` times; each process replays the same seeded Zipf(1.0) trace
(default 2M requests over 200k keys) with `cachesim.replay(..., ways=None)` for each policy and
cache size, warmed up once, and keeps the best of `--repeat` CPU times (process_time: steadier
than wall time on a shared machine). Prints M requests/s per checkout, the best over rounds, and
each checkout's ratio to the first.

    .venv/bin/python bench/loop_speed.py bench/out/tree-1ac5f99 .
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

POLICIES = ["lru", "fifo", "clock", "lfu", "opt", "random", "sieve", "arc", "s3fifo"]

CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import cachesim
n, n_keys, repeat = int(float(sys.argv[2])), int(float(sys.argv[3])), int(sys.argv[4])
sizes, policies = json.loads(sys.argv[5]), json.loads(sys.argv[6])
rng = np.random.default_rng(0)
w = 1.0 / np.arange(1, n_keys + 1, dtype=np.float64)
cdf = np.cumsum(w); cdf /= cdf[-1]
keys = rng.permutation(n_keys)[np.minimum(np.searchsorted(cdf, rng.random(n)), n_keys - 1)]
trace = cachesim.Trace.from_keys(keys)
out = {}
for size in sizes:
    for name in policies:
        cachesim.replay(trace, name, size, ways=None)  # compile or load, and the derived columns
        best = float("inf")
        for _ in range(repeat):
            t = time.process_time()
            r = cachesim.replay(trace, name, size, ways=None)
            best = min(best, time.process_time() - t)
        out[f"{size} {name}"] = [n / best / 1e6, int(r.misses)]
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+", help="checkouts to compare; the first is the baseline")
    ap.add_argument("--requests", default="2e6")
    ap.add_argument("--keys", default="2e5")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    policies = a.policies.split(",")
    best: dict[str, dict[str, list]] = {t: {} for t in a.trees}
    for _ in range(a.rounds):
        for tree in a.trees:
            got = json.loads(subprocess.run(
                [sys.executable, "-c", CHILD, str(Path(tree).resolve()), a.requests, a.keys,
                 str(a.repeat), json.dumps(sizes), json.dumps(policies)],
                check=True, capture_output=True, text=True).stdout)
            for k, (speed, misses) in got.items():
                old = best[tree].get(k)
                best[tree][k] = [max(speed, old[0]) if old else speed, misses]
    base = a.trees[0]
    head = "| size policy | " + " | ".join(f"{t} M req/s" for t in a.trees) + " | " + \
        " | ".join(f"{t} / {base}" for t in a.trees[1:]) + " | misses equal |"
    print(head)
    print("|" + "---|" * (2 * len(a.trees) + 1))
    for k in best[base]:
        speeds = [best[t][k][0] for t in a.trees]
        same = len({best[t][k][1] for t in a.trees}) == 1
        print(f"| {k} | " + " | ".join(f"{s:.1f}" for s in speeds) + " | " +
              " | ".join(f"{s / speeds[0]:.2f}" for s in speeds[1:]) + f" | {same} |")


if __name__ == "__main__":
    main()
