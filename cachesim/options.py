"""The CLI's shared option parsers: one click type per kind of option, used by every command.

A bad value raises CachesimError naming the option, the value and the fix, which the CLI prints
as one line on stderr with exit status 2.

- `WAYS` / `WAYS_LIST`: a positive integer, or `full` (alias `none`) for fully associative
  (None); default 32, FBGEMM's.
- `SIZES`: comma-separated cache sizes (`cachesim.sizes.parse_sizes`), kept as text.
- `SEEDS`: comma-separated whole numbers.
- `PRECISIONS`: comma-separated storage precisions (`cachesim.costs.model.precision_names`).
- `POLICIES` / `POLICY`: comma-separated policy names / one (`cachesim.policies.get_policy`).
"""
from __future__ import annotations

import click

from .errors import CachesimError
from .simulate.result import DEFAULT_WAYS
WAYS_HELP = ("Ways per set of the set-associative cache: a positive integer, or full for fully "
             f"associative (default {DEFAULT_WAYS}, FBGEMM's; policies without sets and byte "
             "sizes stay fully associative unless --ways is given).")
_FULL = ("full", "none", "fa")


def split(text) -> list[str]:
    """`a, b,,c` -> ['a', 'b', 'c']."""
    if isinstance(text, (list, tuple)):
        return [str(p).strip() for p in text if str(p).strip()]
    return [p.strip() for p in str(text).split(",") if p.strip()]


def _name(param, default: str) -> str:
    if param is not None and getattr(param, "opts", None):
        return max(param.opts, key=len)
    return default


def parse_ways(text, name: str = "--ways") -> int | None:
    """One way count: a positive integer, or full/none (None: fully associative)."""
    if text is None:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        s = str(text).strip().lower()
        if s in _FULL:
            return None
        try:
            value = int(s)
        except ValueError:
            raise CachesimError(f"{name} {text!r}: give a positive whole number of ways, or full "
                                "for fully associative (e.g. --ways 32)") from None
    if value < 1:
        raise CachesimError(f"{name} {text!r}: the number of ways must be at least 1 (or full "
                            "for fully associative)")
    return value


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
    name = "sizes"

    def parse(self, value, name):
        from .sizes import parse_size
        parts = split(value)
        if not parts:
            raise CachesimError(f"{name} is empty: give sizes such as 1000,5%,128MiB")
        for p in parts:
            try:
                parse_size(p)
            except CachesimError as err:
                raise CachesimError(f"{name} {p!r}: {err}") from None
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
            return [int(p) for p in parts]
        except ValueError:
            bad = next(p for p in parts if not _is_int(p))
            raise CachesimError(f"{name} {bad!r}: give comma-separated whole numbers such as "
                                "0,1,2") from None


def _is_int(text) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


class Precisions(_Type):
    name = "precisions"

    def parse(self, value, name):
        from .costs.model import precision_names
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
PRECISIONS, POLICIES, POLICY = Precisions(), Policies(), Policy()


def ways_option(many: bool = False):
    """The --ways/-w option, the same in every command (`many`: a comma-separated list)."""
    if many:
        return click.option("--ways", "-w", type=WAYS_LIST, default=str(DEFAULT_WAYS),
                            help=WAYS_HELP + " Comma-separated to sweep several, e.g. 32,full.")
    return click.option("--ways", "-w", type=WAYS, default=str(DEFAULT_WAYS), help=WAYS_HELP)


def force_option(what: str = "folder"):
    """--force: write into a non-empty folder cachesim did not write (the user's files stay)."""
    return click.option("--force", is_flag=True,
                        help=f"Write into a non-empty {what} that cachesim did not write; files "
                             "that are not cachesim's are never overwritten or deleted.")
