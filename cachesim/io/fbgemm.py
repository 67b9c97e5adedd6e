"""Batch files in FBGEMM's table-batched-embedding (TBE) layout: `fbgemm-npz` and `dlrm-pt`.

One file is one batch of B samples over T tables: `indices` (the row ids looked up, all tables
one after another) and `offsets` (T*B+1 entries, table-major: bag (t, b) is
indices[offsets[t*B + b] : offsets[t*B + b + 1]], so table t is offsets[B*t : B*(t+1)+1]).
A folder of such files is successive batches, in natural sorted order of the file names.

- fbgemm-npz: a NumPy .npz with arrays `indices`, `offsets` and optionally `lengths` ([T, B]),
  `num_tables`, `batch_size` (scalars) and `table_rows` ([T]). T and B come from the file, else
  from the options num_tables / batch_size (CLI --tables / --batch-size), else from `lengths`.
- dlrm-pt: Meta's dlrm_datasets files: `indices, offsets, lengths = torch.load(f)` (gzip for
  .pt.gz), lengths [T, B]. Needs torch (`pip install 'cachesim[torch]'`), imported only here,
  always with weights_only=True (no arbitrary unpickling).

Accesses keep the file's order (table-major within a batch, as the TBE kernel sees them);
`batch` = file number, `sample` = samples of earlier files + b.
"""
from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np

from ..errors import CachesimError, TraceFormatError
from .formats import Format, folder_files, register_format
from ..trace import InvalidAccess, Trace, rows_per_table

NPZ_SUFFIXES = (".npz",)
PT_SUFFIXES = (".pt.gz", ".pt")


def batch_files(path, suffixes) -> list[Path]:
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = folder_files(path, suffixes)
    if not files:
        raise CachesimError(f"{path}: the folder holds no {' or '.join(suffixes)} batch files "
                            "(pass a folder of batch files, or one file)")
    return files


