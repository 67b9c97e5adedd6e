"""libCacheSim's trace formats: `oracleGeneral` binary and plain text (one key a line).

oracleGeneral: 24-byte little-endian records, no header: uint32 timestamp (s), uint64 obj_id,
uint32 obj_size (bytes), int64 next_access_vtime (-1 if none).
"""
from __future__ import annotations

import numpy as np

from ..errors import TraceFormatError
from .formats import Format, register_format
from .model import Trace

ORACLE_DTYPE = np.dtype([("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])


def read_oracle_general(path, **_):
    nbytes = path.stat().st_size
    if nbytes % ORACLE_DTYPE.itemsize:
        whole = nbytes // ORACLE_DTYPE.itemsize
        raise TraceFormatError(
            path, f"file is {nbytes} bytes, not a whole number of 24-byte oracleGeneral records;"
            f" the last record is cut short", offset=whole * ORACLE_DTYPE.itemsize,
            fix="the file is truncated: copy it again, or cut it to a multiple of 24 bytes")
    rec = np.fromfile(path, dtype=ORACLE_DTYPE)
    n = rec.shape[0]
    return Trace(table=np.zeros(n, np.int32), row=rec["id"].view(np.int64),
                 ts=rec["t"].astype(np.int64), size=rec["size"].astype(np.int64),
                 next_access_given=None, source=str(path), table_names=["objects"])


def read_txt(path, **_):
    """One integer key a line (blank lines are errors: they are not keys)."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    try:
        keys = np.array(lines, dtype=np.int64) if lines else np.zeros(0, np.int64)
    except (ValueError, OverflowError):
        for i, ln in enumerate(lines, 1):
            try:
                int(ln)
            except ValueError:
                raise TraceFormatError(path, f"expected one integer key a line, found {ln[:40]!r}",
                                       line=i, fix="pass --format to read another format") from None
        raise
    return Trace.from_keys(keys, source=str(path))


def _sniff_txt(head: bytes) -> bool:
    body = head.rsplit(b"\n", 1)[0] if len(head) == 65536 else head
    return bool(body.strip()) and all(ln.strip().lstrip(b"-").isdigit() for ln in body.splitlines())


register_format(Format("oracle-general", read_oracle_general,
                       suffixes=(".oraclegeneral.bin", ".oraclegeneral", ".oracle"),
                       description="libCacheSim oracleGeneral binary (24-byte records)"))
register_format(Format("txt", read_txt, suffixes=(".txt",), sniff=_sniff_txt,
                       description="plain text, one integer key a line"))
