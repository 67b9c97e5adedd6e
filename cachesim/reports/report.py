"""`cachesim report`: one command from a trace (or saved results) to a sizing report.

`build_report(trace_path, out_dir, ...)` runs what is missing (trace analysis, the exact LRU
curve, hit ratio per policy and size, a batch-mode sweep with transfer and memory costs per
precision, a per-table allocation under the budget, and training with `train=True`), then writes,
into a staging folder moved into place at the end (an interrupted run leaves nothing
half-written; `cachesim.files.output_dir`: a user's non-empty folder needs `force`, and a file
cachesim did not write is never overwritten or deleted):

- `report.html`: one self-contained page (plots embedded) with the recommendation on top;
- `report.md` with the plots as PNG files beside it;
- `results.json` and `results.parquet`: every number behind the report.

Each section appears when its data exists. `from_results` reads a `results.json` written by an
earlier report, a `cachesim sweep` table or a `cachesim train` table instead of recomputing.
With `ReportOptions.stream` the trace is read in chunks, never whole, and every section comes
from a streamed computation (`reports.stream`: the same numbers; what cannot stream is left out
and the report says so).
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CachesimError
from ..files import REPORT_FILES, check_output_dir, jsonable, output_dir
from ..policies import batch_policy_names
from ..sizes import Capacity, format_bytes, parse_bytes
from .render import Figure, Section, Table, to_html, to_markdown
from .accuracy import AUC_TOLERANCE, auc_comparison

DEFAULT_FRACTIONS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
DEFAULT_PRECISIONS = ("fp32", "fp16", "int8", "int4")


@dataclass
class ReportOptions:
    # the sweep's policies: every registered policy with a batch rule unless given
    policies: tuple = field(default_factory=lambda: tuple(batch_policy_names()))
    # access-mode curves: `policies`, then these (those registered), then OPT
    curve_policies: tuple = ("lru", "lfu", "fifo", "clock", "sieve", "s3fifo", "arc")
    fractions: tuple = DEFAULT_FRACTIONS
    precisions: tuple = DEFAULT_PRECISIONS
    ways: int | None = 32
    # the batch replay's cache: 'fbgemm', 'ideal', 'fbgemm-inference', None = the default; one
    # cache per table; FBGEMM's prefetch pipeline (fbgemm, lru); warp 32 or 64 (FBGEMM's
    # models); num_embeddings per table (replacing the trace's)
    cache_model: str | None = None
    per_table: bool = False
    prefetch_pipeline: bool = False
    warp: int | None = None
    table_rows: tuple | None = None
    table_groups: str | None = None  # fbgemm: which tables share a cache (simulate/groups.py)
    target_hit_ratio: float = 0.9
    budget: str | None = None
    link_gbps: float | None = None
    train: bool = False
    train_sizes: tuple = ("1%", "5%")
    train_precisions: tuple = ("int8", "int4")
    train_seeds: tuple = (0, 1, 2)
    train_model: str = "small"
    jobs: int | None = None
    command: str = ""
    progress: bool = False
    extra: dict = field(default_factory=dict)
    # read the trace in chunks (`reports.stream`), `chunk_accesses` a chunk (None: the default)
    stream: bool = False
    chunk_accesses: int | None = None


# -- entry point ---------------------------------------------------------------------------------
def build_report(trace_or_path, out_dir, options: ReportOptions | None = None, *,
                 from_results=None, fmt: str | None = None, batch_size: int | None = None,
                 force: bool = False) -> Path:
    """Compute what is missing, render, and move the finished report into `out_dir`.

    `out_dir` follows `cachesim.files.output_dir`'s rule, checked before any work: a new or
    empty folder, or an earlier report's (marked `.cachesim`), is written; a non-empty folder
    of the user's is refused unless `force` (then the report's files go beside the user's,
    none of which is ever overwritten or deleted)."""
    opt = options or ReportOptions()
    t0 = time.perf_counter()
    if not 0 < float(opt.target_hit_ratio) < 1:
        raise CachesimError(f"--target-hit-ratio {opt.target_hit_ratio}: give a ratio between 0 "
                            "and 1, such as 0.9")
    if opt.budget is not None:
        parse_bytes(opt.budget, "--budget")  # before the trace is read
    check_output_dir(out_dir, "-o", force, names=REPORT_FILES, command="report")
    from ..io import Trace
    if opt.stream and not isinstance(trace_or_path, Trace):
        from .stream import StreamedReportTrace
        trace = StreamedReportTrace.open(trace_or_path, fmt, batch_size=batch_size,
                                         table_rows=opt.table_rows,
                                         chunk_accesses=opt.chunk_accesses,
                                         progress=opt.progress)
        try:
            return _build(trace, out_dir, opt, t0, from_results, force)
        finally:
            trace.close()
    trace = _load_trace(trace_or_path, fmt, batch_size)
    if opt.table_rows:
        from ..simulate.fbgemm import with_table_rows
        trace = with_table_rows(trace, list(opt.table_rows))
    return _build(trace, out_dir, opt, t0, from_results, force)


def _streamed(trace) -> bool:
    """Whether `trace` is a streamed report's (`reports.stream.StreamedReportTrace`)."""
    from .stream import StreamedReportTrace
    return isinstance(trace, StreamedReportTrace)


