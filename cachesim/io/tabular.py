"""Generic tabular traces: CSV and Parquet (cachesim's native on-disk format), read and write.

Columns: `table`, `row` and, optionally, `batch`, `sample`, `ts`, `size` (one line per access).
`table` may be an integer or a name (names are numbered in order of first appearance); a file
without `table` is one table. Per-sample training data rides along as per-access columns `label`
and `dense_0..dense_{k-1}` (repeated within a sample; Parquet's run-length encoding stores each
run once), rebuilt into `Trace.labels` / `Trace.dense` through the `sample` column.

`write_trace(trace, "x.parquet")` adds key-value metadata `cachesim` (JSON): format version,
table names, rows and dims per table, number of samples and the trace's origin, so that
`read_trace` returns an equal trace. Files are written atomically (temp file + os.replace).
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from urllib.parse import unquote

import numba
import numpy as np

from ..errors import CachesimError, TraceFormatError
from ..lazy import lazy_module
from ..files import atomic_path, written_by_cachesim  # (atomic_path: also importable here)
from .formats import Format, is_gzip, load_text, natural_key, register_format
from .urls import as_path, polars_options, polars_source
from ..trace import InvalidAccess, Trace, dense_remap

pl = lazy_module("polars")  # imported on first use: oracleGeneral and txt never need it

FORMAT_VERSION = 1
METADATA_KEY = "cachesim"
ACCESS_COLUMNS = ("batch", "sample", "ts", "size")


# -- shared helpers (also used by the criteo and avazu readers) --------------------------------
def samples_per_batch(batch_size, default: int) -> int:
    """A sample-based reader's batch size: `default` when None, else at least 1."""
    size = default if batch_size is None else int(batch_size)
    if size < 1:
        raise CachesimError(f"batch size {size} must be at least 1")
    return size


@numba.njit(cache=True)
def _first_bad_line(buf, start, sep, expected):
    """(line index from `start`, fields) of the first line whose field count is not `expected`;
    (-1, 0) when all agree. A final line without its newline counts; nothing after it does."""
    n = buf.shape[0]
    line = 0
    fields = 1
    empty = True
    for i in range(start, n):
        c = buf[i]
        if c == 10:  # newline
            if fields != expected:
                return line, 0 if empty else fields
            line += 1
            fields = 1
            empty = True
        else:
            if c != 13:
                empty = False
            if c == sep:
                fields += 1
    if n > start and buf[n - 1] != 10 and fields != expected:
        return line, 0 if empty else fields
    return -1, 0


def check_field_counts(path, buf: np.ndarray, sep: str, expected: int, *, first_line: int = 1,
                       start: int = 0, what: str = "", fix: str = "") -> None:
    """Raise TraceFormatError naming the first line of `buf[start:]` without `expected` fields."""
    line, got = _first_bad_line(buf, start, ord(sep), expected)
    if line >= 0:
        sep_name = "tab" if sep == "\t" else repr(sep)
        found = "an empty line" if got == 0 else f"{got} field(s)"
        raise TraceFormatError(path, f"expected {expected} {sep_name}-separated fields{what}, "
                               f"found {found}", line=first_line + line, fix=fix)


def parse_failure(path, buf: np.ndarray, err: Exception, fix: str) -> TraceFormatError:
    """The error to raise when polars cannot parse a text file: names the line of the first
    byte that is not UTF-8, else passes on polars' first line."""
    try:
        buf.tobytes().decode("utf-8")
    except UnicodeDecodeError as bad:
        line = int(np.count_nonzero(buf[:bad.start] == 10)) + 1
        return TraceFormatError(path, f"byte {bad.object[bad.start:bad.start + 1]!r} is not "
                                "UTF-8 text", line=line, offset=bad.start, fix=fix)
    return TraceFormatError(path, f"cannot parse it ({_first_line(err)})", fix=fix)


def first_bad_row(original: pl.Series, parsed: pl.Series) -> int:
    """Index of the first value present in `original` but null after parsing; -1 if none."""
    if parsed.null_count() == original.null_count():
        return -1
    bad = (original.is_not_null() & parsed.is_null()).arg_true()
    return int(bad[0]) if len(bad) else -1


