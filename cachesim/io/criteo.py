"""Criteo Kaggle / Terabyte TSV: one sample a line, one lookup in each of 26 tables.

A line: label (0/1), I1..I13 (integer counts, may be empty), C1..C26 (8-hex-digit hashes, may be
empty), 40 tab-separated fields. Table t is column C(t+1). Row ids follow DLRM's dictionary: per
table, row 0 is the "missing" row (empty value), other values are numbered 1, 2, ... in order of
first appearance; table_rows = distinct values + 1. Sample = line number (0-based); batch =
sample // batch_size (default 128, DLRM's Criteo Kaggle mini-batch). Accesses in line order,
tables 0..25 within a line. `labels` (float32 per sample) and `dense` (float32 [samples, 13], raw
counts, empty -> 0; DLRM applies log(1 + x) itself) ride on the Trace.

Rebuild the shipped demo trace with
`python -c "from cachesim.io.criteo import ship; ship()"`: it writes
`criteo_kaggle_head10k.parquet` in the current folder (never into the package).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CachesimError, TraceFormatError
from ..lazy import lazy_module
from .formats import Format, load_text, register_format
from ..trace import DEFAULT_DIM, Trace
from .tabular import (check_field_counts, first_appearance_ids, first_bad_row, parse_failure,
                      samples_per_batch)

pl = lazy_module("polars")  # imported on first use: oracleGeneral and txt never need it

N_DENSE = 13
N_SPARSE = 26
N_FIELDS = 1 + N_DENSE + N_SPARSE
DEFAULT_BATCH_SIZE = 128
DENSE_NAMES = [f"I{i}" for i in range(1, N_DENSE + 1)]
TABLE_NAMES = [f"C{i}" for i in range(1, N_SPARSE + 1)]
_FIX = "Criteo lines are label, I1..I13, C1..C26, tab-separated; fix or drop that line"


def _raise_bad(path, col: pl.Series, row: int, expected: str, first_line: int = 1):
    value = col[row]
    raise TraceFormatError(path, f"column {col.name}: expected {expected}, found {value!r}",
                           line=row + first_line, fix=_FIX)


def read_criteo(path, batch_size: int | None = None, **_) -> Trace:
    """Read a Criteo TSV file; see the module docstring for the numbering."""
    path = Path(path)
    batch_size = samples_per_batch(batch_size, DEFAULT_BATCH_SIZE)
    buf, source = load_text(path)  # gzip: the decompressed bytes
    if buf.size == 0:
        return _empty(path)
    label, dense, values = criteo_columns(path, buf, source)
    n = label.shape[0]
    rows = np.empty((n, N_SPARSE), dtype=np.int64)
    table_rows = np.empty(N_SPARSE, dtype=np.int64)
    for t in range(N_SPARSE):
        rows[:, t], n_distinct = first_appearance_ids(values[:, t], values[:, t] >= 0)
        table_rows[t] = n_distinct + 1
    sample = np.repeat(np.arange(n, dtype=np.int64), N_SPARSE)
    return Trace(table=np.tile(np.arange(N_SPARSE, dtype=np.int32), n), row=rows.ravel(),
                 batch=sample // batch_size, sample=sample, table_names=list(TABLE_NAMES),
                 table_rows=table_rows, table_dims=np.full(N_SPARSE, DEFAULT_DIM),
                 labels=label, dense=dense, source=str(path))


def criteo_columns(path, buf: np.ndarray, source, first_line: int = 1):
    """(labels float32 [n], dense float32 [n, 13] (empty: 0), the C1..C26 hashes int64 [n, 26]
    (empty: -1)) of whole Criteo lines: `buf` their bytes (uint8), `source` what polars reads
    (a path or the bytes), `first_line` the line number of the first (errors name lines)."""
    check_field_counts(path, buf, "\t", N_FIELDS, what=" (label, I1..I13, C1..C26)", fix=_FIX,
                       first_line=first_line)
    names = ["label"] + DENSE_NAMES + TABLE_NAMES
    try:
        df = pl.read_csv(source, separator="\t", has_header=False, new_columns=names,
                         schema_overrides={c: pl.String for c in names}, quote_char=None,
                         infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise parse_failure(path, buf, err, _FIX) from None
    n = df.height
    # parse every column in one polars query (columns in parallel); nulls stay where empty
    parsed = df.select([pl.col("label").str.to_integer(strict=False)]
                       + [pl.col(c).str.to_integer(strict=False) for c in DENSE_NAMES]
                       + [pl.col(c).str.to_integer(base=16, strict=False) for c in TABLE_NAMES])
    label = parsed["label"]
    if label.null_count() or (n and (label.min() < 0 or label.max() > 1)):
        bad = int((label.is_null() | ~label.is_in([0, 1])).arg_true()[0])
        _raise_bad(path, df["label"], bad, "a label 0 or 1", first_line)
    lost = (parsed.null_count().row(0), df.null_count().row(0))
    for j, c in enumerate(names[1:], 1):
        if lost[0][j] != lost[1][j]:  # a value that did not parse
            expected = ("an integer count or an empty field" if c in DENSE_NAMES else
                        "a hexadecimal hash (8 hex digits) or an empty field")
            _raise_bad(path, df[c], first_bad_row(df[c], parsed[c]), expected, first_line)
    dense = parsed.select(DENSE_NAMES).fill_null(0).to_numpy().astype(np.float32)
    values = parsed.select(TABLE_NAMES).fill_null(-1).to_numpy(order="fortran")
    return label.cast(pl.Float32).to_numpy(), dense, values


def _empty(path) -> Trace:
    return Trace(table=np.zeros(0, np.int32), row=np.zeros(0, np.int64),
                 batch=np.zeros(0, np.int64), sample=np.zeros(0, np.int64),
                 table_names=list(TABLE_NAMES), table_rows=np.ones(N_SPARSE, np.int64),
                 labels=np.zeros(0, np.float32), dense=np.zeros((0, N_DENSE), np.float32),
                 source=str(path))


def _sniff(head: bytes) -> bool:
    """The first line has 40 tab-separated fields."""
    return head.split(b"\n", 1)[0].count(b"\t") == N_FIELDS - 1


register_format(Format("criteo", read_criteo, suffixes=(".tsv", ".txt"), sniff=_sniff, text=True,
                       description="Criteo Kaggle/Terabyte TSV: label, I1..I13, C1..C26 "
                                   "(also .tsv.gz)"))


# -- the shipped demo trace -----------------------------------------------------------------------
SHIP_SOURCE = (Path(__file__).resolve().parents[2] / "tests" / "data" / "criteo"
               / "kaggle_train_head10k.tsv")
SHIP_NAME = "criteo_kaggle_head10k.parquet"


def ship(source=SHIP_SOURCE, target=SHIP_NAME) -> Trace:
    """Convert the first 10,000 Criteo Kaggle lines (`source`, by default the repository's
    tests/data copy) to the Parquet trace that `make demo` replays, written to `target` (by
    default in the current folder; the shipped copy is cachesim/data/criteo_kaggle_head10k.parquet).

    An existing `target` is refused, not overwritten."""
    from .tabular import write_trace
    target = Path(target)
    if target.exists():
        raise CachesimError(f"{target} exists: ship() does not overwrite a file; remove it or "
                            f"give another target")
    trace = read_criteo(source)
    trace.source = f"criteo:{Path(source).name}"
    write_trace(trace, target)
    return trace