def _build(trace, out_dir, opt: ReportOptions, t0: float, from_results, force: bool) -> Path:
    """`build_report` of a loaded trace (in memory, or streamed)."""
    if not trace.has_batches and (opt.per_table or opt.prefetch_pipeline or opt.warp
                                  or opt.table_groups):
        raise CachesimError(f"--per-table, --table-groups, --prefetch-pipeline and --warp set "
                            f"the batch replay's cache, and {trace.source or 'the trace'} has "
                            "no batches; pass --batch-size N (sample-based formats) or drop "
                            "them")
    if trace.has_batches:  # the cache's options, checked before any work
        from ..simulate.batch import check_model_options
        from ..simulate.result import FBGEMM_MODELS
        model = _cache_model(trace, opt)
        if model in FBGEMM_MODELS:  # once here, whichever worker replays
            from ..simulate.fbgemm import TableRowsInferredWarning, table_rows_warning
            msg = table_rows_warning(trace)
            if msg:
                import warnings
                warnings.warn(msg, TableRowsInferredWarning, stacklevel=2)
        check_model_options(model, _sweep_policies(opt, model), [opt.ways], [opt.per_table],
                            opt.prefetch_pipeline, opt.warp)
        if opt.table_groups is not None:
            from ..simulate.groups import check_groups_model
            check_groups_model(opt.table_groups, model)
            _groups(trace, opt)  # the spec against the trace's tables, before any work
        if opt.train:  # and the executor's (it refuses the direct-mapped inference cache)
            from ..executor.cache import check_cache_model
            check_cache_model(model, opt.ways)
    saved = _load_saved(from_results, trace) if from_results else {}
    if saved.get("sweep"):
        _check_saved_model(from_results, saved["sweep"], _cache_model(trace, opt))
    results = dict(saved)
    results["meta"] = _meta(trace, opt, t0, saved.get("meta"))
    if saved.get("sweep"):  # the loaded rows' caches, which may be other ways than --ways
        results["meta"]["sweep_ways"] = sorted({r.get("ways") for r in saved["sweep"]},
                                               key=lambda w: (w is None, w or 0))

    budget = (None if opt.budget is None
              else Capacity("bytes", parse_bytes(opt.budget, "--budget"), str(opt.budget)))
    if "trace" not in results:
        results["trace"] = _trace_summary(trace)
    if "lru_exact" not in results:
        results["lru_exact"] = _lru_exact(trace)
    if "sweep" not in results:
        results["sweep"] = _sweep(trace, opt)
    if budget is not None:
        smallest = min(r["cache_bytes"] + r["metadata_bytes"] for r in results["sweep"])
        if budget.value < smallest:
            raise CachesimError(
                f"--budget {opt.budget} ({format_bytes(budget.value)}) is below the smallest "
                f"cache in the sweep ({format_bytes(smallest)} of cache and metadata); raise the "
                "budget or add smaller sizes")
    if "curves" not in results:
        results["curves"] = _policy_curves(trace, opt)
    why = opt.train and "training" not in results and _streamed(trace) and \
        trace.training_refusal()
    if why:
        from .stream import TRAINING_SKIPPED
        trace.skipped.append(TRAINING_SKIPPED.format(why=why))
    elif opt.train and "training" not in results:
        # train the fixed grid plus what the sweep alone would recommend, so the
        # recommendation's accuracy is measured rather than assumed
        pre = recommend(results, opt.target_hit_ratio, None if budget is None else budget.value)
        extra = [(c["precision"], c["size"], c["policy"]) for c in (pre["best"], pre["runner_up"])
                 if c is not None]
        results["training"] = _training(trace, opt, extra)
    results["recommendation"] = recommend(results, opt.target_hit_ratio,
                                          None if budget is None else budget.value)
    # both follow the recommendation: the memory section shows it and the runner-up (the same
    # records), the allocation splits its cache size across the tables
    results["memory"] = _memory(trace, results["sweep"], results["recommendation"])
    if "allocation" not in results or not _allocation_matches(results):
        results["allocation"] = _allocation(trace, opt, budget, results["recommendation"])
    if _streamed(trace):
        results["streamed"] = {"chunk_accesses": trace.chunk, "skipped": list(trace.skipped),
                               "note": "every section from a streamed computation, in memory "
                                       "bounded by the distinct keys and one chunk"}
    results["meta"]["seconds"] = round(time.perf_counter() - t0, 3)

    with output_dir(out_dir, "-o", force=force, command="report") as tmp:
        sections = _sections(trace, results, opt, tmp)
        title = f"Embedding cache sizing report: {Path(results['meta']['trace']).name}"
        subtitle = (f"cachesim {results['meta']['cachesim_version']}, "
                    f"{results['meta']['created']}, {results['meta']['seconds']:.1f} s")
        (tmp / "report.html").write_text(to_html(title, subtitle, sections), encoding="utf-8")
        (tmp / "report.md").write_text(to_markdown(title, subtitle, sections), encoding="utf-8")
        (tmp / "results.json").write_text(json.dumps(jsonable(results), indent=1),
                                          encoding="utf-8")
        _results_table(results).write_parquet(tmp / "results.parquet")
    return Path(out_dir)


# -- inputs --------------------------------------------------------------------------------------
def _load_trace(trace_or_path, fmt, batch_size):
    from ..io import Trace, read_trace
    if isinstance(trace_or_path, Trace):
        trace = trace_or_path
    else:
        opts = {} if batch_size is None else {"batch_size": batch_size}
        trace = read_trace(trace_or_path, format=fmt, **opts)
    trace.require_nonempty()
    return trace


def fingerprint(trace) -> dict:
    """What identifies a trace for saved results: `digest`, the one trace fingerprint
    (`Trace.fingerprint`: a hash of its keys, batches and tables; a streamed trace's own,
    `sweep_stream.stream_fingerprint`), and its length, tables, distinct keys and batches,
    which the report shows."""
    if _streamed(trace):
        return trace.fingerprint_record()
    return {"digest": trace.fingerprint(), "accesses": len(trace), "tables": trace.n_tables,
            "distinct": trace.n_distinct,
            "batches": trace.n_batches}


