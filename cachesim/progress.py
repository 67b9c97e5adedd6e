"""Progress on stderr: one place for every bar and progress line of the package.

`bar(total, desc, ...)` is a tqdm bar when progress is wanted and the stream is a terminal, else
None (callers do `if bar is not None: bar.update(n)`). `Lines(...)` is the counterpart for a
stream that is not a terminal (a log file, CI, a pipe): `lines.echo(text)` prints one line, and
only once `after` seconds have passed since it was made, so short runs stay silent. Both take
`file` (default: sys.stderr at call time) and `isatty` (default: ask the file), which tests use to
force either branch.
"""
from __future__ import annotations

import sys
import time


def is_terminal(file=None, isatty=None) -> bool:
    """Whether progress on `file` (default stderr) should be a bar; `isatty` forces the answer."""
    if isatty is not None:
        return bool(isatty)
    file = sys.stderr if file is None else file
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def bar(total: int, desc: str, enabled: bool = True, *, unit: str = "it",
        unit_scale: bool = False, leave: bool = False, delay: float = 0.0, file=None,
        isatty=None, **options):
    """A tqdm bar on `file` (stderr) when `enabled` and it is a terminal; else None."""
    file = sys.stderr if file is None else file
    if not enabled or not is_terminal(file, isatty):
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=file,
                leave=leave, delay=delay, dynamic_ncols=True, **options)


class Lines:
    """One line per finished piece of work on a stream that is not a terminal.

    Silent when not `enabled`, when the stream is a terminal (a bar shows there instead) and,
    until `after` seconds have passed since it was made (`clock`: time.monotonic)."""

    def __init__(self, enabled: bool = True, *, after: float = 0.0, file=None, isatty=None,
                 clock=time.monotonic):
        self.file = sys.stderr if file is None else file
        self.on = bool(enabled) and not is_terminal(self.file, isatty)
        self.after = float(after)
        self.clock = clock
        self.start = clock()

    def echo(self, text: str) -> bool:
        """Print `text` as one line if due; whether it was printed."""
        if not self.on or self.clock() - self.start < self.after:
            return False
        print(text, file=self.file, flush=True)
        return True


def rate(value: float) -> str:
    """A count per second, short: 950, 12.3k, 4.5M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"
