"""Sweeps: replay every (policy, size, ways, per-table) configuration once, on all cores, and
cost each result at every storage precision.

`run_sweep(trace, policies, sizes, ...)` returns a `SweepResult` whose `table` (a polars
DataFrame) has one row per configuration x precision: the replay's counters, the bytes moved and
the memory figures of `cachesim.costs`. Precision changes only the cost arithmetic, so it never
causes a replay.

Parallelism: worker processes of our own, one configuration at a time each (fork where
available, so the workers inherit the trace and the compiled kernels; spawn otherwise or when
numba's own thread pool has started), or a Dask cluster (`dask="local"` or a scheduler
address; the `dist` extra). On Dask the workers read the trace themselves from `source` (a
`TraceSource`: a path all of them see), once per worker process, checked by fingerprint;
without a source the in-memory trace is scattered to every worker once. Per-table
configurations run as one task per table, merged exactly (`simulate.tables`).

Resuming: each finished configuration is written at once, atomically, to the sidecar folder
`OUT.parts/` next to the output (one JSON file per configuration, plus `manifest.json`, which
fingerprints the trace). A rerun reuses every part whose configuration it asks for and replays
only the rest, so an interrupted sweep picks up where it stopped, and a finished one can be
re-costed (another precision, link speed or dim) without replaying. `fresh=True` clears it.

Ctrl-C (SIGINT) stops a sweep within moments: the workers are ended, the configurations in
flight are lost, every finished one stays in OUT.parts/ (never half-written), and run_sweep
raises `SweepInterrupted` (a KeyboardInterrupt); `cachesim sweep` exits with status 130.

Progress: a bar on a terminal; otherwise, once the sweep has run LINES_AFTER_S seconds, one line
per finished configuration on stderr.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import signal
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .costs import (DEFAULT_LINK_GBPS, cache_row_bytes, costs_for, parse_dims,
                          precision_names, row_layout)
from .errors import CachesimError
from .files import OUTPUT_SUFFIXES, atomic_path, check_output_file, jsonable, write_table
from .policies import batch_policy_names, get_policy
from .simulate.result import DEFAULT_WAYS, INFERENCE_CACHE_MODEL, fbgemm_warp
from .sizes import parse_size, parse_ways_list

MODES = ("batch", "access")


@dataclass(frozen=True)
class SweepConfig:
    """One replay of a sweep. `ways=None` is fully associative. `cache_model` ('fbgemm' or
    'ideal' in batch mode, None in access mode), `prefetch_pipeline` and `warp` (fbgemm) are
    part of the configuration and of its resume key: a part written without them is never
    taken for another model's result."""

    policy: str
    size: str
    ways: int | None
    per_table: bool
    mode: str
    inference: bool = False
    cache_model: str | None = None
    prefetch_pipeline: bool = False
    warp: int | None = None
    table_groups: str | None = None  # fbgemm: which tables share a cache (simulate/groups.py)

    @property
    def key(self) -> str:
        """A file-name-safe id, stable across runs."""
        size = self.size.replace("%", "pct")
        parts = [self.mode] + ([self.cache_model] if self.cache_model else [])
        parts += [self.policy, size, f"w{self.ways}" if self.ways else "wfull",
                  "pertable" if self.per_table else "shared"]
        if self.warp:
            parts.append(f"warp{self.warp}")
        if self.prefetch_pipeline:
            parts.append("pipeline")
        if self.mode == "batch" and self.inference:
            parts.append("inference")
        if self.table_groups:  # a short, stable digest: a spec may name hundreds of tables
            import hashlib
            parts.append("groups-" + hashlib.sha1(self.table_groups.encode()).hexdigest()[:12])
        return re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(parts))


@dataclass
class SweepResult:
    """The table, and which configurations ran now (`ran`) or came from the parts (`reused`)."""

    table: "object"
    configs: list[SweepConfig]
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    seconds: float = 0.0


# -- options -------------------------------------------------------------------------------------
def _split(values) -> list[str]:
    if isinstance(values, str):
        return [p.strip() for p in values.split(",") if p.strip()]
    return [str(v).strip() for v in values]


def parse_per_table(value) -> list[bool]:
    """`both`, `yes` or `no` (or a bool): the per-table settings to sweep."""
    if isinstance(value, bool):
        return [value]
    v = str(value).lower()
    table = {"no": [False], "yes": [True], "both": [False, True]}
    if v not in table:
        raise CachesimError(f"--per-table {value!r}: use yes, no or both")
    return table[v]


