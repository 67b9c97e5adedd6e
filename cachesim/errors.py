"""User-facing errors.

A `CachesimError` is a mistake of the user's (a bad file, a bad option): the CLI prints its
message on one line of stderr and exits with status 2, never a traceback. Messages name the
file (and line or byte offset), what was expected, and how to fix it.
"""
from __future__ import annotations


class CachesimError(Exception):
    """A user's mistake, reported as one clear line; the CLI exits with status 2."""


class TraceFormatError(CachesimError):
    """A trace file that does not parse: carries the file and the line or byte offset."""

    def __init__(self, path, what: str, *, line: int | None = None, offset: int | None = None,
                 fix: str | None = None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if offset is not None:
            where += f", byte offset {offset}"
        msg = f"{where}: {what}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)
        self.path, self.line, self.offset = path, line, offset
