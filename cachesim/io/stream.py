"""Chunked trace readers and a growing dense-key map, for replays in bounded memory.

`stream_chunks(path, chunk_accesses, fmt)` yields one `(keys, sizes)` pair of int64 arrays per
chunk (`sizes` None for a format without object sizes), never holding more than one chunk:
oracleGeneral through a read-only memory map of its 24-byte records, txt (one key a line) a
block of lines at a time. `streamable(path, fmt)` names the stream format of a file, or None.

`KeyMap` numbers keys in order of first access, as `Trace.dense_ids` does (so a streamed replay
sees the very ids an in-memory one does): an open-addressing table that doubles when half full
(the same kernels as `cachesim.trace.dense_remap`'s hash path), `add` for the first pass and
`lookup` for the later ones.
"""
from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

from ..errors import CachesimError, TraceFormatError
from ..hashing import fmix64
from ..trace import MAX_ROWS, Trace, _dense_rehash, _dense_remap
from .libcachesim import ORACLE_DTYPE, oracle_records, raise_bad_line

STREAM_FORMATS = ("oracle-general", "txt")
_ORACLE_SUFFIXES = (".oraclegeneral.bin", ".oraclegeneral", ".oracle")


def streamable(path, fmt: str | None = None) -> str | None:
    """The stream format of `path` ('oracle-general' or 'txt'), None when it has no chunked
    reader (other formats, gzip text): those replay in memory."""
    path = Path(path)
    if path.is_file():
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":  # gzip: read whole, in memory
                return None
    if fmt is not None:
        return fmt if fmt in STREAM_FORMATS else None
    name = path.name.lower()
    if name.endswith(_ORACLE_SUFFIXES):
        return "oracle-general"
    if name.endswith(".txt"):
        return "txt"
    return None


def _oracle_chunks(path: Path, chunk: int):
    # read into one reused buffer, not a memory map: mapped file pages count as resident
    # memory, so a map read to the end would hold the whole file
    n = oracle_records(path).shape[0]
    buf = np.empty(min(chunk, n), dtype=ORACLE_DTYPE)
    with open(path, "rb") as f:
        for start in range(0, n, chunk):
            part = buf[:min(chunk, n - start)]
            got = f.readinto(part.view(np.uint8))
            if got != part.nbytes:
                raise TraceFormatError(path, "the file got shorter while it was read",
                                       offset=start * ORACLE_DTYPE.itemsize + got,
                                       fix="replay it again once it is complete")
            # ids kept bit for bit as int64 keys, as `read_oracle_general` does
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
    with open(path, "rb") as f:
        lines, first = [], 1
        for ln in f:
            lines.append(ln.rstrip(b"\r\n"))
            if len(lines) == chunk:
                yield _txt_keys(lines, path, first), None
                first += len(lines)
                lines = []
        if lines:
            yield _txt_keys(lines, path, first), None


def stream_chunks(path, chunk_accesses: int, fmt: str | None = None):
    """Yield (keys, sizes or None) per chunk of at most `chunk_accesses` accesses."""
    path = Path(path)
    if not path.is_file():
        raise CachesimError(f"{path}: no such file; a streamed replay reads one oracleGeneral "
                            "or txt file")
    if chunk_accesses < 1:
        raise CachesimError(f"chunk_accesses={chunk_accesses}: a chunk holds at least 1 access")
    kind = streamable(path, fmt)
    if kind == "oracle-general":
        return _oracle_chunks(path, int(chunk_accesses))
    if kind == "txt":
        return _txt_chunks(path, int(chunk_accesses))
    raise CachesimError(f"{path}: a streamed access replay reads oracle-general and txt "
                        f"files only (format {fmt or 'from the suffix'}; a Parquet trace cachesim "
                        "wrote streams in batch mode, with --cache-model ideal); replay it in "
                        "memory (--no-stream)")


