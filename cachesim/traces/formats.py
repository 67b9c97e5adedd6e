"""Trace formats: a registry of readers (and writers), with inference from suffix or content.

A reader is `read(path, **options) -> Trace`. `register_format` adds one with the file suffixes
it owns and an optional `sniff(head_bytes) -> bool` used when the suffix says nothing.
"""
from __future__ import annotations

import os
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


def infer_format(path) -> Format:
    """The format a file's suffix (or, failing that, its first bytes) names."""
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        matches = [f for f in _FORMATS.values() if "/" in f.suffixes]
        files = sorted(os.listdir(p))
        for f in _FORMATS.values():
            if any(fn.lower().endswith(s) for fn in files for s in f.suffixes if s != "/"):
                if "/" in f.suffixes:
                    return f
        if matches:
            return matches[0]
    hits = [f for f in _FORMATS.values() for s in f.suffixes if s != "/" and name.endswith(s)]
    if hits:
        longest = max(len(s) for f in hits for s in f.suffixes if name.endswith(s))
        hits = [f for f in hits if any(name.endswith(s) and len(s) == longest for s in f.suffixes)]
        if len(hits) == 1:
            return hits[0]
    with open(p, "rb") as fh:
        head = fh.read(65536)
    sniffed = [f for f in _FORMATS.values() if f.sniff is not None and f.sniff(head)]
    if len(sniffed) == 1:
        return sniffed[0]
    raise CachesimError(
        f"{path}: cannot tell the trace format from its name or content; pass --format with "
        f"one of {', '.join(format_names())}")


def read_trace(path, format: str | None = None, **options):
    """Read a trace file (or a folder of batch files) into a `Trace`."""
    p = Path(path)
    if not p.exists():
        raise CachesimError(f"{path}: no such file or folder")
    fmt = get_format(format) if format else infer_format(p)
    trace = fmt.read(p, **options)
    return trace
