"""`cachesim report` of a trace read in chunks (issue 12): every section from a streamed
computation, in memory bounded by the distinct keys and one chunk, never by the trace.

`StreamedReportTrace.open(path, ...)` makes the sweep's first pass (`sweep_stream.StreamedTrace`:
`simulate.stream.StreamSource` for oracle-general and txt files, replayed per access;
`BatchStreamSource` for Parquet with a batch column, fbgemm-npz and dlrm-pt, replayed per batch)
and one more pass counting each key's accesses and the batches. It stands in for the trace in
`report.build_report`, which takes each section from it:

- trace: `analysis.stream.analyze_stream` (two passes of its own) and the rank-frequency
  points from the per-key counts;
- the exact LRU curve: `analysis.stream.mrc_stream`;
- the batch sweep: `sweep.run_sweep` on the `StreamedTrace`;
- the per-access curves: each policy and size replayed by a `StreamSource` (the open one of an
  oracle-general or txt file; for a Parquet trace one more, in access mode, whose first pass
  keeps the dense ids for every replay and OPT's next accesses); fbgemm-npz and dlrm-pt batches
  feed their dense ids to the policy's `Replayer` a chunk at a time, but for OPT, which needs
  each access's next access: left out, and the report says so;
- the per-table allocation: `analysis.allocate.allocate_source`, one pass over the open source;
- training (the accuracy section) is left out, and the report says so.

Every number equals the in-memory report's (tests/test_stream_allocate_report.py compares
results.json), except the fingerprint's digest, which is the streamed one
(`sweep_stream.stream_fingerprint`).
"""
from __future__ import annotations

import os
import time

import numpy as np

from ..errors import CachesimError
from ..io.urls import is_url
from ..sweep_stream import StreamedTrace, StreamSpec, stream_fingerprint

TRAINING_SKIPPED = ("Accuracy (--train) was not measured: the trace was read in chunks "
                    "(--stream), and it cannot train streamed ({why}); run the report with "
                    "--no-stream to measure it.")
OPT_SKIPPED = ("OPT is left out of the per-access curves: the trace was read in chunks, and OPT "
               "needs each access's next access, which a streamed fbgemm-npz or dlrm-pt trace "
               "does not keep; run the report with --no-stream to include it.")