def _load_saved(path, trace) -> dict:
    """Saved results: a report's results.json, or a sweep/train table (.parquet/.csv/.json)."""
    import polars as pl
    p = Path(path)
    if not p.exists():
        raise CachesimError(f"--from {path}: no such file; give a results.json from an earlier "
                            "report, or a table written by `cachesim sweep -o` or `cachesim "
                            "train -o`")
    fp = fingerprint(trace)
    if p.suffix == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CachesimError(f"--from {path}: not valid JSON ({err}); give a results.json "
                                "written by `cachesim report`") from None
        if isinstance(data, dict) and "meta" in data:
            saved_fp = data["meta"].get("fingerprint")
            if saved_fp != fp:
                raise CachesimError(
                    f"--from {path}: these results are from another trace ({saved_fp}), not "
                    f"this one ({fp}); rerun without --from or pass the matching trace")
            return {k: v for k, v in data.items() if k in
                    ("trace", "lru_exact", "curves", "sweep", "memory", "training",
                     "allocation", "meta")}
        try:
            table = pl.read_json(p)
        except Exception as err:  # noqa: BLE001 - any parse failure is the user's file
            raise CachesimError(f"--from {path}: cannot read it as a results table ({err})") from None
    else:
        try:
            table = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p)
        except Exception as err:  # noqa: BLE001
            raise CachesimError(f"--from {path}: cannot read it as a results table ({err}); "
                                "give a .parquet, .csv or .json table") from None
    rows = table.to_dicts()
    if not rows:
        raise CachesimError(f"--from {path}: the table has no rows")
    if "auc" in table.columns:
        if _streamed(trace):
            raise CachesimError(f"--from {path}: a training table is checked against the "
                                "trace's samples, which a streamed report does not read; run "
                                "the report with --no-stream")
        n_samples = (int(trace.sample.max()) + 1 if trace.sample is not None and len(trace)
                     else len(trace))
        r0 = rows[0]
        if {"train_samples", "test_samples", "epochs"} <= set(r0):
            seen = int(r0["train_samples"]) // max(1, int(r0["epochs"])) + int(r0["test_samples"])
            if seen != n_samples:
                raise CachesimError(
                    f"--from {path}: this training ran on {seen:,} samples but the trace has "
                    f"{n_samples:,}: the results are from another trace")
        return {"training": rows}
    if "hit_ratio" not in table.columns:
        raise CachesimError(f"--from {path}: not a sweep or train table (no hit_ratio column)")
    lacking = [c for c in ("policy", "size", "cache_bytes", "metadata_bytes")
               if c not in table.columns]
    if lacking:
        raise CachesimError(f"--from {path}: not a `cachesim sweep -o` table (no "
                            f"{', '.join(lacking)} column; a miss-ratio curve?); give a sweep's "
                            "or train's table, or an earlier report's results.json")
    n = rows[0].get("requested_indices", rows[0].get("requests"))
    if n is not None and int(n) != fp["accesses"]:
        raise CachesimError(f"--from {path}: these results replayed {int(n):,} accesses but the "
                            f"trace has {fp['accesses']:,}: they are from another trace")
    return {"sweep": rows}


def _meta(trace, opt: ReportOptions, t0: float, saved_meta: dict | None) -> dict:
    import matplotlib
    import numba
    import polars
    from ..version import __version__
    return {
        "trace": str(trace.source),
        "fingerprint": fingerprint(trace),
        "command": opt.command or ("build_report() from Python, in: " + shlex.join(sys.argv)),
        "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cachesim_version": __version__,
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "numba": numba.__version__, "polars": polars.__version__,
                     "matplotlib": matplotlib.__version__},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "target_hit_ratio": float(opt.target_hit_ratio),
        "budget": opt.budget,
        "precisions": list(opt.precisions),
        **_cache_meta(trace, opt),
        "from_results": bool(saved_meta),
    }


# -- computations --------------------------------------------------------------------------------
def _trace_summary(trace) -> dict:
    if _streamed(trace):
        a, counts = trace.analysis(), trace.counts
    else:
        from ..analysis.profile import analyze
        a = analyze(trace)
        counts = np.bincount(trace.dense_ids, minlength=trace.n_distinct)
    freq = np.sort(counts)[::-1]
    ranks = np.unique(np.geomspace(1, freq.shape[0], num=min(400, freq.shape[0])).astype(np.int64))
    return {"analysis": a, "rank_frequency": {"rank": ranks.tolist(),
                                              "accesses": freq[ranks - 1].tolist()},
            "table_names": list(trace.table_names), "table_rows": trace.table_rows.tolist(),
            "table_dims": trace.table_dims.tolist()}


def _lru_exact(trace) -> dict:
    """The exact LRU curve, thinned to about 400 log-spaced sizes for plotting."""
    if _streamed(trace):
        curve = trace.lru_curve()
    else:
        from ..analysis.mrc import mrc
        curve = mrc(trace, policy="lru", method="exact")
    size = curve["size"].to_numpy()
    miss = curve["miss_ratio"].to_numpy()
    keep = np.unique(np.concatenate([[0], np.geomspace(1, max(1, size[-1]), 400).astype(np.int64)]))
    keep = keep[keep < size.shape[0]]
    return {"size": size[keep].tolist(), "miss_ratio": miss[keep].tolist(),
            "distinct": trace.n_distinct}


def _size_texts(fractions) -> list[str]:
    return [f"{100 * f:g}%" for f in fractions]


def _policy_curves(trace, opt: ReportOptions) -> list[dict]:
    """Access-mode hit ratio per policy (and OPT, the ceiling) at each size."""
    from ..simulate.access import replay
    from ..policies import get_policy, policy_names
    known = set(policy_names())
    out = []
    names = [get_policy(p).name for p in opt.policies]
    names += [p for p in (*opt.curve_policies, "opt") if p in known]
    for pol in dict.fromkeys(names):
        for text in _size_texts(opt.fractions):
            try:  # fully associative
                r = (trace.replay_access(pol, text) if _streamed(trace) else
                     replay(trace, pol, text, ways=None, mode="access"))
            except CachesimError:  # a policy that cannot run at this size (S3-FIFO below 10 rows)
                continue
            if r is None:  # (streamed: a policy it cannot replay; `trace.skipped` says so)
                continue
            out.append({"policy": pol, "size": text, "capacity": r.capacity,
                        "share": r.capacity / trace.n_distinct, "hit_ratio": r.hit_ratio,
                        "misses": r.misses, "requests": r.requests})
    return out


_MODEL_NAMES = {"fbgemm": "FBGEMM's training cache", "fbgemm-inference": "FBGEMM's inference cache"}


def _check_saved_model(path, rows: list[dict], model: str | None) -> None:
    """CachesimError when a loaded sweep's rows were replayed by another cache model than the
    report's: its curves, memory and allocation follow the report's model, so the two would
    describe different caches."""
    theirs = sorted({str(r.get("cache_model")) for r in rows if r.get("cache_model") is not None})
    if model is None or not theirs or theirs == [model]:
        return
    raise CachesimError(f"--from {path}: its rows were replayed by the {', '.join(theirs)} cache "
                        f"model, and this report replays {model}; pass --cache-model "
                        f"{theirs[0]} to report on them, or sweep again with --cache-model {model}")


def _row_geometry(meta: dict, c: dict) -> dict:
    """`meta` with one configuration's own cache (its ways, warp, per-table caches), which a
    sweep loaded by --from may give other than the report's options."""
    out = dict(meta, ways=c.get("ways", meta.get("ways")), sweep_ways=None)
    if c.get("per_table") is not None:
        out["per_table"] = c["per_table"] in (True, "yes")
    if "warp" in c:
        out["warp"] = c["warp"] or None
    return out


def _cache_model_words(model: str | None) -> str:
    """The sentence naming the batch cache model the recommendation was replayed with."""
    if model in _MODEL_NAMES:
        return f" Replayed through {_MODEL_NAMES[model]}, batch by batch (cache model {model})."
    if model:
        return f" Replayed through cachesim's {model} cache model, not FBGEMM's."
    return ""