def _decode(path, indices, offsets, n_tables, batch_size, lengths):
    """(table int32, row int64, sample-in-batch int64, T, B) of one TBE batch; checks shapes."""
    indices = np.asarray(indices).ravel()
    offsets = np.asarray(offsets).ravel().astype(np.int64)
    if not np.issubdtype(indices.dtype, np.integer) or not np.issubdtype(offsets.dtype, np.integer):
        raise TraceFormatError(path, f"indices ({indices.dtype}) and offsets must be integers",
                               fix="store row ids and offsets as int32 or int64 arrays")
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.ndim == 2:
            n_tables = n_tables or lengths.shape[0]
            batch_size = batch_size or lengths.shape[1]
    n_bags = offsets.shape[0] - 1
    if n_bags < 0:
        raise TraceFormatError(path, "offsets is empty; TBE offsets have T*B+1 entries",
                               fix="store offsets with a leading 0")
    if n_tables is None and batch_size is None:
        raise TraceFormatError(path, f"cannot tell the number of tables T from {n_bags} bags "
                               "(offsets has T*B+1 entries)",
                               fix="pass --tables T (or --batch-size B), or store num_tables or "
                                   "lengths [T, B] in the file")
    if n_tables is None:
        n_tables = n_bags // batch_size if batch_size else 0
    if batch_size is None:
        batch_size = n_bags // n_tables if n_tables else 0
    n_tables, batch_size = int(n_tables), int(batch_size)
    if n_tables < 1 or n_tables * batch_size != n_bags:
        raise TraceFormatError(path, f"offsets has {n_bags + 1} entries, not T*B+1 for T="
                               f"{n_tables} tables and B={batch_size} samples",
                               fix="check --tables / --batch-size (or num_tables, batch_size, "
                                   "lengths in the file)")
    bag_len = np.diff(offsets)
    if n_bags and (bag_len.min() < 0 or offsets[-1] > indices.shape[0] or offsets[0] < 0):
        raise TraceFormatError(path, f"offsets must rise from 0 to at most len(indices) = "
                               f"{indices.shape[0]}", fix="the offsets do not match the indices")
    if lengths is not None and (lengths.size != n_bags or
                                not np.array_equal(lengths.ravel().astype(np.int64), bag_len)):
        raise TraceFormatError(path, "lengths disagrees with the differences of offsets",
                               fix="lengths[t, b] must be offsets[t*B+b+1] - offsets[t*B+b]")
    lo = int(offsets[0]) if n_bags else 0
    hi = int(offsets[-1]) if n_bags else 0
    row = indices[lo:hi].astype(np.int64)
    if row.size and row.min() < 0:
        i = int(np.flatnonzero(row < 0)[0])
        raise TraceFormatError(path, f"index {row[i]} at position {lo + i} is negative (pruned "
                               "rows are not lookups)", fix="drop negative indices before converting")
    bag = np.repeat(np.arange(n_bags, dtype=np.int64), bag_len)
    return (bag // batch_size).astype(np.int32), row, bag % batch_size, n_tables, batch_size


def _assemble(path, batches, table_rows=None, source=None) -> Trace:
    """One Trace from decoded batches [(table, row, sample, T, B, path)], batch = list order."""
    n_tables = {b[3] for b in batches}
    if len(n_tables) > 1:
        first, other = batches[0], next(b for b in batches if b[3] != batches[0][3])
        raise TraceFormatError(other[5], f"has {other[3]} tables but {first[5].name} has "
                               f"{first[3]}", fix="all batch files of one trace share T")
    sample_base = np.cumsum([0] + [b[4] for b in batches[:-1]])
    table = np.concatenate([b[0] for b in batches]) if batches else np.zeros(0, np.int32)
    row = np.concatenate([b[1] for b in batches]) if batches else np.zeros(0, np.int64)
    sample = (np.concatenate([b[2] + base for b, base in zip(batches, sample_base)])
              if batches else np.zeros(0, np.int64))
    batch = (np.concatenate([np.full(b[1].shape[0], i, np.int64) for i, b in enumerate(batches)])
             if batches else np.zeros(0, np.int64))
    T = batches[0][3] if batches else 1
    try:  # largest index + 1 per table, refusing an index of 2^63-1 (its + 1 would wrap)
        rows = rows_per_table(table, row, T, source=str(path))
    except InvalidAccess as bad:
        raise TraceFormatError(path, f"{bad.what} (access {bad.index:,})", fix=bad.fix) from None
    inferred = True
    if table_rows is not None:
        given = np.asarray(table_rows, np.int64).ravel()
        if given.shape[0] == T:
            rows = np.maximum(rows, given)
            inferred = False
    return Trace(table=table, row=row, batch=batch, sample=sample,
                 table_names=[f"t{i}" for i in range(T)], table_rows=rows,
                 table_rows_inferred=inferred,
                 source=source or str(path))


def _scalar(z, name):
    if name not in z.files:
        return None
    v = np.asarray(z[name]).ravel()
    return int(v[0]) if v.size else None


def read_fbgemm_npz(path, num_tables: int | None = None, batch_size: int | None = None,
                    **_) -> Trace:
    """Read one .npz batch or a folder of them (see the module docstring)."""
    batches, table_rows = [], None
    for f in batch_files(path, NPZ_SUFFIXES):
        if not zipfile.is_zipfile(f):
            raise TraceFormatError(f, "not a .npz file (an .npz is a zip archive of .npy arrays)",
                                   fix="write it with numpy.savez, or pass --format for another "
                                       "format")
        try:
            with np.load(f, allow_pickle=False) as z:
                missing = [k for k in ("indices", "offsets") if k not in z.files]
                if missing:
                    raise TraceFormatError(f, f"no array {' or '.join(missing)} (arrays: "
                                           f"{', '.join(z.files) or 'none'})",
                                           fix="an fbgemm-npz batch holds indices and offsets")
                T = _scalar(z, "num_tables") or num_tables
                B = _scalar(z, "batch_size") or batch_size
                lengths = z["lengths"] if "lengths" in z.files else None
                if "table_rows" in z.files:
                    table_rows = z["table_rows"]
                dec = _decode(f, z["indices"], z["offsets"], T, B, lengths)
        except (zipfile.BadZipFile, ValueError, EOFError, OSError) as err:
            if isinstance(err, CachesimError):
                raise
            raise TraceFormatError(f, f"not a readable .npz file ({err})",
                                   fix="check the file was written completely") from None
        batches.append(dec + (Path(f),))
    return _assemble(path, batches, table_rows)


def _torch():
    try:
        import torch
    except ImportError:
        raise CachesimError("reading dlrm-pt files needs torch: pip install 'cachesim[torch]'") \
            from None
    return torch


def read_dlrm_pt(path, **_) -> Trace:
    """Read one dlrm_datasets .pt / .pt.gz batch or a folder of them."""
    torch = _torch()
    batches = []
    for f in batch_files(path, PT_SUFFIXES):
        try:
            if f.name.lower().endswith(".gz"):
                with gzip.open(f, "rb") as fh:
                    obj = torch.load(fh, weights_only=True, map_location="cpu")
            else:
                obj = torch.load(f, weights_only=True, map_location="cpu")
        except Exception as err:  # torch raises many kinds on a bad or unsafe file
            text = str(err).strip()
            msg = text.split(". ")[0].splitlines()[0] if text else type(err).__name__
            raise TraceFormatError(f, f"torch.load(weights_only=True) cannot read it ({msg}): "
                                   "not a torch.save file, or it holds more than tensors",
                                   fix="check the file is a dlrm_datasets batch (indices, "
                                       "offsets, lengths tensors); cachesim never unpickles "
                                       "arbitrary objects") from None
        if not isinstance(obj, (tuple, list)) or len(obj) != 3 or \
                not all(isinstance(x, torch.Tensor) for x in obj):
            raise TraceFormatError(f, f"holds {type(obj).__name__}, not the three tensors "
                                   "(indices, offsets, lengths)",
                                   fix="dlrm_datasets files hold a tuple of three tensors")
        indices, offsets, lengths = (x.detach().cpu().numpy() for x in obj)
        if lengths.ndim != 2:
            raise TraceFormatError(f, f"lengths has shape {tuple(lengths.shape)}, not [T, B]",
                                   fix="dlrm_datasets lengths are [tables, batch size]")
        batches.append(_decode(f, indices, offsets, None, None, lengths) + (Path(f),))
    return _assemble(path, batches)


def write_fbgemm_npz(path, indices, offsets, num_tables: int, batch_size: int, lengths=None):
    """Write one TBE batch as .npz (with num_tables and batch_size), atomically."""
    from .tabular import atomic_path
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            arrays = dict(indices=np.asarray(indices), offsets=np.asarray(offsets),
                          num_tables=np.int64(num_tables), batch_size=np.int64(batch_size))
            if lengths is not None:
                arrays["lengths"] = np.asarray(lengths)
            np.savez(fh, **arrays)


register_format(Format("fbgemm-npz", read_fbgemm_npz, suffixes=NPZ_SUFFIXES + ("/",),
                       description="FBGEMM TBE batch: indices + offsets (T*B+1) in .npz; "
                                   "a folder = successive batches"))
register_format(Format("dlrm-pt", read_dlrm_pt, suffixes=PT_SUFFIXES + ("/",),
                       description="Meta dlrm_datasets batch (.pt/.pt.gz): indices, offsets, "
                                   "lengths [T, B]; needs torch"))