def make_configs(policies, sizes, ways=(DEFAULT_WAYS,), per_table=(False,), mode="batch",
                 inference=False, cache_model=None, prefetch_pipeline=False,
                 warp=None, table_groups=None) -> list[SweepConfig]:
    """The cross product, checked: unknown policies, bad sizes and unsupported combinations raise
    CachesimError before anything runs. `cache_model`: the batch replay's (fbgemm, ideal or
    fbgemm-inference; None: the default model); access mode takes none. fbgemm-inference is
    FBGEMM's inference cache, so its configurations are costed as inference (nothing written
    back), as `inference=True`."""
    if mode not in MODES:
        raise CachesimError(f"--mode {mode!r}: use batch or access")
    if mode == "access" and (cache_model is not None or prefetch_pipeline or warp is not None):
        raise CachesimError("--cache-model, --prefetch-pipeline and --warp choose the batch "
                            "replay's cache; they need --mode batch")
    names = []
    for p in _split(policies):
        name = get_policy(p).name
        if mode == "batch" and get_policy(p).batch_rule is None:
            raise CachesimError(f"policy {p!r} has no batch replay (batch mode runs the policies "
                                f"with a batch rule: {', '.join(batch_policy_names())}); use "
                                "--mode access for it")
        names.append(name)
    size_texts = []
    for s in _split(sizes):
        cap = parse_size(s)
        if cap.is_bytes:
            raise CachesimError(f"sweep size {s!r} is in bytes: a sweep costs rows, so give rows "
                                "(1000) or a share of the distinct keys (5%)")
        size_texts.append(cap.text)
    ways = parse_ways_list(ways) if not isinstance(ways, list) else ways
    per_table = (parse_per_table(per_table) if not isinstance(per_table, (list, tuple))
                 else list(per_table))  # (the default is a tuple)
    if mode == "access" and any(w is not None and w != DEFAULT_WAYS for w in ways):
        # (the default 32 leaves a policy without a set-associative form fully associative,
        # as `cachesim.replay` does)
        for p in names:
            if get_policy(p).set_associative is None:
                raise CachesimError(f"policy {p!r} has no set-associative form in access mode; "
                                    "drop it or use --ways none")
    if mode == "access" and any(per_table):
        raise CachesimError("--per-table yes needs --mode batch (access replay runs one cache "
                            "over all tables)")
    if not names or not size_texts:
        raise CachesimError("a sweep needs at least one policy and one size")
    model = None
    if mode == "batch":
        from .simulate.batch import check_model_options
        model = check_model_options(cache_model, names, ways, per_table, prefetch_pipeline, warp)
        inference = inference or model == INFERENCE_CACHE_MODEL
        if warp is not None and fbgemm_warp(model, warp):  # FBGEMM's ways are its warp's
            ways = list(dict.fromkeys(1 if w == 1 else int(warp) for w in ways))
    if table_groups is not None:
        from .simulate.groups import BOTH_GIVEN, check_groups_model
        if mode != "batch":
            raise CachesimError("--table-groups sets the batch replay's caches; it needs "
                                "--mode batch")
        check_groups_model(table_groups, model)
        if any(per_table):
            raise CachesimError(BOTH_GIVEN)
        table_groups = str(table_groups).strip()
    configs = {}  # (in order; a policy without sets at the default 32 and at none is one)
    for p in names:
        # access mode: the default 32 leaves such a policy fully associative, and its rows say so
        sets = mode == "batch" or get_policy(p).set_associative is not None
        for s in size_texts:
            for w in ways:
                for pt in per_table:
                    cfg = SweepConfig(p, s, w if sets else None, pt, mode,
                                      bool(inference) if mode == "batch" else False, model,
                                      bool(prefetch_pipeline),
                                      None if warp is None else int(warp), table_groups)
                    configs.setdefault(cfg.key, cfg)
    return list(configs.values())


# -- running one configuration -------------------------------------------------------------------
def replay_config(trace, cfg: SweepConfig) -> dict:
    """Replay one configuration; its result as a JSON-safe record with per-table counters."""
    streamed = getattr(trace, "replay_sweep_config", None)
    if streamed is not None:  # a trace read in chunks (`sweep_stream.StreamedTrace`)
        return streamed(cfg)
    if cfg.mode == "batch":
        from .simulate.batch import replay_batch
        res = replay_batch(trace, cfg.policy, cfg.size, ways=cfg.ways, per_table=cfg.per_table,
                           inference=cfg.inference, cache_model=cfg.cache_model,
                           prefetch_pipeline=cfg.prefetch_pipeline, warp=cfg.warp,
                           table_groups=cfg.table_groups)
    else:
        from .simulate.access import replay
        res = replay(trace, cfg.policy, cfg.size, ways=cfg.ways, mode="access")
    return jsonable(res.to_record(per_table=True))


def _run_with_trace(trace, cfg: SweepConfig):
    return cfg, replay_config(trace, cfg)


