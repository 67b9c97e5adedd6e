"""The `cachesim` command line: each command parses, calls the Python API, and prints.

User mistakes raise CachesimError, printed as one line on stderr with exit status 2.
"""
from __future__ import annotations

import contextlib
import json
import shlex
import sys

import click

from .version import __version__
from .errors import CachesimError
from .files import atomic_write, check_output_dir, check_output_file
from .options import (CURVE_SIZES, POLICIES, POLICY, PRECISIONS, SEEDS, SIZE_HELP, SIZES,
                      RenamedOption, cache_model_option, cache_precision_option, fbgemm_options,
                      force_option, per_table_option, split, table_groups_option, ways_option)

TRACE_OUT_SUFFIXES = (".parquet", ".pq", ".csv")  # what write_trace writes (CSV by the name)


class _Group(click.Group):
    """Turns a CachesimError into one clear line on stderr and exit status 2."""

    def parse_args(self, ctx, args):
        # the command line as given (sys.argv is not it under cli.main(args=...) or CliRunner);
        # `cachesim report` records it
        ctx.meta.setdefault("cachesim.argv", list(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CachesimError as err:
            raise _UserError(_cli_words(str(err))) from None
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as err:  # a subcommand's bad option: one line, not the usage
            where = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            raise _UserError(err.format_message() + where) from None
        except KeyboardInterrupt as err:  # Ctrl-C: one line, exit status 130 (128 + SIGINT)
            raise _Interrupted(str(err) or "interrupted") from None
        except Exception as err:
            cred = _credentials_error(err)
            if cred is not None:  # an object store's client found none: the user's to fix
                raise _UserError(
                    f"the object store refused the trace's URL for want of credentials "
                    f"({type(cred).__name__}: {_one_line(str(cred))}); give them as its client "
                    "reads them (AWS_* variables or ~/.aws for s3://, "
                    "GOOGLE_APPLICATION_CREDENTIALS for gs://, AZURE_STORAGE_* for az://), or "
                    "for a public bucket FSSPEC_S3_ANON=true / FSSPEC_GCS_TOKEN=anon") from None
            raise


_CREDENTIAL_ERRORS = ("DefaultCredentialsError", "RefreshError", "NoCredentialsError",
                      "PartialCredentialsError", "ClientAuthenticationError")


def _credentials_error(err: BaseException) -> BaseException | None:
    """The object-store client's missing- or refused-credentials error (google-auth, botocore,
    azure-core) in `err`'s chain of causes, None if there is none."""
    seen = 0
    while err is not None and seen < 8:
        if type(err).__name__ in _CREDENTIAL_ERRORS and type(err).__module__.split(".")[0] in (
                "google", "botocore", "azure"):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


class _Interrupted(click.ClickException):
    exit_code = 130

    def show(self, file=None):
        click.echo(f"cachesim: {_one_line(self.format_message())}", err=True)


def _command_line() -> str:
    """The running command as one shell line: `cachesim` and the arguments it was given."""
    ctx = click.get_current_context(silent=True)
    args = None if ctx is None else ctx.meta.get("cachesim.argv")
    return shlex.join(["cachesim", *(sys.argv[1:] if args is None else args)])


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


_KWARG_FLAGS = {"mode": "--mode", "ways": "--ways", "per_table": "--per-table",
                "batch_size": "--batch-size", "cache_model": "--cache-model"}


def _cli_words(text: str) -> str:
    """An API message in the CLI's words: mode="access" -> --mode access, ways=None -> --ways
    full, per_table=True -> --per-table, batch_size=N -> --batch-size N."""
    import re

    def flag(m):
        name, value = m.group(1), m.group(2).strip("\"'")
        if name == "per_table":
            return "--per-table"
        if name == "ways" and value == "None":
            return "--ways full"
        return f"{_KWARG_FLAGS[name]} {value}"
    return re.sub(r"\b(mode|ways|per_table|batch_size|cache_model)=(\"\w+\"|'\w+'|[\w-]+)", flag,
                  text)


class _UserError(click.ClickException):
    exit_code = 2

    def show(self, file=None):
        click.echo(f"cachesim: error: {_one_line(self.format_message())}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cachesim")
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE",
              help="Import MODULE first (a module that registers policies or formats).")
def cli(plugins):
    """Cache-policy simulator and trace analysis for embedding tables."""
    import importlib
    for name in plugins:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise CachesimError(f"--plugin {name}: cannot import it ({err}); check the module "
                                "name and that its folder is on PYTHONPATH") from None


# -- shared options ------------------------------------------------------------------------------
def _trace_options(f):
    f = click.option("--format", "fmt", default=None, metavar="FORMAT",
                     help="Trace format (default: from the file's suffix or content).")(f)
    f = click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Samples per batch for criteo and avazu (default 128, DLRM's Kaggle "
                          "mini-batch); B of fbgemm-npz files that do not store it.")(f)
    return f


def _read(path, fmt, batch_size=None):
    from .io import read_trace
    opts = {} if batch_size is None else {"batch_size": batch_size}
    trace = read_trace(path, format=fmt, **opts)
    trace.require_nonempty()
    return trace


def _yes_no(record: dict, names) -> dict:
    """A copy of `record` with its flags `names` as yes/no for a printed table (None stays)."""
    return dict(record, **{c: None if record.get(c) is None else "yes" if record[c] else "no"
                           for c in names})


def _batch_columns(records: list[dict]) -> list[str]:
    """A batch replay's table: its counters, and the table groups where a record has them."""
    cols = ["policy", "cache_model", "size", "capacity", "ways", "calls", "requested_indices",
            "unique_indices", "unique_misses", "conflict_unique_misses", "conflict_misses",
            "evictions", "hit_ratio"]
    return cols + (["table_groups"] if any(r.get("table_groups") for r in records) else [])


def _print_table(records: list[dict], columns: list[str]) -> None:
    """A plain aligned table on stdout."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4f}"
        if v is None:
            return "-"
        return f"{v:,}" if isinstance(v, int) else str(v)
    rows = [[fmt(r.get(c)) for c in columns] for r in records]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(columns)]
    click.echo("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for r in rows:
        click.echo("  ".join(v.rjust(w) for v, w in zip(r, widths)))


# -- replay --------------------------------------------------------------------------------------
@cli.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path())
@_trace_options
@click.option("--policy", "-p", type=POLICIES, default="lru", show_default=True,
              help="Comma-separated policies, e.g. lru,lfu,opt.")
@click.option("--size", "-s", "sizes", type=SIZES, required=True, help=SIZE_HELP)
@ways_option()
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random policies.")
@click.option("--mode", type=click.Choice(["access", "batch"]), default=None,
              help="access: one access at a time; batch: embedding-cache semantics per training "
                   "batch (lru, lfu). Default: batch when the trace has batches.")
@per_table_option()
@table_groups_option
@cache_model_option()
@fbgemm_options
@click.option("--precision", type=PRECISIONS, default=None,
              help="Storage precisions (fp32,int8,int4,...): add the bytes moved and memory of "
                   "each, the same fields as `cachesim sweep` (one record per precision).")
@click.option("--link-gbps", type=float, default=None,
              help="With --precision: host-device bandwidth in GB/s for the time per step "
                   "(default: PCIe Gen4 x16, 25).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of records.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--stream/--no-stream", "stream", default=None,
              help="Read the trace in chunks, in memory bounded by the cache, not the trace "
                   "(access mode: oracle-general, txt and, with --stream, Parquet; "
                   "batch mode: Parquet files, folders and datasets, fbgemm-npz and dlrm-pt). "
                   "Default: stream such traces over 1 GiB.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Split each replay over N threads (cores) by ranges of cache sets (batch "
                   "mode; by tables with --per-table, by groups with --table-groups; access mode "
                   "with --ways); the merged counts are exactly one thread's.")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS|local",
              help="Batch mode: split each replay as --jobs does, over a Dask cluster (N parts, "
                   "default one per worker thread); the workers read TRACE themselves, so it "
                   "must be a path they all see (needs the dist extra).")
@click.option("--record-cache-miss-counter", is_flag=True,
              help="fbgemm: FBGEMM's RecordCacheMetrics(record_cache_miss_counter=True): a "
                   "lookup before each populate, which adds the batch's uncached accesses to "
                   "num_conflict_misses and fills cache_miss_counter (in --json).")
def replay(trace_path, fmt, batch_size, policy, sizes, ways, seed, mode, per_table, table_groups,
           cache_model, table_rows, warp, prefetch_pipeline, precision, link_gbps, as_json, quiet,
           stream, jobs, record_cache_miss_counter, dask_address):
    """Replay a trace through policies and sizes; print hits and misses.

    Example: cachesim replay trace.parquet --policy lru,lfu,opt --size 1000,5%

    Batch mode (FBGEMM's counters): cachesim replay kaggle.tsv --batch-size 2048 -p lru,lfu
    -s 5% -w 32 --mode batch

    Bytes and memory too: cachesim replay trace.parquet -p lru -s 5% -w 32 --precision int8,int4
    """
    from .costs import result_records
    from .simulate.access import replay as run_replay
    from .simulate.result import resolve_cache_model
    from .policies import get_policy
    from .sizes import parse_sizes
    policies = [get_policy(p) for p in policy]
    caps = parse_sizes(sizes)
    for pol in policies:  # an explicit --ways that cannot apply, before any work
        for cap in caps:
            _ways_for(ways, pol, cap)
    if _streams(trace_path, fmt, stream, mode=mode, per_table=per_table, cache_model=cache_model,
                table_groups=table_groups, table_rows=table_rows, warp=warp,
                prefetch_pipeline=prefetch_pipeline,
                precision=precision, record_cache_miss_counter=record_cache_miss_counter,
                jobs=jobs or dask_address):
        return _replay_streamed(trace_path, fmt, policies, caps, ways, seed, quiet, as_json,
                                _streams_batched(trace_path, fmt, mode), batch_size,
                                per_table=per_table, cache_model=cache_model,
                                table_rows=table_rows, warp=warp,
                                prefetch_pipeline=prefetch_pipeline,
                                **({"table_groups": table_groups} if table_groups else {}))
    trace = _read(trace_path, fmt, batch_size)
    batch_mode = mode == "batch" or (mode is None and trace.has_batches)
    if jobs and jobs > 1 and record_cache_miss_counter:
        raise CachesimError(f"--jobs {jobs} does not model --record-cache-miss-counter's lookup "
                            "(its forward count is not a sum over set ranges); drop one of them")
    if jobs and jobs > 1 and batch_mode and cache_model == "fbgemm-inference":
        raise CachesimError(f"--jobs {jobs} splits a replay by cache sets: batch mode with "
                            "--cache-model fbgemm or ideal, or access mode with --ways; drop "
                            "--jobs for this replay")
    if dask_address and (not batch_mode or cache_model == "fbgemm-inference"
                         or record_cache_miss_counter):
        raise CachesimError(f"--dask {dask_address} splits a batch replay (--mode batch, "
                            "--cache-model fbgemm or ideal, no --record-cache-miss-counter) by "
                            "cache sets; drop --dask for this replay")
    trace = _cache_model_trace(trace, table_rows, cache_model if batch_mode else "ideal")
    on_dask = None if not dask_address else iter(_replay_on_dask(
        trace, policies, caps, ways, jobs, dask_address, per_table=per_table,
        cache_model=cache_model, prefetch_pipeline=prefetch_pipeline, warp=warp,
        table_groups=table_groups,
        source=_dask_source(dask_address, trace_path, fmt, batch_size, table_rows)))
    records, notes = [], []
    for pol in policies:
        for cap in caps:
            fbgemm = batch_mode and (cache_model == "fbgemm-inference"
                                     or resolve_cache_model(cache_model) == "fbgemm")
            with _fbgemm_warnings_shown():  # FBGEMM's ways are its warp's, whatever the size
                if on_dask is not None:
                    res = next(on_dask)
                elif jobs and jobs > 1 and not batch_mode and not (
                        per_table or table_groups or cache_model or prefetch_pipeline
                        or warp is not None
                        or record_cache_miss_counter):  # (those: run_replay's error)
                    from .simulate.partition import replay_access_partitioned
                    res = replay_access_partitioned(trace, pol, cap, parts=jobs,
                                                    ways=_ways_for(ways, pol, cap), seed=seed)
                elif jobs and jobs > 1 and batch_mode:
                    from .simulate.partition import replay_partitioned
                    res = replay_partitioned(trace, pol, cap, parts=jobs,
                                             ways=ways if fbgemm else _ways_for(ways, pol, cap),
                                             per_table=per_table, cache_model=cache_model,
                                             prefetch_pipeline=prefetch_pipeline, warp=warp,
                                             table_groups=table_groups)
                else:
                    res = run_replay(trace, pol, cap, ways=ways if fbgemm else
                                     _ways_for(ways, pol, cap), seed=seed,
                                     progress=not quiet, mode=mode, per_table=per_table,
                                     cache_model=cache_model,
                                     prefetch_pipeline=prefetch_pipeline, warp=warp,
                                     record_cache_miss_counter=record_cache_miss_counter,
                                     table_groups=table_groups)
            note = _replay_note(res, as_json, ways, cap, trace)
            if note and note not in notes:
                notes.append(note)
                click.echo(f"cachesim: note: {note}", err=True)
            records += result_records(res, trace, precision or (), per_table=as_json,
                                      link_gbps=link_gbps)
    if as_json:
        click.echo(json.dumps(records, indent=1))
    elif precision:
        _print_table(records, ["policy", "size", "capacity", "ways", "precision", "hit_ratio",
                               "h2d_bytes", "d2h_bytes", "transfer_ms_per_step", "total_bytes",
                               "ratio_vs_fp32"])
    elif records and records[0].get("mode") == "batch":
        _print_table(records, _batch_columns(records))
    else:
        _print_table(records, ["policy", "size", "capacity", "ways", "requests", "hits",
                               "misses", "hit_ratio", "miss_bytes"])


# -- convert (traces) ----------------------------------------------------------------------------
@cli.command()
@click.argument("src", metavar="IN", type=click.Path())
@click.argument("dst", metavar="OUT", type=click.Path())
@_trace_options
@click.option("--tables", "num_tables", type=click.IntRange(min=1), default=None,
              help="Tables T of fbgemm-npz files that store neither num_tables nor lengths.")
def convert(src, dst, fmt, batch_size, num_tables):
    """Convert a trace in any format to cachesim's Parquet (CSV if OUT ends in .csv).

    \b
    Formats: criteo, avazu, oracle-general, txt, csv, parquet, fbgemm-npz,
    dlrm-pt; a folder of .npz or .pt files is read as successive batches.
    The output is written atomically; a one-line summary is printed.

    \b
    Example: cachesim convert train.txt kaggle.parquet --format criteo --batch-size 128
    """
    import time
    from .io import read_trace, write_trace
    t0 = time.perf_counter()
    check_output_file(dst, "OUT", inputs=(src,), suffixes=TRACE_OUT_SUFFIXES)
    opts = {k: v for k, v in (("batch_size", batch_size), ("num_tables", num_tables)) if v}
    trace = read_trace(src, format=fmt, **opts)
    trace.require_nonempty()
    n_distinct = trace.n_distinct
    write_trace(trace, dst)
    tables = f"{trace.n_tables} table{'s' * (trace.n_tables != 1)}"
    click.echo(f"{dst}: {len(trace):,} accesses, {tables}, {n_distinct:,} distinct keys, "
               f"{time.perf_counter() - t0:.2f} s")


# -- sweep, memory (embedding-cache semantics) ---------------------------------------------------
# (added by the batch-replay work)
@cli.command()
@click.argument("trace_path", metavar="[TRACE]", required=False, type=click.Path())
@_trace_options
@click.option("--rows", "rows_text", default=None, metavar="N1,N2,...|criteo-kaggle",
              help="Rows per table (instead of a trace), or a preset: criteo-kaggle.")
@click.option("--dim", default=None, metavar="D|D1,D2,...",
              help="Embedding dim, one for all tables or one per table (default: the trace's, "
                   "else 16).")
@click.option("--precision", "precisions", type=PRECISIONS, default="fp32,int8,int4",
              show_default=True,
              help="Storage precisions: fp32, fp16, bf16, int8, int8-fp16qp, int4, int2.")
@click.option("--size", "-s", "sizes", type=SIZES, default="5%", show_default=True,
              help="Cache sizes: rows (100000), a share of the TOTAL rows of all tables (5%; "
                   "not of a trace's distinct keys), or bytes of cache rows (1GiB).")
@cache_precision_option()
@click.option("--policy", "-p", type=POLICY, default="lru", show_default=True,
              help="Cache policy, for its metadata (lru: 8 B per line; lfu: 8 B per row).")
@ways_option()
@click.option("--align", type=click.IntRange(min=1), default=1, show_default=True,
              help="Pad stored rows to a multiple of this many bytes (FBGEMM inference: 16).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one record each.")
def memory(trace_path, fmt, batch_size, rows_text, dim, precisions, sizes, cache_precision,
           policy, ways, align, as_json):
    """Memory of tables at each precision with a cache: store, scale/bias, cache, metadata.

    Example: cachesim memory --rows criteo-kaggle --dim 16 --precision int8,int4 --size 5%,1%
    """
    from .costs import format_memory, memory_records, parse_dims, parse_rows
    if rows_text is not None:
        rows = parse_rows(rows_text)
        default_dims = 16
    elif trace_path is not None:
        trace = _read(trace_path, fmt, batch_size)
        rows, default_dims = trace.table_rows, trace.table_dims
    else:
        raise CachesimError("memory needs table sizes: give a TRACE or --rows N1,N2,... "
                            "(or --rows criteo-kaggle)")
    dims = parse_dims(dim if dim is not None else default_dims, len(rows))
    records = memory_records(rows, dims, precisions, split(sizes),
                             cache_precision=cache_precision, policy=policy, align=align,
                             ways=ways)
    if as_json:
        click.echo(json.dumps(records, indent=1))
    else:
        click.echo(format_memory(records, rows, dims))


@cli.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path())
@_trace_options
@click.option("--policy", "-p", "policies", type=POLICIES, default="lru,lfu", show_default=True,
              help="Comma-separated policies (batch mode: those with a batch rule, e.g. lru,lfu).")
@click.option("--size", "-s", "sizes", type=SIZES, required=True, help=SIZE_HELP)
@ways_option(many=True)
@click.option("--precision", "precisions", type=PRECISIONS, default="fp32,int8,int4",
              show_default=True,
              help="Storage precisions to cost (no extra replay): fp32, fp16, bf16, int8, "
                   "int8-fp16qp, int4, int2.")
@per_table_option(many=True)
@table_groups_option
@click.option("--mode", type=click.Choice(["batch", "access"]), default="batch",
              show_default=True, help="Batch replay (FBGEMM's rules) or access by access.")
@click.option("--inference", is_flag=True, help="Inference: nothing is written back.")
@cache_model_option()
@fbgemm_options
@click.option("--output", "-o", "out", default=None, type=click.Path(),
              help="Write the table (.parquet, .csv, .json); finished configurations are kept "
                   "in OUT.parts/ so a rerun replays only the missing ones.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: every core).")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS|local",
              help="Run on a Dask cluster instead (needs the dist extra).")
@click.option("--link-gbps", type=float, default=None,
              help="Host-device link in GB/s for the time estimate (default 25: PCIe 4.0 x16 "
                   "effective).")
@click.option("--dim", default=None, metavar="D|D1,D2,...",
              help="Embedding dim, one for all tables or one per table (default: the trace's).")
@cache_precision_option()
@click.option("--align", type=click.IntRange(min=1), default=1, show_default=True,
              help="Pad stored rows to a multiple of this many bytes (FBGEMM inference: 16).")
@click.option("--fresh", is_flag=True, help="Discard OUT.parts/ and replay everything.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no summary line.")
@click.option("--stream/--no-stream", "stream", default=None,
              help="Read the trace in chunks, never whole: one first pass here, and each worker "
                   "(local or Dask) opens the file itself (access mode: oracle-general, txt, "
                   "and Parquet; "
                   "batch mode: Parquet, fbgemm-npz, dlrm-pt). Default: such traces over 1 GiB.")
def sweep(trace_path, fmt, batch_size, policies, sizes, ways, precisions, per_table, mode,
          inference, cache_model, table_rows, warp, prefetch_pipeline, out, jobs, dask_address,
          link_gbps, dim, cache_precision, align, fresh, quiet, stream, table_groups):
    """Replay each policy x size x ways once on all cores; cost it at every precision.

    One row per configuration x precision: the replay's counters, bytes moved (h2d, d2h, per
    step, against no cache) and memory (store, scale/bias, cache, metadata, ratio vs fp32).

    Example: cachesim sweep trace.parquet --policy lru,lfu --size 1%,5% --ways 32,full
    --precision fp32,int8,int4 -o results.parquet
    """
    from .costs import DEFAULT_LINK_GBPS
    from .sweep import check_parts_dir, parts_dir, run_sweep
    if out:
        check_output_file(out, "-o", inputs=(trace_path,))
        check_parts_dir(parts_dir(out), out)
    if stream and mode == "batch" and _streams_batched(trace_path, fmt, mode) is None:
        raise CachesimError(f"{trace_path}: sweep --stream --mode batch reads Parquet, "
                            "fbgemm-npz and dlrm-pt traces; use --mode access for this format, "
                            "or drop --stream")
    streamed = _streams(trace_path, fmt, stream, mode=mode)
    if streamed:  # read in chunks; the workers open the file themselves (`sweep_stream`)
        from .sweep_stream import StreamedTrace
        trace = StreamedTrace.open(trace_path, mode, fmt, table_rows=table_rows,
                                   batch_size=batch_size, progress=not quiet)
        _cache_model_trace(trace.meta, None, cache_model if mode == "batch" else "ideal")
    else:
        trace = _read(trace_path, fmt, batch_size)
        trace = _cache_model_trace(trace, table_rows, cache_model if mode == "batch" else "ideal")
    with contextlib.closing(trace) if streamed else contextlib.nullcontext(), \
            _fbgemm_warnings_shown():  # (`_cache_model_trace` printed it)
        res = run_sweep(trace, policies, sizes, ways=ways, precisions=precisions,
                        per_table=per_table, mode=mode, inference=inference, out=out, jobs=jobs,
                        dask=dask_address, cache_precision=cache_precision, align=align,
                        link_gbps=DEFAULT_LINK_GBPS if link_gbps is None else link_gbps,
                        dims=dim, fresh=fresh, progress=not quiet, cache_model=cache_model,
                        prefetch_pipeline=prefetch_pipeline, warp=warp,
                        source=None if streamed else _dask_source(
                            dask_address, trace_path, fmt, batch_size, table_rows),
                        table_groups=table_groups)
    # the cache's options (FBGEMM's warp and pipeline: batch mode only)
    cache_cols = ["warp", "per_table", "prefetch_pipeline"] if mode == "batch" else ["per_table"]
    if "table_groups" in res.table.columns:
        cache_cols.append("table_groups")
    cols = ["policy", "cache_model", "size", "ways", *cache_cols, "precision", "hit_ratio",
            "h2d_bytes_per_step", "d2h_bytes_per_step", "transfer_vs_no_cache", "total_bytes",
            "ratio_vs_fp32"]
    shown = []
    for r in res.table.to_dicts():
        r = _yes_no(r, ("per_table", "prefetch_pipeline"))
        r["ways"] = "none" if r["ways"] is None else r["ways"]
        for c in ("h2d_bytes_per_step", "d2h_bytes_per_step"):
            r[c] = None if r[c] is None else int(round(r[c]))
        shown.append(r)
    _print_table(shown, cols)
    if not quiet:
        where = f"; wrote {res.table.height} rows to {out}" if out else ""
        click.echo(f"sweep: replayed {len(res.ran)} of {len(res.configs)} configurations "
                   f"({len(res.reused)} reused) in {res.seconds:.1f} s{where}", err=True)


def _dask_source(dask_address, trace_path, fmt, batch_size, table_rows):
    """A Dask cluster's workers read the trace file themselves (a path every worker sees); the
    embedded local cluster's too (a sweep never ships the trace per task)."""
    if not dask_address:
        return None
    from .sweep import TraceSource
    return TraceSource.of(trace_path, fmt, None if batch_size is None else
                          {"batch_size": batch_size}, table_rows)


# -- analyze, mrc, allocate, generate (trace analysis) -------------------------------------------
# (added by the analysis work)
@cli.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path())
@_trace_options
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False), default=None,
              metavar="DIR", help="Write rank_frequency, reuse_time, stack_distance, working_set "
                                  "and drift PNGs into DIR.")
