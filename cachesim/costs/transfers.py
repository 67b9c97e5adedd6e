"""Bytes moved between host and device for a replay, and all cost figures of one result.

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

import numpy as np

from ..errors import CachesimError
from .layouts import row_bytes
from .memory import exact_dot, memory_cost, parse_dims

DEFAULT_LINK_GBPS = 25.0


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
                total += exact_dot(v, rb)
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
        calls = getattr(trace, "n_batches", None)  # (a streamed batch record counts its own)
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


def result_records(result, trace=None, precisions=(), *, per_table: bool = False,
                   **options) -> list[dict]:
    """The records of one replay result, as `cachesim replay` prints them: without
    `precisions`, its `to_record()` alone (with per-table counters where `per_table` and the
    result is a batch replay's); with them, one record per precision: the result's fields and its
    `costs_for` figures at that precision (an unknown precision is a CachesimError). `options`
    go to `costs_for` (link_gbps, cache_precision, align, dims); None means its default."""
    rec = result.to_record(per_table=per_table and result.mode == "batch")
    options = {k: v for k, v in options.items() if v is not None}
    if not precisions:
        return [rec]
    return [{**rec, **costs_for(result, trace, p, **options)} for p in precisions]
