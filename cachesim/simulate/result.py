"""`Result`: what one replay counted, in either mode, with the same names for the same things."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import CachesimError

DEFAULT_WAYS = 32  # FBGEMM's cache associativity; `ways=None` is fully associative
# Batch replay's cache models: "fbgemm" is FBGEMM's training cache exactly (simulate/fbgemm.py:
# 32 or 64 ways, sets from the load factor on num_embeddings, its bitonic ties, its locking);
# "ideal" is cachesim's own what-if cache (simulate/batch.py: any ways or fully associative,
# lowest-way ties, LFU locking). The default is this one constant.
CACHE_MODELS = ("fbgemm", "ideal")
DEFAULT_CACHE_MODEL = "fbgemm"
# FBGEMM's inference cache (simulate/fbgemm_inference.py): `replay_batch`, and every command's
# --cache-model; resolve_cache_model takes it with inference=True
INFERENCE_CACHE_MODEL = "fbgemm-inference"


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

    Batch mode only (None in access mode): `cache_model` ('fbgemm' or 'ideal', see
    CACHE_MODELS), `calls` (batches) and the counters `requested_indices` (= requests),
    `unique_indices`, `unique_misses`, `conflict_unique_misses`, `conflict_misses`: cachesim's
    own counts, defined alike for LRU and LFU in both models (the names of FBGEMM's
    `uvm_cache_stats`; under LRU in the fbgemm model they equal FBGEMM's values); `n_sets`,
    `n_lines`, `per_table_caches`, `inference`. `per_table` holds each table's counters (lists
    in table order).

    cache_model 'fbgemm' only (else None): `num_calls`, `num_requested_indices`,
    `num_unique_indices`, `num_unique_misses`, `num_conflict_unique_misses`,
    `num_conflict_misses`: FBGEMM's `get_uvm_cache_stats` values under FBGEMM's names (under LFU
    FBGEMM fills only num_conflict_misses, the other five are 0); `load_factor` (FBGEMM's
    cache_load_factor when the size was a share, else None), `prefetch_pipeline`, and
    `table_rows_inferred` (num_embeddings came from the largest row seen, not the trace);
    with `record_cache_miss_counter` (FBGEMM's RecordCacheMetrics, `simulate.fbgemm.
    record_cache_miss_counter`) num_conflict_misses includes the extra lookup before each
    populate, and `cache_miss_counter` is FBGEMM's [forwards with a unique miss, unique misses]
    (None with per-table caches); `table_groups`: the tables of each cache when they are
    grouped (`--table-groups`, TorchRec's TBE ops, e.g. 'C1-C13/C14-C26'), else None.
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
    cache_model: str | None = None
    load_factor: float | None = None
    prefetch_pipeline: bool = False
    table_rows_inferred: bool | None = None
    num_calls: int | None = None
    num_requested_indices: int | None = None
    num_unique_indices: int | None = None
    num_unique_misses: int | None = None
    num_conflict_unique_misses: int | None = None
    num_conflict_misses: int | None = None
    record_cache_miss_counter: bool = False
    cache_miss_counter: list | None = None
    table_groups: str | None = None
    per_table: dict = field(default_factory=dict, repr=False)

    def to_record(self, per_table: bool = False) -> dict:
        """The fields as a dict (JSON-ready); `per_table` keeps the per-table counters."""
        rec = asdict(self)
        if not per_table:
            rec.pop("per_table")
        return rec


def batch_result_of(trace, names, counts, **fields) -> Result:
    """A batch-mode `Result` from per-table counters: `counts` [tables, len(names)] with the
    columns `names` (requested_indices, unique_indices, unique_misses, conflict_unique_misses,
    conflict_misses, evictions, misses; others ride along per table); `fields` gives the rest
    (policy, size, capacity, ways, n_sets, n_lines, calls, seconds, cache_model, ...)."""
    col = {nm: counts[:, i] for i, nm in enumerate(names)}
    per_table = {"table": list(trace.table_names)}
    per_table.update({nm: v.tolist() for nm, v in col.items()})
    req_t, miss_t = col["requested_indices"], col["misses"]
    row_bytes = trace.row_bytes_fp32()
    per_table.update(requests=req_t.tolist(), hits=(req_t - miss_t).tolist(),
                     miss_bytes=(miss_t * row_bytes).tolist())
    per_table.update(fields.pop("per_table", {}))
    tot = {nm: int(v.sum()) for nm, v in col.items()}
    requests, misses = tot["requested_indices"], tot["misses"]
    return Result(capacity_unit="rows", mode="batch", requests=requests, hits=requests - misses,
                  misses=misses, hit_ratio=ratio(requests - misses, requests),
                  miss_ratio=ratio(misses, requests), miss_bytes=int((miss_t * row_bytes).sum()),
                  request_bytes=int((req_t * row_bytes).sum()), evictions=tot["evictions"],
                  requested_indices=requests, unique_indices=tot["unique_indices"],
                  unique_misses=tot["unique_misses"],
                  conflict_unique_misses=tot["conflict_unique_misses"],
                  conflict_misses=tot["conflict_misses"], per_table=per_table, **fields)


def resolve_cache_model(cache_model, inference: bool = False) -> str:
    """'fbgemm' or 'ideal' from a name (None: DEFAULT_CACHE_MODEL), and with `inference` also
    'fbgemm-inference' (INFERENCE_CACHE_MODEL); CachesimError naming the allowed ones otherwise."""
    if cache_model is None:
        return DEFAULT_CACHE_MODEL
    name = str(cache_model).strip().lower()
    if name not in CACHE_MODELS and not (inference and name == INFERENCE_CACHE_MODEL):
        also = (f", or {INFERENCE_CACHE_MODEL} (FBGEMM's inference cache: 32 or 64 ways, or 1, "
                "direct-mapped)") if inference else ""
        raise CachesimError(f"--cache-model {cache_model!r}: use fbgemm (FBGEMM's training cache) "
                            f"or ideal (cachesim's own: any ways, fully associative){also}")
    return name


FBGEMM_MODELS = ("fbgemm", INFERENCE_CACHE_MODEL)  # the models with FBGEMM's geometry and warp


def fbgemm_warp(cache_model, ways) -> int | None:
    """The warp size an FBGEMM cache of `ways` runs with (32 or 64: one way per lane, so its
    ways), None for the ideal model, access mode and the direct-mapped inference cache."""
    if cache_model in FBGEMM_MODELS and ways is not None and int(ways) in (32, 64):
        return int(ways)
    return None


def ratio(part: int, whole: int) -> float:
    """part / whole, 0.0 for an empty replay."""
    return part / whole if whole else 0.0
