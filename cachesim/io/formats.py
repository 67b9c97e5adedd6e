"""Trace formats: a registry of readers (and writers), with inference from suffix or content.

A reader is `read(path, **options) -> Trace`. `register_format` adds one with the file suffixes
it owns ("/" among them: it also reads a folder of such files as successive batches) and an
optional `sniff(head_bytes) -> bool`, asked when the suffix is shared or says nothing; a sniffer
looks at the first line only, so that a bad line further down reaches the reader, which names it.
Where a shared suffix's sniffers all refuse, the format marked `fallback` (csv for .csv) reads
the file, so that its reader says what is missing.

Text formats (`text=True`: criteo, avazu, csv, txt) also read gzip-compressed files (`.tsv.gz`,
`.csv.gz`, `.txt.gz`, or any name whose bytes start with gzip's magic 1f 8b): the format comes
from the suffix before `.gz` and the decompressed first line; readers get the bytes through
`load_text`. Before a text reader runs, the first 4 KiB (decompressed) must look like text: a
NUL byte, bytes that are not UTF-8, or a binary format's magic (ELF, Parquet, zip, ...) stop it
with the byte offset, rather than letting a CSV parser take binary bytes for column names.
"""
from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import CachesimError, TraceFormatError
from .urls import as_path, is_url, read_remote


@dataclass(frozen=True)
class Format:
    name: str
    read: Callable
    suffixes: tuple[str, ...] = ()
    sniff: Callable[[bytes], bool] | None = None
    description: str = ""
    text: bool = False       # a text format: gzip is read, binary input refused
    fallback: bool = False   # read a file of a shared suffix that no sniffer accepts


_FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    _FORMATS[fmt.name] = fmt
    return fmt


def format_names() -> list[str]:
    return list(_FORMATS)


def get_format(name: str) -> Format:
    if name not in _FORMATS:
        raise CachesimError(f"unknown trace format {name!r}; known formats: "
                            f"{', '.join(format_names())}")
    return _FORMATS[name]


def natural_key(name: str):
    """Sort key that orders batch_2 before batch_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def folder_files(path, suffixes) -> list[Path]:
    """Files in folder `path` whose names end in one of `suffixes`, in natural sorted order."""
    p = Path(path)
    files = [f for f in p.iterdir() if f.is_file() and f.name.lower().endswith(tuple(suffixes))]
    return sorted(files, key=lambda f: natural_key(f.name))


GZIP_MAGIC = b"\x1f\x8b"
TEXT_CHECK_BYTES = 4096
_BINARY_MAGIC = ((b"\x7fELF", "an ELF executable"), (b"PAR1", "Parquet"),
                 (b"PK\x03\x04", "a zip archive"), (b"\x93NUMPY", "a NumPy .npy file"),
                 (b"\x28\xb5\x2f\xfd", "zstd-compressed data"), (b"BZh", "bzip2-compressed data"),
                 (b"\xfd7zXZ\x00", "xz-compressed data"), (GZIP_MAGIC, "gzip-compressed data"))


def is_gzip(path) -> bool:
    """Whether the file (a local path or a URL: `urls.as_path`) starts with gzip's magic bytes
    (1f 8b)."""
    with as_path(path).open("rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def _gzip_failure(path, err: Exception) -> CachesimError:
    return CachesimError(f"{path}: a damaged gzip file ({err or type(err).__name__}); check it "
                         "with `gzip -t`, or copy it again")


def gzip_lines(path, lines):
    """The items of `lines`, read from a (maybe gzip) file `path`; a damaged or cut-short gzip
    stream is the one-line error of the whole-file readers, not gzip's exception."""
    try:
        yield from lines
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise _gzip_failure(path, err) from None


def head_bytes(path, n: int = 65536) -> bytes:
    """The first `n` bytes of a file (a local path or a URL), decompressed when it is gzip."""
    try:
        with as_path(path).open("rb") as raw:
            if raw.read(2) != GZIP_MAGIC:
                raw.seek(0)
                return raw.read(n)
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw, mode="rb") as fh:
                return fh.read(n)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise _gzip_failure(path, err) from None


def load_text(path):
    """(bytes as a uint8 array, what to hand polars) of a text trace: the file and its path, or,
    for gzip, the decompressed bytes (both)."""
    if not is_gzip(path):
        return np.fromfile(path, dtype=np.uint8), path
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise _gzip_failure(path, err) from None
    return np.frombuffer(data, dtype=np.uint8), data


def not_text(head: bytes) -> tuple[int, str] | None:
    """(byte offset, what is there) of the first sign in the first 4 KiB that `head` is not
    text: a binary format's magic, a NUL byte, or a byte that is not UTF-8; None for text."""
    for magic, what in _BINARY_MAGIC:
        if head.startswith(magic):
            return 0, f"0x{head[0]:02x}: {what}"
    window = head[:TEXT_CHECK_BYTES]
    nul = window.find(b"\x00")
    try:
        window[: nul if nul >= 0 else len(window)].decode("utf-8")
    except UnicodeDecodeError as bad:
        cut = bad.end == len(window) and len(head) > TEXT_CHECK_BYTES  # a character cut short
        if not (cut and bad.reason == "unexpected end of data"):
            return bad.start, f"0x{window[bad.start]:02x}, not UTF-8 text"
    if nul >= 0:
        return nul, "0x00"
    return None