def _table_sub(trace, t: int):
    """Table t's one-table sub-trace."""
    import numpy as np
    idx = np.flatnonzero(trace.table == t)
    return trace if trace.n_tables == 1 else trace.take(idx, table=t,
                                                         source=f"{trace.source}:{trace.table_names[t]}")


def _run_table_with_trace(trace, plan, t: int):
    from .simulate.tables import replay_table
    return replay_table(_table_sub(trace, t), plan, t)


# -- workers that read the trace themselves (a Dask cluster) -------------------------------------
@dataclass(frozen=True)
class TraceSource:
    """Where every worker finds the trace: `path` (a local or shared path, e.g. on NFS, or a
    URL, s3:// gs:// http(s):// ..., that `cachesim.io.read_trace` reads), its `format` and
    reader `options`, and `table_rows` (the --table-rows text, applied after reading)."""

    path: str
    format: str | None = None
    options: tuple = ()
    table_rows: str | None = None

    @classmethod
    def of(cls, path, format=None, options=None, table_rows=None) -> TraceSource:
        p = str(path)
        if "://" not in p:
            p = os.path.abspath(p)  # workers may run in another directory
        return cls(p, format, tuple(sorted((options or {}).items())), table_rows)


_WORKER_TRACE: dict = {}  # one trace per worker process: {(path, mtime, size, ...): Trace}
_WORKER_READS = [0]  # how many times this process read a trace (a test counts them)


def _source_trace(source: TraceSource, fingerprint: str):
    """The trace `source` names, read once per worker process (kept while the file's mtime and
    size stay), checked against the client's fingerprint."""
    from .io.urls import stamp
    key = (source, stamp(source.path))  # (None when unreadable: read_trace reports it)
    hit = _WORKER_TRACE.get(key)
    if hit is None:
        from .io import read_trace
        trace = read_trace(source.path, format=source.format, **dict(source.options))
        if source.table_rows:
            from .simulate.fbgemm import with_table_rows
            trace = with_table_rows(trace, source.table_rows)
        _WORKER_READS[0] += 1
        hit = (trace, trace.fingerprint())
        _WORKER_TRACE.clear()
        _WORKER_TRACE[key] = hit
    trace, seen = hit
    if seen != fingerprint:
        import socket
        try:
            from dask.distributed import get_worker
            who = get_worker().address
        except (ImportError, ValueError):
            who = socket.gethostname()
        raise CachesimError(f"worker {who} sees a different trace at {source.path}; all "
                            "workers must see the same file (a shared path: NFS, or a copy "
                            "of the same file at the same path on every host)")
    return trace


def _run_from_source(source: TraceSource, fingerprint: str, cfg: SweepConfig):
    return cfg, replay_config(_source_trace(source, fingerprint), cfg)


def _run_table_from_source(source: TraceSource, fingerprint: str, plan, t: int):
    return _run_table_with_trace(_source_trace(source, fingerprint), plan, t)


def _run_part_from_source(source: TraceSource, fingerprint: str, plan, p: int):
    from .simulate.partition import replay_part
    return replay_part(_source_trace(source, fingerprint), plan, p)


def _run_part_with_trace(trace, plan, p: int):
    from .simulate.partition import replay_part
    return replay_part(trace, plan, p)


def replay_split_dask(trace, runs, client, parts=None, *, source=None, **options) -> list:
    """`simulate.partition.replay_partitioned(trace, policy, capacity, parts, ways=ways,
    **options)` for each (policy, capacity, ways) of `runs`, on a Dask cluster (`client`: a
    `Client`, 'local' or a scheduler address, as `dask_client`): one task per part (set ranges,
    or tables with per_table=True), all submitted at once, each replay merged exactly; their
    Results, in order (`seconds`: each replay's wall time from submission to its last part).
    With a `source` (the file `trace` was read from, a path every worker sees) each worker reads
    the trace itself, once, checked by fingerprint; without one the trace is scattered to the
    workers. `parts` defaults to the cluster's worker threads."""
    from .simulate.partition import merge_parts, plan_parts
    t0 = time.perf_counter()
    with dask_client(client, parts) as cl:
        if parts is None:
            parts = max(1, sum(cl.nthreads().values()))
        plans = [plan_parts(trace, pol, cap, parts, ways=w, **options) for pol, cap, w in runs]
        if source is not None:
            args = (_run_part_from_source, source, trace.fingerprint())
        else:
            args = (_run_part_with_trace, cl.scatter(trace, broadcast=True))
        futures = [[cl.submit(*args, plan, p, pure=False) for p in range(plan.parts)]
                   for plan in plans]
        out = []
        try:
            for plan, futs in zip(plans, futures):
                results = cl.gather(futs)
                out.append(merge_parts(trace, plan, results, time.perf_counter() - t0))
        except BaseException:
            cl.cancel([f for futs in futures for f in futs])  # nothing keeps running after
            raise
    return out


