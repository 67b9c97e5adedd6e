"""Bytes of an embedding cache: row layouts, memory, and host<->device transfers.

Every number below, with where it comes from (FBGEMM_GPU = pytorch/FBGEMM, fbgemm_gpu/; see
/work/shared/REFERENCES.md):

Row layouts (bytes of one stored row of dimension D, `row_layout`):
- `fp32` 4D, `fp16` and `bf16` 2D: the element sizes.
- `int8` D + 8: one byte per element plus an fp32 scale and an fp32 bias per row, FBGEMM's
  training layout (`INT8_EMB_ROW_DIM_OFFSET = 8` in split_table_batched_embeddings_ops_training).
- `int8-fp16qp` D + 4, `int4` ceil(D/2) + 4, `int2` ceil(D/4) + 4: fp16 scale and fp16 bias per
  row, FBGEMM's inference layout (`unpadded_row_size_in_bytes`: INT8 dim + 4, INT4 dim/2 + 4,
  INT2 dim/4 + 4).
- `align`: FBGEMM pads inference rows to a multiple of 16 bytes (`padded_row_size_in_bytes`,
  row_alignment 16). Here padding is off by default (`align=1`); pass `align=16` for FBGEMM's
  inference tables. Padding is reported apart from the scale/bias bytes.
Cache rows (`cache_row_bytes`): `fp32` 4D or `fp16` 2D (FBGEMM's cache precision). One cache
shared by all tables stores every line at the largest dimension (FBGEMM's `lxu_cache_weights` is
[lines, max_D_cache]); per-table caches use each table's own dimension.

Metadata (`metadata_bytes`), from FBGEMM's training module:
- tag: `lxu_cache_state`, int64 [sets, ways]: 8 B per line, every policy;
- LRU: `lxu_state`, int64 [sets, ways], the stamp: 8 B per line;
- LFU: `lxu_state`, int64 [total rows + 1], a count for every row of every cached table, cached
  or not (the +1 is FBGEMM's sentinel slot): 8 B x (total rows + 1), and no per-line state;
- any other policy: the tag only (its own state is not modelled).
Not counted: `lxu_cache_locking_counter` (int32 per line, only with the prefetch pipeline) and
per-table arrays of a few entries.

Memory (`memory_cost`): the host store keeps every row at the storage precision; the device keeps
the cache (lines x cache row bytes) and its metadata. `ratio_vs_fp32` = bytes of all rows in fp32
/ (store + cache + metadata): the paper's memory reduction counts total embedding memory
(Tulloch et al. 2020). The paper's Criteo Kaggle figures (33,762,577 rows, dim 16: all-fp32
2.16 GB; int8 + a 5% fp32 cache = 2.35x with fp32 scale/bias, 2.76x with fp16 scale/bias, 3.33x
ignoring them) leave out the metadata: they are `ratio_vs_fp32_excl_metadata` and
`ratio_vs_fp32_data_only` (no scale/bias, no padding, no metadata).

Transfers (`transfer_cost`), per table with the table's storage row bytes, summed:
- batch replay: `h2d_bytes` = unique_misses x row bytes (rows filled into the cache plus
  conflict-miss rows read from the host store: each unique row once per batch);
  `d2h_bytes` = (evictions + conflict_unique_misses) x row bytes when training (every evicted
  line is written back: FBGEMM has no dirty bit; each conflict-miss row's update goes to the
  store), 0 for inference. Lines still cached at the end are not counted.
- access replay (no batches): every miss fetches its row (`misses` x row bytes) and, when
  training, every eviction writes one back; nothing is de-duplicated within a batch.
- baseline without a cache: every unique row of every batch fetched (`unique_indices` x row
  bytes; access replay: every request) and, when training, written back.
- per step: divided by the number of batches (`calls`).
- time: bytes / link bandwidth. Default 25 GB/s (10^9 bytes/s): PCIe 4.0 x16 runs 16 GT/s per
  lane with 128b/130b coding, 31.5 GB/s per direction raw (PCI-SIG PCIe 4.0 base
  specification, the "32 GB/s" usually quoted); about 80% of that is left after packet
  overhead, which is what pinned-memory copies (CUDA's bandwidthTest) reach on Gen4 x16 hosts.
  `transfer_ms_per_step` adds both directions (one copy at a time, a conservative bound).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import CachesimError
from ..hashing import set_geometry
from ..sizes import parse_size
from ..trace import MAX_ROWS

DEFAULT_LINK_GBPS = 25.0
RAW_PCIE4_X16_GBPS = 31.5
FBGEMM_INFERENCE_ALIGN = 16

TAG_BYTES = 8            # lxu_cache_state, int64 per line
LRU_STAMP_BYTES = 8      # lxu_state, int64 per line
LFU_COUNT_BYTES = 8      # lxu_state, int64 per row (+1 sentinel)

# precision -> (data bytes as a function of D, scale+bias bytes per row, what the overhead is)
_STORAGE = {
    "fp32": (lambda d: 4 * d, 0, "none"),
    "fp16": (lambda d: 2 * d, 0, "none"),
    "bf16": (lambda d: 2 * d, 0, "none"),
    "int8": (lambda d: d, 8, "fp32 scale + fp32 bias"),
    "int8-fp16qp": (lambda d: d, 4, "fp16 scale + fp16 bias"),
    "int4": (lambda d: -(-d // 2), 4, "fp16 scale + fp16 bias"),
    "int2": (lambda d: -(-d // 4), 4, "fp16 scale + fp16 bias"),
}
_CACHE = {"fp32": 4, "fp16": 2}


def precision_names() -> list[str]:
    """Storage precisions known to the cost model."""
    return list(_STORAGE)


def _check_precision(precision: str) -> str:
    p = str(precision).strip().lower()
    if p not in _STORAGE:
        raise CachesimError(f"unknown storage precision {precision!r}; use one of "
                            f"{', '.join(_STORAGE)}")
    return p


def _check_cache_precision(precision: str) -> str:
    p = str(precision).strip().lower()
    if p not in _CACHE:
        raise CachesimError(f"cache precision {precision!r}: the cache holds fp32 or fp16 rows "
                            "(FBGEMM's cache precisions); pass --cache-precision fp32 or fp16")
    return p


def _check_align(align: int) -> int:
    a = int(align)
    if a < 1:
        raise CachesimError(f"row alignment {align}: must be at least 1 byte (1 = no padding, "
                            "16 = FBGEMM's inference tables)")
    return a


@dataclass(frozen=True)
class RowLayout:
    """Bytes of one stored row: data + scale/bias + padding = `row_bytes`."""

    precision: str
    dim: int
    data_bytes: int
    scale_bias_bytes: int
    padding_bytes: int
    overhead: str

    @property
    def row_bytes(self) -> int:
        return self.data_bytes + self.scale_bias_bytes + self.padding_bytes


def row_layout(precision: str, dim: int, align: int = 1) -> RowLayout:
    """The stored row of `dim` elements at `precision`, padded to a multiple of `align` bytes."""
    p = _check_precision(precision)
    dim, align = int(dim), _check_align(align)
    if dim < 1:
        raise CachesimError(f"embedding dim {dim}: must be at least 1")
    data_of, sb, what = _STORAGE[p]
    data = data_of(dim)
    padded = -(-(data + sb) // align) * align
    return RowLayout(p, dim, data, sb, padded - data - sb, what)


def row_bytes(precision: str, dims, align: int = 1) -> np.ndarray:
    """Stored row bytes per table (int64), one per entry of `dims`."""
    return np.array([row_layout(precision, d, align).row_bytes for d in np.atleast_1d(dims)],
                    dtype=np.int64)


def cache_row_bytes(cache_precision: str, dim: int) -> int:
    """Bytes of one cache line's row of `dim` elements (fp32 4D, fp16 2D)."""
    return _CACHE[_check_cache_precision(cache_precision)] * int(dim)


