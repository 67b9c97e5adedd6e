"""`Result`: what one replay counted, in either mode, with the same names for the same things."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

DEFAULT_WAYS = 32  # FBGEMM's cache associativity; `ways=None` is fully associative


@dataclass
class Result:
    """Counts of one replay (`cachesim.replay`, `cachesim.replay_batch`), summed over tables.

    Both modes (`mode` 'access' or 'batch'):
    - `requests`: accesses replayed; `hits` + `misses` = `requests`. Access mode: an access hits
      when its key is cached when it is looked up. Batch mode: an access hits when its key was
      cached when its batch began; every access to a key missing then is a miss, repeats in the
      batch included (FBGEMM looks the batch up at once, deduplicated).
    - `hit_ratio` = hits / requests, `miss_ratio` = misses / requests: per access in both modes
      (the share of unique keys per batch that hit is 1 - unique_misses / unique_indices).
    - `miss_bytes`, `request_bytes`: bytes of the missed and of all accesses: the trace's object
      sizes where it has them (access mode), else each table's fp32 row (4 x dim bytes).
    - `capacity` in `capacity_unit` ('rows' or 'bytes'; batch mode counts rows); `ways`: the
      ways of each set, None when fully associative; `evictions`: valid keys pushed out.
    - `h2d_bytes`, `d2h_bytes`: bytes copied host->device and device->host where the replay knows
      them, else None (a replay does not: they depend on the storage precision, see
      `cachesim.costs_for` and `cachesim replay --precision`; `cachesim.train` measures them).

    Batch mode only (None in access mode): `calls` (batches) and FBGEMM's `uvm_cache_stats`
    counters `requested_indices` (= requests), `unique_indices`, `unique_misses`,
    `conflict_unique_misses`, `conflict_misses`; `n_sets`, `n_lines`, `per_table_caches`,
    `inference`. `per_table` holds each table's counters (lists in table order).
    """

    policy: str
    size: str
    capacity: int
    capacity_unit: str
    ways: int | None
    mode: str
    requests: int
    hits: int
    misses: int
    hit_ratio: float
    miss_ratio: float
    miss_bytes: int
    request_bytes: int
    evictions: int
    seconds: float
    h2d_bytes: int | None = None
    d2h_bytes: int | None = None
    n_sets: int | None = None
    n_lines: int | None = None
    per_table_caches: bool = False
    inference: bool = False
    calls: int | None = None
    requested_indices: int | None = None
    unique_indices: int | None = None
    unique_misses: int | None = None
    conflict_unique_misses: int | None = None
    conflict_misses: int | None = None
    per_table: dict = field(default_factory=dict, repr=False)

    def to_record(self, per_table: bool = False) -> dict:
        """The fields as a dict (JSON-ready); `per_table` keeps the per-table counters."""
        rec = asdict(self)
        if not per_table:
            rec.pop("per_table")
        return rec


def ratio(part: int, whole: int) -> float:
    """part / whole, 0.0 for an empty replay."""
    return part / whole if whole else 0.0