# -- the sidecar ---------------------------------------------------------------------------------
def parts_dir(out) -> Path:
    """The sidecar folder of output `out`: OUT.parts/."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def _write_atomic_text(path: Path, text: str) -> None:
    with atomic_path(path, record=False) as tmp:  # (in OUT.parts/, cachesim's folder)
        tmp.write_text(text)


def check_parts_dir(folder: Path, out) -> None:
    """OUT.parts/ may be used when it is missing, empty, or a sweep's (it has manifest.json);
    a user's folder of that name is refused, never written into or deleted."""
    if folder.exists() and not folder.is_dir():
        raise CachesimError(f"-o {out}: {folder} is a file in the way of the sweep's parts "
                            "folder; move it away or choose another -o path")
    if folder.is_dir() and os.listdir(folder) and not (folder / "manifest.json").is_file():
        raise CachesimError(f"-o {out}: {folder} is not empty and was not written by a cachesim "
                            "sweep; move it away or choose another -o path")


def _is_part_file(path: Path) -> bool:
    """A file a sweep wrote into OUT.parts/: manifest.json or a configuration's {key}.json."""
    return path.is_file() and not path.is_symlink() and (
        path.name == "manifest.json" or re.fullmatch(r"[A-Za-z0-9_.-]+\.json", path.name)
        is not None and path.name.startswith(MODES))


def _open_parts(folder: Path, fingerprint: str, fresh: bool) -> None:
    from .version import __version__
    check_parts_dir(folder, folder.with_name(folder.name[:-len(".parts")]))
    if fresh and folder.exists():
        for p in folder.iterdir():  # only the sweep's own files: anything else stays
            if _is_part_file(p):
                p.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.json"
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
            old = old.get("trace_fingerprint") if isinstance(old, dict) else None
        except (OSError, ValueError) as err:
            raise CachesimError(f"{manifest}: cannot read the sweep's manifest ({err}); pass "
                                "--fresh to start the sweep over, or write to another -o "
                                "path") from None
        if old is None:
            raise CachesimError(f"{manifest}: not a sweep manifest (no trace fingerprint); pass "
                                "--fresh to start the sweep over, or write to another -o path")
        if old != fingerprint:
            raise CachesimError(f"{folder} holds sweep results of another trace (or another "
                                "cachesim version, or of this trace swept with the other "
                                "--stream/--no-stream setting); pass --fresh to discard them, "
                                "or write to another -o path")
    else:
        _write_atomic_text(manifest, json.dumps({"trace_fingerprint": fingerprint,
                                                 "cachesim": __version__}))


def _load_part(folder: Path, cfg: SweepConfig) -> dict | None:
    path = folder / f"{cfg.key}.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a torn or unreadable part: replay it again
    if data.get("config") != asdict(cfg):
        return None
    return data["record"]


def _save_part(folder: Path, cfg: SweepConfig, record: dict) -> None:
    _write_atomic_text(folder / f"{cfg.key}.json",
                       json.dumps({"config": asdict(cfg), "record": record}))


# -- the sweep -----------------------------------------------------------------------------------
def _mp_context(trace=None):
    """fork where the platform has it, numba's thread pool has not started (forking a started
    pool is unsafe), and the workers will not read with polars once it is loaded (its thread
    pool does not survive a fork: a streamed batch-mode trace, whose workers read its Parquet
    again, hung there); spawn otherwise."""
    import sys
    methods = multiprocessing.get_all_start_methods()
    try:
        from numba.np.ufunc import parallel as _par
        pool_started = bool(getattr(_par, "_is_initialized", False))
    except ImportError:  # pragma: no cover - numba layout change
        pool_started = False
    if "polars" in sys.modules and getattr(trace, "workers_read_the_trace", False):
        pool_started = True
    if "fork" in methods and not pool_started:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


# Ctrl-C: the workers ignore SIGINT; the parent, on KeyboardInterrupt, stops them at once
# (in-flight configurations are lost) and raises SweepInterrupted. Every finished configuration
# is already in OUT.parts/: the parent writes each part as its result arrives, with SIGINT held
# off for the length of the write, so no part is ever half-written.
LINES_AFTER_S = 3.0
"""When stderr is not a terminal (a log, CI), a sweep that has run this many seconds prints one
line per finished configuration (a terminal shows the bar instead; short sweeps stay silent)."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep. `kept` of `total` configurations are in `folder` (OUT.parts/,
    None without an output), so rerunning the same sweep resumes."""

    def __init__(self, kept: int, total: int, folder: Path | None):
        self.kept, self.total, self.folder = kept, total, folder
        if folder is not None:
            text = (f"interrupted; {kept} of {total} configurations kept in {folder}/, rerun "
                    "the same command to resume")
        else:
            text = (f"interrupted after {kept} of {total} configurations; nothing kept (give "
                    "-o OUT to keep finished configurations for a rerun)")
        super().__init__(text)


