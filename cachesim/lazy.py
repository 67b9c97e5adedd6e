"""Heavy dependencies imported on first use, so a command pays only for what it uses.

    pl = lazy_module("polars")   # at module level: nothing is imported yet
    pl.read_csv(...)             # the first attribute use imports polars

Used for polars in the trace readers: reading an oracleGeneral or txt trace, `--help` and
`--version` never import it (`tests/test_startup_imports.py` checks which modules a command
imports).
"""
from __future__ import annotations

import importlib


class _LazyModule:
    __slots__ = ("_name",)

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def lazy_module(name: str):
    """A stand-in for module `name` that imports it on its first attribute access."""
    return _LazyModule(name)
