"""Avazu CTR CSV: a header, then one sample a line: id, click (label), hour, then one
categorical column per embedding table (every column after `hour`; names from the header).

Numbering as for Criteo: per table row 0 is "missing" (an empty value), other values 1, 2, ...
in order of first appearance (exact string match). Sample = line number after the header
(0-based), batch = sample // batch_size (default 128). Labels = click; no dense features
(`dense` has shape [samples, 0]). `ts` = the hour (YYMMDDHH, UTC) in Unix seconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TraceFormatError
from ..lazy import lazy_module
from .criteo import DEFAULT_BATCH_SIZE
from .formats import Format, load_text, register_format
from ..trace import DEFAULT_DIM, Trace
from .tabular import check_field_counts, parse_failure, samples_per_batch, string_ids

pl = lazy_module("polars")  # imported on first use: oracleGeneral and txt never need it

_FIX = "Avazu lines are id,click,hour,C1,...,C21 as the header says; fix or drop that line"


def read_avazu(path, batch_size: int | None = None, **_) -> Trace:
    """Read an Avazu CSV file; see the module docstring for the numbering."""
    path = Path(path)
    batch_size = samples_per_batch(batch_size, DEFAULT_BATCH_SIZE)
    buf, source = load_text(path)  # gzip: the decompressed bytes
    newline = np.flatnonzero(buf[: 1 << 20] == 10)
    header_end = int(newline[0]) if newline.size else buf.size
    header = bytes(buf[:header_end]).decode("utf-8", "replace").strip().split(",")
    if buf.size == 0 or "click" not in header or "hour" not in header:
        raise TraceFormatError(path, "the first line is not an Avazu header with `click` and "
                               "`hour` columns", line=1,
                               fix="Avazu files start with id,click,hour,C1,...; pass --format "
                                   "for another format")
    tables = header[header.index("hour") + 1:]
    if not tables:
        raise TraceFormatError(path, "no categorical columns after `hour`", line=1, fix=_FIX)
    check_field_counts(path, buf, ",", len(header), first_line=2, start=header_end + 1,
                       what=" (as many as the header)", fix=_FIX)
    try:
        df = pl.read_csv(source, infer_schema=False, quote_char=None)
    except pl.exceptions.PolarsError as err:
        raise parse_failure(path, buf, err, _FIX) from None
    n = df.height
    click = df["click"].str.to_integer(strict=False)
    if click.null_count() or (n and (click.min() < 0 or click.max() > 1)):
        bad = int((click.is_null() | ~click.is_in([0, 1])).arg_true()[0])
        raise TraceFormatError(path, f"column click: expected 0 or 1, found {df['click'][bad]!r}",
                               line=bad + 2, fix=_FIX)
    hour = (df["hour"] + "00").str.strptime(pl.Datetime("ms", "UTC"), "%y%m%d%H%M", strict=False)
    if hour.null_count():
        bad = int(hour.is_null().arg_true()[0])
        raise TraceFormatError(path, f"column hour: expected YYMMDDHH, found {df['hour'][bad]!r}",
                               line=bad + 2, fix=_FIX)
    rows = np.empty((n, len(tables)), dtype=np.int64)
    table_rows = np.empty(len(tables), dtype=np.int64)
    for t, c in enumerate(tables):
        rows[:, t], n_distinct = string_ids(df[c])
        table_rows[t] = n_distinct + 1
    k = len(tables)
    sample = np.repeat(np.arange(n, dtype=np.int64), k)
    ts = hour.dt.epoch("s").to_numpy().astype(np.int64)
    return Trace(table=np.tile(np.arange(k, dtype=np.int32), n), row=rows.ravel(),
                 batch=sample // batch_size, sample=sample, ts=np.repeat(ts, k),
                 table_names=tables, table_rows=table_rows, table_dims=np.full(k, DEFAULT_DIM),
                 labels=click.cast(pl.Float32).to_numpy(), dense=np.zeros((n, 0), np.float32),
                 source=str(path))


def _sniff(head: bytes) -> bool:
    """The first line is a header naming id, click and hour first."""
    first = head.split(b"\n", 1)[0].strip().split(b",")
    return first[:3] == [b"id", b"click", b"hour"]


register_format(Format("avazu", read_avazu, suffixes=(".csv",), sniff=_sniff, text=True,
                       description="Avazu CTR CSV: id, click, hour, then one column per table"))