def metadata_bytes(policy: str, lines: int, total_rows: int) -> dict:
    """Device metadata of a cache of `lines` lines: {'tag_bytes', 'policy_state_bytes'}.

    LRU: 8 B stamp per line; LFU: 8 B count per row of all `total_rows` (+1 sentinel); others:
    no policy state counted. Every policy: an 8 B tag per line.
    """
    p = str(policy).lower()
    tag = TAG_BYTES * int(lines)
    if p == "lru":
        state = LRU_STAMP_BYTES * int(lines)
    elif p == "lfu":
        state = LFU_COUNT_BYTES * (int(total_rows) + 1) if lines > 0 else 0
    else:
        state = 0
    return {"tag_bytes": tag, "policy_state_bytes": state}


def parse_dims(text, n_tables: int) -> np.ndarray:
    """`--dim`: one value for every table or a comma list with one per table."""
    if isinstance(text, (int, np.integer)):
        parts = [int(text)]
    elif isinstance(text, (list, tuple, np.ndarray)):
        parts = [int(x) for x in text]
    else:
        try:
            parts = [int(p) for p in str(text).split(",") if p.strip()]
        except ValueError:
            raise CachesimError(f"--dim {text!r}: give whole numbers, one (16) or one per table "
                                "(16,32,...)") from None
    if not parts or any(d < 1 for d in parts):
        raise CachesimError(f"--dim {text!r}: each embedding dim must be at least 1")
    if len(parts) == 1:
        return np.full(n_tables, parts[0], dtype=np.int64)
    if len(parts) != n_tables:
        raise CachesimError(f"--dim {text!r} gives {len(parts)} dims for {n_tables} tables: give "
                            "one value for all tables or exactly one per table")
    return np.array(parts, dtype=np.int64)


