"""Start-up time: a user pays for what a command uses (issue 10).

Whole-process times, best of `--runs` fresh processes (after one untimed warm-up run that fills
numba's cache and the page cache; the runs of all commands interleaved, round by round, so that a
change of load on a shared machine falls on all alike), wall clock and CPU seconds (user + sys of
the child), of

- `cachesim --version` and `cachesim --help` (the console script in the virtualenv);
- the CloudPhysics replay: `cachesim replay tests/data/cloudphysics/cloudPhysicsIO.oracleGeneral.bin
  --mode access -p lru -s 1000 --ways full -q` (113,872 requests; fully associative LRU of 1,000
  objects, as libCacheSim's);
- libCacheSim's C simulator on the same file, built from source in this run (or found already
  built in bench/out/libcachesim/): `cachesim FILE oracleGeneral lru 1000 --ignore-obj-size 1
  --print-head-req false` (unit object sizes, cache size in objects); its miss ratio is checked
  against ours;
- floors that say what a numba program cannot avoid: `python -c pass`, `import numpy`,
  `import numpy, numba`, and one call of a tiny `cache=True` kernel (numba's one-off typing and
  target set-up happens on the first call of any kernel, cached or not).

`--before REV` (repeatable) also times the same commands on the tree of git revision REV
(extracted with `git archive` into bench/out/, run with `python -c` on PYTHONPATH), in the same run.

Every Python process runs with bytecode caching on, as after `pip install` (compiled modules in
bench/out/pycache through PYTHONPYCACHEPREFIX); a shell with PYTHONDONTWRITEBYTECODE=1 (as the
project machine's) recompiles cachesim's sources in every process, about 5,500 lines for a
replay: one more row times the replay that way.

    .venv/bin/python bench/startup.py                    # this tree, and libCacheSim's C simulator
    .venv/bin/python bench/startup.py --before HEAD      # ... and the last commit, for before/after

libCacheSim's source: `--libcachesim-src` (a source folder, or a git directory whose HEAD is
extracted with `git archive`); by default bench/out/libcachesim/src if present, else a clone of
https://github.com/1a1a11a/libCacheSim. Building needs cmake, a C compiler, glib2 and zstd
(Debian: `apt-get install cmake build-essential pkg-config libglib2.0-dev libzstd-dev`). If the
build fails, the libcachesim wheel (a Python process calling `process_trace`) is timed instead and
labelled so.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
TRACE = ROOT / "tests" / "data" / "cloudphysics" / "cloudPhysicsIO.oracleGeneral.bin"
CACHE_OBJECTS = 1000
N_REQUESTS = TRACE.stat().st_size // 24 if TRACE.exists() else 0
LIBCACHESIM_URL = "https://github.com/1a1a11a/libCacheSim"
# what building the `cachesim` binary needs from libCacheSim's tree (its data/ is large)
LIBCACHESIM_PATHS = ["CMakeLists.txt", "cmake", "libCacheSim", "libCacheSim.cmake.in",
                     "libCacheSim.pc.in", "test", "example", "scripts"]
REPLAY_ARGS = ["replay", str(TRACE), "--mode", "access", "-p", "lru", "-s", str(CACHE_OBJECTS),
               "--ways", "full", "-q"]
KERNEL = '''import numba
@numba.njit(cache=True)
def total(a):
    s = 0
    for i in range(a.shape[0]):
        s += a[i]
    return s
'''


def python_env(extra: dict | None = None, bytecode: bool = True) -> dict:
    """The children's environment: bytecode cached in bench/out/pycache (as after pip install)
    unless `bytecode` is False (then none is read or written, as PYTHONDONTWRITEBYTECODE=1)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(OUT / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return {**env, **(extra or {})}


def run_once(cmd: list[str], env: dict | None = None, cwd: Path = ROOT) -> tuple:
    """Wall and CPU seconds (user + sys of the child) of one fresh process, and its output."""
    env = python_env() if env is None else env
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, cpu, proc.stdout + proc.stderr


def best_of(jobs: dict[str, tuple], runs: int) -> dict[str, dict]:
    """For each job (cmd, env, cwd): the best wall and CPU seconds of `runs` fresh processes,
    after one warm-up (numba's cache, the page cache). The runs are interleaved, round by round
    over every job, so a change of load on a shared machine falls on all of them alike."""
    for job in jobs.values():
        run_once(*job)
    walls = {key: [] for key in jobs}
    cpus = {key: [] for key in jobs}
    outs = {}
    for _ in range(runs):
        for key, job in jobs.items():
            wall, cpu, outs[key] = run_once(*job)
            walls[key].append(wall)
            cpus[key].append(cpu)
    return {key: {"wall": min(walls[key]), "cpu": min(cpus[key]), "out": outs[key]}
            for key in jobs}


# -- libCacheSim's C simulator -------------------------------------------------------------------
def libcachesim_source(given: str | None) -> Path:
    """A libCacheSim source folder: `given` (a source folder or a git dir), else the cached copy,
    else a fresh clone."""
    dest = OUT / "libcachesim" / "src"
    if given:
        src = Path(given)
        if (src / "CMakeLists.txt").exists():
            return src
        if (src / "HEAD").exists():  # a (bare) git directory: extract HEAD's build files
            if not (dest / "CMakeLists.txt").exists():
                dest.mkdir(parents=True, exist_ok=True)
                archive = subprocess.run(["git", f"--git-dir={src}", "archive", "HEAD",
                                          *LIBCACHESIM_PATHS], capture_output=True, check=True)
                subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
            return dest
        raise SystemExit(f"--libcachesim-src {given}: neither a source folder (CMakeLists.txt) "
                         "nor a git directory")
    if not (dest / "CMakeLists.txt").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "--depth", "1", LIBCACHESIM_URL, str(dest)], check=True)
    return dest


