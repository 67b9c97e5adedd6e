"""Streamed training: `cachesim train` of a Criteo TSV or Parquet trace read batch by batch.

`train_stream(path, ...)` gives the records `train(read_trace(path), ...)` gives (the same
counters, losses, AUC and accuracy for the same seeds), in memory bounded by the model, the
embedding rows and their cache, the key map and a few chunks: never the whole trace.

What training needs of the whole trace before its first step, and where it comes from:

- the tables (names, num_embeddings, dims): cachesim's Parquet metadata, or for Parquet written
  elsewhere the in-memory reader's inference (`io.stream.parquet_frames`, one pass over table and
  row); for Criteo TSV the first pass, which builds each table's dictionary (hash -> row, as
  `read_criteo` numbers them: rows = distinct values + 1); `--table-rows` as in memory
  (`simulate.fbgemm.with_table_rows`);
- the dense ids (keys numbered in order of first access, as `Trace.dense_ids`), the number of
  distinct keys (the embedding rows, a cache size given as a share) and each key's table: the
  first pass (a `KeyMap`, as `simulate.stream.BatchStreamSource`);
- the batches: how many (the train/test split), the samples of each (the progress total,
  samples/s, the median `batch_samples`) and the accesses of each (where the test batches
  begin): the same first pass, over the table, row, sample and batch columns (16 bytes kept a
  batch);
- the number of dense features: Criteo's 13, cachesim's metadata (`n_dense`), else the
  `dense_*` columns.

The labels and dense features are not read up front: each batch's come with its accesses (a
Criteo line; the per-access `label` and `dense_*` columns cachesim writes to Parquet,
`io.tabular`'s layout 'columns').
Each configuration (and seed, and epoch) reads the training batches again, and its evaluation
reads the test batches from their first access on; a batch cut by a chunk boundary waits for the
rest of it, so every step sees the batch an in-memory run sees.

Memory: the model, the embedding rows (host store and device cache), the key map (and Criteo's
dictionaries), 16 bytes a batch, and a chunk (Criteo: max(1, chunk // 26) lines) with the
batch it cuts.

A URL (`io.urls`: s3://, http(s)://, memory://, any fsspec protocol) is read as a local path
is, a chunk at a time and never copied: Criteo TSV (and gzip) through fsspec's file object behind
a buffer (`io.urls.open_lines`, READ_BLOCK bytes a request), Parquet through polars
(`io.stream.parquet_frames`). So the URL is read once by the first pass, then by each record
(configuration and seed) once an epoch to train and once to evaluate (Criteo TSV: its lines up
to the test batches too, skipped; Parquet without cachesim's metadata: its table and row
columns too before each pass, for the tables' rows).

Refused (`train_refusal`, one CachesimError line): a Parquet trace without a `label` column (the
planted teacher draws labels for all samples at once, with a bias set on all of them), labels
kept in the file's metadata (samples without accesses), no `sample` column, fbgemm-npz and
dlrm-pt (no labels) and every other format.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CachesimError
from ..io import criteo
from ..io.stream import (batch_streamable, parquet_files, parquet_frames,
                         readable_parquet_schema, source_bytes)
from ..io.urls import as_path, open_lines
from ..progress import Throughput
from ..simulate.stream import BatchMeta, keys_of
from ..trace import DEFAULT_DIM, KeyMap, Trace
from .train import (DEFAULT_BATCH_SIZE, Batch, check_batch_order, check_sample_ids,
                    check_test_fraction, split_batches, train, train_split)

_TRACE_COLUMNS = ("table", "row", "batch", "sample")
# accesses read at a time: a training step is much slower than reading, so small chunks cost
# no time, and they keep the chunk (with its labels and dense features) small beside the model
CHUNK = 1 << 16
_ROW_BITS = 40  # a Criteo key in the first pass: table << 40 | row (a table's rows < 2^40)


def _is_criteo(path: Path, fmt: str | None) -> bool:
    if fmt is not None or not path.is_file():
        return fmt == "criteo"
    from ..io.formats import infer_format
    return infer_format(path).name == "criteo"


def _schema(path: Path):
    """(the Parquet files' schema, cachesim's metadata of the first file or None)."""
    from ..io import tabular
    schema = readable_parquet_schema(path)  # an unreadable file: the error naming it
    return schema, tabular.read_parquet_metadata(parquet_files(path)[0])


def train_refusal(path, fmt: str | None = None) -> str | None:
    """Why `path` cannot train streamed (a sentence), None when it can: a Criteo TSV file
    (also gzip), or a Parquet file, folder or dataset with `sample` and `label` columns; a
    local path or a URL (`io.urls.as_path`)."""
    path = as_path(path)
    if not path.exists():
        return f"{path}: no such file or folder (check the path)"
    kind = batch_streamable(path, fmt)
    if kind in ("fbgemm-npz", "dlrm-pt"):
        return (f"{path}: {kind} batches carry no labels, and the planted teacher that labels "
                "them draws from the whole trace at once")
    if kind != "parquet":
        if _is_criteo(path, fmt):
            return None
        from ..io.formats import infer_format
        named = fmt or (infer_format(path).name if path.is_file() else "a folder")
        return (f"{path}: streamed training reads Criteo TSV and Parquet with label and sample "
                f"columns, not {named}")
    schema, meta = _schema(path)
    if schema is None:
        return None  # unreadable: the reader says so
    if meta and meta.get("per_sample") == "metadata":
        return (f"{path}: its labels are kept in the file's metadata (some samples have no "
                "access), which streamed training does not read")
    if "label" not in schema:
        return (f"{path}: has no `label` column; without labels the planted teacher draws them "
                "from the whole trace at once")
    if "sample" not in schema:
        return f"{path}: has a `label` column but no `sample` column to tie it to the samples"
    return None


class StreamedData:
    """The batches of a Criteo TSV or Parquet trace, read from the file as training asks for
    them (the interface of `executor.train`'s in-memory batches); see the module docstring.
    The first pass runs in the constructor; `meta` is what `train` reads of the whole trace."""

    label_source = "trace"

    def __init__(self, path, fmt: str | None = None, chunk_accesses: int = CHUNK, *,
                 batch_size: int | None = None, test_fraction: float = 0.1, table_rows=None,
                 progress: bool = False):
        self.path = as_path(path)
        why = train_refusal(self.path, fmt)
        if why:
            raise CachesimError(why)
        if int(chunk_accesses) < 1:
            raise CachesimError(f"chunk_accesses={chunk_accesses}: a chunk holds at least 1 "
                                "access")
        check_test_fraction(float(test_fraction))
        if batch_size is not None and int(batch_size) < 1:
            raise CachesimError(f"batch size {batch_size}: must be at least 1 sample")
        self.chunk, self.batch_size = int(chunk_accesses), batch_size
        self._criteo = _is_criteo(self.path, fmt)
        if self._criteo:  # the tables' rows are known after the first pass
            self._dense_cols, self._by_batch_column = list(criteo.DENSE_NAMES), False
            self._n_dense = len(self._dense_cols)
            self._n_tables, self._head = criteo.N_SPARSE, None
            self._table_maps = [KeyMap() for _ in range(criteo.N_SPARSE)]
        else:
            schema, meta = _schema(self.path)
            # as `io.tabular` reads them back: the metadata's n_dense (0: none, as Avazu's),
            # else the dense_* columns; no such column and no n_dense: one zero feature
            k = (meta or {}).get("n_dense")
            if k is None:
                k = sum(1 for c in schema if c.startswith("dense_")) or None
            self._dense_cols = [f"dense_{j}" for j in range(k or 0)]
            self._n_dense = 1 if k is None else k
            self._by_batch_column = batch_size is None and "batch" in schema
            self._set_head(parquet_frames(self.path, self.chunk, ())[0], table_rows)
        self._first_pass(progress, table_rows)
        self.n_train = train_split(len(self._samples), float(test_fraction))
        self.n_train_samples = int(self._samples[:self.n_train].sum())
        self._test_offset = int(self._accesses[:self.n_train].sum())
        self.batch_samples = int(np.median(self._samples))

    def _set_head(self, head, table_rows) -> None:
        """The tables every chunk shares, with --table-rows (`with_table_rows`) applied."""
        if table_rows is not None:
            from ..simulate.fbgemm import with_table_rows  # its checks: one per table
            head = with_table_rows(head, table_rows)
        self._head, self._n_tables = head, head.n_tables
        self._tables = {"table_names": head.table_names, "table_rows": head.table_rows.tolist(),
                        "table_dims": head.table_dims.tolist(),
                        "table_rows_inferred": head.table_rows_inferred}

    def _first_pass(self, progress: bool, table_rows) -> None:
        keymap, tables, samples, accesses, n = KeyMap(), [], [], [], 0
        nbytes = source_bytes(self.path)
        bar = Throughput(f"{self.path.name}: first pass", nbytes, progress)
        try:
            for g in self._groups(0, labelled=False):
                before = keymap.n
                ids = keymap.add(g["keys"])
                new = ids >= before
                kt = np.empty(keymap.n - before, dtype=np.int32)
                kt[ids[new] - before] = g["table"][new]
                tables.append(kt)
                for a, z, s, _, _ in split_batches(g["batch"], g["sample"], g["table"],
                                                   self._n_tables):
                    samples.append(s.shape[0])
                    accesses.append(z - a)
                n += g["keys"].shape[0]
                bar.update(g["keys"].shape[0])
        finally:
            bar.close()
        if n == 0:
            raise CachesimError(f"{self.path}: the trace has no accesses (check the file and its "
                                "--format)")
        self._samples = np.asarray(samples, np.int64)
        self._accesses = np.asarray(accesses, np.int64)
        self._keymap = keymap
        if self._criteo:
            self._criteo_head(table_rows)
        self.meta = BatchMeta(self._head, keymap, np.concatenate(tables), n)
        if self._criteo:  # the keys linearised on the tables' rows, now known
            enc = keymap.distinct_keys
            self.meta.distinct_keys = self._head.table_offsets[enc >> _ROW_BITS] + (
                enc & ((1 << _ROW_BITS) - 1))

    def _criteo_head(self, table_rows) -> None:
        """The Criteo tables as `read_criteo` gives them (rows: distinct values + 1)."""
        rows = np.array([m.n + 1 for m in self._table_maps], np.int64)
        if table_rows is not None:  # checked against the largest row of each table, as in memory
            from ..simulate.fbgemm import with_table_rows
            seen = Trace(table=np.arange(rows.shape[0], dtype=np.int32), row=rows - 1,
                         table_names=list(criteo.TABLE_NAMES), table_rows=rows,
                         source=str(self.path))
            rows = with_table_rows(seen, table_rows).table_rows
        self._set_head(Trace(table=np.zeros(0, np.int32), row=np.zeros(0, np.int64),
                             table_names=list(criteo.TABLE_NAMES), table_rows=rows,
                             table_dims=np.full(rows.shape[0], DEFAULT_DIM),
                             source=str(self.path)), None)

    # -- the interface of `executor.train._Data` ------------------------------------------------
    @property
    def n_dense(self) -> int:
        return self._n_dense

    def to_device(self, xp) -> None:
        self._xp = xp

    def inputs(self, b: Batch):
        return self._xp.asarray(b.dense), self._xp.asarray(b.labels)

    @staticmethod
    def host_labels(b: Batch) -> np.ndarray:
        return b.labels

    def train_batches(self):
        """The first `n_train` batches, read from the file."""
        return self._batches(0, self.n_train)

    def test_batches(self):
        """The batches after them, read from the first access of the first one on."""
        return self._batches(self._test_offset, len(self._samples) - self.n_train)

    # -- reading ---------------------------------------------------------------------------------
    def _batches(self, offset: int, count: int):
        """`count` batches from access `offset` (a batch's first access) on."""
        done = 0
        groups = self._groups(offset, labelled=True)
        try:
            for g in groups:
                ids = self._keymap.lookup(g["keys"])
                for a, z, s, local, bag in split_batches(g["batch"], g["sample"], g["table"],
                                                         self._n_tables):
                    if done == count:
                        return
                    m = s.shape[0]
                    labels = np.zeros(m, np.float32)
                    labels[local] = g["label"][a:z]
                    dense = np.zeros((m, self._n_dense), np.float32)
                    if self._dense_cols:
                        dense[local] = g["dense"][a:z]
                        dense = np.nan_to_num(dense, nan=0.0)
                    done += 1
                    yield Batch(ids[a:z], bag, slice(0, m), labels, dense)
        finally:
            groups.close()
        if done != count:
            raise CachesimError(f"{self.path}: the trace changed while it was read ({done:,} "
                                f"batches where the first pass found {count:,}); train again "
                                "once it is complete")

    def _groups(self, offset: int, labelled: bool):
        """Dicts of per-access columns (table, sample, batch: the batch trained, keys: what the
        key map numbers; with `labelled` label and dense [n, k]) of whole batches, chunk by
        chunk from access `offset` on: a batch cut by a chunk boundary is carried into the
        next chunk. Without `labelled` (the first pass) Criteo's dictionaries grow."""
        carry = None
        parts = (self._criteo_parts if self._criteo else self._parquet_parts)(offset, labelled)
        for part in parts:
            if carry is not None:
                part = {c: np.concatenate([carry[c], part[c]]) for c in part}
            check_batch_order(part["batch"])
            b = part["batch"]
            cut = int(np.searchsorted(b, b[-1], side="left"))
            if cut:
                yield {c: v[:cut] for c, v in part.items()}
            carry = {c: v[cut:] for c, v in part.items()}
        if carry is not None and carry["batch"].shape[0]:
            yield carry

    def _parquet_parts(self, offset: int, labelled: bool):
        from ..io.tabular import frame_to_trace, pl
        extra = (["label"] + self._dense_cols) if labelled else []
        _, frames = parquet_frames(self.path, self.chunk, list(_TRACE_COLUMNS) + extra, offset)
        done = offset
        for df in frames:
            if not df.height:
                continue
            tr = frame_to_trace(df.select([c for c in _TRACE_COLUMNS if c in df.columns]),
                                self.path, self._tables, header_lines=0)
            check_sample_ids(tr.sample)
            part = {"table": tr.table, "sample": tr.sample, "keys": keys_of(tr, done),
                    "batch": tr.batch if self._by_batch_column else
                    tr.sample // int(self.batch_size or DEFAULT_BATCH_SIZE)}
            if labelled:
                part["label"] = df["label"].cast(pl.Float32).to_numpy()
                if self._dense_cols:
                    part["dense"] = df.select(self._dense_cols).cast(pl.Float32).to_numpy()
            done += df.height
            yield part

    def _criteo_parts(self, offset: int, labelled: bool):
        """Criteo TSV lines, max(1, chunk // 26) at a time (a line is a sample of 26 accesses),
        parsed as `read_criteo` parses them (`io.criteo.criteo_columns`); each table's rows
        numbered by its dictionary (row 0: an empty value; 1, 2, ... in order of first
        appearance), which the first pass builds and later passes look up. The keys: table
        << 40 | row (rows are linearised once the first pass knows every table's)."""
        import gzip
        from contextlib import nullcontext
        from itertools import islice

        from ..io.formats import GZIP_MAGIC, gzip_lines
        T = criteo.N_SPARSE
        bs = int(self.batch_size or criteo.DEFAULT_BATCH_SIZE)
        first = offset // T
        # a URL is read through fsspec a block at a time (`io.urls.open_lines`), never copied
        with open_lines(self.path) as raw, (gzip.open(raw, "rb") if raw.peek(2)[:2] == GZIP_MAGIC
                                            else nullcontext(raw)) as f:
            for _ in gzip_lines(self.path, islice(f, first)):
                pass
            while True:
                block = b"".join(gzip_lines(self.path, islice(f, max(1, self.chunk // T))))
                if not block:
                    return
                label, dense, values = criteo.criteo_columns(
                    self.path, np.frombuffer(block, np.uint8), block, first_line=first + 1)
                n = label.shape[0]
                rows = np.zeros((n, T), np.int64)
                for t, dictionary in enumerate(self._table_maps):
                    present = values[:, t] >= 0
                    v = values[present, t]
                    rows[present, t] = (dictionary.lookup(v) if labelled else
                                        dictionary.add(v)).astype(np.int64) + 1
                table = np.tile(np.arange(T, dtype=np.int32), n)
                sample = np.repeat(np.arange(first, first + n, dtype=np.int64), T)
                part = {"table": table, "sample": sample, "batch": sample // bs,
                        "keys": (table.astype(np.int64) << _ROW_BITS) | rows.ravel()}
                if labelled:
                    part["label"] = np.repeat(label, T)
                    part["dense"] = np.repeat(dense, T, axis=0)
                first += n
                yield part


def train_stream(path, fmt: str | None = None, *, chunk_accesses: int = CHUNK, table_rows=None,
                 batch_size: int | None = None, test_fraction: float = 0.1,
                 progress: bool = True, **options) -> list[dict]:
    """`train(read_trace(path), ...)` of a Criteo TSV file or a Parquet trace (file, folder or
    hive-partitioned dataset), a local path or a URL, read `chunk_accesses` accesses at a time:
    the same records (`StreamedData`); `options` are `train`'s."""
    data = StreamedData(path, fmt, chunk_accesses, batch_size=batch_size,
                        test_fraction=test_fraction, table_rows=table_rows, progress=progress)
    return train(data.meta, batch_size=batch_size, test_fraction=test_fraction,
                 progress=progress, data=data, **options)
