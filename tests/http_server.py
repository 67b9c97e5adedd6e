"""A real HTTP server on loopback for the URL tests: the standard library's file server, with
the byte ranges (`Range: bytes=a-b`, `bytes=a-`, `bytes=-n`) that fsspec's HTTP filesystem and
polars' object store ask for, answered 206 with Content-Range; the stdlib handler answers every
request with the whole file."""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import threading


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single byte ranges."""

    _left = None  # bytes of the range still to send, while a range is sent

    def log_message(self, *args):  # quiet: the tests' output is their asserts
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        ask = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "") or "")
        if ask is None or not os.path.isfile(path) or ask.groups() == ("", ""):
            return super().send_head()
        size = os.path.getsize(path)
        first, last = ask.groups()
        start = int(first) if first else max(0, size - int(last))
        end = min(int(last), size - 1) if first and last else size - 1
        if start >= size:
            self.send_error(416, "range past the end")
            return None
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._left = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        if self._left is None:
            return super().copyfile(source, outputfile)
        while self._left > 0:
            block = source.read(min(self._left, 1 << 16))
            if not block:
                break
            outputfile.write(block)
            self._left -= len(block)
        self._left = None


@contextlib.contextmanager
def serve(folder):
    """Serve `folder` on 127.0.0.1 (a free port) from a thread; yields the base URL."""
    handler = functools.partial(RangeHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