def _cache_model(trace, opt: ReportOptions) -> str | None:
    """The batch replay's cache model of this report (None: the trace replays per access)."""
    from ..simulate.result import resolve_cache_model
    return resolve_cache_model(opt.cache_model, inference=True) if trace.has_batches else None


def _cache_meta(trace, opt: ReportOptions) -> dict:
    """The cache the report replayed, as `meta` records it: `ways` (those used: FBGEMM's are its
    warp's), `cache_model`, `warp` (FBGEMM's models, else None), `per_table`,
    `prefetch_pipeline`."""
    from ..simulate.result import fbgemm_warp
    model = _cache_model(trace, opt)
    ways = opt.ways
    if opt.warp is not None and fbgemm_warp(model, opt.warp) and ways != 1:
        ways = int(opt.warp)
    return {"ways": ways, "cache_model": model, "warp": fbgemm_warp(model, ways),
            "per_table": bool(opt.per_table), "prefetch_pipeline": bool(opt.prefetch_pipeline),
            "table_groups": _groups(trace, opt)}


def _groups(trace, opt: ReportOptions) -> str | None:
    """The report's table groups as text ('C1-C13/C14-C26'), None for one cache of all tables
    (or one per table: `per_table`); CachesimError for a spec that does not fit the trace."""
    if opt.table_groups is None or not trace.has_batches:
        return None
    from ..simulate.groups import groups_text, resolve_groups
    groups = resolve_groups(opt.table_groups, trace, opt.prefetch_pipeline, opt.per_table)
    return None if groups is None else groups_text(groups, trace.table_names)


def _geometry_words(meta: dict) -> str:
    """'32-way set-associative, warp 32, one cache over all tables, no prefetch pipeline'."""
    name = lambda w: "fully associative" if w in (None, "none") else f"{w}-way set-associative"
    many = [w for w in meta.get("sweep_ways") or [] if w != "none"] or None
    if many is not None and len(many) > 1:  # a loaded sweep of several: each row's own
        words = ["each row's ways (" + ", ".join(name(w) for w in many) + ")"]
    else:
        words = [name(many[0] if many else meta.get("ways"))]
    if meta.get("warp"):
        words.append(f"warp {meta['warp']}")
    if meta.get("table_groups"):
        words.append(f"one cache per table group ({meta['table_groups']})")
    else:
        words.append("one cache per table" if meta.get("per_table") else
                     "one cache over all tables")
    if meta.get("cache_model") == "fbgemm":
        words.append("FBGEMM's prefetch pipeline" if meta.get("prefetch_pipeline") else
                     "no prefetch pipeline")
    return ", ".join(words)


def _sweep(trace, opt: ReportOptions) -> list[dict]:
    from ..sweep import run_sweep
    mode = "batch" if trace.has_batches else "access"
    model = _cache_model(trace, opt)
    policies = _sweep_policies(opt, model)
    kwargs = {} if opt.link_gbps is None else {"link_gbps": opt.link_gbps}
    if mode == "batch":
        kwargs.update(per_table="yes" if opt.per_table else "no", warp=opt.warp,
                      prefetch_pipeline=opt.prefetch_pipeline, table_groups=opt.table_groups)
    jobs = opt.jobs  # (a streamed batch-mode pool is spawned, not forked: `sweep._mp_context`)
    res = run_sweep(trace.trace if _streamed(trace) else trace, policies,
                    _size_texts(opt.fractions),
                    ways=[opt.ways], precisions=list(opt.precisions), mode=mode,
                    jobs=jobs, progress=opt.progress, cache_model=model, **kwargs)
    return res.table.to_dicts()


_MEMORY_KEYS = ("cache_lines", "store_data_bytes", "scale_bias_bytes", "padding_bytes",
                "store_bytes", "cache_bytes", "tag_bytes", "policy_state_bytes",
                "metadata_bytes", "fp32_bytes", "ratio_vs_fp32_excl_metadata")


def _memory(trace, sweep_rows: list[dict], rec: dict) -> list[dict]:
    """What the memory section shows, in order: the recommended configuration, the runner-up,
    the other precisions at the recommended policy, size and ways (all sweep rows; policy,
    size, precision, total, device and ratio copied from the recommendation's own records so
    the section and the box cannot disagree), then the paper's two headline configurations
    (INT8 + 5% and INT4 + 1% of the rows) with the recommended policy's metadata and ways."""
    from ..costs import memory_records
    out, seen = [], set()

    def from_sweep(i, role, c=None):
        r = sweep_rows[i]
        c = c or {"policy": r["policy"], "size": r["size"], "ways": r.get("ways"),
                  "precision": r["precision"], "total_bytes": int(r["total_bytes"]),
                  "device_bytes": int(r["cache_bytes"]) + int(r["metadata_bytes"]),
                  "ratio_vs_fp32": float(r["ratio_vs_fp32"]), "hit_ratio": float(r["hit_ratio"])}
        rec_ = {"role": role, "sweep_index": i,
                **{k: c[k] for k in ("policy", "size", "ways", "precision", "total_bytes",
                                     "device_bytes", "ratio_vs_fp32", "hit_ratio")},
                **{k: r.get(k) for k in _MEMORY_KEYS}}
        rec_["cache_rows"] = int(r["cache_lines"])
        out.append(rec_)
        seen.add(i)

    best, runner = rec.get("best"), rec.get("runner_up")
    for role, c in (("recommended", best), ("runner-up", runner)):
        if c is not None:
            from_sweep(c["index"], role, c)
    if best is not None:
        for i, r in enumerate(sweep_rows):
            if i not in seen and (r["policy"], str(r["size"]), r.get("ways")) == (
                    best["policy"], str(best["size"]), best.get("ways")):
                from_sweep(i, "same cache")
    pol = best["policy"] if best else "lru"
    ways = best.get("ways") if best else None
    ways = None if ways in (None, "none") else int(ways)
    for prec, share in (("int8", "5%"), ("int4", "1%")):
        for m in memory_records(trace.table_rows, trace.table_dims, [prec], [share],
                                policy=pol, ways=ways):
            m.update(role=f"paper: {prec.upper()} + {share}", sweep_index=None, policy=pol,
                     size=share, ways=ways, precision=prec, hit_ratio=None,
                     device_bytes=int(m["cache_bytes"]) + int(m["metadata_bytes"]))
            out.append(m)
    return out


