"""The sizing report as headless chromium shows it: the memory section's numbers are the
recommendation's, the captions name the line styles the figures draw, the command is recorded."""
import json
import re

import pytest

from cachesim.reports import figures
from cachesim.reports.browser import dump_dom, figure_captions, find_chromium, report_tables
from tests.test_report import SMALL, report_dir, small_trace  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def dom(report_dir):  # noqa: F811
    return dump_dom(report_dir / "report.html")


def _rows(dom, section):
    head, *rows = report_tables(dom)[section][0]
    return {r[0]: dict(zip(head, r)) for r in rows}


def test_memory_section_numbers_are_the_recommendations(dom, report_dir):  # noqa: F811
    res = json.loads((report_dir / "results.json").read_text())
    box, mem = _rows(dom, "summary"), _rows(dom, "memory")
    assert list(mem)[:2] == ["recommended", "runner-up"]
    for role, key in (("recommended", "best"), ("runner-up", "runner_up")):
        c = res["recommendation"][key]
        assert mem[role]["results.json"] == box[role]["results.json"] == f"sweep[{c['index']}]"
        for col in ("policy", "size", "ways", "precision", "hit ratio", "memory", "device",
                    "vs FP32"):
            assert mem[role][col] == box[role][col], (role, col)
    # the other rows at the recommended cache use the recommended policy's metadata
    best = res["recommendation"]["best"]
    others = {role: r for role, r in mem.items() if role not in ("recommended", "runner-up")}
    assert any(role.startswith("paper") for role in others)
    for role, r in others.items():
        assert r["policy"] == best["policy"], role


def test_captions_match_the_drawn_line_styles(dom, report_dir):  # noqa: F811
    res = json.loads((report_dir / "results.json").read_text())
    caps = figure_captions(dom)
    hit = figures.hit_ratio_caption(res, res["meta"])
    assert hit in caps
    assert "the dotted line is the target" in hit and "OPT dashed" in hit
    assert not any("dashed line is the target" in c for c in caps)
    assert figures.transfers_caption(res) in caps
    # and the figures draw those styles
    fig = figures.hit_ratio_figure(res, res["meta"], SMALL)
    drawn = {ln.get_label(): ln.get_linestyle() for ax in fig.axes for ln in ax.get_lines()}
    assert [s for lab, s in drawn.items() if lab.startswith("target")] == [":"]
    assert [s for lab, s in drawn.items() if lab.startswith("OPT")] == ["--"]


def test_provenance_names_the_command(dom):
    m = re.search(r"<li>Command: ([^<]*)</li>", dom)
    assert m and m.group(1).strip()
