"""Memory of an embedding cache: the host store, the device cache and its metadata.

Metadata (`metadata_bytes`), from FBGEMM's training module:
- tag: `lxu_cache_state`, int64 [sets, ways]: 8 B per line, every policy;
- the policy's own state, as its `Policy.policy_state_bytes(lines, total_rows)` declares it:
  LRU: `lxu_state`, int64 [sets, ways], the stamp: 8 B per line (policies/lru.py);
  LFU: `lxu_state`, int64 [total rows + 1], a count for every row of every cached table, cached
  or not (the +1 is FBGEMM's sentinel slot): 8 B x (total rows + 1), and no per-line state
  (policies/lfu.py);
- a policy that declares none: the tag only (its own state is not modelled).
Not counted: `lxu_cache_locking_counter` (int32 per line, only with the prefetch pipeline) and
per-table arrays of a few entries.

Memory (`memory_cost`): the host store keeps every row at the storage precision; the device keeps
the cache (lines x cache row bytes) and its metadata. `ratio_vs_fp32` = bytes of all rows in fp32
/ (store + cache + metadata): the paper's memory reduction counts total embedding memory
(Tulloch et al. 2020). The paper's Criteo Kaggle figures (33,762,577 rows, dim 16: all-fp32
2.16 GB; int8 + a 5% fp32 cache = 2.35x with fp32 scale/bias, 2.76x with fp16 scale/bias, 3.33x
ignoring them) leave out the metadata: they are `ratio_vs_fp32_excl_metadata` and
`ratio_vs_fp32_data_only` (no scale/bias, no padding, no metadata).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import CachesimError
from ..hashing import fbgemm_cache_sets
from ..sizes import parse_size
from ..trace import MAX_ROWS
from .layouts import cache_row_bytes, check_cache_precision, row_layout

TAG_BYTES = 8            # lxu_cache_state, int64 per line (a policy's own state: its Policy)


def metadata_bytes(policy: str, lines: int, total_rows: int) -> dict:
    """Device metadata of a cache of `lines` lines: {'tag_bytes', 'policy_state_bytes'}.

    Every policy: an 8 B tag per line; the policy state is what the registered policy declares
    (`Policy.policy_state_bytes`: LRU 8 B per line, LFU 8 B per row of all `total_rows` + 1),
    0 when it declares none, and with no lines (no cache: `policy` may then be 'none').
    `policy` is a name, an alias or a Policy.
    """
    from ..policies import get_policy
    tag = TAG_BYTES * int(lines)
    if int(lines) <= 0:
        return {"tag_bytes": 0, "policy_state_bytes": 0}
    state_of = get_policy(getattr(policy, "name", policy)).policy_state_bytes
    state = int(state_of(int(lines), int(total_rows))) if state_of is not None else 0
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


def exact_sum(values) -> int:
    """The sum of integer `values` as a Python int (numpy's int64 sum wraps past 2^63-1)."""
    return sum(int(v) for v in np.atleast_1d(values))


def exact_dot(a, b) -> int:
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
    cp = check_cache_precision(cache_precision)
    per_table_cache = np.ndim(cache_rows) > 0
    if per_table_cache:
        lines_t = np.asarray(cache_rows, dtype=np.int64)
        if lines_t.shape != rows.shape:
            raise CachesimError("per-table cache rows need one entry per table")
        lines = exact_sum(lines_t)
        cache_bytes = int(sum(int(n) * cache_row_bytes(cp, d) for n, d in zip(lines_t, dims)))
    else:
        lines = int(cache_rows)
        cache_bytes = lines * cache_row_bytes(cp, int(dims.max()))
    total_rows = exact_sum(rows)  # Python ints: no int64 wrap at 2^63 rows or bytes
    meta = metadata_bytes(policy, lines, total_rows)
    store_data, store_sb, store_pad = (exact_dot(rows, x) for x in (data, sb, pad))
    store = store_data + store_sb + store_pad
    meta_total = meta["tag_bytes"] + meta["policy_state_bytes"]
    total = store + cache_bytes + meta_total
    fp32 = 4 * exact_dot(rows, dims)
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
    """Lines of a cache given as rows (1000), a share of ALL rows of the tables (5%: FBGEMM's
    cache_load_factor, int(share x rows)), or bytes of cache rows (1GiB, at the cache precision
    and largest dim). With `ways`, whole sets as FBGEMM allocates them, as the default batch
    replay does (`simulate.fbgemm.fbgemm_geometry`): a share is (int(share x rows) + ways - 1)
    // ways sets (`hashing.fbgemm_cache_sets`), rows ceil(rows / ways) sets, bytes the whole sets
    that fit; at least one set of `ways` lines, its ways never lowered."""
    cap = parse_size(size)
    if ways is not None and int(ways) < 1:
        raise CachesimError(f"--ways {ways}: the number of ways must be at least 1")
    if cap.is_bytes:
        rows = int(cap.value) // cache_row_bytes(cache_precision, max_dim)
        return int(rows) if ways is None else max(1, rows // int(ways)) * int(ways)
    if cap.kind == "fraction":
        if ways is None:
            return max(1, int(int(total_rows) * float(cap.value)))
        return fbgemm_cache_sets(int(total_rows), cap.value, int(ways)) * int(ways)
    rows = int(cap.value)
    return rows if ways is None else max(1, -(-rows // int(ways))) * int(ways)


# -- the `memory` command's figures --------------------------------------------------------------
#: Rows per table of the full Criteo Kaggle data as DLRM uses it (C1..C26, dim 16), 33,762,577
#: rows in all; the one copy (synth's Criteo profile imports it).
CRITEO_KAGGLE_ROWS = (1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593,
                      3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105,
                      142572)
# Rows per table of known models (`--rows PRESET`).
TABLE_PRESETS = {"criteo-kaggle": CRITEO_KAGGLE_ROWS}


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
    if not rows or any(r < 1 for r in rows):
        raise CachesimError(f"--rows {text!r}: give at least one table, each of at least one "
                            "row (1000,250000,...)")
    if sum(rows) > MAX_ROWS:
        raise CachesimError(f"--rows {text!r}: {sum(rows):,} rows in all; keys are int64 row ids, "
                            f"so the tables hold at most 2^63-1 = {MAX_ROWS:,} rows together")
    return np.array(rows, dtype=np.int64)


def memory_records(table_rows, dims, precisions, sizes, *, cache_precision: str = "fp32",
                   policy: str = "lru", align: int = 1, ways: int | None = None) -> list[dict]:
    """One memory record per precision x cache size; a size is rows, a share of ALL table rows,
    or bytes of cache rows. Each record also carries `size`, the per-row layout, and `note`: None,
    or why the figures mislead (a cache asked for more rows than the tables hold: FBGEMM
    allocates it so, but the rows past the tables' can never fill)."""
    rows = np.atleast_1d(np.asarray(table_rows, dtype=np.int64))
    dims = parse_dims(dims, rows.shape[0])
    total = exact_sum(rows)
    out = []
    for prec in precisions:
        lay = row_layout(prec, int(dims.max()), align)
        for size in sizes:
            asked = cache_rows_for(size, total, cache_precision=cache_precision,
                                   max_dim=int(dims.max()))
            lines = cache_rows_for(size, total, cache_precision=cache_precision,
                                   max_dim=int(dims.max()), ways=ways)
            mem = memory_cost(rows, dims, prec, lines, cache_precision=cache_precision,
                              policy=policy, align=align)
            note = None
            if asked > total:
                note = (f"the cache's {asked:,} rows are more than the tables' {total:,}: "
                        f"{asked - total:,} of them can never be filled; at most 100% ("
                        f"{total:,} rows) holds every row")
            rec = {"size": str(parse_size(size).text), **mem.to_record(),
                   "row_data_bytes": lay.data_bytes, "row_scale_bias_bytes": lay.scale_bias_bytes,
                   "row_padding_bytes": lay.padding_bytes, "row_overhead": lay.overhead,
                   "note": note}
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
    fp32 = 4 * exact_dot(rows, dims)
    lines = [f"{rows.shape[0]} table(s), {exact_sum(rows):,} rows, {dim_text}; all rows in fp32:"
             f" {fp32:,} B ({fp32 / 1e9:.3f} GB)"]
    for r in records:
        pad = f" + {r['row_padding_bytes']} B padding" if r["row_padding_bytes"] else ""
        sb = (f" + {r['row_scale_bias_bytes']} B scale/bias ({r['row_overhead']})"
              if r["row_scale_bias_bytes"] else "")
        lines += [
            "",
            f"{r['precision']} store, cache {r['size']} = {r['cache_rows']:,} lines in "
            f"{r['cache_precision']}, {r['policy']}",
            *([f"  note: {r['note']}"] if r.get("note") else []),
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