# -- memory --------------------------------------------------------------------------------------
@dataclass
class MemoryCost:
    """Memory of one configuration, in bytes; see the module docstring for the rules."""

    precision: str
    cache_precision: str
    policy: str
    align: int
    cache_rows: int
    total_rows: int
    row_bytes: int            # stored row bytes (largest table's, when dims differ)
    cache_row_bytes: int      # cache line bytes (shared cache: at the largest dim)
    store_data_bytes: int
    scale_bias_bytes: int
    padding_bytes: int
    store_bytes: int
    cache_bytes: int
    tag_bytes: int
    policy_state_bytes: int
    metadata_bytes: int
    total_bytes: int
    fp32_bytes: int
    ratio_vs_fp32: float
    ratio_vs_fp32_excl_metadata: float
    ratio_vs_fp32_data_only: float

    def to_record(self) -> dict:
        return asdict(self)


def _exact_sum(values) -> int:
    """The sum of integer `values` as a Python int (numpy's int64 sum wraps past 2^63-1)."""
    return sum(int(v) for v in np.atleast_1d(values))


def _exact_dot(a, b) -> int:
    """sum(a[i] * b[i]) over integer arrays, as a Python int (no int64 wrap)."""
    return sum(int(x) * int(y) for x, y in zip(np.atleast_1d(a), np.atleast_1d(b)))