def _sweep_policies(opt: ReportOptions, model) -> list[str]:
    """The policies the sweep (and training) run: FBGEMM's caches are lru or lfu (the
    direct-mapped inference cache lru only); other batch rules are cachesim's own."""
    policies = list(opt.policies)
    if model in ("fbgemm", "fbgemm-inference"):
        from ..simulate.fbgemm import POLICIES as FBGEMM_POLICIES
        allowed = ["lru"] if (model == "fbgemm-inference" and opt.ways == 1
                              or opt.prefetch_pipeline) else FBGEMM_POLICIES
        policies = [p for p in policies if p in allowed] or ["lru"]
    return policies


def _training(trace, opt: ReportOptions, extra=()) -> list[dict]:
    """Train the baselines and train_precisions x train_sizes (first policy), then each
    (precision, size, policy) in `extra` not covered yet; every configuration on every seed;
    behind the report's cache (model, per-table, pipeline, warp)."""
    if _streamed(trace):
        def train(_trace, **kw):  # batches read as they train (`StreamedReportTrace.train`)
            return trace.train(**kw)
    else:
        from ..executor import train
    common = dict(ways=opt.ways, seed=list(opt.train_seeds), model=opt.train_model,
                  progress=opt.progress, cache_model=_cache_model(trace, opt) or "ideal",
                  per_table=opt.per_table, prefetch_pipeline=opt.prefetch_pipeline,
                  warp=opt.warp, table_groups=opt.table_groups)
    recs = train(trace, precision=list(opt.train_precisions), size=list(opt.train_sizes),
                 policy=[_sweep_policies(opt, common["cache_model"])[0]], **common)
    done = {(r["precision"], str(r["size"]), r.get("policy")) for r in recs}
    from ..executor.quant import PRECISIONS as trainable
    for prec, size, pol in extra:
        if prec == "fp32" or prec not in trainable or (prec, str(size), pol) in done:
            continue  # the executor stores fp32, int8 or int4 rows
        recs += train(trace, precision=[prec], size=[size], policy=[pol], baselines=False,
                      **common)
        done.add((prec, str(size), pol))
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in recs]


def _allocation_budget(rec: dict, budget) -> tuple[int | None, str]:
    """The bytes the allocation splits: the recommended cache's FP32 lines."""
    best = (rec or {}).get("best")
    if best is None:
        return None, ""
    lines = best.get("cache_bytes")
    why = (f"the recommended {best['policy'].upper()} cache of {best['size']} of the rows: its "
           f"FP32 cache lines, without tags and policy state")
    if budget is not None:
        why += (f" (the --budget of {format_bytes(budget.value)} bounds the recommendation's "
                "device bytes, tags and policy state included)")
    return (None if lines is None else int(lines)), why


def _allocation_matches(results: dict) -> bool:
    """A saved allocation is reused only when it split the recommended cache's bytes."""
    al = results.get("allocation")
    best = (results.get("recommendation") or {}).get("best") or {}
    return bool(al) and al.get("budget_bytes") == best.get("cache_bytes")


def _allocation(trace, opt, budget, rec: dict) -> dict | None:
    """Split the recommended cache's bytes (its FP32 lines) across one cache per table."""
    if trace.n_tables < 2:
        return None
    from ..analysis.allocate import allocate
    budget_bytes, why = _allocation_budget(rec, budget)
    if budget_bytes is None:
        return None
    rec = (trace.allocate(budget_bytes) if _streamed(trace) else
           allocate(trace, budget_bytes)).to_record()
    tot = rec["totals"]
    out = {"budget_bytes": budget_bytes, "budget_source": why, "note": rec["note"],
           "tables": rec["tables"]}
    for rule in ("greedy", "torchrec", "unified"):
        out[rule] = {"rows": tot[f"{rule}_rows"], "hits": tot[f"{rule}_hits"],
                     "hit_ratio": tot[f"{rule}_hit_ratio"]}
    out["greedy"]["rows_per_table"] = [t["rows"] for t in rec["tables"]]
    out["torchrec"]["rows_per_table"] = [t["torchrec_rows"] for t in rec["tables"]]
    out["table_names"] = [t["table"] for t in rec["tables"]]
    return jsonable(out)


# -- recommendation ------------------------------------------------------------------------------
def _accuracy_ok(training: list[dict] | None, precision: str, size: str, policy: str):
    """(ok?, AUC drop vs fp32, comparison) for a configuration: ok is True when the paired
    comparison shows it within the band, False when it shows it below, None when training did
    not cover it or cannot tell at this sample size (see `auc_comparison`)."""
    cmp_ = auc_comparison(training, precision, size, policy)
    ok = {"held": True, "baseline": True, "lost": False}.get(cmp_["verdict"])
    drop = None if cmp_["diff_mean"] is None else -cmp_["diff_mean"]
    return ok, drop, cmp_


