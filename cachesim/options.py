"""The CLI's shared option parsers: one click type per kind of option, used by every command.

A bad value raises CachesimError naming the option, the value and the fix, which the CLI prints
as one line on stderr with exit status 2.

- `WAYS` / `WAYS_LIST`: a positive integer, or `full` (alias `none`) for fully associative
  (None); default 32, FBGEMM's.
- `SIZES`: comma-separated cache sizes (`cachesim.sizes.parse_sizes`), kept as text.
- `SEEDS`: comma-separated whole numbers.
- `PRECISIONS`: comma-separated storage precisions (`cachesim.costs.precision_names`).
- `POLICIES` / `POLICY`: comma-separated policy names / one (`cachesim.policies.get_policy`).
- `cache_precision_option`: --cache-precision fp32|fp16, the precision of cached rows.
- `RenamedOption`: an option whose old spelling still works, hidden from --help
  (`report --sizes` and `mrc --sizes` are now --size; `allocate --precision` is
  --cache-precision).
- `cache_model_option` (fbgemm|ideal|fbgemm-inference), `per_table_option` (a flag; a sweep's
  no|yes|both), `fbgemm_options` (--prefetch-pipeline, --warp, --table-rows): the batch
  replay's cache model and FBGEMM's cache settings, the same in replay, sweep, report, train.
"""
from __future__ import annotations

import contextlib

import click

from .errors import CachesimError
from .sizes import parse_ways
from .simulate.result import (CACHE_MODELS, DEFAULT_CACHE_MODEL, DEFAULT_WAYS,
                               INFERENCE_CACHE_MODEL)
WAYS_HELP = ("Ways per set of the set-associative cache: a positive integer, or full for fully "
             f"associative (default {DEFAULT_WAYS}, FBGEMM's; policies without sets and byte "
             "sizes are fully associative, and refuse a --ways given).")


def split(text) -> list[str]:
    """`a, b,,c` -> ['a', 'b', 'c']."""
    if isinstance(text, (list, tuple)):
        return [str(p).strip() for p in text if str(p).strip()]
    return [p.strip() for p in str(text).split(",") if p.strip()]


def _name(param, default: str) -> str:
    """The option's name in messages: its longest spelling, old hidden ones aside."""
    old = getattr(param, "old_names", ())
    opts = [o for o in getattr(param, "opts", None) or () if o not in old]
    return max(opts, key=len) if opts else default


class RenamedOption(click.Option):
    """An option whose old spellings (`old_names`) still work but --help shows only the new."""

    def __init__(self, param_decls, old_names=(), **kwargs):
        self.old_names = tuple(old_names)
        super().__init__([*param_decls, *self.old_names], **kwargs)

    @contextlib.contextmanager
    def _new_names_only(self):
        opts = self.opts
        self.opts = [o for o in opts if o not in self.old_names]
        try:
            yield
        finally:
            self.opts = opts

    def get_help_record(self, ctx):
        with self._new_names_only():
            return super().get_help_record(ctx)

    def get_error_hint(self, ctx):
        with self._new_names_only():
            return super().get_error_hint(ctx)


class _Type(click.ParamType):
    """A click type whose errors are CachesimErrors (one line, exit 2)."""

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value  # a default already converted, or a value from the API
        return self.parse(value, _name(param, self.name))


class Ways(_Type):
    name = "ways"

    def get_metavar(self, param, *args, **kwargs):
        return "W|full"

    def parse(self, value, name):
        return parse_ways(value, name)


class WaysList(_Type):
    name = "ways-list"

    def get_metavar(self, param, *args, **kwargs):
        return "W,...|full"

    def parse(self, value, name):
        parts = split(value)
        if not parts:
            raise CachesimError(f"{name} is empty: give ways such as 32, or 32,full")
        return [parse_ways(p, name) for p in parts]


class Sizes(_Type):
    """Comma-separated cache sizes (`sizes.parse_size`); with `zero`, 0 too (a curve's first
    point)."""
    name = "sizes"

    def __init__(self, zero: bool = False):
        self.zero = zero

    def parse(self, value, name):
        from .sizes import parse_size
        parts = split(value)
        if not parts:
            raise CachesimError(f"{name} is empty: give sizes such as 1000,5%,128MiB")
        for p in parts:
            if self.zero and p.strip() == "0":
                continue
            parse_size(p, name)  # (its error names the option and the size, once)
        return ",".join(parts)