def memory_cost(table_rows, dims, precision: str, cache_rows, *, cache_precision: str = "fp32",
                policy: str = "lru", align: int = 1) -> MemoryCost:
    """Memory of tables with `table_rows` rows and `dims` dims stored at `precision`, with a cache.

    `cache_rows` is one int (one cache shared by all tables: every line at the largest dim) or
    an array with one line count per table (a cache per table, each at its own dim).
    """
    rows = np.atleast_1d(np.asarray(table_rows, dtype=np.int64))
    dims = np.atleast_1d(np.asarray(dims, dtype=np.int64))
    if dims.shape[0] == 1 and rows.shape[0] > 1:
        dims = np.full(rows.shape[0], int(dims[0]), dtype=np.int64)
    if dims.shape != rows.shape:
        raise CachesimError(f"{rows.shape[0]} tables but {dims.shape[0]} dims: give one dim for "
                            "all tables or one per table")
    layouts = [row_layout(precision, d, align) for d in dims]
    data = np.array([lay.data_bytes for lay in layouts], dtype=np.int64)
    sb = np.array([lay.scale_bias_bytes for lay in layouts], dtype=np.int64)
    pad = np.array([lay.padding_bytes for lay in layouts], dtype=np.int64)
    cp = _check_cache_precision(cache_precision)
    per_table_cache = np.ndim(cache_rows) > 0
    if per_table_cache:
        lines_t = np.asarray(cache_rows, dtype=np.int64)
        if lines_t.shape != rows.shape:
            raise CachesimError("per-table cache rows need one entry per table")
        lines = _exact_sum(lines_t)
        cache_bytes = int(sum(int(n) * cache_row_bytes(cp, d) for n, d in zip(lines_t, dims)))
    else:
        lines = int(cache_rows)
        cache_bytes = lines * cache_row_bytes(cp, int(dims.max()))
    total_rows = _exact_sum(rows)  # Python ints: no int64 wrap at 2^63 rows or bytes
    meta = metadata_bytes(policy, lines, total_rows)
    store_data, store_sb, store_pad = (_exact_dot(rows, x) for x in (data, sb, pad))
    store = store_data + store_sb + store_pad
    meta_total = meta["tag_bytes"] + meta["policy_state_bytes"]
    total = store + cache_bytes + meta_total
    fp32 = 4 * _exact_dot(rows, dims)
    ratio = lambda den: fp32 / den if den else math.inf
    return MemoryCost(
        precision=layouts[0].precision, cache_precision=cp, policy=str(policy).lower(),
        align=int(align), cache_rows=lines, total_rows=total_rows,
        row_bytes=max(lay.row_bytes for lay in layouts),
        cache_row_bytes=cache_row_bytes(cp, int(dims.max())),
        store_data_bytes=store_data, scale_bias_bytes=store_sb, padding_bytes=store_pad,
        store_bytes=store, cache_bytes=cache_bytes, tag_bytes=meta["tag_bytes"],
        policy_state_bytes=meta["policy_state_bytes"], metadata_bytes=meta_total,
        total_bytes=total, fp32_bytes=fp32, ratio_vs_fp32=ratio(total),
        ratio_vs_fp32_excl_metadata=ratio(store + cache_bytes),
        ratio_vs_fp32_data_only=ratio(store_data + cache_bytes))


def cache_rows_for(size, total_rows: int, *, cache_precision: str = "fp32", max_dim: int = 16,
                   ways: int | None = None) -> int:
    """Lines of a cache given as rows (1000), a share of ALL rows of the tables (5%), or bytes of
    cache rows (1GiB, at the cache precision and largest dim). With `ways`, rounded up to whole
    sets as FBGEMM allocates them (`hashing.set_geometry`, the replay's rule)."""
    cap = parse_size(size)
    if cap.is_bytes:
        rows = cap.value // cache_row_bytes(cache_precision, max_dim)
    else:
        rows = cap.resolve(int(total_rows))
    if ways is not None:
        if int(ways) < 1:
            raise CachesimError(f"--ways {ways}: the number of ways must be at least 1")
        if int(rows) > 0:
            n_sets, w = set_geometry(int(rows), int(ways))
            rows = n_sets * w
    return int(rows)