def parquet_chunks(path, chunk_accesses: int):
    """(metadata trace, then one `Trace` per chunk) of a Parquet trace cachesim wrote (its
    metadata gives the tables' names, rows and dims, so that every chunk linearises keys as the
    whole file would): the first item is an empty Trace with the file's tables."""
    from . import tabular
    path = Path(path)
    try:
        meta = tabular.read_parquet_metadata(path)
        lf = tabular.pl.scan_parquet(path)
        schema = lf.collect_schema()
        n = int(lf.select(tabular.pl.len()).collect().item())
    except (tabular.pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise TraceFormatError(path, f"not a readable Parquet file ({err})".splitlines()[0],
                               fix="check the file was written completely") from None
    if not meta or ("table" in schema and not schema["table"].is_integer()):
        raise CachesimError(f"{path}: a streamed Parquet replay needs a trace cachesim wrote "
                            "(its metadata names the tables and their rows) with numbered "
                            "tables; convert it with `cachesim convert`, or replay it in memory")
    yield Trace(table=np.zeros(0, np.int32), row=np.zeros(0, np.int64),
                table_names=list(meta["table_names"]),
                table_rows=np.asarray(meta["table_rows"], np.int64),
                table_dims=np.asarray(meta["table_dims"], np.int64), source=str(path))
    if n == 0:
        return
    if hasattr(lf, "collect_batches"):  # polars' streaming engine: one pass over the file
        frames = lf.collect_batches(chunk_size=int(chunk_accesses), maintain_order=True,
                                    lazy=True)
    else:  # older polars: a slice per chunk
        frames = (lf.slice(start, int(chunk_accesses)).collect()
                  for start in range(0, n, int(chunk_accesses)))
    for df in frames:
        yield tabular._frame_to_trace(df, path, meta, header_lines=0)


@numba.njit(cache=True)
def _lookup(keys, slots, out):
    """Dense ids of keys that are all in the table `slots`; returns the index of the first
    missing key, or len(keys) when all are found."""
    mask = np.uint64(slots.shape[0] // 2 - 1)
    for i in range(keys.shape[0]):
        k = keys[i]
        h = fmix64(np.uint64(k)) & mask
        while True:
            v = slots[2 * h + 1]
            if v == -1:
                return i
            if slots[2 * h] == k:
                out[i] = v
                break
            h = (h + np.uint64(1)) & mask
    return keys.shape[0]


class KeyMap:
    """Keys -> dense ids (int32) in order of first access, growing as keys arrive."""

    def __init__(self):
        self._cap = 1 << 12  # slots; doubles when half full (32-64 bytes of slots a key)
        self._slots = np.full(2 * self._cap, -1, dtype=np.int64)
        self._distinct = np.empty(self._cap // 2, dtype=np.int64)
        self.n = 0

    def _grow(self) -> None:
        self._cap *= 2  # not 4x as `dense_remap`: the map stays for the whole replay
        self._slots = np.full(2 * self._cap, -1, dtype=np.int64)
        _dense_rehash(self._distinct[:self.n], self._slots)
        grown = np.empty(self._cap // 2, dtype=np.int64)
        grown[:self.n] = self._distinct[:self.n]
        self._distinct = grown

    def add(self, keys: np.ndarray) -> np.ndarray:
        """Dense ids of `keys`, numbering the new ones."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        out = np.empty(keys.shape[0], dtype=np.int32)
        i = 0
        while True:
            i, self.n = _dense_remap(keys, out, i, self._slots, self._distinct, self.n)
            if i == keys.shape[0]:
                return out
            self._grow()

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Dense ids of `keys`, which must all have been added."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        out = np.empty(keys.shape[0], dtype=np.int32)
        if _lookup(keys, self._slots, out) != keys.shape[0]:
            raise CachesimError("a key of the trace was not in its first pass: the file "
                                "changed while it was read; replay it again once it is "
                                "complete")
        return out

    @property
    def distinct_keys(self) -> np.ndarray:
        """The keys by dense id (a view)."""
        return self._distinct[:self.n]

    def nbytes(self) -> int:
        return int(self._slots.nbytes + self._distinct.nbytes)
