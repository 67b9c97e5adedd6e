"""Build the sizing report for the shipped Criteo sample, time it, check it in headless chromium,
and save a screenshot of the top of the page as bench/report_top.png.

    .venv/bin/python bench/report_screenshot.py [--train]
"""
import sys
import tempfile
import time
from pathlib import Path

from cachesim.demo import demo_trace_path
from cachesim.reports.browser import check_in_browser, screenshot
from cachesim.reports.report import ReportOptions, build_report

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    train = "--train" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report"
        t0 = time.perf_counter()
        build_report(demo_trace_path(), out, ReportOptions(target_hit_ratio=0.5, train=train,
                                                           command="bench/report_screenshot.py"))
        took = time.perf_counter() - t0
        seen = check_in_browser(out / "report.html")
        png = screenshot(out / "report.html", HERE / "report_top.png", 1200, 1500)
        size = (out / "report.html").stat().st_size
    print(f"report built in {took:.1f} s (train={train}); report.html {size / 1024:.0f} KiB; "
          f"chromium saw {seen['loaded']}/{seen['images']} images loaded, sections "
          f"{', '.join(seen['sections'])}; screenshot {png}")