def first_appearance_ids(values: np.ndarray, present: np.ndarray | None = None):
    """DLRM-style dictionary: row 0 for a missing value, then 1, 2, ... in order of first
    appearance. Returns (ids int64, number of distinct present values)."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    if present is None or present.all():
        ids, distinct = dense_remap(values)
        return ids.astype(np.int64) + 1, int(distinct.shape[0])
    out = np.zeros(values.shape[0], dtype=np.int64)
    ids, distinct = dense_remap(values[present])
    out[present] = ids.astype(np.int64) + 1
    return out, int(distinct.shape[0])


def string_ids(col: pl.Series) -> tuple[np.ndarray, int]:
    """First-appearance ids (row 0 = null) of a string column, exact (no hashing)."""
    distinct = col.drop_nulls().unique(maintain_order=True)
    ids = (col.rename("v").to_frame()
           .join(distinct.rename("v").to_frame().with_row_index("id", offset=1), on="v",
                 how="left", maintain_order="left")["id"].fill_null(0))
    return ids.to_numpy().astype(np.int64), len(distinct)


# -- per-sample data as per-access columns -------------------------------------------------------
def _per_sample_layout(trace: Trace) -> str | None:
    """'columns' when labels/dense can ride on the access rows losslessly, else 'metadata'."""
    if trace.labels is None and trace.dense is None:
        return None
    n_samples = _n_samples(trace)
    s = trace.sample
    if s is None or len(s) == 0 or s.min() < 0 or s.max() >= n_samples:
        return "metadata"
    return "columns" if np.bincount(s, minlength=n_samples).all() else "metadata"


def _n_samples(trace: Trace) -> int:
    return int(trace.labels.shape[0] if trace.labels is not None else trace.dense.shape[0])


def _npz_b64(**arrays) -> str:
    bio = io.BytesIO()
    np.savez_compressed(bio, **{k: v for k, v in arrays.items() if v is not None})
    return base64.b64encode(bio.getvalue()).decode("ascii")


def _npz_from_b64(text: str) -> dict:
    with np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# -- write ---------------------------------------------------------------------------------------
def trace_frame(trace: Trace, *, table_as_names: bool = False) -> tuple[pl.DataFrame, dict]:
    """The access table of `trace` as a polars DataFrame, and the metadata that completes it.
    `table_as_names` (for CSV) writes table names and keeps per-sample data as columns even when
    some samples have no access (those are dropped: CSV has no metadata to hold them)."""
    cols: dict[str, pl.Series] = {}
    if table_as_names:
        names = np.asarray(trace.table_names, dtype=object)
        cols["table"] = pl.Series("table", names[trace.table], dtype=pl.String)
    else:
        cols["table"] = pl.Series("table", trace.table, dtype=pl.Int32)
    cols["row"] = pl.Series("row", trace.row, dtype=pl.Int64)
    for name in ACCESS_COLUMNS:
        v = getattr(trace, name)
        if v is not None:
            cols[name] = pl.Series(name, v, dtype=pl.Int64)
    if trace.next_access_given is not None:
        cols["next_access"] = pl.Series("next_access", trace.next_access_given, dtype=pl.Int64)
    layout = _per_sample_layout(trace)
    if table_as_names and layout == "metadata" and trace.sample is not None and len(trace) \
            and 0 <= trace.sample.min() and trace.sample.max() < _n_samples(trace):
        layout = "columns"  # CSV has no metadata: keep the samples that have accesses
    meta = {
        "format_version": FORMAT_VERSION,
        "table_names": list(trace.table_names),
        "table_rows": [int(x) for x in trace.table_rows],
        "table_dims": [int(x) for x in trace.table_dims],
        "table_rows_inferred": bool(trace.table_rows_inferred),
        "source": trace.source,
        "n_samples": None if layout is None else _n_samples(trace),
        "per_sample": layout,
        "n_dense": None if trace.dense is None else int(trace.dense.shape[1]),
    }
    if layout == "columns":
        s = trace.sample
        if trace.labels is not None:
            cols["label"] = pl.Series("label", np.asarray(trace.labels, np.float32)[s])
        if trace.dense is not None:
            dense = np.asarray(trace.dense, np.float32)
            for j in range(dense.shape[1]):
                cols[f"dense_{j}"] = pl.Series(f"dense_{j}", dense[s, j])
    elif layout == "metadata":
        meta["per_sample_npz"] = _npz_b64(
            labels=None if trace.labels is None else np.asarray(trace.labels, np.float32),
            dense=None if trace.dense is None else np.asarray(trace.dense, np.float32))
    return pl.DataFrame(list(cols.values())), meta


def write_trace(trace: Trace, path, format: str | None = None, *,
                overwrite: bool = False) -> Path:
    """Write `trace` atomically: Parquet with cachesim metadata (default), or CSV when `format`
    is 'csv' or the name ends in .csv (CSV keeps the columns, not the per-table metadata). An
    existing file is replaced only if cachesim wrote it and it is unchanged since (the file
    rule of `cachesim.files`), or with `overwrite=True`."""
    path = Path(path)
    fmt = format or ("csv" if path.name.lower().endswith(".csv") else "parquet")
    if fmt not in ("parquet", "csv"):
        raise CachesimError(f"cannot write format {fmt!r}: cachesim writes parquet or csv")
    if not overwrite and (path.exists() or path.is_symlink()) and not written_by_cachesim(path):
        raise CachesimError(f"{path}: exists and cachesim did not write it (or it changed "
                            "since), so write_trace does not replace it; remove it, choose "
                            "another name, or pass overwrite=True")
    df, meta = trace_frame(trace, table_as_names=fmt == "csv")
    with atomic_path(path) as tmp:
        if fmt == "csv":
            df.write_csv(tmp)
        else:
            # lz4: files ~25% larger than zstd, read ~1.5x faster (reading is the hot path)
            df.write_parquet(tmp, compression="lz4", metadata={METADATA_KEY: json.dumps(meta)})
    return path


# -- read ----------------------------------------------------------------------------------------
_INT_COLUMNS = ("row",) + ACCESS_COLUMNS + ("next_access",)


def frame_to_trace(df: pl.DataFrame, path, meta: dict | None, *, header_lines: int) -> Trace:
    """Build a Trace from a frame of table,row[,...] columns (strings or numbers)."""
    cols = set(df.columns)
    if "row" not in cols:
        shown = ", ".join(repr(c[:20]) for c in df.columns[:8]) + (", ..." if df.width > 8 else "")
        raise TraceFormatError(path, f"no `row` column (columns: {shown})",
                               line=1 if header_lines else None,
                               fix="a generic trace needs columns table,row[,batch][,ts][,size]")
    n = df.height
    arrays = {}
    for name in _INT_COLUMNS:
        if name in cols:
            arrays[name] = _int_column(df[name], path, header_lines)
    table_names = list(meta["table_names"]) if meta else []
    if "table" not in cols:
        table = np.zeros(n, np.int32)
    else:
        col = df["table"]
        as_int = col if col.dtype.is_integer() else (
            col.cast(pl.String).str.strip_chars().str.to_integer(strict=False)
            if col.dtype == pl.String else None)
        if as_int is not None and as_int.null_count() == col.null_count() and col.null_count() == 0:
            if as_int.dtype == pl.UInt64:  # values past int64 wrap negative, as they always did
                as_int = as_int.cast(pl.Int64, wrap_numerical=True)
            if n and as_int.min() < 0:
                table = column_array(as_int, np.int64)
                i = int(np.flatnonzero(table < 0)[0])
                raise TraceFormatError(path, f"table {table[i]} is negative",
                                       line=_line(i, header_lines),
                                       fix="number tables from 0, or give them names")
            # one table (the common case): a zeroed array, whose pages nothing needs to touch
            table = (np.zeros(n, np.int32) if not n or as_int.max() == 0
                     else column_array(as_int, np.int32))
        else:
            if col.null_count():
                i = int(col.is_null().arg_true()[0])
                raise TraceFormatError(path, "empty `table` value", line=_line(i, header_lines),
                                       fix="give every access a table (number or name)")
            col = col.cast(pl.String)
            table_names = col.unique(maintain_order=True).to_list()
            table, _ = string_ids(col)
            table -= 1
    labels = dense = None
    if meta and meta.get("per_sample") == "metadata":
        extra = _npz_from_b64(meta["per_sample_npz"])
        labels, dense = extra.get("labels"), extra.get("dense")
    elif "label" in cols or "dense_0" in cols:
        labels, dense = _per_sample_from_columns(df, arrays.get("sample"), meta, path)
    kw = {}
    if meta:
        kw = dict(table_rows=np.asarray(meta["table_rows"], np.int64),
                  table_dims=np.asarray(meta["table_dims"], np.int64),
                  table_rows_inferred=bool(meta.get("table_rows_inferred", False)))
    try:
        return Trace(table=table, row=arrays["row"], batch=arrays.get("batch"),
                     sample=arrays.get("sample"), ts=arrays.get("ts"), size=arrays.get("size"),
                     next_access_given=arrays.get("next_access"), table_names=table_names,
                     labels=labels, dense=dense, source=str(path), **kw)
    except InvalidAccess as bad:  # name the line (CSV) or the access (Parquet)
        raise TraceFormatError(path, bad.what if header_lines else
                               f"{bad.what} (access {bad.index:,})",
                               line=_line(bad.index, header_lines), fix=bad.fix) from None


def _line(index: int, header_lines: int) -> int | None:
    return index + 1 + header_lines if header_lines else None


def column_array(col: pl.Series, dtype) -> np.ndarray:
    """A numeric polars column without nulls as a contiguous numpy array of `dtype` (integers
    wrap as numpy's astype does). Copy-free when the column is one chunk of that dtype; else one
    copy, chunk by chunk, into a numpy array (numpy asks for huge pages, polars' concatenation
    does not: on Linux that halves the cost of a fresh 100 MB array)."""
    dtype = np.dtype(dtype)
    chunks = [c.to_numpy() for c in col.get_chunks()]
    if len(chunks) == 1 and chunks[0].dtype == dtype and chunks[0].flags.c_contiguous:
        return chunks[0]
    out = np.empty(len(col), dtype=dtype)
    if chunks:
        np.concatenate(chunks, out=out, casting="unsafe")
    return out


def _int_column(col: pl.Series, path, header_lines: int) -> np.ndarray:
    if col.dtype == pl.UInt64 and len(col) and col.max() > 2**63 - 1:  # would wrap negative
        bad = int((col > 2**63 - 1).arg_true()[0])
        raise TraceFormatError(path, f"column `{col.name}` holds {col[bad]:,} (access {bad:,}), "
                               "past the int64 range cachesim's columns use",
                               fix="renumber the rows densely (0..rows-1)")
    if col.dtype.is_integer() and col.null_count() == 0:
        return column_array(col, np.int64)
    parsed = (col.cast(pl.String).str.strip_chars().str.to_integer(strict=False)
              if col.dtype == pl.String else col.cast(pl.Int64, strict=False))
    bad = first_bad_row(col, parsed)
    if bad < 0 and parsed.null_count():
        bad = int(parsed.is_null().arg_true()[0])
    if bad >= 0:
        value = col[bad]
        where = {"line": _line(bad, header_lines)} if header_lines else {}
        found = (repr(value) if value is not None and str(value).strip()
                 else "an empty field" if header_lines else "a null")
        what = f"expected an integer in column `{col.name}`, found {found}"
        if not header_lines:
            what += f" (access {bad})"
        raise TraceFormatError(path, what, fix="fix or drop that access", **where)
    return column_array(parsed, np.int64)


def _per_sample_from_columns(df: pl.DataFrame, sample, meta, path):
    if sample is None:
        raise TraceFormatError(path, "has `label`/`dense_*` columns but no `sample` column",
                               fix="add the sample of each access, or drop those columns")
    n_samples = (meta or {}).get("n_samples") or (int(sample.max()) + 1 if len(sample) else 0)
    labels = dense = None
    if "label" in df.columns:
        labels = np.zeros(n_samples, np.float32)
        labels[sample] = df["label"].cast(pl.Float32).to_numpy()
    k = (meta or {}).get("n_dense")
    if k is None:
        k = sum(1 for c in df.columns if c.startswith("dense_")) or None
    if k is not None:
        dense = np.zeros((n_samples, k), np.float32)
        for j in range(k):
            dense[sample, j] = df[f"dense_{j}"].cast(pl.Float32).to_numpy()
    return labels, dense


# -- Parquet files, folders and hive-partitioned datasets (read whole or streamed) ----------
PARQUET_SUFFIXES = (".parquet", ".pq")


def parquet_files(path) -> list[Path]:
    """The Parquet files of `path`: the file itself, or every .parquet / .pq file under the folder
    (a folder of files, or a hive-partitioned dataset `key=value/.../part.parquet`; names starting
    with . or _ skipped), in natural order of their paths (`day=2` before `day=10`): the trace's
    order."""
    path = as_path(path)
    if not path.is_dir():
        return [path]
    found = [f for f in path.rglob("*") if f.is_file() and f.name.lower().endswith(
        PARQUET_SUFFIXES) and not any(p.startswith((".", "_")) for p in f.relative_to(path).parts)]
    if not found:
        raise CachesimError(f"{path}: the folder holds no .parquet files; a streamed batch "
                            "replay reads a Parquet file, a folder of them or a hive-partitioned "
                            "dataset")
    return sorted(found, key=lambda f: natural_key(f.relative_to(path).as_posix()))


def parquet_meta(files: list[Path], metas: list | None = None) -> dict | None:
    """The tables of cachesim-written Parquet files (names, rows, dims; rows the largest any
    file gives), None when no file has cachesim's metadata; CachesimError when the files
    disagree on their tables or only some have the metadata. `metas`: the files'
    `read_parquet_metadata`, where the caller read them already."""
    if metas is None:
        metas = [read_parquet_metadata(f) for f in files]
    have = [m is not None for m in metas]
    if not any(have):
        return None
    if not all(have):
        raise CachesimError(f"{files[have.index(False)]}: has no cachesim metadata, but "
                            f"{files[have.index(True)].name} has; the files of one trace are "
                            "all cachesim's (written by `cachesim convert` or write_trace) or "
                            "all without it: read the two kinds as separate traces")
    first = metas[0]
    rows = np.asarray(first["table_rows"], np.int64)
    for f, m in zip(files[1:], metas[1:]):
        if (list(m["table_names"]), list(m["table_dims"])) != (list(first["table_names"]),
                                                                list(first["table_dims"])):
            raise CachesimError(f"{f}: its tables (names or dims) differ from {files[0].name}'s; "
                                "the files of one trace share their tables")
        rows = np.maximum(rows, np.asarray(m["table_rows"], np.int64))
    return {"table_names": list(first["table_names"]), "table_rows": rows.tolist(),
            "table_dims": list(first["table_dims"]),
            "table_rows_inferred": any(bool(m.get("table_rows_inferred")) for m in metas)}


def unreadable_parquet(path: Path, err: Exception) -> TraceFormatError:
    return TraceFormatError(path, f"not a readable Parquet file ({err})".splitlines()[0],
                            fix="check the file was written completely")


def scan_parquet_source(path: Path, files: list | None = None, metas: list | None = None):
    """(cachesim's table metadata or None, a polars scan, its schema) of a Parquet file, folder
    or dataset (`parquet_files`, unless its `files` and their `metas` are given), a
    TraceFormatError for one polars cannot read."""
    files = parquet_files(path) if files is None else files
    try:
        meta = parquet_meta(files, metas)
        lf = polars_scan(path, files)
        return meta, lf, lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise unreadable_parquet(path, err) from None


def polars_scan(path, files):
    """polars' lazy scan of the Parquet `files` of `path` (hive keys as columns for a folder).
    Files at a URL that polars does not read itself reach it as fsspec file objects
    (`urls.polars_source`), which carry no path: there the hive keys are read from the files'
    paths here (`_hive_scan`)."""
    sources = [polars_source(f) for f in files]
    hive = path.is_dir()
    if hive and not all(isinstance(s, str) for s in sources):
        if any("=" in part for f in files for part in f.relative_to(path).parts[:-1]):
            return _hive_scan(path, files, sources)
        hive = False
    return pl.scan_parquet(sources, hive_partitioning=hive,
                                   storage_options=polars_options(files[0]) if files else None)


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # a hive key's value for null


def _hive_scan(path, files, sources):
    """polars' scan of a hive-partitioned dataset whose files reach it as file objects (no
    paths): each file's scan with its keys (`key=value` folders, percent-decoded) as columns
    after its own, typed as polars types hive keys (integer, float, boolean, date, else
    string, inferred over all files' values), as `pl.scan_parquet(folder, hive_partitioning=
    True)` reads a local one."""
    keys = [dict(map(unquote, part.split("=", 1)) for part in f.relative_to(path).parts[:-1]
                 if "=" in part) for f in files]
    if any(list(k) != list(keys[0]) for k in keys):
        i = next(i for i, k in enumerate(keys) if list(k) != list(keys[0]))
        raise CachesimError(f"{files[i]}: its hive keys {list(keys[i])} are not the dataset's "
                            f"{list(keys[0])} (those of {files[0]}); give every file the same "
                            "key=value folders, in the same order")
    text = pl.DataFrame(keys, schema={k: pl.String for k in keys[0]}).write_csv()
    typed = pl.read_csv(io.StringIO(text), infer_schema_length=None, try_parse_dates=True,
                        null_values=[HIVE_NULL])
    return pl.concat([pl.scan_parquet(source).with_columns(
                          pl.lit(row[k], dtype=typed.schema[k]).alias(k) for k in row)
                      for source, row in zip(sources, typed.iter_rows(named=True))],
                     how="vertical")


def read_parquet_metadata(path) -> dict | None:
    """The `cachesim` metadata of a Parquet trace (None for a Parquet file written elsewhere);
    `path` a local path or a `urls.RemotePath`; a TraceFormatError naming the file when it is
    not a readable Parquet file (one bad file of a folder is named, not the folder)."""
    try:
        raw = pl.read_parquet_metadata(polars_source(path),
                                       storage_options=polars_options(path)).get(METADATA_KEY)
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise unreadable_parquet(path, err) from None
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise TraceFormatError(path, f"its `{METADATA_KEY}` metadata is not valid JSON",
                               fix="write the file again with `cachesim convert`") from None


def read_parquet(path, **_) -> Trace:
    """A Parquet file, or a folder of them (a hive-partitioned dataset too: its keys become
    columns), read whole: the files in path order (`parquet_files`), as the streamed
    readers take them, so both give the same trace."""
    path = Path(path)
    if path.is_dir():
        return _read_parquet_folder(path)
    try:
        meta = read_parquet_metadata(path)
        df = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise TraceFormatError(path, f"not a readable Parquet file ({_first_line(err)})",
                               fix="check the file was written completely, or pass --format "
                                   "for another format") from None
    _check_version(path, meta)
    return frame_to_trace(df, path, meta, header_lines=0)


def _check_version(path, meta) -> None:
    """TraceFormatError for a file written by a newer cachesim than this one."""
    if meta and meta.get("format_version", 0) > FORMAT_VERSION:
        raise TraceFormatError(path, f"written by a newer cachesim (trace format version "
                               f"{meta['format_version']}, this one reads {FORMAT_VERSION})",
                               fix="upgrade cachesim")


def _read_parquet_folder(path: Path) -> Trace:
    """`read_parquet` of a folder or dataset. Labels and dense features ride along as columns,
    or, in files cut from one trace (`write_trace(trace.slice(a, z))`), in each file's
    metadata, which then holds every sample's: the files must hold the same ones."""
    files = parquet_files(path)
    metas = [read_parquet_metadata(f) for f in files]
    for f, m in zip(files, metas):
        _check_version(f, m)
    meta, lf, _ = scan_parquet_source(path, files, metas)
    try:
        df = lf.collect()
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise TraceFormatError(path, f"its Parquet files cannot be read as one trace "
                               f"({_first_line(err)})", fix="give every file the same columns, "
                               "each written completely") from None
    if "batch" in df.columns and len(files) > 1:
        _check_batches_across_files(files, df["batch"])
    if meta is not None:
        layouts = [m.get("per_sample") for m in metas]
        kept = [m for m in metas if m.get("per_sample") == "metadata"]
        if kept:
            odd = next((f for f, m in zip(files, metas)
                        if m.get("per_sample") != "metadata"
                        or m.get("per_sample_npz") != kept[0].get("per_sample_npz")), None)
            if odd is not None:
                raise CachesimError(f"{odd}: its labels and dense features differ from "
                                    f"{files[layouts.index('metadata')].name}'s, which keeps "
                                    "every sample's in its metadata; the files of one folder "
                                    "come from one trace (write each part with write_trace of "
                                    "a slice of it), or hold labels as columns")
            meta = dict(meta, per_sample="metadata", per_sample_npz=kept[0]["per_sample_npz"])
        n_samples = [m.get("n_samples") for m in metas if m.get("n_samples") is not None]
        n_dense = [m.get("n_dense") for m in metas if m.get("n_dense") is not None]
        meta = dict(meta, n_samples=max(n_samples) if n_samples else None,
                    n_dense=n_dense[0] if n_dense else None)
    return frame_to_trace(df, path, meta, header_lines=0)


def _check_batches_across_files(files: list[Path], batch: pl.Series) -> None:
    """CachesimError naming the file whose batch ids restart below the previous file's (a
    folder's files continue one trace); a decrease inside a file is the trace's own error."""
    b = column_array(batch.fill_null(0), np.int64)
    down = np.flatnonzero(b[1:] < b[:-1])
    if not down.size:
        return
    counts = [pl.scan_parquet(polars_source(f), storage_options=polars_options(f))
              .select(pl.len()).collect().item() for f in files]
    ends = np.cumsum(counts)
    i = int(down[0]) + 1
    k = int(np.searchsorted(ends, i, side="right"))
    if k > 0 and i == int(ends[k - 1]):  # file k's first access
        raise CachesimError(f"{files[k]}: its batches start at {int(b[i]):,}, below the last "
                            f"batch ({int(b[i - 1]):,}) of {files[k - 1].name}; a folder's "
                            "files continue one trace, in path order, so their batch ids never "
                            "decrease from file to file: renumber this file's batches (add "
                            f"{int(b[i - 1]) + 1:,}), or replay the files one by one")


def read_csv(path, **_) -> Trace:
    path = Path(path)
    buf, source = load_text(path) if is_gzip(path) else (None, path)  # gzip: decompressed
    try:
        df = pl.read_csv(source, infer_schema=False, has_header=True)
    except pl.exceptions.NoDataError:
        return Trace(table=np.zeros(0, np.int32), row=np.zeros(0, np.int64), source=str(path))
    except pl.exceptions.PolarsError as err:
        buf = np.fromfile(path, dtype=np.uint8) if buf is None else buf
        header = bytes(buf[: (np.flatnonzero(buf == 10)[:1].tolist() or [len(buf)])[0]])
        expected = header.count(b",") + 1
        check_field_counts(path, buf, ",", expected, first_line=2, start=len(header) + 1,
                           what=" (as many as the header)", fix="fix or drop that line")
        raise parse_failure(path, buf, err, "pass --format for another format") from None
    return frame_to_trace(df, path, None, header_lines=1)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _sniff_csv(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0].strip().lower()
    return b"row" in [c.strip().strip(b'"') for c in first.split(b",")]


def _sniff_parquet(head: bytes) -> bool:
    return head[:4] == b"PAR1"


register_format(Format("csv", read_csv, suffixes=(".csv",), sniff=_sniff_csv, text=True,
                       fallback=True,
                       description="CSV with a header: table,row[,batch][,sample][,ts][,size]"))
register_format(Format("parquet", read_parquet, suffixes=(".parquet", ".pq"), sniff=_sniff_parquet,
                       description="Parquet, same columns; cachesim's native format (with metadata)"))