@click.option("--window", type=click.IntRange(min=1), default=None, metavar="N",
              help="Accesses per window for working set and drift (default: the batch).")
@click.option("--top-k", type=click.IntRange(min=1), default=None,
              help="Hot-set size for drift (default: 1% of distinct rows, 10..1000).")
@force_option("--plots folder")
@click.option("--stream/--no-stream", "stream", default=None,
              help="Read the trace in chunks, in memory bounded by the distinct keys, not the "
                   "trace (oracle-general and txt files; Parquet with a batch column, "
                   "fbgemm-npz, dlrm-pt). Default: stream such traces over 1 GiB.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (nor with --json).")
def analyze(trace_path, fmt, batch_size, as_json, plots_dir, window, top_k, force, stream,
            quiet):
    """Analyse a trace: sizes, popularity (Zipf fit, hot-set coverage), reuse, working set, drift.

    Example: cachesim analyze kaggle_train_head10k.tsv --plots plots/
    """
    from .analysis.profile import analyze as run_analysis, format_summary, write_plots
    if plots_dir:
        check_output_dir(plots_dir, "--plots", force)
    if _analysis_streams(trace_path, fmt, stream, "analyze", True):
        from .analysis.stream import analyze_stream
        res = analyze_stream(trace_path, window=window, top_k=top_k, fmt=fmt,
                             progress=not (as_json or quiet), reader_options={} if batch_size is None
                             else {"batch_size": batch_size})
    else:
        res = run_analysis(_read(trace_path, fmt, batch_size), window=window, top_k=top_k)
    if plots_dir:
        res["plots"] = [str(p) for p in write_plots(res, plots_dir, trace_name=trace_path,
                                                    force=force)]
    if as_json:
        click.echo(json.dumps(res, indent=1))
    else:
        click.echo(format_summary(res))
        for p in res.get("plots", []):
            click.echo(f"wrote {p}")