class Seeds(_Type):
    name = "seeds"

    def get_metavar(self, param, *args, **kwargs):
        return "S1,S2,..."

    def parse(self, value, name):
        parts = split(value)
        if not parts:
            raise CachesimError(f"{name} is empty: give whole numbers such as 0,1,2")
        try:
            seeds = [int(p) for p in parts]
        except ValueError:
            bad = next(p for p in parts if not _is_int(p))
            raise CachesimError(f"{name} {bad!r}: give comma-separated whole numbers such as "
                                "0,1,2") from None
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:  # the same run twice: two identical records that count as two seeds' noise
            raise CachesimError(f"{name} {value!r}: seed {twice[0]} is given twice; give "
                                "different seeds")
        return seeds


def _is_int(text) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


class Precisions(_Type):
    name = "precisions"

    def parse(self, value, name):
        from .costs import precision_names
        parts = split(value)
        known = precision_names()
        if not parts:
            raise CachesimError(f"{name} is empty: give one of {', '.join(known)}")
        for p in parts:
            if p.lower() not in known:
                raise CachesimError(f"{name} {p}: unknown precision; use one of "
                                    f"{', '.join(known)}")
        return [p.lower() for p in parts]


class Policies(_Type):
    name = "policies"

    def parse(self, value, name):
        from .policies import get_policy
        parts = split(value)
        if not parts:
            raise CachesimError(f"{name} is empty: give a policy such as lru")
        for p in parts:
            try:
                get_policy(p)
            except CachesimError as err:
                raise CachesimError(f"{name} {p}: {err}") from None
        return parts


class Policy(Policies):
    """One policy name."""
    name = "policy"

    def parse(self, value, name):
        parts = super().parse(value, name)
        if len(parts) != 1:
            raise CachesimError(f"{name} {value}: give one policy, such as lru")
        return parts[0]


WAYS, WAYS_LIST, SIZES, SEEDS = Ways(), WaysList(), Sizes(), Seeds()
CURVE_SIZES = Sizes(zero=True)  # mrc --size: a curve may start at 0
PRECISIONS, POLICIES, POLICY = Precisions(), Policies(), Policy()


def ways_option(many: bool = False):
    """The --ways/-w option, the same in every command (`many`: a comma-separated list)."""
    if many:
        return click.option("--ways", "-w", type=WAYS_LIST, default=str(DEFAULT_WAYS),
                            help=WAYS_HELP + " Comma-separated to sweep several, e.g. 32,full.")
    return click.option("--ways", "-w", type=WAYS, default=str(DEFAULT_WAYS), help=WAYS_HELP)


SIZE_HELP = (
    "Comma-separated cache sizes: rows (1000), a share (5%) or bytes (128MiB). Batch mode's "
    "fbgemm models take a share of the tables' total rows (FBGEMM's cache_load_factor on their "
    "num_embeddings); access mode and --cache-model ideal, of the distinct keys the trace "
    "touched.")

CACHE_MODEL_HELP = (
    "Batch replay's cache: fbgemm = FBGEMM's training cache exactly (32 ways, or 64 with --warp "
    "64; a share such as 5% is the load factor on the tables' num_embeddings); ideal = "
    "cachesim's own what-if cache (any --ways or full, lowest-way ties, LFU locking); "
    "fbgemm-inference = FBGEMM's inference cache (IntNBitTableBatchedEmbeddingBagsCodegen: lru "
    "or lfu at -w 32, or 64 with --warp 64; lru at -w 1, direct-mapped; one cache over all "
    f"tables, nothing written back). Default: {DEFAULT_CACHE_MODEL}.")


class CacheModel(_Type):
    """A batch cache model: fbgemm, ideal or fbgemm-inference (`resolve_cache_model`)."""
    name = "cache-model"

    def get_metavar(self, param, *args, **kwargs):
        return "|".join((*CACHE_MODELS, INFERENCE_CACHE_MODEL))

    def parse(self, value, name):
        from .simulate.result import resolve_cache_model
        return resolve_cache_model(value, inference=True)


class Warp(_Type):
    """FBGEMM's warp size: 32 (NVIDIA) or 64 (AMD CDNA)."""
    name = "warp"

    def get_metavar(self, param, *args, **kwargs):
        return "32|64"

    def parse(self, value, name):
        if value.strip() not in ("32", "64"):
            raise CachesimError(f"{name} {value!r}: FBGEMM's cache has one way per warp lane; "
                                "use 32 (NVIDIA) or 64 (AMD CDNA)")
        return int(value)