def check_text(path, head: bytes, fmt: Format) -> None:
    """Raise CachesimError when a text format's file is binary (see `not_text`)."""
    found = not_text(head)
    if found is None:
        return
    offset, what = found
    binary = ", ".join(f.name for f in _FORMATS.values() if not f.text)
    fix = f"give --format with a binary format ({binary}) or convert it to text"
    if "UTF-8" in what:  # mostly text: name the line, as a reader would
        line = head[:offset].count(b"\n") + 1
        raise TraceFormatError(path, f"byte {head[offset:offset + 1]!r} is not UTF-8 text, so "
                               f"format {fmt.name} cannot read it", line=line, offset=offset,
                               fix=fix)
    raise CachesimError(f"{path}: not a text trace (byte offset {offset} holds {what}), so "
                        f"format {fmt.name} cannot read it; {fix}")


def _holds_parquet(folder: Path) -> bool:
    """Whether a Parquet file lies anywhere under `folder` (a hive dataset nests them)."""
    return any(f.name.lower().endswith((".parquet", ".pq")) for f in folder.rglob("*"))


def _suffix_matches(name: str, fmt: Format) -> int:
    """Length of the longest suffix of `fmt` that `name` ends with (0 for none)."""
    return max((len(s) for s in fmt.suffixes if s != "/" and name.endswith(s)), default=0)


def infer_format(path) -> Format:
    """The format a file's suffix names; where a suffix is shared (.txt: txt or criteo; .csv:
    csv or avazu) or absent, the one whose sniffer accepts the file's first bytes.
    A folder: the folder format whose batch files it holds (.npz, .pt)."""
    p = as_path(path)
    if p.is_dir():
        found = [f for f in _FORMATS.values()
                 if "/" in f.suffixes and folder_files(p, [s for s in f.suffixes if s != "/"])]
        if len(found) == 1:
            return found[0]
        if not found and "parquet" in _FORMATS and _holds_parquet(p):
            return _FORMATS["parquet"]  # a folder of Parquet files, or a hive-partitioned dataset
        kinds = ", ".join(f"{f.name} ({' '.join(s for s in f.suffixes if s != '/')})"
                          for f in _FORMATS.values() if "/" in f.suffixes)
        if not found:
            raise CachesimError(f"{path}: the folder holds no trace files; a folder is read as "
                                f"successive batches of one of: {kinds}, or as Parquet files "
                                "(.parquet .pq, also a hive-partitioned dataset) in path order "
                                "(or pass one file)")
        raise CachesimError(f"{path}: the folder holds batch files of several formats "
                            f"({', '.join(f.name for f in found)}); pass --format")
    name = p.name.lower()
    if p.stat().st_size == 0:
        raise CachesimError(f"{path}: the file is empty, so it holds no accesses "
                            "(check that it was written completely)")
    formats = list(_FORMATS.values())
    best = max((_suffix_matches(name, f) for f in formats), default=0)
    gz = is_gzip(p)
    if gz and not best:  # x.tsv.gz: the suffix before .gz, among the text formats
        formats = [f for f in formats if f.text]
        name = name[:-3] if name.endswith(".gz") else name
        best = max((_suffix_matches(name, f) for f in formats), default=0)
    by_suffix = [f for f in formats if best and _suffix_matches(name, f) == best]
    if len(by_suffix) == 1:
        return by_suffix[0]
    head = head_bytes(p)
    pool = by_suffix or formats
    sniffed = [f for f in pool if f.sniff is not None and f.sniff(head)]
    if len(sniffed) == 1:
        return sniffed[0]
    fallback = [f for f in by_suffix if f.fallback]
    if not sniffed and len(fallback) == 1:
        return fallback[0]  # its reader says what the file lacks
    if not sniffed and not_text(head) is not None:
        offset, what = not_text(head)
        if gz:
            raise CachesimError(f"{path}: gzip-compressed, and what it holds is not text (byte "
                                f"offset {offset} holds {what}); cachesim reads gzip for the "
                                "text formats only: decompress it (gunzip -k) and read that")
        raise CachesimError(f"{path}: not a text trace (byte offset {offset} holds {what}), and "
                            f"its name names no binary format; pass --format with one of "
                            f"{', '.join(format_names())}")
    raise CachesimError(
        f"{path}: cannot tell the trace format from its name or first line; pass --format with "
        f"one of {', '.join(format_names())}")


def read_trace(path, format: str | None = None, **options):
    """Read a trace file (or a folder of batch files) into a `Trace`.

    `options` go to the reader; each takes those it knows (batch_size, num_tables) and ignores
    the rest. Raises CachesimError (TraceFormatError with file and line or byte offset) on bad
    input. `path` may be a URL (`cachesim.io.urls`: s3://, gs://, http(s)://, any fsspec
    protocol), read through a temporary local copy.
    """
    p = as_path(path)
    if is_url(p):
        return read_remote(str(p), format, read_trace, **options)
    if not p.exists():
        raise CachesimError(f"{path}: no such file or folder (check the path)")
    fmt = get_format(format) if format else infer_format(p)
    if p.is_dir() and "/" not in fmt.suffixes and fmt.name != "parquet":
        raise CachesimError(f"{path}: is a folder, and format {fmt.name} reads one file; pass "
                            "a file, or a folder of fbgemm-npz (.npz) or dlrm-pt (.pt) batches")
    try:
        if fmt.text and p.is_file() and p.stat().st_size:
            check_text(p, head_bytes(p, TEXT_CHECK_BYTES + 4), fmt)
        return fmt.read(p, **options)
    except OSError as err:
        raise CachesimError(f"{path}: cannot read it ({err.strerror or err})") from None