@cli.command()
@click.argument("out", metavar="OUT", type=click.Path(dir_okay=False))
@click.option("--samples", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Samples to generate (each looks up a bag of rows in every table).")
@click.option("--tables", type=click.IntRange(min=1), default=26, show_default=True,
              help="Number of embedding tables.")
@click.option("--rows", default="1000000", show_default=True, metavar="N|N1,N2,...",
              help="Rows per table, one for all or one per table.")
@click.option("--alpha", default="1.05", show_default=True, metavar="A|A1,A2,...",
              help="Zipf exponent per table, one for all or one per table.")
@click.option("--bag-size", default="1", show_default=True, metavar="L|L1,...|poisson:MEAN",
              help="Rows per sample and table: fixed, or Poisson with that mean.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Samples per batch.")
@click.option("--drift", default=None, metavar="SHARE[:K]",
              help="Every K batches (default 1) the popularity ranking rotates by SHARE of the "
                   "rows, e.g. 0.01:10.")
@click.option("--locality", default=None, metavar="P:W",
              help="Temporal locality: a share P of accesses repeats one of the table's last W "
                   "accesses, e.g. 0.3:1000.")
@click.option("--teacher", is_flag=True,
              help="Add 13 dense features and labels from a planted teacher (seeded by --seed).")
@click.option("--criteo", is_flag=True,
              help="Criteo-shaped: 26 tables with the Kaggle sample's popularity, teacher labels "
                   "(ignores --tables, --rows, --alpha, --bag-size, --drift, --locality).")
@click.option("--like", "like_path", type=click.Path(), default=None, metavar="TRACE",
              help="Reproduce TRACE's per-table LRU stack-distance profile instead.")
@click.option("--accesses", type=click.IntRange(min=1), default=None,
              help="With --like: accesses to generate (default: as many as TRACE).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              metavar="PNG", help="With --like: plot both exact LRU miss-ratio curves.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random generator (same seed, same trace).")
def generate(out, samples, tables, rows, alpha, bag_size, batch_size, drift, locality, teacher,
             criteo, like_path, accesses, plot_path, seed):
    """Generate a synthetic embedding trace and write it (Parquet, or CSV for a .csv name).

    Example: cachesim generate zipf.parquet --samples 100000 --tables 8 --rows 1000000
    --alpha 1.1 --bag-size poisson:20 --drift 0.01:10

    Like a real trace: cachesim generate like.parquet --like kaggle_train_head10k.tsv
    --accesses 2600000 --plot mrc.png
    """
    from .synth import fit, generate as gen
    from .io.tabular import write_trace
    if plot_path and not like_path:
        raise CachesimError("--plot compares the curves of --like TRACE and the generated "
                            "trace: add --like TRACE")
    from click.core import ParameterSource
    given = click.get_current_context().get_parameter_source
    if accesses is not None and not like_path:
        raise CachesimError("--accesses sets how many accesses --like TRACE generates; the "
                            "other generators take --samples (and --bag-size): add --like TRACE "
                            "or give --samples")
    if like_path:  # its tables, rows and lengths are TRACE's: an option it would ignore is refused
        unused = [f"--{n.replace('_', '-')}" for n in
                  ("samples", "tables", "rows", "alpha", "bag_size", "batch_size", "drift",
                   "locality", "teacher", "criteo")
                  if given(n) is not ParameterSource.DEFAULT]
        if unused:
            raise CachesimError(f"--like TRACE reproduces TRACE's tables and profile, so "
                                f"{', '.join(unused)} would be ignored; drop "
                                f"{'it' if len(unused) == 1 else 'them'} (--accesses sets the "
                                "length)")
    check_output_file(out, "OUT", inputs=(like_path,), suffixes=TRACE_OUT_SUFFIXES)
    if plot_path:
        check_output_file(plot_path, "--plot", inputs=(like_path,), suffixes=(".png",))
    if like_path:
        real = _read(like_path, None)
        trace = fit.generate_like(fit.fit_profile(real), accesses or len(real), seed=seed)
    elif criteo:
        trace = gen.criteo_like(samples, seed=seed, batch_size=batch_size)
    else:
        trace = gen.generate(samples, tables=tables, rows=_numbers(rows, "--rows", int),
                             alpha=_numbers(alpha, "--alpha", float), bag_size=bag_size,
                             batch_size=batch_size, drift=drift, locality=locality, seed=seed,
                             teacher=teacher)
    write_trace(trace, out)
    click.echo(f"wrote {out}: {len(trace):,} accesses, {trace.n_tables} "
               f"table{'s' * (trace.n_tables != 1)}, {trace.n_distinct:,} distinct "
               f"row{'s' * (trace.n_distinct != 1)} ({trace.source})")
    if plot_path:
        cmp = fit.compare_curves(real, trace)
        fit.plot_curves(cmp, plot_path, like_path, out)
        click.echo(f"wrote {plot_path}: exact LRU miss-ratio curves, mean absolute difference "
                   f"{cmp['mae']:.4f} (max {cmp['max_abs']:.4f})")


def _numbers(text: str, name: str, kind):
    try:
        vals = [kind(p) for p in split(text)]
    except ValueError:
        raise CachesimError(f"{name} {text!r}: expected a number or comma-separated numbers, "
                            "one per table") from None
    if not vals:
        raise CachesimError(f"{name} is empty: give a number or one per table")
    return vals[0] if len(vals) == 1 else vals


@cli.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path())
@_trace_options
@click.option("--policy", "-p", type=POLICY, default="lru", show_default=True,
              help="Policy (method mini replays any policy; exact and shards give LRU).")
@click.option("--method", "-m", type=click.Choice(["exact", "shards", "mini"]), default="exact",
              show_default=True, help="exact: one pass, every size; shards: hashed sample; "
                                      "mini: miniature simulation.")
@click.option("--rate", type=float, default=None,
              help="Sampling rate for shards and mini [default: 0.01; with --s-max: 1]. "
                   "Sizes under 100 sampled rows (size x rate) are marked reliable=false.")
@click.option("--s-max", type=click.IntRange(min=1), default=None, metavar="KEYS",
              help="Fixed-size SHARDS: sample up to KEYS keys, starting at --rate (default 1) "
                   "and lowering the rate as more keys come.")
@click.option("--size", "-s", "sizes", cls=RenamedOption, old_names=("--sizes",), default=None,
              type=CURVE_SIZES,
              help="Comma-separated sizes: 0, rows (1000), share of distinct keys (5%), bytes "
                   "(128MiB, with --bytes). Default: every size.")
@click.option("--no-adj", "no_adj", is_flag=True,
              help="Sampled methods without SHARDS_adj (normalise by the sampled accesses).")
@click.option("--bytes", "in_bytes", is_flag=True,
              help="Byte capacity from the trace's object sizes.")
@click.option("--per-table", is_flag=True, help="One curve per table, each its own cache.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the CSV (or JSON) here instead of stdout.")
@click.option("--json", "as_json", is_flag=True, help="JSON array of records instead of CSV.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              metavar="PNG", help="Plot the curve(s) into PNG.")
@click.option("--torchrec", "torchrec_path", type=click.Path(dir_okay=False), default=None,
              metavar="JSON", help="Write per-table EmbeddingOffloadStats inputs for TorchRec's "
                                   "planner (LRU, exact).")
@click.option("--bins", type=click.IntRange(min=1), default=100, show_default=True,
              help="Histogram bins over load factors 0..1 for --torchrec.")
@click.option("--stream/--no-stream", "stream", default=None,
              help="Read the trace in chunks, in memory bounded by the distinct keys, not the "
                   "trace (oracle-general and txt files; for exact and SHARDS curves in rows "
                   "over all tables also Parquet, fbgemm-npz, dlrm-pt). Default: stream such "
                   "traces over 1 GiB.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (nor with --json).")
def mrc(trace_path, fmt, batch_size, policy, method, rate, s_max, sizes, no_adj, in_bytes,
        per_table, output, as_json, plot_path, torchrec_path, bins, stream, quiet):
    """Miss-ratio curve: miss ratio at every cache size, in one pass for LRU.

    Example: cachesim mrc cloudPhysicsIO.txt --plot mrc.png -o mrc.csv

    Sampled, any policy: cachesim mrc trace.parquet --method mini --policy fifo --rate 0.01
    """
    from pathlib import Path

    import warnings

    from .analysis import mrc as curves
    from .files import OUTPUT_SUFFIXES, write_table
    for name, path, kinds in (("-o", output, OUTPUT_SUFFIXES), ("--plot", plot_path, (".png",)),
                              ("--torchrec", torchrec_path, (".json",))):
        if path:
            check_output_file(path, name, inputs=(trace_path,), suffixes=kinds)
    streamed = _analysis_streams(
        trace_path, fmt, stream, "mrc", method in ("exact", "shards") and not in_bytes
        and not per_table, torchrec=bool(torchrec_path),
        bytes=in_bytes and method == "exact" and sizes is None and "unless sizes are given: "
        "give --size (the streamed "
        "exact byte curve is computed at the sizes given), or drop --stream")
    trace = None if streamed else _read(trace_path, fmt, batch_size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", curves.SampledCurveWarning)
        kw = dict(policy=policy, sizes=sizes, method=method, rate=rate, bytes=in_bytes,
                  per_table=per_table, s_max=s_max, adj=not no_adj)
        if streamed:
            from .analysis.stream import mrc_stream
            df = mrc_stream(trace_path, **kw, fmt=fmt, progress=not (as_json or quiet),
                            reader_options={} if batch_size is None else
                            {"batch_size": batch_size})
        else:
            df = curves.mrc(trace, **kw)
    for w in caught:
        if issubclass(w.category, curves.SampledCurveWarning):
            click.echo(f"cachesim: warning: {_one_line(w.message)}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if output:  # (as the name says: .csv, .json or .parquet)
        write_table(df, output)
        click.echo(f"wrote {output}: {df.height:,} size{'s' * (df.height != 1)}", err=True)
    if as_json or not output:
        click.echo((json.dumps(df.to_dicts(), indent=1) + "\n") if as_json else df.write_csv(),
                   nl=False)
    if plot_path:
        what = "LRU" if method != "mini" else policy
        how = ("" if method == "exact" else f", at most {s_max:,} keys" if method == "shards"
               and s_max else f", rate {0.01 if rate is None else rate:g}")
        curves.plot_mrc(df, plot_path, f"{what} miss-ratio curve ({method}{how}): "
                        f"{Path(trace_path).name}", "bytes" if in_bytes else "rows")
        click.echo(f"wrote {plot_path}", err=True)
    if torchrec_path:
        stats = curves.torchrec_stats(trace, bins=bins)
        atomic_write(torchrec_path, json.dumps(stats) + "\n")
        click.echo(f"wrote {torchrec_path}: {len(stats)} table(s)", err=True)


@cli.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path())
@_trace_options
@click.option("--budget", "-b", required=True, help="Memory for all caches: bytes (2GiB, 500MB).")
@cache_precision_option(old_names=("--precision",))
@click.option("--dim", type=click.IntRange(min=1), default=None,
              help="Embedding dim of every table (default: the trace's, 16 if unknown).")
@click.option("--json", "as_json", is_flag=True, help="Print the allocation as JSON.")
@click.option("--stream/--no-stream", "stream", default=None,
              help="Read the trace in chunks, in memory bounded by the distinct keys, not the "
                   "trace (oracle-general and txt files; Parquet with a batch column, "
                   "fbgemm-npz, dlrm-pt). Default: stream such traces over 1 GiB.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (nor with --json).")
def allocate(trace_path, fmt, batch_size, budget, cache_precision, dim, as_json, stream, quiet):
    """Split a memory budget across per-table LRU caches to maximise hits.

    Greedy on each table's convex hull of the exact miss curve, against one unified cache and
    TorchRec's rule (cacheability x expected lookups).

    Example: cachesim allocate kaggle_train_head10k.tsv --budget 64KiB --cache-precision fp16
    """
    from .analysis.allocate import allocate as run_allocate
    from .sizes import parse_bytes
    budget = parse_bytes(budget, "--budget")  # before the trace is read
    if _analysis_streams(trace_path, fmt, stream, "allocate", True):
        from .analysis.allocate import allocate_stream
        res = allocate_stream(trace_path, budget, cache_precision=cache_precision, dim=dim,
                              fmt=fmt, progress=not (as_json or quiet), reader_options={}
                              if batch_size is None else {"batch_size": batch_size})
    else:
        res = run_allocate(_read(trace_path, fmt, batch_size), budget,
                           cache_precision=cache_precision, dim=dim)
    if as_json:
        click.echo(json.dumps(res.to_record(), indent=1))
        return
    _print_table(res.tables, ["table", "dim", "distinct_rows", "requests", "rows", "hits",
                              "hit_ratio", "torchrec_rows", "torchrec_hits"])
    t = res.totals
    click.echo(f"budget {res.budget_bytes:,} B at {res.cache_precision}: greedy {t['greedy_rows']:,}"
               f" rows, {t['greedy_hits']:,} hits ({t['greedy_hit_ratio']:.4f}); unified cache "
               f"{t['unified_rows']:,} rows, {t['unified_hits']:,} hits "
               f"({t['unified_hit_ratio']:.4f}); TorchRec rule {t['torchrec_rows']:,} rows, "
               f"{t['torchrec_hits']:,} hits ({t['torchrec_hit_ratio']:.4f})")
    click.echo(f"({res.note})")


# -- train (executor) ----------------------------------------------------------------------------
@cli.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path())
@_trace_options
@click.option("--precision", type=PRECISIONS, default="int8", show_default=True,
              help="Comma-separated storage precisions of the host store: fp32, int8, int4.")
@click.option("--size", "-s", "sizes", default="5%", show_default=True,
              help="Comma-separated FP32 device cache sizes: rows (1000), a share of the "
                   "distinct keys (5%), bytes (64MiB); 0 = no cache, all = every row in FP32 "
                   "on the device.")
@click.option("--policy", "-p", type=POLICIES, default="lru", show_default=True,
              help="Comma-separated cache policies with a batch rule: lru, lfu, or a plugin's.")
@ways_option()
@cache_model_option()
@per_table_option()
@table_groups_option
@fbgemm_options
@click.option("--device", type=click.Choice(["auto", "gpu", "cpu"]), default="auto",
              show_default=True, help="gpu needs CuPy and a CUDA GPU; auto uses one if present.")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Passes over the training batches.")
@click.option("--seeds", type=SEEDS, default="0", show_default=True,
              help="Comma-separated seeds; every configuration runs once per seed.")
@click.option("--lr", type=float, default=0.1, show_default=True, help="SGD learning rate.")
@click.option("--optimizer", type=click.Choice(["sgd", "adagrad"]), default="sgd",
              show_default=True, help="Embedding optimizer (adagrad: row-wise).")
@click.option("--rounding", type=click.Choice(["stochastic", "deterministic"]),
              default="stochastic", show_default=True,
              help="Rounding when rows are re-quantized into the store.")
@click.option("--test-fraction", type=float, default=0.1, show_default=True,
              help="Share of the batches (the last ones) kept for testing.")
@click.option("--model", "model_name", type=click.Choice(["kaggle", "medium", "small"]),
              default="kaggle", show_default=True,
              help="MLP sizes: kaggle = DLRM's Criteo Kaggle (13-512-256-64-16, 512-256-1).")
@click.option("--no-baselines", is_flag=True,
              help="Do not add the fp32 all-on-device and no-cache baselines.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of records.")
@click.option("--output", "-o", "out", default=None, type=click.Path(),
              help="Write the records (.parquet, .csv, .json), atomically.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bars (terminal) or per-configuration lines (elsewhere).")
@click.option("--stream/--no-stream", "stream", default=None,
              help="Read the batches from the trace as it trains, never the whole trace in "
                   "memory (Criteo TSV; Parquet with label and sample columns: a file, folder "
                   "or dataset). Default: stream such traces over 1 GiB.")
def train(trace_path, fmt, batch_size, precision, sizes, policy, ways, cache_model, per_table,
          table_rows, warp, prefetch_pipeline, device, epochs, seeds, lr, optimizer, rounding,
          test_fraction, model_name, no_baselines, as_json, out, quiet, stream, table_groups):
    """Train DLRM with INT8/INT4 embeddings behind an FP32 cache; report accuracy and bytes.

    Trains on the first batches of the trace in order and tests on the rest; adds the fp32
    (all rows on the device) and no-cache baselines. Labels and dense features come from the
    trace (criteo, avazu) or from a planted teacher.

    Example: cachesim train kaggle_train_head10k.tsv --precision int8,int4 --size 1%,5%
    --policy lru,lfu --ways 32 --seeds 0,1,2

    FBGEMM's cache per table, with its prefetch pipeline: cachesim train trace.parquet -s 5%
    --per-table --prefetch-pipeline --cache-model fbgemm

    A trace larger than memory, read batch by batch: cachesim train big.parquet --stream
    """
    from .executor.train import train as run_train, write_results
    from .simulate.result import resolve_cache_model
    if out:
        from pathlib import Path

        from .files import OUTPUT_SUFFIXES
        if Path(out).suffix.lower() not in OUTPUT_SUFFIXES:
            raise CachesimError(f"-o {out}: write .parquet, .csv or .json")
        check_output_file(out, "-o", inputs=(trace_path,))
    from .executor.train import NoTestBatchWarning
    with _warnings_as_errors(NoTestBatchWarning):  # no test batch: one line, before work
        data = None
        if _train_streams(trace_path, fmt, stream):  # the first pass; batches read as it trains
            from .executor.stream import StreamedData
            data = StreamedData(trace_path, fmt, batch_size=batch_size, test_fraction=test_fraction,
                                table_rows=table_rows, progress=not quiet)
            trace = _cache_model_trace(data.meta, None, cache_model)  # its warning, once
        else:
            trace = _cache_model_trace(_read(trace_path, fmt, batch_size), table_rows, cache_model)
        records = run_train(trace, data=data, precision=precision, size=split(sizes),
                            policy=policy, ways=ways, device=device, epochs=epochs,
                            lr=lr, seed=seeds, test_fraction=test_fraction, rounding=rounding,
                            optimizer=optimizer, model=model_name, baselines=not no_baselines,
                            progress=not quiet, batch_size=batch_size,
                            cache_model=resolve_cache_model(cache_model, inference=True),
                            per_table=per_table, prefetch_pipeline=prefetch_pipeline, warp=warp,
                            table_groups=table_groups)
    labels = str(records[0].get("labels", "")) if records else ""
    if labels.startswith("planted"):
        click.echo(f"cachesim: note: {trace.source} has no labels: they come from a {labels}",
                   err=True)
    if out:
        write_results(records, out)
    if as_json:
        click.echo(json.dumps(records, indent=1))
    else:
        shown = [_yes_no(r, ("per_table", "prefetch_pipeline")) for r in records]
        _print_table(shown, ["policy", "cache_model", "size", "ways", "warp", "per_table",
                             "prefetch_pipeline", "precision", "seed", "auc", "logloss",
                             "accuracy", "base_rate", "hit_ratio", "h2d_bytes", "d2h_bytes",
                             "samples_per_s"])


def _train_streams(path, fmt, stream) -> bool:
    """Whether `cachesim train` streams (`executor.stream`): --stream, or by default a Criteo
    TSV file or a Parquet trace with labels (`executor.stream.train_refusal`) over
    `STREAM_THRESHOLD` bytes, or such a Parquet folder or dataset (no in-memory reader)."""
    if stream is False:
        return False
    from .io.urls import as_path
    from .sizes import STREAM_THRESHOLD
    p = as_path(path)  # a URL: a RemotePath (its size and kind asked once)
    if stream is None and p.is_file() and p.stat().st_size <= STREAM_THRESHOLD:
        return False  # a small file: in memory, without importing the stream readers
    from .executor.stream import train_refusal
    why = train_refusal(p, fmt)
    if stream is None:
        from .io.stream import source_bytes
        return why is None and (p.is_dir() or source_bytes(p) > STREAM_THRESHOLD)
    if why:
        if not p.exists():  # (nothing to train in memory either)
            raise CachesimError(f"train --stream: {why}")
        raise CachesimError(f"train --stream: {why}; or train it in memory (--no-stream)")
    return True


def _cache_model_trace(trace, table_rows, cache_model):
    """The trace with --table-rows applied; warns once on stderr when the fbgemm model will
    build its geometry on num_embeddings inferred from the largest row seen."""
    from .simulate.result import resolve_cache_model
    fbgemm = (cache_model == "fbgemm-inference"  # FBGEMM's inference cache: the same geometry
              or resolve_cache_model(cache_model) == "fbgemm")
    if not table_rows and not fbgemm:
        return trace  # nothing to do: an access replay does not import the fbgemm model
    from .simulate.fbgemm import table_rows_warning, with_table_rows
    if table_rows:
        trace = with_table_rows(trace, table_rows)
    msg = table_rows_warning(trace)
    if msg and fbgemm and trace.has_batches:
        click.echo(f"cachesim: warning: {msg}", err=True)
    return trace


@contextlib.contextmanager
def _fbgemm_warnings_shown():
    """The API's TableRowsInferredWarning, silenced: `_cache_model_trace` printed it once (and
    imported the fbgemm model, the only one that warns; other replays do not import it)."""
    import warnings

    fbgemm = sys.modules.get("cachesim.simulate.fbgemm")
    with warnings.catch_warnings():
        if fbgemm is not None:
            warnings.simplefilter("ignore", fbgemm.TableRowsInferredWarning)
        yield


@contextlib.contextmanager
def _warnings_as_errors(category):
    """Warnings of `category` (a CachesimError too) raised, so the user gets their one line:
    the API warns where the command refuses."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", category)
        yield


@contextlib.contextmanager
def _table_rows_warning_once():
    """The API's TableRowsInferredWarning (and a --train with no test batch's
    NoTestBatchWarning) as one line on stderr, once (the report warns before its replays, which
    warn again); other warnings pass through."""
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:  # (outside the recording: a warning passed on there was recorded again, and the
        # loop over `caught` never ended, growing without bound: a CI worker reached 23 GB)
        shown = set()
        for w in list(caught):
            if w.category.__name__ in ("TableRowsInferredWarning", "NoTestBatchWarning"):
                if str(w.message) not in shown:
                    shown.add(str(w.message))
                    click.echo(f"cachesim: warning: {_one_line(w.message)}", err=True)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _streams(path, fmt, stream, **batch_only) -> bool:
    """Whether `cachesim replay` streams: --stream, or by default a trace over `STREAM_THRESHOLD`
    bytes that a chunked reader reads: an oracle-general or txt file in access mode, or in batch
    mode (`_streams_batched`) a Parquet file, folder or dataset with a `batch` column (a folder
    or dataset whatever its size), or fbgemm-npz / dlrm-pt batches; never with --precision,
    --jobs or --record-cache-miss-counter (they need the whole trace)."""
    if stream is False:
        return False
    from .io.urls import as_path
    from .sizes import STREAM_THRESHOLD
    p = as_path(path)  # a local Path, or a URL's RemotePath
    if stream is None and p.is_file() and p.stat().st_size <= STREAM_THRESHOLD:
        return False  # a small file: in memory, without importing the stream readers
    from .io.stream import has_batch_column, source_bytes, streamable
    batched = _streams_batched(path, fmt, batch_only["mode"])
    in_memory = ("precision", "jobs", "record_cache_miss_counter")
    given = [k for k, v in batch_only.items() if v and (k != "mode" or v == "batch")
             and (k in in_memory or not batched)]
    if stream is None:
        if given or not p.exists() or (
                not batched and (not p.is_file() or streamable(p, fmt) is None)):
            return False
        if batched == "parquet" and not has_batch_column(path):
            return False  # replayed access by access in memory
        if batched == "parquet" and p.is_dir():
            return True  # a Parquet folder or dataset streams, whatever its size
        return source_bytes(path) > STREAM_THRESHOLD
    if given:
        opt = "--" + given[0].replace("_", "-")
        what = ("costs, --jobs or the cache miss counter" if batched else
                "costs, per-table caches or FBGEMM's settings (access mode)")
        raise CachesimError(f"--stream replays without {what}; drop {opt} or --stream")
    return True


def _streams_batched(path, fmt, mode) -> str | None:
    """The batched stream format of a replay (`io.stream.batch_streamable`), None in access
    mode or for a format without batches."""
    from .io.stream import batch_streamable
    return None if mode == "access" else batch_streamable(path, fmt)


def _analysis_streams(path, fmt, stream, command: str, batched: bool = False,
                      **in_memory_only) -> bool:
    """Whether `cachesim mrc` or `analyze` streams (`cachesim.analysis.stream`): --stream, or
    by default an oracle-general or txt file (with `batched`, also a batched trace:
    `io.stream.batch_streamable`) over `STREAM_THRESHOLD` bytes, as `replay`, unless an option
    in `in_memory_only` is given (it needs the whole trace; a string value: the fix)."""
    if stream is False:
        return False
    from .io.stream import batch_streamable, has_batch_column, source_bytes, streamable
    from .io.urls import as_path
    from .sizes import STREAM_THRESHOLD
    p = as_path(path)  # a local Path, or a URL's RemotePath
    if not p.exists():
        if stream:
            raise CachesimError(f"{path}: no such file; {command} --stream reads one "
                                "oracle-general or txt file")
        return False
    kind = None if not batched else batch_streamable(path, fmt)
    if kind == "parquet" and command in ("analyze", "allocate", "report") and \
            not has_batch_column(path):  # (an unreadable file: its error, naming it)
        if stream:  # its windows (TorchRec's lookups, the sweep's batches) follow the batches
            from .io.stream import no_batch_column
            raise no_batch_column(path, f"{command} --stream")
        kind = None
    ok = (p.is_file() and streamable(p, fmt) is not None) or kind is not None
    given = [(k, v) for k, v in in_memory_only.items() if v]
    if stream is None:
        return ok and not given and source_bytes(path) > STREAM_THRESHOLD
    if not ok:
        also = (" (and for the exact and SHARDS curves in rows over all tables, Parquet, "
                "fbgemm-npz and dlrm-pt)" if command == "mrc" else
                ", and Parquet (with a batch column), fbgemm-npz and dlrm-pt traces")
        from .io.stream import gzip_refusal
        raise CachesimError(f"{path}: {command} --stream reads oracle-general and txt files"
                            f"{also}{gzip_refusal(p)}; drop --stream to read it in memory")
    if given:
        name, fix = given[0]
        fix = fix if isinstance(fix, str) else f"drop --{name} or --stream"
        raise CachesimError(f"{command} --stream: --{name} needs the whole trace in memory; "
                            f"{fix}")
    return True


def _replay_streamed(path, fmt, policies, caps, ways, seed, quiet, as_json, batched=None,
                     batch_size=None, **model) -> None:
    """`cachesim replay --stream`: one first pass, then one streamed pass per replay (batched:
    a Parquet, fbgemm-npz or dlrm-pt trace through any batch model, `model` its options)."""
    from .costs import result_records
    from .simulate.result import resolve_cache_model
    from .simulate.stream import BatchStreamSource, StreamSource
    records, notes = [], []
    if batched:
        opts = {} if batch_size is None else {"batch_size": batch_size}
        src = BatchStreamSource(path, fmt, table_rows=model.pop("table_rows"),
                                progress=not quiet, **opts)
        _cache_model_trace(src.meta, None, model["cache_model"])  # its warning, once
        fbgemm = (model["cache_model"] == "fbgemm-inference"
                  or resolve_cache_model(model["cache_model"]) == "fbgemm")
    with contextlib.ExitStack() as stack:
        if not batched:
            src = stack.enter_context(StreamSource(path, fmt, progress=not quiet))
        for pol in policies:
            for cap in caps:
                if batched:
                    with _fbgemm_warnings_shown():
                        res = src.replay(pol, cap.text, ways if fbgemm else
                                         _ways_for(ways, pol, cap), progress=not quiet, **model)
                else:
                    res = src.replay(pol, cap, ways=_ways_for(ways, pol, cap), seed=seed,
                                     progress=not quiet)
                note = _replay_note(res, as_json, ways, cap, src.meta)
                if note and note not in notes:
                    notes.append(note)
                    click.echo(f"cachesim: note: {note}", err=True)
                records += result_records(res, None, (), per_table=as_json)
    if as_json:
        click.echo(json.dumps(records, indent=1))
    elif batched:
        _print_table(records, _batch_columns(records))
    else:
        _print_table(records, ["policy", "size", "capacity", "ways", "requests", "hits",
                               "misses", "hit_ratio", "miss_bytes"])


def _replay_note(res, as_json, ways, cap, trace) -> str | None:
    """The note a replay prints on stderr (none with --json): FBGEMM's LFU counters, or the
    geometry of whole sets (`_geometry_note`)."""
    if as_json:
        return None
    if res.cache_model in ("fbgemm", "fbgemm-inference") and res.policy == "lfu":
        return ("under LFU FBGEMM's uvm cache stats fill only num_conflict_misses; "
                "unique_misses and conflict_unique_misses are cachesim's own counts "
                "(--json has FBGEMM's num_* values)")
    return _geometry_note(ways, cap, res, trace)


def _geometry_note(ways, cap, res, trace) -> str | None:
    """The line saying the lines used when whole sets differ from --size: with --ways given,
    one for each size ('--ways 3 --size 10: 4 sets of 3 ways = 12 lines';
    `hashing.geometry_note`); at the default --ways, one line for the whole run."""
    from click.core import ParameterSource
    from .hashing import geometry_note, set_geometry
    if res.cache_model in ("fbgemm", "fbgemm-inference"):
        return _fbgemm_geometry_note(cap, res, trace)
    if (ways is None or res.ways is None or res.per_table_caches
            or res.capacity_unit != "rows"):
        return None
    rows = cap.resolve(trace.n_distinct)
    note = geometry_note(cap.text, rows, ways)
    if note is None or click.get_current_context().get_parameter_source("ways") \
            is not ParameterSource.DEFAULT:
        return note
    n_sets, w = set_geometry(rows, ways)
    if n_sets * w == int(rows):  # the default ways only lowered to a small size's rows
        return None
    return (f"a size that is not whole sets of {ways} ways (the default --ways) is rounded up "
            "to them, as the capacity column shows; give -w full for a fully associative cache "
            "of exactly that size")


def _fbgemm_geometry_note(cap, res, trace) -> str | None:
    """Under FBGEMM's models, one line for the run when a cache's lines are not the rows asked
    for (FBGEMM allocates whole sets of its ways, at least one; `costs.cache_rows_for`)."""
    import numpy as np

    from .costs import cache_rows_for
    if res.per_table_caches or not res.n_lines or trace is None:
        return None
    rows = np.asarray(trace.table_rows, dtype=np.int64)
    asked = cache_rows_for(cap.text, int(rows.sum()),
                           max_dim=int(np.max(trace.table_dims)))
    if int(res.n_lines) == asked:
        return None
    return (f"FBGEMM's cache is whole sets of {res.ways} ways, at least one: a size that is not "
            "is rounded to them (rows and shares up, bytes down), as the capacity column shows")


def _replay_on_dask(trace, policies, caps, ways, parts, address, *, cache_model, source, **kw):
    """Each policy x size's split replay on the Dask cluster at `address` (`cachesim replay
    --dask`), in the replay loop's order: one client for all of them."""
    from .simulate.result import resolve_cache_model
    from .sweep import replay_split_dask
    fbgemm = resolve_cache_model(cache_model) == "fbgemm"
    runs = [(pol, cap, ways if fbgemm else _ways_for(ways, pol, cap))
            for pol in policies for cap in caps]
    with _fbgemm_warnings_shown():
        return replay_split_dask(trace, runs, address, parts, source=source,
                                 cache_model=cache_model, **kw)


def _ways_for(ways, policy, cap):
    """--ways for one replay: the default 32 applies where it can (a policy with a
    set-associative form, a size in rows); an explicit --ways always applies, and is refused
    where it cannot (the API's ways=32 is its default, so the refusal is the command's: `-w 32`
    with a byte size or OPT was a fully associative cache without a word)."""
    from click.core import ParameterSource
    if ways is None:
        return None
    if click.get_current_context().get_parameter_source("ways") is not ParameterSource.DEFAULT:
        if cap.is_bytes:
            raise CachesimError(f"--ways {ways}: a set-associative cache counts rows; give the "
                                "size as rows or %, not bytes, or --ways full")
        if policy.set_associative is None:
            raise CachesimError(f"policy {policy.name!r} has no set-associative form; --ways "
                                f"{ways} works with lru, lfu and fifo (others: --ways full)")
        return ways
    return ways if policy.set_associative is not None and not cap.is_bytes else None


# -- report --------------------------------------------------------------------------------------
@cli.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path())
@_trace_options
@click.option("--output", "-o", "out_dir", required=True, type=click.Path(),
              help="Folder for report.html, report.md, the plots, results.json/.parquet "
                   "(new, empty, or an earlier report's).")
@force_option()
@click.option("--budget", "-b", default=None, help="Device memory budget for cache and metadata "
              "(512MiB, 2GiB).")
@click.option("--target-hit-ratio", type=float, default=0.9, show_default=True,
              help="Hit ratio the recommended configuration must reach.")
@click.option("--precision", type=PRECISIONS, default="fp32,fp16,int8,int4", show_default=True,
              help="Storage precisions to compare.")
@click.option("--policy", "-p", type=POLICIES, default="lru,lfu", show_default=True,
              help="Policies for the batch sweep (the curves add every access-mode policy).")
@ways_option()
@cache_model_option()
@per_table_option()
@table_groups_option
@fbgemm_options
@click.option("--size", "-s", "sizes", cls=RenamedOption, old_names=("--sizes",), type=SIZES,
              default="0.5%,1%,2%,5%,10%,20%,50%", show_default=True,
              help="Cache sizes to sweep, as shares of the distinct rows.")
@click.option("--link-gbps", type=float, default=None,
              help="Host-device bandwidth in GB/s for time per step (default: PCIe Gen4 x16).")
@click.option("--train", is_flag=True, help="Also train DLRM behind the cache (accuracy section).")
@click.option("--seeds", type=SEEDS, default="0,1,2", show_default=True,
              help="Training seeds (with --train).")
@click.option("--from", "from_results", default=None, type=click.Path(),
              help="Saved results to use instead of recomputing: a report's results.json, or a "
                   "table from `cachesim sweep -o` / `cachesim train -o`.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes for the sweep.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--stream/--no-stream", "stream", default=None,
              help="Read the trace in chunks, in memory bounded by the distinct keys, not the "
                   "trace: every section streamed, but training (--train) and OPT on a batched "
                   "trace, which the report leaves out and says so (oracle-general and txt "
                   "files; Parquet with a batch column, fbgemm-npz, dlrm-pt). Default: stream "
                   "such traces over 1 GiB.")
def report(trace_path, fmt, batch_size, out_dir, force, budget, target_hit_ratio, precision,
           policy, ways, cache_model, per_table, table_rows, warp, prefetch_pipeline, sizes,
           link_gbps, train, seeds, from_results, jobs, quiet, stream, table_groups):
    """Write a sizing report (HTML, Markdown, plots, results) for a trace.

    Example: cachesim report trace.parquet -o report/ --budget 2GiB --target-hit-ratio 0.9
    """
    from .reports.report import ReportOptions, build_report
    from .sizes import parse_size
    fractions = []
    for text in split(sizes):
        cap = parse_size(text)
        if cap.kind != "fraction":
            raise CachesimError(f"--size {text}: give shares of the distinct rows, such as 5%")
        fractions.append(cap.value)
    opt = ReportOptions(policies=tuple(policy), precisions=tuple(precision),
                        ways=ways, cache_model=cache_model, per_table=per_table,
                        prefetch_pipeline=prefetch_pipeline, warp=warp,
                        table_groups=table_groups,
                        table_rows=None if table_rows is None else tuple(table_rows),
                        target_hit_ratio=target_hit_ratio,
                        budget=budget,
                        link_gbps=link_gbps, train=train, fractions=tuple(fractions),
                        train_seeds=tuple(seeds), jobs=jobs,
                        command=_command_line(), progress=not quiet,
                        stream=_analysis_streams(trace_path, fmt, stream, "report", True))
    with _table_rows_warning_once():
        out = build_report(trace_path, out_dir, opt, from_results=from_results, fmt=fmt,
                           batch_size=batch_size, force=force)
    click.echo(f"wrote {out / 'report.html'} (and report.md, results.json, results.parquet)")


def main(argv=None):
    """Console entry point: every user mistake, click's usage errors included, is one line on
    stderr and exit status 2."""
    try:
        rc = cli.main(args=argv, prog_name="cachesim", standalone_mode=False)
    except CachesimError as err:  # raised outside a command (e.g. while parsing)
        click.echo(f"cachesim: error: {_one_line(err)}", err=True)
        sys.exit(2)
    except click.exceptions.UsageError as err:
        if isinstance(err, getattr(click.exceptions, "NoArgsIsHelpError", ())):
            click.echo(err.format_message())  # plain `cachesim`: the help
            sys.exit(0)
        where = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
        click.echo(f"cachesim: error: {_one_line(err.format_message())}{where}", err=True)
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