@contextlib.contextmanager
def _sigint_held():
    """Hold off SIGINT for the block (a part being written); act on it right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    if old is signal.SIG_IGN or old is None:  # ignored (nohup, a background job): keep it so
        signal.signal(signal.SIGINT, old if old is not None else signal.SIG_DFL)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if got:
        if callable(old):
            old(signal.SIGINT, None)
        raise KeyboardInterrupt


def _execute(trace, pending: list[SweepConfig], jobs: int, dask, on_done, progress: bool,
             source=None):
    """Replay `pending`, calling on_done(cfg, record) as each finishes (in the parent)."""
    from .progress import Lines, bar as progress_bar
    bar = progress_bar(len(pending), "sweep", progress and len(pending) > 0, unit="config",
                       leave=True)
    lines = Lines(progress, after=LINES_AFTER_S)
    t0 = time.perf_counter()
    count = [0]

    def finished(cfg, rec):
        with _sigint_held():
            on_done(cfg, rec)
        count[0] += 1
        if bar is not None:
            bar.update(1)
        hit = rec.get("hit_ratio")
        lines.echo(f"sweep: {count[0]} of {len(pending)} done: {cfg.policy} {cfg.size} ways "
                   f"{cfg.ways or 'none'} {'per-table' if cfg.per_table else 'shared'}"
                   + (f", hit ratio {hit:.4f}" if isinstance(hit, float) else "")
                   + f", {float(rec.get('seconds') or 0):.1f} s "
                   f"({time.perf_counter() - t0:.0f} s elapsed)")

    try:
        if dask is not None:
            _execute_dask(trace, pending, jobs, dask, finished, source)
        elif jobs <= 1 or len(pending) <= 1:
            for cfg in pending:
                finished(cfg, replay_config(trace, cfg))
        else:
            _execute_pool(trace, pending, jobs, finished)
    finally:
        if bar is not None:
            bar.close()


class _LongestFirst:
    """The order in which a sweep hands its configurations to the workers: longest replay
    first, learnt as they finish, so that the last worker to finish waits least (LPT).

    A replay's time depends far more on its policy than on its size (at 100M accesses LRU took
    2.8-3.5 s at every size from 0.5% to 5%, FIFO 1.4-1.9 s: bench/RESULTS.md, "The sweep's
    order"), and nothing before the first replay tells how long one takes. So the first
    configuration of each family (policy, fully associative or not, per-table or not) goes
    first, larger sizes before smaller ones (`pending`'s order); after that the family with the
    longest mean replay so far. A family none of whose replays has finished counts as the
    longest: its replay is still running, so it is the slower one."""

    def __init__(self, pending: list[SweepConfig]):
        self._left = list(pending)
        self._seen: dict[tuple, list[float]] = {}  # family -> [seconds, replays]

    @staticmethod
    def _family(cfg: SweepConfig) -> tuple:
        return cfg.policy, cfg.ways is None, cfg.per_table

    def __bool__(self) -> bool:
        return bool(self._left)

    def pop(self) -> SweepConfig:
        def longest(item):
            i, cfg = item
            seen = self._seen.get(self._family(cfg))
            return (-float("inf") if seen is None else -seen[0] / seen[1]), i
        i, _ = min(enumerate(self._left), key=longest)
        return self._left.pop(i)

    def done(self, cfg: SweepConfig, rec: dict) -> None:
        seen = self._seen.setdefault(self._family(cfg), [0.0, 0])
        seen[0] += float(rec.get("seconds") or 0.0)
        seen[1] += 1


class _WorkerFailed(Exception):
    """The traceback of an exception raised in a sweep worker (the cause of the one re-raised
    in the parent)."""


def _worker_main(conn, trace) -> None:
    """A sweep worker: replay each configuration the parent sends, answer (True, record) or
    (False, exception, traceback), until it sends None or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if hasattr(signal, "pthread_sigmask"):  # (started with SIGINT blocked: see _Worker)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    while True:
        try:
            cfg = conn.recv()
        except EOFError:
            return
        if cfg is None:
            return
        try:
            answer = (True, replay_config(trace, cfg), None)
        except BaseException as err:  # sent to the parent, which raises it
            answer = (False, err, traceback.format_exc())
        try:
            conn.send(answer)
        except Exception:  # an exception that does not pickle: its text instead
            conn.send((False, RuntimeError(f"{type(answer[1]).__name__}: {answer[1]}"),
                       answer[2]))


class _Worker:
    """One worker process and its pipe. It is started with SIGINT blocked (fork and spawn both
    inherit the mask), so a Ctrl-C that reaches the whole process group cannot kill it before
    it ignores SIGINT; and the parent closes the child's end of the pipe at once, so no later
    worker inherits it."""

    def __init__(self, ctx, trace, started: list):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, trace), daemon=True)
        self.cfg: SweepConfig | None = None
        blocked = hasattr(signal, "pthread_sigmask")
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if blocked else None
        try:
            self.proc.start()
            started.append(self)  # (before a held Ctrl-C lands: the caller ends it then)
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
            child.close()

    def give(self, cfg: SweepConfig) -> None:
        self.cfg = cfg
        self.conn.send(cfg)

    def answer(self):
        """(cfg, record) of the configuration it was given; its exception raised here; a
        CachesimError if it died without answering."""
        cfg, self.cfg = self.cfg, None
        try:
            ok, payload, text = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(timeout=5)
            code = self.proc.exitcode
            how = (f"was killed by signal {-code}" if code is not None and code < 0
                   else f"exited with status {code}")
            raise CachesimError(
                f"a sweep worker {how} while replaying {cfg.policy} {cfg.size} ways "
                f"{cfg.ways or 'none'}" + (" (signal 9 is most often the kernel's out-of-memory "
                                           "killer)" if code == -9 else "")
                + "; finished configurations are kept (with -o); rerun with fewer jobs (-j)"
            ) from None
        if not ok:
            raise payload from _WorkerFailed(text)
        return cfg, payload


