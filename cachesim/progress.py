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


def duration(seconds: float) -> str:
    """A duration, short: 45s, 3m05s, 2h07m."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Throughput:
    """Progress of a long pass over a trace (issue 12): accesses done, accesses per second and
    an ETA from the share of the source read (`done_bytes` of `total_bytes`).

    On a terminal, a tqdm bar over the bytes (its ETA is tqdm's, from the bytes read) with the
    accesses and M acc/s beside it, shown after `delay` seconds. Elsewhere (a log file, CI), a
    plain line at most once every `every` seconds (the first after `every` seconds, so short
    passes stay silent), e.g.
    `lru 1%: 120,000,000 accesses, 4.12M acc/s, 37% of 1.21 GiB, ETA 1m48s`.
    `clock` (time.monotonic) and `isatty` are for tests."""

    def __init__(self, desc: str, total_bytes: int | None, enabled: bool = True, *,
                 every: float = 60.0, delay: float = 2.0, file=None, isatty=None,
                 clock=time.monotonic):
        self.desc, self.total = desc, int(total_bytes or 0)
        self.clock, self.every = clock, float(every)
        self.start = self.last = clock()
        self.done = 0
        self.read = 0
        fmt = ("{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B of {total_fmt}B{postfix}, "
               "ETA {remaining}" if self.total else "{desc}: {n_fmt}B read{postfix}")
        self.bar = bar(self.total or None, desc, enabled, unit="B", unit_scale=True,
                       delay=delay, file=file, isatty=isatty, bar_format=fmt)
        self.lines = None if self.bar is not None else Lines(enabled, file=file, isatty=isatty,
                                                               clock=clock)

    def update(self, accesses: int, done_bytes: int | None = None) -> None:
        """`accesses` more accesses done; `done_bytes` of the source read so far (None: not
        known, no ETA)."""
        self.done += int(accesses)
        if done_bytes is not None:
            self.read = min(int(done_bytes), self.total) if self.total else int(done_bytes)
        now = self.clock()
        per_s = self.done / max(now - self.start, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.done:,} acc, {rate(per_s)} acc/s", refresh=False)
            self.bar.update(self.read - self.bar.n)
        elif self.lines is not None and now - self.last >= self.every:
            self.last = now
            self.lines.echo(self.line(now))

    def line(self, now: float) -> str:
        """The plain progress line at time `now` (the clock's)."""
        per_s = self.done / max(now - self.start, 1e-9)
        text = f"{self.desc}: {self.done:,} accesses, {rate(per_s)} acc/s"
        if self.total and self.read:
            share = self.read / self.total
            eta = (now - self.start) * (1 - share) / share
            text += (f", {100 * share:.0f}% of {self.total / 2**30:.2f} GiB, "
                     f"ETA {duration(eta)}")
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
