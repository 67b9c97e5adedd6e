"""Progress of streamed replays (cachesim.progress.Throughput): a plain line at most once a
minute off a terminal, with accesses, acc/s and an ETA from the share read (a fake clock)."""
from __future__ import annotations

import io

from cachesim.progress import Throughput, duration


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_lines_once_a_minute_with_eta():
    clock, out = Clock(), io.StringIO()
    p = Throughput("lru 1%", 4 * 2**30, file=out, isatty=False, clock=clock)
    assert p.bar is None
    for step in range(1, 9):  # every 20 s: 5M accesses and 1/10 of the file
        clock.t = 100.0 + 20 * step
        p.update(5_000_000, step * 4 * 2**30 // 10)
    p.close()
    # lines at t = 60 s (15M accesses, 30% read) and 120 s (30M, 60%): none at 20..40, 80..100,
    # 140..160 s, which are under a minute after the last line
    assert out.getvalue().splitlines() == [
        "lru 1%: 15,000,000 accesses, 250k acc/s, 30% of 4.00 GiB, ETA 2m20s",
        "lru 1%: 30,000,000 accesses, 250k acc/s, 60% of 4.00 GiB, ETA 1m20s",
    ]


def test_silent_when_short_or_unknown_share_or_disabled():
    clock, out = Clock(), io.StringIO()
    p = Throughput("first pass", 1000, file=out, isatty=False, clock=clock)
    clock.t += 59
    p.update(10, 500)
    assert out.getvalue() == ""  # under a minute: nothing
    clock.t += 61
    p.update(10)  # the share read is not known (a txt file's first pass): no ETA
    assert out.getvalue() == "first pass: 20 accesses, 0.167 acc/s, 50% of 0.00 GiB, ETA 2m00s\n"
    q = Throughput("x", 0, file=out, isatty=False, clock=clock)
    clock.t += 120
    q.update(7)
    assert out.getvalue().splitlines()[-1] == "x: 7 accesses, 0.0583 acc/s"
    off = io.StringIO()
    r = Throughput("x", 10, enabled=False, file=off, isatty=False, clock=clock)
    clock.t += 500
    r.update(5, 5)
    assert off.getvalue() == "" and r.bar is None


def test_terminal_gets_a_bar_not_lines():
    out = io.StringIO()
    p = Throughput("lru 1%", 2**20, file=out, isatty=True, delay=0.0)
    assert p.bar is not None and p.lines is None
    p.update(1000, 2**19)
    assert p.bar.n == 2**19 and p.bar.total == 2**20
    p.close()
    assert "lru 1%" in out.getvalue()


def test_duration():
    assert [duration(s) for s in (0, 45.4, 185, 7620, -3)] == ["0s", "45s", "3m05s", "2h07m",
                                                              "0s"]