def build_libcachesim(src: Path) -> tuple[Path | None, str]:
    """The C simulator's binary (built once into bench/out/libcachesim/_build) and a label; None
    and the reason when it cannot be built."""
    build = OUT / "libcachesim" / "_build"
    binary = build / "bin" / "cachesim"
    if binary.exists():
        return binary, f"libCacheSim C simulator ({binary.relative_to(ROOT)}, built earlier)"
    build.mkdir(parents=True, exist_ok=True)
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    steps = [["cmake", *gen, "-DCMAKE_BUILD_TYPE=Release", "-DENABLE_TESTS=OFF", str(src)],
             ["cmake", "--build", ".", "--target", "cachesim", "-j", str(os.cpu_count() or 1)]]
    t0 = time.perf_counter()
    for step in steps:
        proc = subprocess.run(step, cwd=build, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            return None, f"{' '.join(step[:2])} failed: " + " | ".join(tail)
    return binary, (f"libCacheSim C simulator ({binary.relative_to(ROOT)}, built from source in "
                    f"{time.perf_counter() - t0:.0f} s)")


def c_simulator_cmd(binary: Path) -> list[str]:
    return [str(binary), str(TRACE), "oracleGeneral", "lru", str(CACHE_OBJECTS),
            "--ignore-obj-size", "1", "--print-head-req", "false"]


WHEEL = f'''import libcachesim as lcs
r = lcs.TraceReader({str(TRACE)!r}, lcs.TraceType.ORACLE_GENERAL_TRACE,
                    lcs.ReaderInitParam(ignore_obj_size=True))
print("miss ratio", lcs.LRU({CACHE_OBJECTS}).process_trace(r)[0])
'''


def c_miss_ratio(out: str) -> float | None:
    m = re.search(r"miss ratio\s+([0-9.]+)", out)
    return float(m.group(1)) if m else None


def our_misses(out: str) -> int | None:
    """The misses column of `cachesim replay`'s table."""
    lines = [ln.split() for ln in out.splitlines() if ln.strip()]
    if len(lines) < 2 or "misses" not in lines[0]:
        return None
    return int(lines[1][lines[0].index("misses")].replace(",", ""))


# -- ours ----------------------------------------------------------------------------------------
def tree_of(rev: str) -> Path:
    """The package at git revision `rev`, extracted (read-only git) into bench/out/."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    dest = OUT / f"tree-{sha}"
    if not (dest / "cachesim" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "cachesim"], cwd=ROOT,
                                 capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def ours(tree: Path | None) -> tuple[list[str], dict | None, Path]:
    """The command prefix that runs `cachesim` (this tree's console script, or `tree` on
    PYTHONPATH through the same entry point), its environment and the folder to run it in (not
    the repository's, whose cachesim `python -c` would import first)."""
    if tree is None:
        return [str(Path(sys.executable).with_name("cachesim"))], None, ROOT
    env = python_env({"PYTHONPATH": str(tree)})
    where = subprocess.run([sys.executable, "-c", "import cachesim; print(cachesim.__file__)"],
                           env=env, cwd=tree, capture_output=True, text=True,
                           check=False).stdout.strip()
    if not where.startswith(str(tree)):
        raise SystemExit(f"{tree}: python imports cachesim from {where!r}, not from that tree")
    entry = ("import sys; sys.argv[0] = 'cachesim'; from cachesim.cli import main; "
             "sys.exit(main())")
    return [sys.executable, "-c", entry], env, tree


def floors() -> dict[str, tuple]:
    """The jobs that time what any numba program pays."""
    kdir = OUT / "startup-floor"
    kdir.mkdir(parents=True, exist_ok=True)
    (kdir / "floor_kernel.py").write_text(KERNEL)
    py = sys.executable
    return {
        "python -c pass": ([py, "-c", "pass"], None, ROOT),
        "import numpy": ([py, "-c", "import numpy"], None, ROOT),
        "import numpy, numba": ([py, "-c", "import numpy, numba"], None, ROOT),
        FLOOR: ([py, "-c", "import numpy, floor_kernel; floor_kernel.total(numpy.arange(3))"],
                None, kdir),
    }


FLOOR = "+ one cached kernel call"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5,
                    help="timed runs per command, interleaved (the best is kept)")
    ap.add_argument("--before", metavar="REV", action="append", default=[],
                    help="also time the tree of git revision REV (e.g. HEAD); repeatable")
    ap.add_argument("--libcachesim-src", default=os.environ.get("LIBCACHESIM_SRC"),
                    help="libCacheSim source folder or git directory (default: clone it)")
    args = ap.parse_args()
    if not TRACE.exists():
        raise SystemExit(f"{TRACE}: missing (tests/data holds the CloudPhysics trace)")

    binary, c_label = None, ""
    try:
        binary, c_label = build_libcachesim(libcachesim_source(args.libcachesim_src))
    except (subprocess.CalledProcessError, OSError) as err:
        c_label = f"getting libCacheSim's source failed: {err}"
    if binary is not None:
        # in bench/out/: the C simulator writes TRACE.cachesim into its working folder
        c_job = (c_simulator_cmd(binary), None, OUT)
    else:
        print(f"C simulator not built ({c_label}); timing the libcachesim wheel instead")
        c_label = "libcachesim WHEEL (a Python process), NOT the C simulator: " + c_label
        c_job = ([sys.executable, "-c", WHEEL], None, ROOT)

    trees = [(f"{rev} ({tree_of(rev).name[5:]})", tree_of(rev)) for rev in args.before]
    trees.append(("this tree", None))
    jobs = {("C", "C"): c_job}
    for label, tree in trees:
        prefix, env, cwd = ours(tree)
        for name, argv in (("--version", ["--version"]), ("--help", ["--help"]),
                           ("replay", REPLAY_ARGS)):
            jobs[(label, name)] = (prefix + argv, env, cwd)
    prefix, _, _ = ours(None)
    jobs[("this tree, no .pyc", "replay")] = (prefix + REPLAY_ARGS, python_env(bytecode=False),
                                              ROOT)
    jobs.update({("floor", name): job for name, job in floors().items()})
    timed = best_of(jobs, args.runs)
    c = timed[("C", "C")]
    c_ratio = c_miss_ratio(c["out"])
    rows = [(label, name, r) for (label, name), r in timed.items() if label not in ("C", "floor")]
    for label, name, r in rows:
        if name == "replay":
            misses = our_misses(r["out"])
            same = (misses is not None and c_ratio is not None
                    and abs(misses / N_REQUESTS - c_ratio) < 5e-5)
            r["check"] = f"misses {misses:,}, C miss ratio {c_ratio}: " + (
                "same" if same else "DIFFERENT")

    load = os.getloadavg()[0]
    print(f"{N_REQUESTS:,}-request CloudPhysics trace, cache {CACHE_OBJECTS} objects; best of "
          f"{args.runs} runs; {os.cpu_count()} cpus, load average {load:.1f}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"C: {c_label}")
    print(f"{'tree':<22} {'command':<28} {'wall s':>7} {'cpu s':>7} {'x C wall':>9}")
    print("-" * 77)
    for label, name, r in rows:
        x = f"{r['wall'] / c['wall']:.1f}x" if name == "replay" else ""
        print(f"{label:<22} {'cachesim ' + name:<28} {r['wall']:7.3f} {r['cpu']:7.3f} {x:>9}")
    print(f"{'C':<22} {'cachesim (libCacheSim) lru':<28} {c['wall']:7.3f} {c['cpu']:7.3f}")
    for (label, name), r in timed.items():
        if label == "floor":
            print(f"{'floor':<22} {name:<28} {r['wall']:7.3f} {r['cpu']:7.3f}")
    mine, floor = timed[("this tree", "replay")], timed[("floor", FLOOR)]
    print(f"this tree's replay above numba's floor (python, numpy, numba, one cached kernel call): "
          f"{mine['wall'] - floor['wall']:+.3f} s wall, {mine['cpu'] - floor['cpu']:+.3f} s cpu")
    for label, name, r in rows:
        if "check" in r:
            print(f"{label}: {r['check']}")
    print("goals: --help and --version < 0.2 s; the replay < 0.6 s (wall)")


if __name__ == "__main__":
    main()