class StreamedReportTrace:
    """The trace of a streamed report: `trace`, the sweep's `StreamedTrace` (its attributes are
    this object's: tables, rows, dims, distinct keys, batches or not), its open stream source
    `src`, each dense id's accesses (`counts`) and the number of batches. `close` removes the
    source's temporary files."""

    def __init__(self, trace: StreamedTrace, src, path: str, fmt, reader_options: dict,
                 chunk: int, progress: bool):
        self.trace, self.src = trace, src
        self.path, self.fmt, self.reader_options = path, fmt, reader_options
        self.chunk, self.progress = chunk, progress
        self.skipped: list[str] = []
        self._access = None  # a Parquet trace's access-mode source, for the per-access curves
        self._train_data = None  # its training batches (`train`), read as they train
        from ..analysis.allocate import source_ids
        counts = np.zeros(trace.n_distinct, dtype=np.int64)
        batches = 0
        for ids, batch in source_ids(src):
            counts += np.bincount(ids, minlength=counts.shape[0])
            if batch is not None and batch.shape[0]:  # whole batches, never decreasing
                batches += int((batch[1:] != batch[:-1]).sum()) + 1
        self.counts, self.batches = counts, batches

    @classmethod
    def open(cls, path, fmt: str | None = None, *, batch_size: int | None = None,
             table_rows=None, chunk_accesses: int | None = None,
             progress: bool = False) -> StreamedReportTrace:
        """The first passes over `path`: per access for an oracle-general or txt file, per batch
        for a Parquet trace with a batch column, fbgemm-npz or dlrm-pt."""
        from ..analysis.allocate import keyed_stream
        from ..simulate.access import CHUNK
        keyed = keyed_stream(path, fmt, "report")
        if keyed and table_rows is not None:
            raise CachesimError(f"--table-rows sets FBGEMM's num_embeddings of a batched trace, "
                                f"and {path} is read per access in chunks; drop --table-rows "
                                "or read it in memory (--no-stream)")
        chunk = CHUNK if chunk_accesses is None else int(chunk_accesses)
        options = {} if batch_size is None else {"batch_size": int(batch_size)}
        where = str(path) if is_url(path) else os.path.abspath(str(path))  # a URL as given
        spec = StreamSpec(where, "access" if keyed else "batch", fmt,
                          chunk, None if table_rows is None else
                          tuple(int(r) for r in np.atleast_1d(table_rows)),
                          tuple(options.items()))
        src = spec.open(progress)
        try:
            trace = StreamedTrace(spec, src, stream_fingerprint(src, spec, progress))
            return cls(trace, src, spec.path, fmt, options, chunk, progress)
        except BaseException:
            if keyed:
                src.close()
            raise

    def __getattr__(self, name):  # the StreamedTrace's: table_rows, n_distinct, has_batches, ...
        if name.startswith("__") or name == "trace":
            raise AttributeError(name)
        return getattr(self.trace, name)

    def __len__(self) -> int:
        return len(self.trace)

    def close(self) -> None:
        if self._access is not None:
            self._access.close()
            self._access = None
        self.trace.close()

    def require_nonempty(self) -> None:
        """Nothing to check: the first pass refused an empty trace."""

    # -- the sections' computations ----------------------------------------------------------
    def training_refusal(self) -> str | None:
        """Why the trace cannot train streamed (`executor.stream.train_refusal`), None if it
        can: a Criteo TSV file, or Parquet with `label` and `sample` columns."""
        from ..executor.stream import train_refusal
        return train_refusal(self.path, self.fmt)

    def train(self, **options) -> list[dict]:
        """`executor.train` of the trace with `options`, its batches read as they train
        (`executor.stream.StreamedData`, one first pass for every call): the in-memory
        records."""
        from ..executor import train
        from ..executor.stream import StreamedData
        batch_size = self.reader_options.get("batch_size")
        if self._train_data is None:
            rows = self.trace.spec.table_rows
            self._train_data = StreamedData(self.path, self.fmt, self.chunk,
                                            batch_size=batch_size,
                                            table_rows=None if rows is None else list(rows),
                                            progress=self.progress)
        return train(self._train_data.meta, batch_size=batch_size, data=self._train_data,
                     **options)

    def fingerprint_record(self) -> dict:
        """`report.fingerprint`'s record: the streamed digest, accesses, tables, distinct keys
        and batches."""
        return {"digest": self.trace.fingerprint(), "accesses": len(self),
                "tables": self.n_tables, "distinct": self.n_distinct,
                "batches": self.batches if self.has_batches else 0}

    def analysis(self) -> dict:
        """`analysis.profile.analyze` of the trace, streamed (its `streamed` entry says how)."""
        from ..analysis.stream import analyze_stream
        opts = dict(self.reader_options)
        if self.has_batches and self.trace.spec.table_rows is not None:
            opts["table_rows"] = list(self.trace.spec.table_rows)
        return analyze_stream(self.path, fmt=self.fmt, chunk_accesses=self.chunk,
                              progress=self.progress, reader_options=opts)

    def lru_curve(self):
        """`analysis.mrc.mrc(trace, "lru", method="exact")`, streamed (table rows do not change
        the curve: the keys are numbered the same way whatever their linearisation)."""
        from ..analysis.stream import mrc_stream
        return mrc_stream(self.path, policy="lru", method="exact", fmt=self.fmt,
                          chunk_accesses=self.chunk, progress=self.progress,
                          reader_options=dict(self.reader_options))

    def replay_access(self, policy: str, size: str):
        """`simulate.access.replay(trace, policy, size, ways=None, mode="access")`'s Result,
        streamed; None (and a note in `skipped`) for OPT on fbgemm-npz or dlrm-pt batches."""
        if not self.has_batches:
            return self.src.replay(policy, size, ways=None)
        from ..io.stream import access_parquet
        if self._access is None and access_parquet(self.path, self.fmt):
            from ..simulate.stream import StreamSource
            self._access = StreamSource(self.path, self.fmt, self.chunk, progress=self.progress)
        if self._access is not None:
            return self._access.replay(policy, size, ways=None)
        from ..simulate.access import Replayer, access_result, plan
        meta = self.src.meta
        pol, pol_run, cap, capacity, unit, ways = plan(meta, policy, size, None)
        if pol_run.needs_next:
            if OPT_SKIPPED not in self.skipped:
                self.skipped.append(OPT_SKIPPED)
            return None
        t0 = time.perf_counter()
        r = Replayer(meta, pol_run, capacity, unit, ways, 0)
        empty = np.zeros(0, dtype=np.int64)
        for _, ids in self.src.batches():
            r.feed_arrays(ids, empty, empty)
        if r.position != len(self):
            raise CachesimError(f"{self.path}: the trace changed while it was read "
                                f"({r.position:,} accesses, {len(self):,} in the first pass); "
                                "report it again once it is complete")
        return access_result(meta, pol.name, cap, capacity, unit, ways, r.counters,
                             time.perf_counter() - t0)

    def allocate(self, budget_bytes: int):
        """`analysis.allocate.allocate(trace, budget_bytes)`, one pass over the open source."""
        from ..analysis.allocate import allocate_source
        return allocate_source(self.src, budget_bytes, table_rows=self.table_rows,
                               table_dims=self.table_dims, progress=self.progress)
