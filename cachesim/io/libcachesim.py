"""libCacheSim's trace formats: `oracleGeneral` binary and plain text (one key a line).

oracleGeneral: 24-byte little-endian records, no header: uint32 timestamp (s), uint64 obj_id,
uint32 obj_size (bytes), int64 next_access_vtime (-1 if none). An obj_id is kept bit for bit as
the int64 key (ids past 2^63-1 read as negative keys, still distinct); `table_rows` is the
largest id + 1, or, when some id is 2^63-1 or more (hashed ids: no int64 count holds them), the
number of distinct ids.

txt: one key a line, a row id 0..2^63-2 (a negative key, or 2^63-1 whose rows would overflow
int64, is refused with its line).
"""
from __future__ import annotations

import numba
import numpy as np

from ..errors import TraceFormatError
from .formats import Format, load_text, register_format
from ..trace import MAX_ROWS, InvalidAccess, Trace, dense_remap

ORACLE_DTYPE = np.dtype([("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])


@numba.njit(cache=True)
def _split_records(rec, obj_id, ts, size):
    """Copy the id, timestamp and size of each oracleGeneral record into its column."""
    for i in range(rec.shape[0]):
        r = rec[i]
        obj_id[i] = r["id"]
        ts[i] = r["t"]
        size[i] = r["size"]


def oracle_count(path) -> int:
    """The records of an oracleGeneral file (a local Path or a `urls.RemotePath`) from its size
    (a TraceFormatError when the file is not whole 24-byte records)."""
    nbytes = path.stat().st_size
    _check_binary(path)
    if nbytes % ORACLE_DTYPE.itemsize:
        whole = nbytes // ORACLE_DTYPE.itemsize
        raise TraceFormatError(
            path, f"file is {nbytes} bytes, not a whole number of 24-byte oracleGeneral records;"
            f" the last record is cut short", offset=whole * ORACLE_DTYPE.itemsize,
            fix="the file is truncated: copy it again, or cut it to a multiple of 24 bytes")
    return nbytes // ORACLE_DTYPE.itemsize


def _check_binary(path) -> None:
    """TraceFormatError for a file that is not oracleGeneral records: one that starts with
    another format's magic (Parquet, gzip, ...), or whose first 4 KiB are text (a txt or csv
    trace read as binary would give keys made of its characters, without a word). Binary
    records are never text: their small timestamps and sizes hold zero bytes."""
    from .formats import TEXT_CHECK_BYTES, not_text
    with path.open("rb") as fh:
        head = fh.read(TEXT_CHECK_BYTES)
    found = not_text(head) if head else None
    if found is not None and found[0] == 0 and ":" in found[1] and len(head) >= 4:
        what = found[1].split(": ", 1)[1]
        raise TraceFormatError(path, f"is {what}, not oracleGeneral records", offset=0,
                               fix="drop --format to read it by its content, or pass its format")
    if found is None and len(head) >= ORACLE_DTYPE.itemsize:
        raise TraceFormatError(path, "is text, not 24-byte binary oracleGeneral records",
                               fix="pass --format txt (one key per line) or --format csv, or "
                                   "drop --format")


def oracle_records(path) -> np.ndarray:
    """A read-only map of an oracleGeneral file's records (a TraceFormatError when the file is
    not whole 24-byte records)."""
    return (np.memmap(path, dtype=ORACLE_DTYPE, mode="r") if oracle_count(path)
            else np.zeros(0, dtype=ORACLE_DTYPE))


SMALL_FILE_RECORDS = 1 << 20  # up to this many records, numpy splits the columns


def read_oracle_general(path, **_):
    # a read-only map, not a copy, split into columns in one pass (faster than fromfile)
    rec = oracle_records(path)
    n = rec.shape[0]
    row, ts, size = (np.empty(n, np.int64) for _ in range(3))
    if n <= SMALL_FILE_RECORDS:  # numpy's strided copies: no kernel to load for a small file
        row.view(np.uint64)[:] = rec["id"]
        ts[:] = rec["t"]
        size[:] = rec["size"]
    else:
        _split_records(rec, row.view(np.uint64), ts, size)
    del rec
    top = int(row.view(np.uint64).max()) if n else -1
    remap = None
    if top < MAX_ROWS:  # ids are row numbers: rows = largest id + 1
        rows = top + 1
    else:  # ids past 2^63-2 (hashes): no row count holds them; rows = the distinct objects
        remap = dense_remap(row)
        rows = int(remap[1].shape[0])
    trace = Trace(table=np.zeros(n, np.int32), row=row, ts=ts, size=size,
                  next_access_given=None, source=str(path), table_names=["objects"],
                  table_rows=np.array([rows], np.int64))
    trace.table_rows_inferred = True  # (from the ids, as a txt file's: no header gives them)
    return trace if remap is None else trace.given_remap(*remap)


def read_txt(path, **_):
    """One integer key a line (blank lines are errors: they are not keys)."""
    data = load_text(path)[0].tobytes()  # gzip: the decompressed bytes
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    try:
        keys = np.array(lines, dtype=np.int64) if lines else np.zeros(0, np.int64)
    except (ValueError, OverflowError):
        raise_bad_line(path, lines, -2**63, 2**63)
        raise
    try:
        return Trace.from_keys(keys, source=str(path))
    except InvalidAccess as bad:
        raise TraceFormatError(path, f"key {bad.value:,} is outside 0..2^63-2 (keys are row ids)",
                               line=bad.index + 1, fix="fix or drop that line") from None


def raise_bad_line(path, lines: list[bytes], lo: int, hi: int, first_line: int = 1) -> None:
    """Raise the TraceFormatError of the first of `lines` that is not an integer in lo..hi-1
    (`first_line`: the line number of lines[0]); return if there is none."""
    for i, ln in enumerate(lines, first_line):
        try:
            ok = lo <= int(ln) < hi
        except ValueError:
            ok = False
        if not ok:
            text = ln[:40].decode("utf-8", "replace").strip()
            found = f"{text!r}" if text else "an empty line"
            raise TraceFormatError(path, f"expected one integer key a line (a row id "
                                   f"0..2^63-2), found {found}", line=i,
                                   fix="fix or drop that line, or pass --format if the file "
                                       "is another format") from None


def _sniff_txt(head: bytes) -> bool:
    """The first line is one integer (a bad line further down is the reader's to report)."""
    first = head.split(b"\n", 1)[0].strip()
    return first.lstrip(b"-").isdigit()


register_format(Format("oracle-general", read_oracle_general,
                       suffixes=(".oraclegeneral.bin", ".oraclegeneral", ".oracle"),
                       description="libCacheSim oracleGeneral binary (24-byte records)"))
register_format(Format("txt", read_txt, suffixes=(".txt",), sniff=_sniff_txt, text=True,
                       description="plain text, one integer key a line"))
