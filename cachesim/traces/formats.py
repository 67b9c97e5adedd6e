"""Trace formats: a registry of readers (and writers), with inference from suffix or content.

A reader is `read(path, **options) -> Trace`. `register_format` adds one with the file suffixes
it owns ("/" among them: it also reads a folder of such files as successive batches) and an
optional `sniff(head_bytes) -> bool`, asked when the suffix is shared or says nothing; a sniffer
looks at the first line only, so that a bad line further down reaches the reader, which names it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import CachesimError


@dataclass(frozen=True)
class Format:
    name: str
    read: Callable
    suffixes: tuple[str, ...] = ()
    sniff: Callable[[bytes], bool] | None = None
    description: str = ""


_FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    _FORMATS[fmt.name] = fmt
    return fmt


def format_names() -> list[str]:
    return list(_FORMATS)


def get_format(name: str) -> Format:
    if name not in _FORMATS:
        raise CachesimError(f"unknown trace format {name!r}; known formats: "
                            f"{', '.join(format_names())}")
    return _FORMATS[name]


def _natural_key(name: str):
    """Sort key that orders batch_2 before batch_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def folder_files(path, suffixes) -> list[Path]:
    """Files in folder `path` whose names end in one of `suffixes`, in natural sorted order."""
    p = Path(path)
    files = [f for f in p.iterdir() if f.is_file() and f.name.lower().endswith(tuple(suffixes))]
    return sorted(files, key=lambda f: _natural_key(f.name))


def _suffix_matches(name: str, fmt: Format) -> int:
    """Length of the longest suffix of `fmt` that `name` ends with (0 for none)."""
    return max((len(s) for s in fmt.suffixes if s != "/" and name.endswith(s)), default=0)


def infer_format(path) -> Format:
    """The format a file's suffix names; where a suffix is shared (.txt: txt or criteo; .csv:
    csv or avazu) or absent, the one whose sniffer accepts the file's first bytes.
    A folder: the folder format whose batch files it holds (.npz, .pt)."""
    p = Path(path)
    if p.is_dir():
        found = [f for f in _FORMATS.values()
                 if "/" in f.suffixes and folder_files(p, [s for s in f.suffixes if s != "/"])]
        if len(found) == 1:
            return found[0]
        kinds = ", ".join(f"{f.name} ({' '.join(s for s in f.suffixes if s != '/')})"
                          for f in _FORMATS.values() if "/" in f.suffixes)
        if not found:
            raise CachesimError(f"{path}: the folder holds no trace files; a folder is read as "
                                f"successive batches of one of: {kinds} (or pass one file)")
        raise CachesimError(f"{path}: the folder holds batch files of several formats "
                            f"({', '.join(f.name for f in found)}); pass --format")
    name = p.name.lower()
    if p.stat().st_size == 0:
        raise CachesimError(f"{path}: the file is empty, so it holds no accesses "
                            "(check that it was written completely)")
    with open(p, "rb") as fh:
        head = fh.read(65536)
    best = max((_suffix_matches(name, f) for f in _FORMATS.values()), default=0)
    by_suffix = [f for f in _FORMATS.values() if best and _suffix_matches(name, f) == best]
    if len(by_suffix) == 1:
        return by_suffix[0]
    pool = by_suffix or list(_FORMATS.values())
    sniffed = [f for f in pool if f.sniff is not None and f.sniff(head)]
    if len(sniffed) == 1:
        return sniffed[0]
    raise CachesimError(
        f"{path}: cannot tell the trace format from its name or first line; pass --format with "
        f"one of {', '.join(format_names())}")


def read_trace(path, format: str | None = None, **options):
    """Read a trace file (or a folder of batch files) into a `Trace`.

    `options` go to the reader; each takes those it knows (batch_size, num_tables) and ignores
    the rest. Raises CachesimError (TraceFormatError with file and line or byte offset) on bad
    input.
    """
    p = Path(path)
    if not p.exists():
        raise CachesimError(f"{path}: no such file or folder (check the path)")
    fmt = get_format(format) if format else infer_format(p)
    if p.is_dir() and "/" not in fmt.suffixes:
        raise CachesimError(f"{path}: is a folder, and format {fmt.name} reads one file; pass "
                            "a file, or a folder of fbgemm-npz (.npz) or dlrm-pt (.pt) batches")
    try:
        return fmt.read(p, **options)
    except OSError as err:
        raise CachesimError(f"{path}: cannot read it ({err.strerror or err})") from None