# -- transfers -----------------------------------------------------------------------------------
def transfer_cost(record: dict, storage_row_bytes, *, inference: bool = False,
                  calls: int | None = None, link_gbps: float = DEFAULT_LINK_GBPS) -> dict:
    """Bytes moved between host and device for one replay `record` (see the module docstring).

    `record` is a replay result as a dict with `per_table` counters (BatchResult or Result
    `to_record(per_table=True)`), or with the same counters as totals when there is one table.
    `storage_row_bytes`: one value per table. `calls` overrides the record's batch count.
    """
    rb = np.atleast_1d(np.asarray(storage_row_bytes, dtype=np.int64))
    mode = record.get("mode", "access")

    pt = record.get("per_table") or {}

    def bytes_of(*names):
        """Sum over `names` of counter x row bytes, per table where the record has them."""
        total = 0
        for name in names:
            if name in pt:
                v = np.asarray(pt[name], dtype=np.int64)
                if v.shape[0] != rb.shape[0]:
                    raise CachesimError(f"{v.shape[0]} tables in the result but {rb.shape[0]} "
                                        "dims: give one dim per table")
                total += _exact_dot(v, rb)
            elif name in record:
                if np.unique(rb).shape[0] != 1:
                    raise CachesimError(f"the result has no per-table {name!r}; with dims that "
                                        "differ between tables, pass per_table counters")
                total += int(record[name]) * int(rb[0])
            else:
                raise CachesimError(f"the replay result has no {name!r} counter")
        return total

    if mode == "batch":
        h2d = bytes_of("unique_misses")
        written = bytes_of("evictions", "conflict_unique_misses")
        base_h2d = bytes_of("unique_indices")
    else:
        h2d = bytes_of("misses")
        written = bytes_of("evictions")
        base_h2d = bytes_of("requests")
    d2h = 0 if inference else written
    base_d2h = 0 if inference else base_h2d
    steps = calls if calls is not None else record.get("calls")
    per_step = (lambda b: b / steps) if steps else (lambda b: None)
    bw = float(link_gbps)
    if not bw > 0:
        raise CachesimError(f"--link-gbps {link_gbps}: the link bandwidth must be positive GB/s")
    moved, base_moved = h2d + d2h, base_h2d + base_d2h
    ms = (lambda b: None if b is None else b / (bw * 1e9) * 1e3)
    return {
        "h2d_bytes": h2d, "d2h_bytes": d2h, "transfer_bytes": moved,
        "no_cache_h2d_bytes": base_h2d, "no_cache_d2h_bytes": base_d2h,
        "no_cache_transfer_bytes": base_moved,
        "transfer_vs_no_cache": moved / base_moved if base_moved else None,
        "steps": int(steps) if steps else None,
        "h2d_bytes_per_step": per_step(h2d), "d2h_bytes_per_step": per_step(d2h),
        "transfer_ms_per_step": ms(per_step(moved)),
        "no_cache_transfer_ms_per_step": ms(per_step(base_moved)),
        "link_gbps": bw,
        "transfer_basis": ("unique misses per batch" if mode == "batch"
                           else "every miss (access replay)"),
    }