def recommend(results: dict, target: float, budget_bytes: int | None) -> dict:
    """The cheapest configuration (total memory: store + cache + metadata) whose hit ratio meets
    `target`, whose device bytes (cache + metadata) fit the budget, and whose accuracy held where
    training measured it; then the runner-up. Every figure comes from `results['sweep']`."""
    rows = results.get("sweep") or []
    training = results.get("training")
    cands = []
    for i, r in enumerate(rows):
        device = int(r["cache_bytes"]) + int(r["metadata_bytes"])
        ok_acc, drop, acc = _accuracy_ok(training, r["precision"], r["size"], r["policy"])
        cands.append({"index": i, "policy": r["policy"], "size": r["size"], "ways": r.get("ways"),
                      "per_table": r.get("per_table"), "warp": r.get("warp"),
                      "precision": r["precision"], "hit_ratio": float(r["hit_ratio"]),
                      "total_bytes": int(r["total_bytes"]), "device_bytes": device,
                      "store_bytes": int(r["store_bytes"]),
                      "cache_bytes": int(r["cache_bytes"]),
                      "metadata_bytes": int(r["metadata_bytes"]),
                      "cache_lines": int(r["cache_lines"]),
                      "ratio_vs_fp32": float(r["ratio_vs_fp32"]),
                      "h2d_bytes_per_step": r.get("h2d_bytes_per_step"),
                      "d2h_bytes_per_step": r.get("d2h_bytes_per_step"),
                      "transfer_ms_per_step": r.get("transfer_ms_per_step"),
                      "accuracy_ok": ok_acc, "auc_drop": drop, "accuracy": acc,
                      "meets_target": float(r["hit_ratio"]) >= target,
                      "fits_budget": budget_bytes is None or device <= budget_bytes})
    good = [c for c in cands if c["meets_target"] and c["fits_budget"] and c["accuracy_ok"] is not False]
    key = lambda c: (c["total_bytes"], c["transfer_ms_per_step"] or 0.0, -c["hit_ratio"])
    good.sort(key=key)
    reasons = []
    if good:
        best = good[0]
        runner = good[1] if len(good) > 1 else None
        status = "met"
    else:
        fitting = [c for c in cands if c["fits_budget"] and c["accuracy_ok"] is not False]
        fitting.sort(key=lambda c: (-c["hit_ratio"], c["total_bytes"]))
        best = fitting[0] if fitting else None
        runner = fitting[1] if len(fitting) > 1 else None
        status = "not met"
        reasons.append(f"no configuration in the sweep reaches the target hit ratio {target:g}"
                       + ("" if budget_bytes is None else " within the budget")
                       + "; the highest hit ratio is recommended instead")
    if best is not None and best["accuracy"]["verdict"] == "not measured":
        reasons.append("accuracy was not measured for this configuration (run with --train)")
    elif best is not None and best["accuracy"]["verdict"] == "not distinguishable":
        reasons.append("accuracy: " + best["accuracy"]["text"] + "; more test samples or seeds "
                       "would tell whether it stays within the band")
    return {"status": status, "target_hit_ratio": target, "budget_bytes": budget_bytes,
            "best": best, "runner_up": runner, "candidates": len(cands),
            "meeting_target": len(good), "notes": reasons}


# -- sections ------------------------------------------------------------------------------------
def _ms(ms) -> str:
    if ms is None:
        return "-"
    if ms >= 1:
        return f"{ms:.2f} ms"
    if ms >= 1e-3:
        return f"{ms * 1e3:.1f} µs"
    return f"{ms * 1e6:.0f} ns"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * float(x):.1f}%"


#: The columns the recommendation box and the memory section share, formatted by one function.
_CONFIG_COLUMNS = ["policy", "size", "ways", "precision", "hit ratio", "memory", "device",
                   "vs FP32"]


def _config_cells(c: dict) -> list:
    return [c["policy"], c["size"], c["ways"], c["precision"],
            "-" if c.get("hit_ratio") is None else _pct(c["hit_ratio"]),
            format_bytes(c["total_bytes"]), format_bytes(c["device_bytes"]),
            f"{c['ratio_vs_fp32']:.2f}x"]


def _describe(c: dict) -> str:
    ways = "fully associative" if c.get("ways") in (None, "none") else f"{c['ways']}-way"
    return (f"{c['policy'].upper()} {ways} cache of {c['size']} of the rows, rows stored in "
            f"{c['precision'].upper()}")


