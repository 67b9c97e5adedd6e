"""Cache sizes as users write them: a row count (`1000`), a share of the distinct keys (`5%`),
or bytes (`128MiB`, `2GiB`, `500KB`).

`parse_size` checks the text; `Capacity.resolve` turns it into a number of rows or bytes for one
trace.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import CachesimError

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z%]*)\s*$")


@dataclass(frozen=True)
class Capacity:
    """A cache size as given: `kind` is 'rows', 'fraction' or 'bytes'."""

    kind: str
    value: float
    text: str

    @property
    def is_bytes(self) -> bool:
        return self.kind == "bytes"

    def resolve(self, n_distinct: int) -> int:
        """Rows (or bytes) for a trace with `n_distinct` distinct keys; at least 1."""
        if self.kind == "fraction":
            return max(1, int(round(self.value * n_distinct)))
        return int(self.value)

    def __str__(self) -> str:
        return self.text


def parse_size(text, name: str | None = None) -> Capacity:
    """Parse one size; raise CachesimError naming the value and the accepted forms (as the
    option `name`'s, '--size', when given)."""
    if isinstance(text, Capacity):
        return text
    if isinstance(text, (int,)) and not isinstance(text, bool):
        if text <= 0:
            raise CachesimError(f"cache size {text} must be positive (a row count such as 1000, "
                                "a share such as 5%, or bytes such as 128MiB)")
        return Capacity("rows", int(text), str(text))
    s = str(text).strip()

    def bad(why: str, lead: str = "cache size", sep: str = ": ") -> CachesimError:
        return CachesimError(f"{name} {s!r}: {why}" if name else f"{lead} {s!r}{sep}{why}")

    m = _SIZE_RE.match(s)
    if not m:
        raise bad("give a row count (1000), a share of the distinct keys (5%), or bytes "
                  "(128MiB, 2GiB)", lead="cannot read cache size")
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit == "%":
        if not 0 < number <= 100:
            raise bad("a share must be above 0% and at most 100%")
        return Capacity("fraction", number / 100.0, s)
    if unit not in _UNITS:
        raise bad(f"unknown unit {m.group(2)!r}; use one of %, B, KB, MB, GB, KiB, MiB, GiB, "
                  "TiB")
    value = number * _UNITS[unit]
    if value <= 0 or math.isnan(value):
        raise bad("must be positive (a row count such as 1000, a share such as 5%, or bytes "
                  "such as 128MiB)", sep=" ")
    if unit == "":
        if number != int(number):
            raise bad("a row count must be a whole number")
        return Capacity("rows", int(number), s)
    return Capacity("bytes", int(value), s)


def parse_bytes(text, what: str = "budget") -> int:
    """A number of bytes: an int, or text with its unit ('2GiB', '500MB', '4096B'); `what`
    names the value in the error ('--budget'). A bare number or a share is refused: a budget is
    memory, where a cache size may be rows."""
    if isinstance(text, (int,)) and not isinstance(text, bool):
        if text <= 0:
            raise CachesimError(f"{what} {text} must be a positive number of bytes")
        return int(text)
    s = str(text).strip()
    m = _SIZE_RE.match(s)
    unit = m.group(2).lower() if m else None
    if unit in (None, "", "%") or unit not in _UNITS:
        raise CachesimError(f"{what} {s!r}: give bytes with a unit (4096B, 500MB, 2GiB)")
    value = float(m.group(1)) * _UNITS[unit]
    if not value >= 1:
        raise CachesimError(f"{what} {s!r} must be at least 1 byte (4096B, 500MB, 2GiB)")
    return int(value)


def parse_sizes(text: str) -> list[Capacity]:
    """A comma-separated list of sizes."""
    parts = [p for p in str(text).split(",") if p.strip()]
    if not parts:
        raise CachesimError("no cache size given: pass --size 1000,5%,128MiB")
    return [parse_size(p) for p in parts]


def format_bytes(n: float) -> str:
    """Human-readable binary bytes: 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n} B"


_FULL = ("full", "none", "fa")  # spellings of "fully associative"


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


def parse_ways_list(values, name: str = "--ways") -> list[int | None]:
    """`32,full`: a list of way counts (None: fully associative); an empty list is [None]."""
    if values is None or (isinstance(values, int) and not isinstance(values, bool)):
        return [parse_ways(values, name)]
    parts = values.split(",") if isinstance(values, str) else list(values)
    return [parse_ways(p, name) for p in parts if str(p).strip()] or [None]


STREAM_THRESHOLD = 1 << 30  # commands stream a trace larger than this (bytes) by default


def memory_bytes() -> int | None:
    """This process's memory limit: the machine's memory, or the cgroup's limit where lower;
    None where neither is known."""
    import os
    limits = []
    try:
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        pass
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(f) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if limits else None


def check_state_fits(nbytes: int, what: str, fix: str) -> None:
    """CachesimError, before any work, when a cache's state (`nbytes`) exceeds this machine's
    memory (`memory_bytes`): one line in place of numpy's MemoryError traceback."""
    limit = memory_bytes()
    if limit is not None and nbytes > limit:
        raise CachesimError(f"{what} needs {format_bytes(nbytes)} of state, more than this "
                            f"machine's {format_bytes(limit)} of memory; {fix}")
