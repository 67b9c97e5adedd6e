"""The `cachesim` command line: each command parses, calls the Python API, and prints.

User mistakes raise CachesimError, printed as one line on stderr with exit status 2.
"""
from __future__ import annotations

import json
import sys

import click

from . import __version__
from .errors import CachesimError


class _Group(click.Group):
    """Turns a CachesimError into one clear line on stderr and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CachesimError as err:
            raise _UserError(str(err)) from None


class _UserError(click.ClickException):
    exit_code = 2

    def show(self, file=None):
        click.echo(f"cachesim: error: {self.format_message()}", err=True)


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
                     help="Samples per batch for sample-based formats (criteo, avazu).")(f)
    return f


def _read(path, fmt, batch_size=None):
    from .traces import read_trace
    opts = {} if batch_size is None else {"batch_size": batch_size}
    trace = read_trace(path, format=fmt, **opts)
    trace.require_nonempty()
    return trace


def _split(text: str) -> list[str]:
    return [p.strip() for p in str(text).split(",") if p.strip()]


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
@click.option("--policy", "-p", default="lru", show_default=True,
              help="Comma-separated policies, e.g. lru,lfu,opt.")
@click.option("--size", "-s", "sizes", required=True,
              help="Comma-separated cache sizes: rows (1000), share of distinct keys (5%), "
                   "or bytes (128MiB).")
@click.option("--ways", "-w", type=int, default=None,
              help="Set-associative with W ways (lru, lfu, fifo); 1 is direct-mapped.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random policies.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of records.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def replay(trace_path, fmt, batch_size, policy, sizes, ways, seed, as_json, quiet):
    """Replay a trace through policies and sizes; print hits and misses.

    Example: cachesim replay trace.parquet --policy lru,lfu,opt --size 1000,5%
    """
    from .engine import replay as run_replay
    from .policies import get_policy
    from .sizes import parse_sizes
    policies = [get_policy(p) for p in _split(policy)]
    caps = parse_sizes(sizes)
    trace = _read(trace_path, fmt, batch_size)
    records = []
    for pol in policies:
        for cap in caps:
            res = run_replay(trace, pol, cap, ways=ways, seed=seed, progress=not quiet)
            records.append(res.to_record())
    if as_json:
        click.echo(json.dumps(records, indent=1))
    else:
        _print_table(records, ["policy", "size", "capacity", "ways", "requests", "hits",
                               "misses", "hit_ratio", "miss_bytes"])


# -- convert (traces) ----------------------------------------------------------------------------
# (added by the formats work)

# -- sweep, memory (embedding-cache semantics) ---------------------------------------------------
# (added by the batch-replay work)

# -- analyze, mrc, allocate, generate (trace analysis) -------------------------------------------
# (added by the analysis work)

# -- train (executor) ----------------------------------------------------------------------------
# (added by the executor work)

# -- report --------------------------------------------------------------------------------------
# (added by the reports work)


def main(argv=None):
    """Console entry point."""
    try:
        cli.main(args=argv, prog_name="cachesim", standalone_mode=True)
    except CachesimError as err:  # raised outside a command (e.g. while parsing)
        click.echo(f"cachesim: error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
