"""Open a report in a real headless browser (Debian's chromium): check it and take screenshots."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars"]

_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var ids = Array.prototype.map.call(document.querySelectorAll('section'), function (s) { return s.id; });
  var pre = document.createElement('pre'); pre.id = 'cachesim-probe';
  pre.textContent = JSON.stringify({images: imgs.length, loaded: ok, sections: ids});
  document.body.appendChild(pre);
});
</script>"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([*args[:1], *_FLAGS, f"--user-data-dir={profile}", *args[1:]],
                              capture_output=True, text=True, timeout=timeout)


def check_in_browser(html_path) -> dict:
    """Load the page in headless chromium; return {'images', 'loaded', 'sections'} as it saw them."""
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    src = Path(html_path).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(src.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
        proc = _run([exe, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()])
    m = re.search(r"<pre id=\"cachesim-probe\">(.*?)</pre>", proc.stdout, re.S)
    if not m:
        raise RuntimeError(f"the page did not finish loading in chromium: {proc.stderr[-500:]}")
    import html as _html
    return json.loads(_html.unescape(m.group(1)))


def dump_dom(html_path) -> str:
    """The page's DOM as chromium holds it after loading (HTML text), for tests that read what
    a reader sees rather than what was written."""
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    proc = _run([exe, "--virtual-time-budget=10000", "--dump-dom",
                 Path(html_path).resolve().as_uri()])
    if "<section" not in proc.stdout:
        raise RuntimeError(f"chromium returned no page: {proc.stderr[-500:]}")
    return proc.stdout


def report_tables(dom: str) -> dict:
    """{section id: [table, ...]} from a report page, each table a list of rows of cell texts
    (the header row first)."""
    from html.parser import HTMLParser

    class _P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.out, self.section, self.table, self.row, self.cell = {}, None, None, None, None

        def handle_starttag(self, tag, attrs):
            if tag == "section":
                self.section = dict(attrs).get("id")
            elif tag == "table":
                self.table = []
                self.out.setdefault(self.section, []).append(self.table)
            elif tag == "tr" and self.table is not None:
                self.row = []
                self.table.append(self.row)
            elif tag in ("td", "th") and self.row is not None:
                self.cell = []

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                self.row.append("".join(self.cell).strip())
                self.cell = None
            elif tag == "table":
                self.table = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    p = _P()
    p.feed(dom)
    return p.out


def figure_captions(dom: str) -> list[str]:
    """Every <figcaption>'s text on the page, in order."""
    import html as _html
    return [_html.unescape(re.sub(r"<[^>]+>", "", m))
            for m in re.findall(r"<figcaption>(.*?)</figcaption>", dom, re.S)]


def screenshot(html_path, png_path, width: int = 1200, height: int = 1400) -> Path:
    """A PNG of the top of the page."""
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    png_path = Path(png_path).resolve()
    _run([exe, f"--window-size={width},{height}", f"--screenshot={png_path}",
          "--virtual-time-budget=10000", Path(html_path).resolve().as_uri()])
    if not png_path.exists():
        raise RuntimeError("chromium wrote no screenshot")
    return png_path