def _sections(trace, results: dict, opt: ReportOptions, folder: Path) -> list[Section]:
    from . import figures
    rec = results["recommendation"]
    meta = results["meta"]
    out = []
    s = Section("summary", "Recommendation")
    best, runner = rec.get("best"), rec.get("runner_up")
    if best:
        s.paragraphs.append(
            f"Use a {_describe(best)}: hit ratio {_pct(best['hit_ratio'])} (target "
            f"{_pct(rec['target_hit_ratio'])}, {rec['status']}), {format_bytes(best['total_bytes'])} "
            f"of embedding memory in all ({best['ratio_vs_fp32']:.2f}x less than every row in "
            f"FP32), {format_bytes(best['device_bytes'])} of it on the device."
            + _cache_model_words(meta.get("cache_model"))
            + f" Cache: {_geometry_words(_row_geometry(meta, best))}.")
        rows = []
        for label, c in (("recommended", best), ("runner-up", runner)):
            if c is None:
                continue
            acc = c["accuracy"]["text"]
            rows.append([label, *_config_cells(c),
                         "-" if c["h2d_bytes_per_step"] is None else format_bytes(c["h2d_bytes_per_step"]),
                         _ms(c["transfer_ms_per_step"]),
                         acc, f"sweep[{c['index']}]"])
        s.tables.append(Table(["", *_CONFIG_COLUMNS, "H2D/step", "link time/step", "accuracy",
                               "results.json"], rows))
        budget_txt = ("" if rec["budget_bytes"] is None else
                      f" within the device budget of {format_bytes(rec['budget_bytes'])}")
        if rec["meeting_target"]:
            s.bullets.append(f"Why: of {rec['candidates']} configurations swept, "
                             f"{rec['meeting_target']} reach the target hit ratio{budget_txt}; "
                             "the recommended one needs the least memory among them.")
        else:
            s.bullets.append(f"Why: none of the {rec['candidates']} configurations swept reaches "
                             f"the target{budget_txt}; the recommended one has the highest hit "
                             "ratio, and the least memory among those that tie.")
        if (results.get("sweep") or [{}])[0].get("mode", "batch") == "batch":
            s.bullets.append("Hit ratio here is per access, as everywhere in cachesim: the "
                             "share of each batch's accesses whose row was cached when the "
                             "batch began (the bytes moved follow the batch's unique misses).")
        else:
            s.bullets.append("The trace has no batches, so the sweep replayed one access at a "
                             "time: hit ratio is per access, and bytes are totals over the trace.")
        if runner:
            s.bullets.append(f"Runner-up: {_describe(runner)}, {format_bytes(runner['total_bytes'])} "
                             f"at hit ratio {_pct(runner['hit_ratio'])}.")
    for note in rec.get("notes", []):
        s.bullets.append(note[0].upper() + note[1:] + ".")
    streamed = results.get("streamed")
    if streamed:
        s.bullets.append(f"The trace was read in chunks of {streamed['chunk_accesses']:,} "
                         "accesses (--stream), never whole: every section comes from a streamed "
                         "computation with the in-memory report's numbers.")
        s.bullets += streamed["skipped"]
    out.append(s)

    tr = results["trace"]
    a = tr["analysis"]
    s = Section("trace", "Trace")
    ov = a.get("overall", a)
    s.paragraphs.append(
        f"{Path(meta['trace']).name}: {meta['fingerprint']['accesses']:,} accesses over "
        f"{meta['fingerprint']['tables']} table(s), {meta['fingerprint']['distinct']:,} distinct rows"
        + (f", {meta['fingerprint']['batches']:,} batches" if meta["fingerprint"]["batches"] else "")
        + f"; {sum(tr['table_rows']):,} rows in the tables' metadata.")
    zipf = ov.get("zipf") or {}
    cov = ov.get("coverage") or ov.get("hot_set_coverage") or {}
    if zipf:
        s.bullets.append(f"Popularity: Zipf exponent {zipf.get('alpha', float('nan')):.2f} "
                         f"(R² {zipf.get('r2', float('nan')):.2f}, ranks {zipf.get('rank_min')}.."
                         f"{zipf.get('rank_max')}).")
    if cov:
        s.bullets.append("Hot-set coverage: " + ", ".join(
            f"the {k} of rows take {_pct(v)} of accesses" for k, v in cov.items()) + ".")
    s.figures.append(Figure(figures.rank_frequency(tr, meta, folder),
                            "Accesses per row against the row's popularity rank (log-log)."))
    out.append(s)

    s = Section("curves", "Hit ratio vs cache size")
    ways_txt = ("fully associative" if opt.ways is None else f"{opt.ways}-way")
    s.paragraphs.append(
        f"Top panel: the hit ratio the recommendation is judged on, from the sweep ({ways_txt}"
        + (", batch replay: the share of accesses whose row was cached when their batch began)"
           if (results.get("sweep") or [{}])[0].get("mode", "batch") == "batch" else
           ", per access: the trace has no batches)")
        + ", against the target. Bottom panel, for comparison only: per-access replay of each "
        "policy at each size, fully associative (OPT, Belady's, is the ceiling no policy can "
        "pass), with the exact LRU curve; per-access hit ratios run higher than batch ones, so "
        "the target is not drawn there. Sizes are shares of the distinct rows in the trace.")
    s.figures.append(Figure(figures.hit_ratio_curves(results, meta, folder, opt),
                            figures.hit_ratio_caption(results, meta)))
    pols = sorted({r["policy"] for r in results["curves"]})
    sizes = list(dict.fromkeys(r["size"] for r in results["curves"]))
    by = {(r["policy"], r["size"]): r["hit_ratio"] for r in results["curves"]}
    s.tables.append(Table(["size", *pols], [[z, *[_pct(by.get((p, z))) for p in pols]] for z in sizes],
                          "Hit ratio per access"))
    out.append(s)

    s = Section("transfers", "Transfers")
    sw = results["sweep"]
    mode = sw[0].get("mode", "batch") if sw else "batch"
    model = meta.get("cache_model")
    s.paragraphs.append(
        ((f"Batch replay through {_MODEL_NAMES.get(model, model)} (cache model {model}, "
          if model in _MODEL_NAMES else
          f"Batch replay through cachesim's {model} cache (cache model {model}, not FBGEMM's: ")
         if mode == "batch" else "Per-access replay (")
        + f"{_geometry_words(meta)}): host-to-device bytes fetch missing rows at the "
        "storage precision; "
        + ("the inference cache writes nothing back. " if model == "fbgemm-inference" else
           "device-to-host bytes write back every evicted line (no dirty bit) and every "
           "conflict-miss update. ")
        + f"Time per step at {sw[0].get('link_gbps', 25):g} GB/s.")
    s.figures.append(Figure(figures.transfers(results, meta, folder),
                            figures.transfers_caption(results)))
    prec0 = _chosen_precision(results)
    per_step = mode == "batch"
    fb = lambda v: "-" if v is None else format_bytes(v)
    rows = [[r["policy"], r["size"], r["precision"], _pct(r["hit_ratio"]),
             fb(r["h2d_bytes_per_step"] if per_step else r.get("h2d_bytes")),
             fb(r["d2h_bytes_per_step"] if per_step else r.get("d2h_bytes")),
             _ms(r["transfer_ms_per_step"]),
             "-" if r.get("transfer_vs_no_cache") is None else f"{r['transfer_vs_no_cache']:.3f}"]
            for r in sw if r["precision"] == prec0]
    unit = "/step" if per_step else " (whole trace)"
    s.tables.append(Table(["policy", "size", "precision", "hit ratio", f"H2D{unit}",
                           f"D2H{unit}", "link time/step", "vs no cache"], rows,
                          f"At {prec0.upper()} storage"))
    out.append(s)

    s = Section("memory", "Memory")
    s.paragraphs.append("The recommended configuration, the runner-up and the other precisions "
                        "at the recommended cache, each with its own policy's metadata: host "
                        "store (all rows at the storage precision, scale and bias broken out), "
                        "device cache (FP32 lines) and cache metadata (tags and policy state, "
                        "FBGEMM's layout), against every row in FP32. The first columns are the "
                        "recommendation's own numbers. The paper's two headline configurations "
                        "follow for reference (the recommended policy's metadata; not swept, so "
                        "no hit ratio).")
    s.figures.append(Figure(figures.memory(results, meta, folder),
                            "Memory of each configuration in the table, in the same order; the "
                            "recommended bar is outlined, the paper's headlines hatched; the "
                            "dashed line is every row in FP32."))
    rows = [[r["role"], *_config_cells(r), f"{r['cache_rows']:,}",
             format_bytes(r["store_data_bytes"]), format_bytes(r["scale_bias_bytes"]),
             format_bytes(r["cache_bytes"]), format_bytes(r["metadata_bytes"]),
             f"{r['ratio_vs_fp32_excl_metadata']:.2f}x",
             "-" if r.get("sweep_index") is None else f"sweep[{r['sweep_index']}]"]
            for r in results["memory"]]
    s.tables.append(Table(["", *_CONFIG_COLUMNS, "cache rows", "store data", "scale+bias",
                           "cache", "tags+policy state", "vs FP32 (no metadata)", "results.json"],
                          rows))
    out.append(s)

    if results.get("training"):
        s = Section("accuracy", "Accuracy")
        s.paragraphs += _accuracy_paragraphs(results["training"])
        labels = {str(r.get("labels")) for r in results["training"] if r.get("labels")}
        for lab in sorted(labels):
            if lab.startswith("planted"):
                s.paragraphs.append(f"The trace has no labels: they come from a {lab}, so AUC "
                                    "measures how well each configuration learns that teacher.")
        s.figures.append(Figure(figures.accuracy(results, meta, folder),
                                f"Test AUC of each configuration minus FP32's on the same seed: "
                                f"each seed (small dots), the mean with ±2 std/√n (bars); the "
                                f"band is ±{AUC_TOLERANCE:g}, the paper's 'accuracy held'."))
        s.tables.append(Table(["precision", "size", "policy", "seeds", "test samples",
                               "AUC (mean ± std over seeds)", "ΔAUC vs FP32 (paired)",
                               "verdict", "log loss", "hit ratio"],
                              _accuracy_rows(results["training"])))
        out.append(s)

    if results.get("allocation"):
        s = Section("allocation", "Per-table allocation")
        al = results["allocation"]
        s.paragraphs.append(f"Budget {format_bytes(al['budget_bytes'])} ({al['budget_source']}), "
                            "split across one cache per table from each table's exact LRU curve "
                            "(greedy on the curves' convex hulls), against one unified cache of the "
                            "same rows and TorchRec's planner rule. These are fully associative LRU "
                            "caches replayed per access, so their hit ratios are per access and "
                            "not comparable with the batch hit ratio of the recommendation.")
        s.figures.append(Figure(figures.allocation(results, meta, folder),
                                "Rows given to each table by each rule."))
        s.tables.append(Table(["rule", "rows", "hits", "hit ratio"], _allocation_rows(al)))
        out.append(s)

    s = Section("provenance", "How this report was made")
    s.bullets += [f"Command: {meta['command']}", f"cachesim {meta['cachesim_version']}; "
                  + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
                  f"Machine: {meta['machine']}; took {meta['seconds']:.1f} s; "
                  f"created {meta['created']}.",
                  "Every number above is in results.json (and results.parquet, one row per "
                  "number); the recommendation cites its row of results.json's sweep."]
    out.append(s)
    # numbered in the order shown: a section left out (no --train: no Accuracy) leaves no gap
    numbered = [sec for sec in out if sec.key not in ("summary", "provenance")]
    for i, sec in enumerate(numbered, 1):
        sec.title = f"{i}. {sec.title}"
    return out