def _end_workers(workers: list[_Worker], now: bool) -> None:
    """End the workers: at once (SIGTERM, then SIGKILL) when `now`, else once they have read
    the None that tells them to stop. Every one is reaped here, so nothing waits at exit."""
    for w in workers:
        if now:
            w.proc.terminate()
        else:
            try:
                w.conn.send(None)
            except OSError:
                w.proc.terminate()
    for w in workers:
        w.proc.join(timeout=5 if now else 60)  # (a loaded machine: a signal can take a moment)
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join(timeout=30)  # (a SIGKILL always lands; on a loaded machine not at once)
        w.conn.close()


def _execute_pool(trace, pending, jobs, finished):
    """`jobs` worker processes of our own, each given one configuration at a time, the longest
    first. Not concurrent.futures' ProcessPoolExecutor: after a Ctrl-C ended its workers, its
    manager thread could still hold the interpreter's exit for good (Python 3.11: a clean CI
    run printed the interrupt's line, then never exited), where these workers have no thread
    in the parent to wait for."""
    from multiprocessing.connection import wait as ready
    ctx = _mp_context(trace)
    order, workers = _LongestFirst(pending), []
    try:
        for _ in range(min(jobs, len(pending))):
            _Worker(ctx, trace, workers)
        for w in workers:
            w.give(order.pop())
        while any(w.cfg is not None for w in workers):
            busy = [w for w in workers if w.cfg is not None]
            got = set(ready([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for w in busy:
                if w.conn in got or w.proc.sentinel in got:
                    cfg, rec = w.answer()
                    finished(cfg, rec)  # (saved first: a Ctrl-C below keeps it)
                    order.done(cfg, rec)
                    if order:
                        w.give(order.pop())
    except BaseException:
        _end_workers(workers, now=True)
        raise
    _end_workers(workers, now=False)


def _execute_dask(trace, pending, jobs, address, finished, source=None):
    with dask_client(address, jobs) as client:
        from dask.distributed import as_completed as dask_completed
        _submit_all(client, trace, pending, finished, dask_completed, source)


@contextlib.contextmanager
def dask_client(address, jobs=None):
    """A `dask.distributed.Client`: the caller's own (left open), a local cluster of `jobs`
    worker processes (address 'local'), or one connected to the scheduler at `address`; closed
    (and the local cluster with it) at the end."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise CachesimError("--dask needs dask.distributed: pip install 'cachesim[dist]'") from None
    if isinstance(address, Client):  # the caller's own client: use it, leave it open
        yield address
        return
    cluster = None
    if address == "local":
        cluster = LocalCluster(n_workers=max(1, jobs or os.cpu_count() or 1),
                               threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(address, timeout=30)
        except OSError as err:
            raise CachesimError(f"--dask {address}: cannot reach the scheduler ({err}); check "
                                "the address, or use --dask local") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _submit_all(client, trace, pending, finished, dask_completed, source=None):
    """Submit every configuration, two a worker thread at a time, longest first
    (`_LongestFirst`); per-table ones as one task per table (merged here, exactly:
    `simulate.tables`). With a `source` the workers read the trace themselves; without one the
    in-memory trace is scattered to every worker once."""
    import numpy as np

    from .simulate.tables import splittable, table_plan
    if source is not None:
        shared, fp = source, trace.fingerprint()
        one, by_table = _run_from_source, _run_table_from_source
        extra = (fp,)
    else:
        shared, extra = client.scatter(trace, broadcast=True), ()
        one, by_table = _run_with_trace, _run_table_with_trace
    futures, plans, waiting = {}, {}, {}
    split = getattr(trace, "replay_sweep_config", None) is None  # a streamed trace: whole
    tables = [t for t, n in enumerate(np.bincount(trace.table, minlength=trace.n_tables))
              if n] if split else []
    order, running = _LongestFirst(pending), set()
    depth = 2 * max(1, sum(client.nthreads().values()))  # one running, one waiting, a thread
    seq = dask_completed()

    def submit(cfg):
        running.add(cfg.key)
        if split and cfg.mode == "batch" and splittable(cfg.per_table, trace.n_tables,
                                                       cfg.prefetch_pipeline):
            plan = plans[cfg.key] = table_plan(trace, cfg.policy, cfg.size, cfg.ways,
                                               cache_model=cfg.cache_model,
                                               inference=cfg.inference, warp=cfg.warp)
            waiting[cfg.key] = {}
            for t in tables:
                fut = client.submit(by_table, shared, *extra, plan, t, pure=False)
                futures[fut] = (cfg, t)
                seq.add(fut)
        else:
            fut = client.submit(one, shared, *extra, cfg, pure=False)
            futures[fut] = (cfg, None)
            seq.add(fut)

    def fill():
        while order and len(running) < depth:
            submit(order.pop())

    def done(cfg, rec):
        finished(cfg, rec)
        running.discard(cfg.key)
        order.done(cfg, rec)
        fill()

    try:
        fill()
        for fut in seq:
            cfg, t = futures[fut]
            if t is None:
                done(*fut.result())
                continue
            parts = waiting[cfg.key]
            parts[t] = fut.result()
            if len(parts) == len(tables):
                from .simulate.tables import merge_tables
                res = merge_tables(trace, plans[cfg.key], parts)
                done(cfg, jsonable(res.to_record(per_table=True)))
    except BaseException:
        client.cancel(list(futures))  # nothing keeps running on the cluster after a Ctrl-C
        raise


def run_sweep(trace, policies, sizes, *, ways=(DEFAULT_WAYS,), precisions=("fp32",), per_table="no",
              mode: str = "batch", inference: bool = False, out=None, jobs: int | None = None,
              dask: str | None = None, cache_precision: str = "fp32", align: int = 1,
              link_gbps: float = DEFAULT_LINK_GBPS, dims=None, fresh: bool = False,
              progress: bool = False, cache_model: str | None = None,
              prefetch_pipeline: bool = False, warp: int | None = None,
              source: TraceSource | None = None, table_groups=None) -> SweepResult:
    """Replay each (policy, size, ways, per-table) once and cost it at every precision.

    `policies`, `sizes`, `ways`, `precisions`: lists or comma-separated text (ways: ints or
    'none', default 32); `per_table`: 'no', 'yes' or 'both'. `out`: write the table there
    (.parquet, .csv, .json) atomically, and keep finished configurations in the sidecar
    OUT.parts/ so a rerun replays only the missing ones. `jobs`: worker processes (default:
    every core).
    `dask`: 'local' (a local cluster of `jobs` worker processes), a scheduler address, or a
    `dask.distributed.Client`, instead of the process pool. `cache_model` ('fbgemm', 'ideal',
    None: the default), `prefetch_pipeline` and `warp`: the batch replay's cache
    (`cachesim.simulate.batch.replay_batch`); every row names its cache_model. `source`
    (a `TraceSource`: the file `trace` was read from): Dask workers read the trace from there
    themselves (a path all of them see), once per worker process, instead of receiving it.
    `table_groups` (fbgemm): which tables share one cache in every configuration, as
    `replay_batch`'s (TorchRec's TBE ops: 'torchrec', 'table', '0-12/13-25').
    `trace` may be a `cachesim.sweep_stream.StreamedTrace` (a file read in chunks, never held
    whole): every worker then replays on a stream source of that file (`source` is not used).
    """
    t0 = time.perf_counter()
    trace.require_nonempty()
    if table_groups is not None and mode == "batch":
        # the spec against the trace's tables, before any replay, and in one canonical form
        # (table indices), so that specs naming the same grouping share their results: one
        # group is the shared cache, a group per table --per-table
        from .simulate.groups import canonical_groups, resolve_caches
        asked = (parse_per_table(per_table) if not isinstance(per_table, (list, tuple))
                 else per_table)
        one_per_table, groups = resolve_caches(table_groups, trace, prefetch_pipeline,
                                               any(asked))
        per_table = "yes" if one_per_table else per_table
        table_groups = None if groups is None else canonical_groups(groups)
    configs = make_configs(policies, sizes, ways, per_table, mode, inference, cache_model,
                           prefetch_pipeline, warp, table_groups)
    precs = _split(precisions)
    for p in precs:
        if p.lower() not in precision_names():
            raise CachesimError(f"unknown precision {p!r}; use one of "
                                f"{', '.join(precision_names())}")
    dims_arr = parse_dims(dims if dims is not None else trace.table_dims, trace.n_tables)
    # check the cost options now, not after the replays
    cache_row_bytes(cache_precision, 1)
    row_layout(precs[0] if precs else "fp32", 1, align)
    if not float(link_gbps) > 0:
        raise CachesimError(f"--link-gbps {link_gbps}: the link bandwidth must be positive GB/s")
    if mode == "batch" and not trace.has_batches:
        raise CachesimError(f"{trace.source or 'the trace'} has no batches, so it cannot be "
                            "batch-replayed: pass --batch-size N (sample-based formats) or use "
                            "--mode access")
    jobs = (os.cpu_count() or 1) if jobs is None else int(jobs)
    if jobs < 1:
        raise CachesimError(f"--jobs {jobs}: give at least 1 worker")
    out_path = None
    if out is not None:
        out_path = Path(out)
        if out_path.suffix.lower() not in OUTPUT_SUFFIXES:
            raise CachesimError(f"-o {out}: write .parquet, .csv or .json")
        check_output_file(out_path, "-o")
        check_parts_dir(parts_dir(out_path), out)
    # derived columns once, in the parent: forked workers inherit them, spawned ones unpickle them
    trace.dense_ids, trace.key_table  # noqa: B018

    records: dict[str, dict] = {}
    reused: list[str] = []
    folder = None
    if out_path is not None:
        folder = parts_dir(out_path)
        _open_parts(folder, trace.fingerprint(), fresh)
        for cfg in configs:
            rec = _load_part(folder, cfg)
            if rec is not None:
                records[cfg.key] = rec
                reused.append(cfg.key)
    pending = [cfg for cfg in configs if cfg.key not in records]
    # longest first (larger caches, then fully associative ones, replay slower): the last
    # worker to finish then waits least
    pending.sort(key=lambda c: (-parse_size(c.size).resolve(trace.n_distinct),
                                c.ways is not None))
    ran: list[str] = []

    def on_done(cfg, rec):
        if folder is not None:
            _save_part(folder, cfg, rec)
        records[cfg.key] = rec
        ran.append(cfg.key)

    try:
        prepare = getattr(trace, "prepare_sweep", None)
        if prepare is not None:  # a streamed trace: its workers open the file themselves
            prepare(pending, remote=dask is not None)
            source = None
        _execute(trace, pending, jobs, dask, on_done, progress, source)
    except KeyboardInterrupt:
        raise SweepInterrupted(len(records), len(configs), folder) from None
    table = build_table(trace, configs, records, precs, cache_precision=cache_precision,
                        align=align, link_gbps=link_gbps, dims=dims_arr)
    if out_path is not None:
        write_table(table, out_path)
    return SweepResult(table=table, configs=configs, ran=ran, reused=reused,
                       seconds=time.perf_counter() - t0)


def build_table(trace, configs, records: dict, precisions, *, cache_precision="fp32", align=1,
                link_gbps=DEFAULT_LINK_GBPS, dims=None):
    """One row per configuration x precision, in configuration order."""
    import polars as pl
    rows = []
    for cfg in configs:
        rec = records[cfg.key]
        base = {"policy": cfg.policy, "size": cfg.size, "ways": cfg.ways,
                "per_table": cfg.per_table, "mode": cfg.mode, "cache_model": cfg.cache_model,
                "warp": fbgemm_warp(cfg.cache_model, rec.get("ways")),
                "prefetch_pipeline": cfg.prefetch_pipeline}
        counters = {}
        for k, v in rec.items():
            if (k in ("per_table", "policy", "size", "mode", "prefetch_pipeline")
                    or isinstance(v, (dict, list))
                    or v is None):  # a counter the mode does not have (Result: None)
                continue
            counters["replay_seconds" if k == "seconds" else
                     "ways_used" if k == "ways" else k] = v
        for prec in precisions:
            costs = costs_for(rec, trace, prec, cache_precision=cache_precision,
                              inference=cfg.inference, align=align, link_gbps=link_gbps,
                              dims=dims)
            row = dict(base)
            row["precision"] = costs.pop("precision")
            row.update(counters)
            row.update(costs)
            rows.append(row)
    table = pl.DataFrame(rows, infer_schema_length=None)
    casts = {c: pl.Int64 for c in ("ways", "ways_used", "warp", "steps") if c in table.columns}
    casts.update({c: pl.Float64 for c in table.columns
                  if c.endswith(("_per_step", "_ms_per_step")) or c == "transfer_vs_no_cache"})
    return table.with_columns([pl.col(c).cast(t) for c, t in casts.items()])


