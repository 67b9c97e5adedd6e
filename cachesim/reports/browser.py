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