# -- one result, all figures ---------------------------------------------------------------------
def cache_lines_of(record: dict, trace=None):
    """Lines a replayed cache allocates: an int (one shared cache) or a list per table.

    Set-associative: sets x ways; fully associative: the capacity in rows. Per-table caches
    (batch replay) need the per-table line counts: from the record's `per_table["n_lines"]`, or
    worked out from `trace` with the batch replay's own capacity rule.
    """
    pt = record.get("per_table") or {}
    if record.get("per_table_caches"):
        if "n_lines" in pt:
            return [int(x) for x in pt["n_lines"]]
        if trace is not None:
            from ..simulate.batch import table_capacities
            caps, _ = table_capacities(trace, record["size"])
            # the record's ways is the largest table's W, so min(caps, W) is every table's W
            ways = caps if not record.get("ways") else np.minimum(caps, int(record["ways"]))
            return (-(-caps // ways) * ways).tolist()
        return int(record["n_lines"])  # one total: costed at the largest dim
    if record.get("capacity_unit", "rows") != "rows":
        raise CachesimError(f"cache size {record.get('size')!r} is a byte capacity: the cost "
                            "model counts rows; give the size as rows (1000) or a share (5%)")
    if record.get("n_lines"):
        return int(record["n_lines"])
    ways, n_sets = record.get("ways"), record.get("n_sets")
    if ways and n_sets:
        return int(ways) * int(n_sets)
    if ways:
        return -(-int(record["capacity"]) // int(ways)) * int(ways)
    return int(record["capacity"])


def costs_for(result, trace=None, precision: str = "fp32", *, cache_precision: str = "fp32",
              inference: bool | None = None, align: int = 1,
              link_gbps: float = DEFAULT_LINK_GBPS, dims=None, table_rows=None,
              calls: int | None = None) -> dict:
    """Transfer and memory figures of one replay result at one storage precision.

    `result`: a BatchResult, an access-mode Result, or a dict of either's
    `to_record(per_table=True)`. Table rows and dims come from `trace` (`table_rows`,
    `table_dims`) unless given. `inference=None` takes the result's own mode (training when it
    has none). Returns one flat dict: the memory figures (`memory_cost`) and the transfer
    figures (`transfer_cost`) with `precision`, `cache_precision`, `inference`, `align`.
    """
    rec = result if isinstance(result, dict) else result.to_record(per_table=True)
    if table_rows is None:
        if trace is None:
            raise CachesimError("costs_for needs the trace or table_rows to size the host store")
        table_rows = trace.table_rows
    rows = np.atleast_1d(np.asarray(table_rows, dtype=np.int64))
    if dims is None:
        dims = trace.table_dims if trace is not None else 16
    dims = parse_dims(dims, rows.shape[0])
    if inference is None:
        inference = bool(rec.get("inference", False))
    if calls is None and rec.get("calls") is None and trace is not None and trace.has_batches:
        calls = int(np.unique(trace.batch).shape[0])
    lines = cache_lines_of(rec, trace)
    mem = memory_cost(rows, dims, precision, lines, cache_precision=cache_precision,
                      policy=rec.get("policy", "lru"), align=align)
    out = {"precision": mem.precision, "cache_precision": mem.cache_precision,
           "inference": bool(inference), "align": int(align)}
    m = mem.to_record()
    for k in ("precision", "cache_precision", "policy", "align"):
        m.pop(k)
    m["cache_lines"] = m.pop("cache_rows")
    out.update(m)
    out.update(transfer_cost(rec, row_bytes(precision, dims, align), inference=inference,
                             calls=calls, link_gbps=link_gbps))
    return out


# -- the `memory` command's figures --------------------------------------------------------------
# Rows per table of known models. criteo-kaggle: DLRM's Criteo Kaggle preset, C1..C26 (dim 16),
# 33,762,577 rows in all (/work/shared/data/README.md).
TABLE_PRESETS = {
    "criteo-kaggle": [1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593,
                      3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105,
                      142572],
}


def parse_rows(text) -> np.ndarray:
    """`--rows`: a preset name (criteo-kaggle) or a comma list of rows per table."""
    key = str(text).strip().lower()
    if key in TABLE_PRESETS:
        return np.array(TABLE_PRESETS[key], dtype=np.int64)
    try:
        rows = [int(p) for p in key.split(",") if p.strip()]
    except ValueError:
        raise CachesimError(f"--rows {text!r}: give rows per table as whole numbers "
                            f"(1000,250000,...) or a preset ({', '.join(TABLE_PRESETS)})") from None
    if not rows or any(r < 0 for r in rows):
        raise CachesimError(f"--rows {text!r}: give at least one table, none negative")
    if sum(rows) > MAX_ROWS:
        raise CachesimError(f"--rows {text!r}: {sum(rows):,} rows in all; keys are int64 row ids, "
                            f"so the tables hold at most 2^63-1 = {MAX_ROWS:,} rows together")
    return np.array(rows, dtype=np.int64)


def memory_records(table_rows, dims, precisions, sizes, *, cache_precision: str = "fp32",
                   policy: str = "lru", align: int = 1, ways: int | None = None) -> list[dict]:
    """One memory record per precision x cache size; a size is rows, a share of ALL table rows,
    or bytes of cache rows. Each record also carries `size` and the per-row layout."""
    rows = np.atleast_1d(np.asarray(table_rows, dtype=np.int64))
    dims = parse_dims(dims, rows.shape[0])
    out = []
    for prec in precisions:
        lay = row_layout(prec, int(dims.max()), align)
        for size in sizes:
            lines = cache_rows_for(size, _exact_sum(rows), cache_precision=cache_precision,
                                   max_dim=int(dims.max()), ways=ways)
            mem = memory_cost(rows, dims, prec, lines, cache_precision=cache_precision,
                              policy=policy, align=align)
            rec = {"size": str(parse_size(size).text), **mem.to_record(),
                   "row_data_bytes": lay.data_bytes, "row_scale_bias_bytes": lay.scale_bias_bytes,
                   "row_padding_bytes": lay.padding_bytes, "row_overhead": lay.overhead}
            out.append(rec)
    return out


def _b(n: int) -> str:
    return f"{n:>15,} B  {n / 1e9:8.3f} GB"


def format_memory(records: list[dict], table_rows, dims) -> str:
    """The readable breakdown the `memory` command prints."""
    rows = np.atleast_1d(np.asarray(table_rows, dtype=np.int64))
    dims = parse_dims(dims, rows.shape[0])
    dim_text = (f"dim {int(dims[0])}" if np.unique(dims).shape[0] == 1
                else f"dims {int(dims.min())}..{int(dims.max())}")
    fp32 = 4 * _exact_dot(rows, dims)
    lines = [f"{rows.shape[0]} table(s), {_exact_sum(rows):,} rows, {dim_text}; all rows in fp32:"
             f" {fp32:,} B ({fp32 / 1e9:.3f} GB)"]
    for r in records:
        pad = f" + {r['row_padding_bytes']} B padding" if r["row_padding_bytes"] else ""
        sb = (f" + {r['row_scale_bias_bytes']} B scale/bias ({r['row_overhead']})"
              if r["row_scale_bias_bytes"] else "")
        lines += [
            "",
            f"{r['precision']} store, cache {r['size']} = {r['cache_rows']:,} lines in "
            f"{r['cache_precision']}, {r['policy']}",
            f"  row          {r['row_data_bytes']} B data{sb}{pad} = "
            f"{r['row_data_bytes'] + r['row_scale_bias_bytes'] + r['row_padding_bytes']} B",
            f"  store     {_b(r['store_bytes'])}",
            f"    data    {_b(r['store_data_bytes'])}",
            f"    scale/bias {r['scale_bias_bytes']:>12,} B  {r['scale_bias_bytes'] / 1e9:8.3f} GB",
        ]
        if r["padding_bytes"]:
            lines.append(f"    padding {_b(r['padding_bytes'])}")
        lines += [
            f"  cache     {_b(r['cache_bytes'])}  ({r['cache_row_bytes']} B a line)",
            f"  metadata  {_b(r['metadata_bytes'])}  (tags {r['tag_bytes']:,} B + "
            f"{r['policy']} state {r['policy_state_bytes']:,} B)",
            f"  total     {_b(r['total_bytes'])}",
            f"  vs fp32   {r['ratio_vs_fp32']:.2f}x  ({r['ratio_vs_fp32_excl_metadata']:.2f}x "
            f"without metadata; {r['ratio_vs_fp32_data_only']:.2f}x without scale/bias, padding "
            "or metadata)",
        ]
    return "\n".join(lines)