class PerTableList(_Type):
    """`no`, `yes` or `both`: the per-table settings a sweep runs (kept as text)."""
    name = "per-table"

    def get_metavar(self, param, *args, **kwargs):
        return "no|yes|both"

    def parse(self, value, name):
        v = value.strip().lower()
        if v not in ("no", "yes", "both"):
            raise CachesimError(f"{name} {value!r}: use no (one cache over all tables), yes (one "
                                "cache per table) or both")
        return v


CACHE_MODEL, WARP, PER_TABLE_LIST = CacheModel(), Warp(), PerTableList()


def cache_model_option():
    """--cache-model fbgemm|ideal|fbgemm-inference (None: DEFAULT_CACHE_MODEL), the same in
    every command."""
    return click.option("--cache-model", type=CACHE_MODEL, default=None, help=CACHE_MODEL_HELP)


PER_TABLE_HELP = ("Batch mode: one cache per table instead of one over all tables (fbgemm: one "
                  "32-way cache per table, keyed by the table's own row, each at least one set; "
                  "a share such as 5% is of each table's rows; not with fbgemm-inference).")


def per_table_option(many: bool = False):
    """--per-table, the same in every command: a flag, or (`many`, a sweep) no|yes|both."""
    if many:
        return click.option("--per-table", type=PER_TABLE_LIST, default="no", show_default=True,
                            help=PER_TABLE_HELP + " both: sweep the two.")
    return click.option("--per-table", is_flag=True, help=PER_TABLE_HELP)


def fbgemm_options(f):
    """--prefetch-pipeline, --warp and --table-rows: FBGEMM's caches (--cache-model fbgemm, and
    --warp and --table-rows for fbgemm-inference too)."""
    f = click.option("--table-rows", type=TABLE_ROWS, default=None, metavar="N1,N2,...",
                     help="num_embeddings of each table, in table order (overrides the trace's "
                          "table sizes; FBGEMM's load factor is a share of their sum).")(f)
    f = click.option("--warp", type=WARP, default=None,
                     help="fbgemm, fbgemm-inference: the warp size, which is FBGEMM's ways (64: "
                          "AMD CDNA; default 32).")(f)
    f = click.option("--prefetch-pipeline", is_flag=True,
                     help="fbgemm, lru: FBGEMM's prefetch_pipeline=True: the lines of a batch "
                          "stay locked until the next batch's insert has run.")(f)
    return f


def table_groups_option(f):
    """--table-groups: which tables share one FBGEMM cache (TorchRec's TBE ops:
    simulate/groups.py)."""
    return click.option("--table-groups", default=None, metavar="SPEC",
                        help="fbgemm: which tables share one cache, as TorchRec's TBE ops: "
                             "'torchrec' (TorchRec's grouping: one for all tables, or one per "
                             "embedding dim with --prefetch-pipeline), 'table' (one per table, "
                             "as --per-table), or groups of table indices or names split by "
                             "'/', e.g. '0-12/13-25' or 'C1,C2/C3-C26'. Default: one cache for "
                             "all tables.")(f)


class TableRows(_Type):
    name = "table-rows"

    def parse(self, value, name):
        parts = split(value)
        try:
            rows = [int(p) for p in parts]
        except ValueError:
            rows = []
        if not rows or any(r < 1 for r in rows):
            raise CachesimError(f"{name} {value!r}: give each table's num_embeddings as whole "
                                "numbers of at least 1, in table order (e.g. 1460,583,10131227)")
        return rows


TABLE_ROWS = TableRows()


def force_option(what: str = "folder"):
    """--force: write into a non-empty folder cachesim did not write (the user's files stay)."""
    return click.option("--force", is_flag=True,
                        help=f"Write into a non-empty {what} that cachesim did not write; files "
                             "that are not cachesim's are never overwritten or deleted.")


def cache_precision_option(old_names=()):
    """--cache-precision fp32|fp16: the precision of cached rows, the same in every command
    (`old_names`: a command's earlier spelling, still accepted, not shown)."""
    return click.option("--cache-precision", "cache_precision", cls=RenamedOption,
                        old_names=old_names, default="fp32", show_default=True,
                        type=click.Choice(["fp32", "fp16"]), help="Precision of cached rows.")