def _chosen_precision(results) -> str:
    best = (results.get("recommendation") or {}).get("best")
    if best:
        return best["precision"]
    precs = [r["precision"] for r in results.get("sweep", [])]
    return "int8" if "int8" in precs else (precs[0] if precs else "fp32")


def _accuracy_rows(training: list[dict]) -> list[list]:
    groups: dict = {}
    for r in training:
        groups.setdefault((r["precision"], str(r["size"]), r.get("policy") or "none"), []).append(r)
    rows = []
    for (prec, size, pol), rs in groups.items():
        auc = np.array([r["auc"] for r in rs if r.get("auc") is not None], dtype=float)
        ll = np.array([r["logloss"] for r in rs if r.get("logloss") is not None], dtype=float)
        hr = [r.get("hit_ratio") for r in rs if r.get("hit_ratio") is not None]
        tests = sorted({int(r["test_samples"]) for r in rs if r.get("test_samples") is not None})
        c = auc_comparison(training, prec, size, pol)
        diff = ("-" if c["diff_mean"] is None or prec == "fp32" else f"{c['diff_mean']:+.4f}"
                + ("" if c["diff_std"] is None else f" ± {c['diff_std']:.4f}"))
        rows.append([prec, size, pol, len(rs), ", ".join(f"{t:,}" for t in tests) or "-",
                     (f"{auc.mean():.4f}" + (f" ± {auc.std(ddof=1):.4f}" if auc.size > 1 else ""))
                     if auc.size else "-", diff, c["verdict"],
                     f"{ll.mean():.4f}" if ll.size else "-",
                     _pct(np.mean(hr)) if hr else "-"])
    return rows


def _accuracy_paragraphs(training: list[dict]) -> list[str]:
    """What the comparison can and cannot show at this sample size, with the numbers."""
    tests = sorted({int(r["test_samples"]) for r in training if r.get("test_samples") is not None})
    seeds = sorted({r.get("seed") for r in training})
    base = np.array([r["auc"] for r in training
                     if r["precision"] == "fp32" and r.get("auc") is not None], dtype=float)
    band = AUC_TOLERANCE
    out = [f"DLRM trained on the trace behind each cache (first part in order, tested on the rest: "
           f"{', '.join(f'{t:,}' for t in tests) or 'an unknown number of'} test samples), "
           f"{len(seeds)} seed(s) per configuration."]
    if base.size > 1:
        sd = float(base.std(ddof=1))
        out.append(
            f"FP32's own test AUC moves by {sd:.4f} (std) from seed to seed, "
            f"{sd / band:.0f}x the ±{band:g} band of the paper's 'accuracy held', so AUCs "
            "cannot be compared unpaired. ΔAUC is each configuration's AUC minus FP32's on the "
            "same seed and the same test samples (mean ± std over seeds); a configuration is "
            f"'held' only when |mean| + 2 std/√n < {band:g}, 'lost' when mean + 2 std/√n < "
            f"-{band:g}, and otherwise 'not distinguishable at this sample size'. The pairing "
            "removes the seeds' shared noise but not the test split's own sampling noise: with "
            "this few test samples, 'held' means held on this split.")
    acc = [float(r["accuracy"]) for r in training if r.get("accuracy") is not None]
    if acc:
        out.append(f"Test accuracy (share classified right at 0.5) is left out of the table: it "
                   f"spans only {_pct(min(acc))}..{_pct(max(acc))} over every configuration and "
                   "seed, about the majority-class rate, so it does not separate the "
                   "configurations (it stays in results.json).")
    return out


def _allocation_rows(al: dict) -> list[list]:
    rows = []
    for name, label in (("greedy", "per-table caches, greedy on convex hulls"),
                        ("unified", "one unified cache"), ("torchrec", "TorchRec's rule")):
        part = al.get(name)
        if not part:
            continue
        rows.append([label, part.get("rows"), part.get("hits"), _pct(part.get("hit_ratio"))])
    return rows


# -- results files -------------------------------------------------------------------------------
def _results_table(results: dict):
    """Every number in results.json as one long table: section, path, value (float) or text."""
    import polars as pl
    sec, path, num, text = [], [], [], []

    def walk(section, prefix, v):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(section, f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(section, f"{prefix}[{i}]", x)
        else:
            sec.append(section)
            path.append(prefix)
            if isinstance(v, bool) or v is None or isinstance(v, str):
                num.append(None)
                text.append(None if v is None else str(v))
            else:
                num.append(float(v))
                text.append(None)

    for section, v in jsonable(results).items():
        walk(section, "", v)
    return pl.DataFrame({"section": sec, "path": path, "value": num, "text": text},
                        schema={"section": pl.String, "path": pl.String, "value": pl.Float64,
                                "text": pl.String})
