"""Chunked trace readers and a growing dense-key map, for replays in bounded memory.

`stream_chunks(path, chunk_accesses, fmt)` yields one `(keys, sizes)` pair of int64 arrays per
chunk (`sizes` None for a format without object sizes), never holding more than one chunk:
oracleGeneral through a read-only memory map of its 24-byte records, txt (one key a line) a
block of lines at a time. `streamable(path, fmt)` names the stream format of a file, or None.
A Parquet trace (file, folder or dataset; `parquet_access_chunks`) yields its keys linearised
over its tables as the in-memory trace's (`Trace.keys`); `access_chunks` also gives its tables.

`batch_chunks(path, chunk_accesses, fmt)` reads a batched trace: a head Trace naming the tables,
then one Trace (table, row, batch) per chunk: Parquet (`parquet_chunks`: a file, a folder of
files or a hive-partitioned dataset, polars' streaming engine) or fbgemm-npz / dlrm-pt
(`tbe_chunks`: one batch file a chunk). `batch_streamable(path, fmt)` names its format.

Every `path` may also be a URL (`cachesim.io.urls`: s3://, gs://, http(s)://, any fsspec
protocol), read a chunk at a time through fsspec (Parquet: through polars), never copied;
fbgemm-npz and dlrm-pt batches stream from local paths only.

`KeyMap` numbers keys in order of first access, as `Trace.dense_ids` does (so a streamed replay
sees the very ids an in-memory one does): an open-addressing table that doubles when half full
(the same kernels as `cachesim.trace.dense_remap`'s hash path), `add` for the first pass and
`lookup` for the later ones.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CachesimError, TraceFormatError
from ..trace import MAX_ROWS, InvalidAccess, KeyMap, Trace  # noqa: F401  (KeyMap: simulate/stream)
from .libcachesim import ORACLE_DTYPE, oracle_count, raise_bad_line
from .tabular import (PARQUET_SUFFIXES, parquet_files, polars_scan,  # noqa: F401 (parquet_files: callers)
                      scan_parquet_source, unreadable_parquet)
from .urls import as_path, open_lines

STREAM_FORMATS = ("oracle-general", "txt")
_ORACLE_SUFFIXES = (".oraclegeneral.bin", ".oraclegeneral", ".oracle")


def streamable(path, fmt: str | None = None) -> str | None:
    """The stream format of `path` ('oracle-general' or 'txt'), None when it has no chunked
    reader (other formats, gzip text): those replay in memory."""
    path = as_path(path)
    if path.is_file():
        with path.open("rb") as f:
            if f.read(2) == b"\x1f\x8b":  # gzip: read whole, in memory
                return None
    if fmt is not None:
        return fmt if fmt in STREAM_FORMATS else None
    name = path.name.lower()
    if name.endswith(_ORACLE_SUFFIXES):
        return "oracle-general"
    if name.endswith(".txt"):  # shared with criteo: the in-memory reader's sniffer decides
        from .formats import infer_format
        return "txt" if path.is_file() and infer_format(path).name == "txt" else None
    return None


def gzip_refusal(path) -> str:
    """'; it is gzip-compressed, and ...' for a --stream refusal of a gzip file (its format may
    stream uncompressed), else ''."""
    from .formats import is_gzip
    try:
        gz = as_path(path).is_file() and is_gzip(path)
    except OSError:
        return ""
    return ("; it is gzip-compressed, and compressed text does not stream (gunzip it to stream "
            "it)") if gz else ""


VIEW_BUFFERS = 3  # `views` chunks rotate over this many buffers (`read_ahead` holds 2 at once)


def _oracle_chunks(path: Path, chunk: int, views: bool = False):
    # read into reused buffers, not a memory map: mapped file pages count as resident memory,
    # so a map read to the end would hold the whole file. `views`: the id and size columns as
    # strided views of one of VIEW_BUFFERS buffers (valid until VIEW_BUFFERS - 1 more chunks
    # are read), not fresh copies
    n = oracle_count(path)
    bufs = [np.empty(min(chunk, n), dtype=ORACLE_DTYPE) for _ in range(VIEW_BUFFERS if views
                                                                          else 1)]
    with path.open("rb") as f:
        for i, start in enumerate(range(0, n, chunk)):
            part = bufs[i % len(bufs)][:min(chunk, n - start)]
            got = f.readinto(part.view(np.uint8))
            if got != part.nbytes:
                raise TraceFormatError(path, "the file got shorter while it was read",
                                       offset=start * ORACLE_DTYPE.itemsize + got,
                                       fix="replay it again once it is complete")
            # ids kept bit for bit as int64 keys, as `read_oracle_general` does
            if views:
                yield part["id"].view(np.int64), part["size"]
            else:
                yield part["id"].view(np.int64).copy(), part["size"].astype(np.int64)


def _txt_keys(lines: list[bytes], path: Path, first_line: int) -> np.ndarray:
    try:
        keys = np.array(lines, dtype=np.int64)
    except (ValueError, OverflowError):
        keys = None
    if keys is not None and (keys.size == 0 or (keys.min() >= 0 and keys.max() < MAX_ROWS)):
        return keys
    raise_bad_line(path, lines, 0, MAX_ROWS, first_line)
    raise AssertionError("a key outside 0..2^63-2 that every line check passed")


def _txt_chunks(path: Path, chunk: int):
    with open_lines(path) as f:
        lines, first = [], 1
        for ln in f:
            lines.append(ln.rstrip(b"\r\n"))
            if len(lines) == chunk:
                yield _txt_keys(lines, path, first), None
                first += len(lines)
                lines = []
        if lines:
            yield _txt_keys(lines, path, first), None


def read_ahead(chunks, depth: int = 1):
    """The items of the iterator `chunks`, in order, the next `depth` read on another thread
    while the caller works on this one: the readers (polars' decoding, file reads) and the
    caller's kernels (nogil) then overlap on two cores. The reader's error is raised here, in
    order; when the caller stops early (an error, Ctrl-C, a break) the reader stops at its next
    item. `views` chunks of `stream_chunks` stay valid for this (VIEW_BUFFERS > depth + 1)."""
    import queue
    import threading
    if depth + 1 >= VIEW_BUFFERS:
        raise ValueError(f"read_ahead(depth={depth}): views chunks allow depth < "
                         f"{VIEW_BUFFERS - 1}")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read():
        try:
            for item in chunks:
                if not put((None, item)):
                    return
            put((None, done))
        except BaseException as e:  # noqa: BLE001 -- raised in the caller's thread
            put((e, None))

    reader = threading.Thread(target=read, name="cachesim-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            err, item = q.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)


def stream_chunks(path, chunk_accesses: int, fmt: str | None = None, views: bool = False):
    """Yield (keys, sizes or None) per chunk of at most `chunk_accesses` accesses. `views`
    (oracleGeneral): strided views of reused buffers, valid until VIEW_BUFFERS - 1 more chunks
    are read (no copy and no fresh pages per chunk: for a pass that uses each chunk at once, or
    through `read_ahead`)."""
    return access_chunks(path, chunk_accesses, fmt, views)[1]


def access_chunks(path, chunk_accesses: int, fmt: str | None = None, views: bool = False):
    """(the trace's tables, its chunks as `stream_chunks` yields them). The tables: None for an
    oracleGeneral or txt file (one table, named by its format), else those of a Parquet trace
    (`parquet_access_chunks`), whose keys are linearised over them."""
    path = as_path(path)
    if not path.is_file() and not (path.is_dir() and access_parquet(path, fmt)):
        raise CachesimError(f"{path}: no such file; a streamed replay reads one oracleGeneral "
                            "or txt file, or a Parquet file, folder or dataset")
    if chunk_accesses < 1:
        raise CachesimError(f"chunk_accesses={chunk_accesses}: a chunk holds at least 1 access")
    kind = streamable(path, fmt)
    if kind is None and access_parquet(path, fmt):
        return parquet_access_chunks(path, int(chunk_accesses))
    if kind == "oracle-general":
        return None, _oracle_chunks(path, int(chunk_accesses), views)
    if kind == "txt":
        return None, _txt_chunks(path, int(chunk_accesses))
    raise CachesimError(f"{path}: a streamed access replay reads oracle-general and txt "
                        f"files only (format {fmt or 'from the suffix'}; Parquet, fbgemm-npz and "
                        f"dlrm-pt traces stream in batch mode){gzip_refusal(path)}; replay it in "
                        "memory (--no-stream)")


BATCH_STREAM_FORMATS = ("parquet", "fbgemm-npz", "dlrm-pt")
_TABLE_KEYS = ("table_names", "table_rows", "table_dims", "table_rows_inferred")
CHUNK_ROWS = 1 << 20  # rows per frame of a pass that only reduces (the tables' rows)


def batch_streamable(path, fmt: str | None = None) -> str | None:
    """The batched stream format of `path` ('parquet', 'fbgemm-npz' or 'dlrm-pt': a file or a
    folder of such files; Parquet also a hive-partitioned dataset), None when it has none."""
    from .fbgemm import NPZ_SUFFIXES, PT_SUFFIXES
    path = as_path(path)
    if fmt is not None:
        return fmt if fmt in BATCH_STREAM_FORMATS else None
    kinds = (("parquet", PARQUET_SUFFIXES), ("fbgemm-npz", NPZ_SUFFIXES),
             ("dlrm-pt", PT_SUFFIXES))
    names = ([f.name.lower() for f in path.rglob("*") if f.is_file()] if path.is_dir()
             else [path.name.lower()])
    for kind, suffixes in kinds:
        if any(n.endswith(suffixes) for n in names):
            return kind
    return None


def source_bytes(path) -> int:
    """Bytes of a trace file, or of every file under a folder (progress: the share read)."""
    path = as_path(path)
    if not path.is_dir():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _inferred_tables(lf, path) -> dict:
    """The tables of Parquet data without cachesim's metadata, as the in-memory reader infers
    them (tables 0..largest, rows = largest row + 1 per table), from one pass over the table
    and row columns."""
    from ..trace import rows_per_table
    from . import tabular
    rows = np.zeros(1, np.int64)
    cols = [c for c in ("table", "row") if c in lf.collect_schema()]
    for df in lf.select(cols).collect_batches(chunk_size=CHUNK_ROWS, lazy=True):
        tr = tabular.frame_to_trace(df, path, None, header_lines=0)
        if len(tr):
            part = rows_per_table(tr.table, tr.row, int(tr.table.max()) + 1, None, str(path))
            if part.shape[0] < rows.shape[0]:
                part = np.concatenate([part, np.zeros(rows.shape[0] - part.shape[0], np.int64)])
            part[:rows.shape[0]] = np.maximum(part[:rows.shape[0]], rows)
            rows = part
    n_tables = rows.shape[0]
    return {"table_names": [f"t{i}" for i in range(n_tables)] if n_tables > 1 else ["t0"],
            "table_rows": rows.tolist(), "table_dims": None, "table_rows_inferred": True}


def _head(path, meta: dict) -> Trace:
    """An empty Trace holding the tables of `meta` (names, rows, dims, whether rows inferred)."""
    return Trace(table=np.zeros(0, np.int32), row=np.zeros(0, np.int64),
                 table_names=list(meta["table_names"]),
                 table_rows=np.asarray(meta["table_rows"], np.int64),
                 table_dims=None if meta["table_dims"] is None else
                 np.asarray(meta["table_dims"], np.int64),
                 table_rows_inferred=bool(meta["table_rows_inferred"]), source=str(path))


def parquet_chunks(path, chunk_accesses: int, columns=("table", "row", "batch")):
    """(a head trace, then one `Trace` per chunk of at most `chunk_accesses` accesses: columns
    table, row and batch, or those of `columns` the trace has) of a Parquet trace: one file, a
    folder of files or a hive-partitioned dataset (`parquet_files`; hive keys become columns,
    so a dataset partitioned by `table=`
    gives each access its table), read by polars' streaming engine a record batch at a time.

    The head is an empty Trace naming the tables, their rows and dims, which every chunk shares
    (so that chunks linearise keys as the whole trace would): cachesim's metadata, or for
    Parquet written elsewhere the in-memory reader's inference (one more pass, over the table
    and row columns)."""
    from . import tabular
    path = as_path(path)
    head, frames = parquet_frames(path, chunk_accesses, columns)
    # the tables only: never the labels or dense features, which a chunk would decode whole
    meta = dict(zip(_TABLE_KEYS, (head.table_names, head.table_rows.tolist(),
                                  head.table_dims.tolist(), head.table_rows_inferred)))
    yield head
    for df in frames:
        if df.height:
            yield tabular.frame_to_trace(df, path, meta, header_lines=0)


def parquet_frames(path, chunk_accesses: int, columns, offset: int = 0):
    """(the head trace of `parquet_chunks`, an iterator of polars frames of at most
    `chunk_accesses` accesses: those of `columns` the trace has, from access `offset` on) of a
    Parquet trace, for a reader that needs more columns than a Trace holds per access
    (`executor.stream`: the labels and dense features of each access's sample)."""
    from . import tabular
    path = as_path(path)
    meta, lf, schema = scan_parquet_source(path)
    try:
        if "table" in schema and not schema["table"].is_integer():
            raise CachesimError(f"{path}: a streamed Parquet replay needs numbered tables (its "
                                f"`table` column is {schema['table']}); convert it with "
                                "`cachesim convert`, or replay it in memory (--no-stream)")
        if meta is None:
            meta = _inferred_tables(lf, path)
        lf = lf.slice(int(offset)) if offset else lf
        frames = lf.select([c for c in columns if c in schema]).collect_batches(
            chunk_size=int(chunk_accesses), maintain_order=True, lazy=True)
    except (tabular.pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise unreadable_parquet(path, err) from None
    return _head(path, meta), frames


def tbe_chunks(path, fmt: str, **options):
    """(a head trace, then one `Trace` per batch file) of an fbgemm-npz or dlrm-pt file or
    folder. One file is one batch, and a batch is replayed whole, so a chunk is one file: memory
    is bounded by the largest file (a .pt file holds whole tensors, so it cannot be read in
    parts). A first pass reads every file for the tables' rows, as the in-memory reader
    infers them (largest row + 1 per table, or an npz's `table_rows` where larger)."""
    from . import fbgemm
    path = as_path(path)
    if not isinstance(path, Path):
        raise CachesimError(f"{path}: {fmt} batches stream from local files only; replay it in "
                            "memory (--no-stream, which reads a URL whole), or copy it to a "
                            "local or shared path")
    npz = fmt == "fbgemm-npz"
    read = fbgemm.read_fbgemm_npz if npz else fbgemm.read_dlrm_pt
    files = fbgemm.batch_files(path, fbgemm.NPZ_SUFFIXES if npz else fbgemm.PT_SUFFIXES)
    rows, inferred = None, True
    for f in files:
        tr = read(f, **options)
        if rows is not None and tr.n_tables != rows.shape[0]:
            raise TraceFormatError(f, f"has {tr.n_tables} tables but {files[0].name} has "
                                   f"{rows.shape[0]}", fix="all batch files of one trace share T")
        rows = tr.table_rows if rows is None else np.maximum(rows, tr.table_rows)
        inferred = inferred and tr.table_rows_inferred
    head = _head(path, {"table_names": [f"t{i}" for i in range(rows.shape[0])],
                        "table_rows": rows, "table_dims": None, "table_rows_inferred": inferred})
    yield head
    samples = 0
    for b, f in enumerate(files):
        tr = read(f, **options)
        yield Trace(table=tr.table, row=tr.row, batch=np.full(len(tr), b, np.int64),
                    sample=tr.sample + samples, table_names=head.table_names,
                    table_rows=head.table_rows, table_dims=head.table_dims,
                    table_rows_inferred=inferred, source=str(path))
        samples += int(tr.sample.max()) + 1 if len(tr) else 0


def batch_chunks(path, chunk_accesses: int, fmt: str | None = None, **options):
    """`parquet_chunks` or `tbe_chunks`, by the format of `path` (`batch_streamable`)."""
    path = as_path(path)
    if not path.exists():
        raise CachesimError(f"{path}: no such file or folder (check the path)")
    if chunk_accesses < 1:
        raise CachesimError(f"chunk_accesses={chunk_accesses}: a chunk holds at least 1 access")
    kind = batch_streamable(path, fmt)
    if kind == "parquet":
        return parquet_chunks(path, chunk_accesses)
    if kind in ("fbgemm-npz", "dlrm-pt"):
        return tbe_chunks(path, kind, **options)
    raise CachesimError(f"{path}: a streamed batch replay reads Parquet (a file, a folder or a "
                        "hive-partitioned dataset), fbgemm-npz and dlrm-pt (a file or a folder) "
                        f"(format {fmt or 'from the suffix'}); replay it in memory (--no-stream)")




def parquet_schema(path):
    """The polars schema of a Parquet trace (file, folder or hive-partitioned dataset), read
    from the files' footers only; None when polars cannot read it (the reader names what is
    wrong)."""
    from . import tabular
    files = parquet_files(path)
    try:
        return polars_scan(as_path(path), files).collect_schema()
    except (tabular.pl.exceptions.PolarsError, OSError, ValueError):
        return None


def readable_parquet_schema(path):
    """`parquet_schema`, or the TraceFormatError that names the file when polars cannot read it
    (a truncated file, one that is not Parquet)."""
    from . import tabular
    schema = parquet_schema(path)
    if schema is None:
        files = parquet_files(path)
        if files:
            tabular.read_parquet_metadata(files[0])  # names a bad first file and why
        raise TraceFormatError(path, "not a readable Parquet trace",
                               fix="check its files were written completely")
    return schema


def has_batch_column(path) -> bool:
    """Whether a Parquet trace (file, folder or hive-partitioned dataset) has a `batch` column
    (read from the files' schema only); an unreadable one is its TraceFormatError."""
    return "batch" in readable_parquet_schema(path)


def no_batch_column(path, what: str) -> CachesimError:
    """The refusal of `what` ('analyze --stream'), which follows a Parquet trace's batches, for
    one that has none."""
    return CachesimError(f"{path}: {what} follows a Parquet trace's batches, and this one has no "
                         "batch column; drop --stream to read it in memory")


def access_parquet(path, fmt: str | None = None) -> bool:
    """Whether `path` is a Parquet trace (file, folder or dataset) a streamed access replay
    reads (`parquet_access_chunks`: one table or several)."""
    return (fmt in (None, "parquet")) and batch_streamable(path, fmt) == "parquet"


def parquet_access_chunks(path, chunk: int):
    """(the tables, then an iterator of (keys, sizes or None) per chunk of at most `chunk`
    accesses) of a Parquet trace (a file, a folder of files or a hive-partitioned dataset),
    read by polars' streaming engine a record batch at a time. Each key is the very integer the
    in-memory reader's trace gives that access (`Trace.keys`: the rows of all earlier tables +
    its row), so that a streamed access replay numbers and hashes (set-associative caches) the
    keys an in-memory one does; the sizes are its `size` column (None without one).

    The tables: a dict of table_names, table_rows, table_dims (None: the default) and
    table_rows_inferred. Their rows, which the keys of several tables need before the first
    access, come from cachesim's metadata when the files have it, else from one streamed pass
    over the table and row columns before the first (`_inferred_tables`, frames of `CHUNK_ROWS`
    rows: the in-memory reader's inference, largest row + 1 per table, with its checks). A trace
    of one table without a `size` column (a bare `row` column, or metadata naming one table)
    skips that: its keys are its rows, read as one column (rows None without metadata)."""
    path = as_path(path)
    meta, lf, schema = scan_parquet_source(path)
    if "row" not in schema or not schema["row"].is_integer():
        raise TraceFormatError(path, "a streamed access replay needs an integer `row` column "
                               f"(columns: {', '.join(list(schema)[:8])})",
                               fix="replay it in memory (--no-stream)")
    one_table = len(meta["table_names"]) == 1 if meta is not None else "table" not in schema
    if one_table and "size" not in schema:
        tables = (dict(zip(_TABLE_KEYS, (["t0"], None, None, True))) if meta is None else
                  {k: meta[k] for k in _TABLE_KEYS})
        return tables, _parquet_row_chunks(path, lf, chunk)
    chunks = parquet_chunks(path, chunk, columns=("table", "row", "size"))
    head = next(chunks)
    tables = dict(zip(_TABLE_KEYS, (head.table_names, head.table_rows, head.table_dims,
                                    head.table_rows_inferred)))
    return tables, _linearised_chunks(chunks)


def chunk_keys(tr, done: int) -> np.ndarray:
    """tr.keys of a chunk of a trace; a refused access is named by its place in the whole trace
    (`done` accesses before the chunk)."""
    try:
        return tr.keys
    except InvalidAccess as bad:
        raise InvalidAccess(done + bad.index, bad.column, bad.value, bad.what, bad.fix,
                            tr.source) from None


def _linearised_chunks(chunks):
    """(keys linearised over the tables, sizes or None) of each chunk Trace."""
    done = 0
    for tr in chunks:
        yield chunk_keys(tr, done), tr.size
        done += len(tr)


def _parquet_row_chunks(path: Path, lf, chunk: int):
    """(keys, None) per chunk of a one-table Parquet trace: its `row` column."""
    done = 0
    for df in lf.select("row").collect_batches(chunk_size=chunk, maintain_order=True):
        if not df.height:
            continue
        col = df["row"]
        if col.null_count():
            i = done + int(col.is_null().arg_max())
            raise TraceFormatError(path, f"access {i:,}: the row is empty",
                                   fix="fill or drop the accesses without a row")
        keys = col.to_numpy().astype(np.int64, copy=False)
        if keys.min() < 0:
            i = int(np.argmax(keys < 0))
            raise TraceFormatError(path, f"access {done + i:,}: row {int(keys[i])} is negative; "
                                   "rows are row ids 0..2^63-2", fix="fix or drop that access")
        done += keys.shape[0]
        yield keys, None

