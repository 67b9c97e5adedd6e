"""Embedding rows for training: all on the device, or an FP32 device cache over a host store.

Three ways to hold the rows, one interface (`gather` a batch, `apply` its row gradients,
`lookup` rows for evaluation):

- `DeviceTable`: every row in FP32 on the device, no cache, no copies (precision fp32, size
  "all": the baseline).
- `CachedTable`: every row in a `HostStore` at fp32/int8/int4, and an FP32 cache of `n_lines`
  lines on the device (one unified cache over all tables, so all tables share one embedding
  dim). `cache_model` picks the rules that give the lines: 'fbgemm' (default) is FBGEMM's
  training cache, `fbgemm_step.XpFbgemmCache`, whose index lives in device arrays next to the
  lines (equal to `cachesim.simulate.fbgemm`'s kernel; with its prefetch pipeline and per-table
  caches when asked); 'fbgemm-inference' is the same step under FBGEMM's inference cache's rules
  (32 or 64 ways, no locking, its first time step; the direct-mapped form is refused); 'ideal' is
  `cachesim.simulate.batch.BatchCache.step` on the host (any ways, fully associative too,
  ties broken by a stated rule; its slots are copied to the device each step). Per step, in
  the order the step API prescribes: evicted lines are re-quantized into the store (D2H),
  missing rows are read from the store (H2D) and dequantized into their lines, then the batch
  trains: cached rows are updated in FP32 in their lines; conflict-miss rows (no line) are read
  from the store, and their updates are re-quantized and written straight back (a
  read-modify-write: H2D then D2H).
- `CachedTable` with no cache (size 0): every unique row of every batch is a conflict miss; every
  update is re-quantized at once.

The h2d/d2h counters count the embedding-row bytes copied (the index arrays that go with them are
not counted, as in FBGEMM's cache statistics).
"""
from __future__ import annotations

import numpy as np

from ..errors import CachesimError
from ..simulate.result import FBGEMM_MODELS, INFERENCE_CACHE_MODEL
from .store import HostStore
from .xp import ArrayBackend

COUNTER_NAMES = ("calls", "requested_indices", "unique_indices", "unique_misses",
                 "conflict_unique_misses", "conflict_misses", "evictions", "misses")
OPTIMIZERS = ("sgd", "adagrad")
CACHE_MODELS = ("fbgemm", "ideal", INFERENCE_CACHE_MODEL)
FBGEMM_WAYS = (32, 64)  # one way per warp lane (cache_assoc: 32, or 64 on AMD CDNA)
ADAGRAD_EPS = 1e-8


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise CachesimError(f"optimizer {name!r} is not one of {', '.join(OPTIMIZERS)}; "
                            "pass --optimizer sgd or adagrad")
    return name


def check_cache_model(cache_model: str, ways) -> str:
    """The executor's cache model: 'fbgemm' (FBGEMM's training rules; 32 or 64 ways),
    'fbgemm-inference' (FBGEMM's inference cache's rules; 32 or 64 ways) or 'ideal'."""
    if cache_model not in CACHE_MODELS:
        raise CachesimError(f"cache model {cache_model!r} is not one of "
                            f"{', '.join(CACHE_MODELS)}; pass --cache-model fbgemm, ideal or "
                            f"{INFERENCE_CACHE_MODEL}")
    if cache_model == INFERENCE_CACHE_MODEL and ways is not None and int(ways) == 1:
        raise CachesimError(f"--ways 1 with --cache-model {INFERENCE_CACHE_MODEL}: the "
                            "executor's cache step runs FBGEMM's 32- and 64-way caches, not the "
                            "direct-mapped one; use --ways 32, or `cachesim replay` / `cachesim "
                            "sweep` for the direct-mapped cache")
    if cache_model in FBGEMM_MODELS and (ways is None or int(ways) not in FBGEMM_WAYS):
        raise CachesimError(f"ways={'full' if ways is None else ways}: FBGEMM's cache has one "
                            "way per warp lane, 32 (or 64 on AMD); pass --ways 32, or "
                            "--cache-model ideal for other ways")
    return cache_model


def init_rows(n_rows: int, dim: int, key_table: np.ndarray, table_rows: np.ndarray,
              seed: int) -> np.ndarray:
    """DLRM's embedding init: row of table t ~ U(-sqrt(1/n_t), sqrt(1/n_t)), n_t the table's
    rows; float32 [n_rows, dim] on the host, one row per dense id."""
    rng = np.random.default_rng([seed, 1])
    bound = np.sqrt(1.0 / np.maximum(table_rows, 1)).astype(np.float32)[key_table]
    out = rng.random((n_rows, dim), dtype=np.float32)
    out *= 2 * bound[:, None]
    out -= bound[:, None]
    return out


class _RowOptimizer:
    """SGD, or row-wise Adagrad (one FP32 accumulator per row, kept on the device)."""

    def __init__(self, backend: ArrayBackend, n_rows: int, name: str):
        self.name = check_optimizer(name)
        self.xp = backend.xp
        self.state = self.xp.zeros(n_rows, dtype=self.xp.float32) if name == "adagrad" else None

    @property
    def nbytes(self) -> int:
        return 0 if self.state is None else int(self.state.nbytes)

    def step(self, ids_dev, grads, lr: float):
        """The change to add to the rows `ids_dev` (device, no repeats) for gradients [n, D]."""
        if self.state is None:
            return -np.float32(lr) * grads
        acc = self.state[ids_dev] + (grads * grads).mean(axis=1)
        self.state[ids_dev] = acc
        return -np.float32(lr) * grads / (self.xp.sqrt(acc)[:, None] + np.float32(ADAGRAD_EPS))


def _zero_counters() -> dict:
    return {k: 0 for k in COUNTER_NAMES}


class DeviceTable:
    """Every row in FP32 on the device; no cache, no host copies."""

    kind = "device"

    def __init__(self, backend: ArrayBackend, rows: np.ndarray, optimizer: str = "sgd"):
        self.backend, self.xp = backend, backend.xp
        self.table = self.xp.array(rows, dtype=self.xp.float32, copy=True)
        self.opt = _RowOptimizer(backend, rows.shape[0], optimizer)
        self.counters = _zero_counters()
        self.h2d_bytes = self.d2h_bytes = 0
        self._last = None

    @property
    def device_bytes(self) -> int:
        return int(self.table.nbytes) + self.opt.nbytes

    host_bytes = 0

    def gather(self, ids: np.ndarray):
        uid, inverse = np.unique(ids, return_inverse=True)
        c = self.counters
        c["calls"] += 1
        c["requested_indices"] += len(ids)
        c["unique_indices"] += len(uid)
        uid_dev = self.xp.asarray(uid)
        self._last = uid_dev
        return self.xp.asarray(inverse.reshape(-1)), self.table[uid_dev]

    def apply(self, d_rows, lr: float) -> None:
        self.table[self._last] += self.opt.step(self._last, d_rows, lr)

    def lookup(self, ids: np.ndarray):
        uid, inverse = np.unique(ids, return_inverse=True)
        return self.xp.asarray(inverse.reshape(-1)), self.table[self.xp.asarray(uid)]

    def weights(self) -> np.ndarray:
        return self.backend.to_host(self.table).copy()


class CachedTable:
    """A host store at `precision` behind an FP32 device cache of `capacity_rows` lines driven by
    `cache_model`'s rules (capacity 0: no cache, every row a conflict miss).

    'fbgemm' and 'fbgemm-inference': FBGEMM's cache over tables of `table_rows` rows, sized by
    `fbgemm_size` (`FbgemmCache`'s cache_sets or load_factor; default ceil(capacity_rows / ways)
    sets), one per table with `per_table` (per group of tables with `table_groups`, a group
    number per table), `prefetch_pipeline` (fbgemm, lru) locking the lines
    of the batch in flight; 'ideal': `BatchCache` (`capacity_rows` one int per table: one cache
    per table)."""

    kind = "cache"

    def __init__(self, backend: ArrayBackend, rows: np.ndarray, precision: str, *,
                 capacity_rows: int, ways: int | None, policy: str, distinct_keys: np.ndarray,
                 key_table: np.ndarray, n_tables: int, rounding: str = "stochastic",
                 optimizer: str = "sgd", seed: int = 0, cache_model: str = "fbgemm",
                 table_rows=None, fbgemm_size: dict | None = None, per_table: bool = False,
                 prefetch_pipeline: bool = False, table_groups=None):
        self.backend, self.xp = backend, backend.xp
        n_rows, self.dim = rows.shape
        self.store = HostStore(backend, rows, precision, rounding, seed=seed)
        self.opt = _RowOptimizer(backend, n_rows, optimizer)
        self.cache = None
        has_cache = int(np.sum(capacity_rows)) > 0
        self.cache_model = check_cache_model(cache_model, ways) if has_cache else None
        self.counters = _zero_counters()
        if has_cache and cache_model in FBGEMM_MODELS:
            from ..simulate.fbgemm import fbgemm_cache_sets
            from .fbgemm_step import XpFbgemmCache
            if table_rows is None:
                raise ValueError("the fbgemm cache model needs table_rows (num_embeddings)")
            xp = self.xp
            size = fbgemm_size or {"cache_sets": fbgemm_cache_sets(capacity_rows, 1.0, int(ways))}
            self.cache = XpFbgemmCache(xp, np.maximum(table_rows, 1), policy=policy,
                                       ways=int(ways), n_ids=n_rows, per_table=per_table,
                                       prefetch_pipeline=prefetch_pipeline,
                                       table_groups=table_groups, **size)
            if cache_model == INFERENCE_CACHE_MODEL:  # the inference op's stamps start at 1
                from ..simulate.fbgemm_inference import FIRST_TIMESTEP
                self.cache.timestep = FIRST_TIMESTEP
            # per dense id, on the device: its linear key and table (the cache hashes the key)
            self._key_of = xp.asarray(np.asarray(distinct_keys, dtype=np.int64))
            self._table_of = xp.asarray(np.asarray(key_table, dtype=np.int64))
            self.n_lines = int(self.cache.n_lines)
            self.lines = self.xp.zeros((self.n_lines, self.dim), dtype=self.xp.float32)
        elif has_cache:
            from ..simulate.batch import BatchCache
            self.cache = BatchCache(n_keys=n_rows, distinct_keys=distinct_keys,
                                    key_table=key_table, n_tables=n_tables,
                                    capacity_rows=capacity_rows, ways=ways, policy=policy)
            self.n_lines = int(self.cache.n_lines)
            self.lines = self.xp.zeros((self.n_lines, self.dim), dtype=self.xp.float32)
        else:
            self.n_lines = 0
            self.lines = None
        self._last = None

    # -- sizes and counters ------------------------------------------------------------------
    @property
    def h2d_bytes(self) -> int:
        return self.store.h2d_bytes

    @property
    def d2h_bytes(self) -> int:
        return self.store.d2h_bytes

    @property
    def device_bytes(self) -> int:
        """Lines, optimizer state, and (cache model fbgemm) the cache index beside the lines."""
        index = 0
        if self.cache_model in FBGEMM_MODELS:
            index = self.cache.index_bytes + int(self._key_of.nbytes + self._table_of.nbytes)
        return (0 if self.lines is None else int(self.lines.nbytes)) + self.opt.nbytes + index

    @property
    def host_bytes(self) -> int:
        return self.store.nbytes

    # -- one training step -------------------------------------------------------------------
    def _step(self, ids: np.ndarray):
        """Run the cache step on a batch and count it. Returns, on the device: (unique ids,
        inverse, slot per unique id (-1: conflict miss), evicted slots, filled slots), and on
        the host: (evicted ids, filled ids)."""
        xp, c = self.xp, self.counters
        if self.cache_model in FBGEMM_MODELS:
            ids_dev = xp.asarray(ids).astype(xp.int64)
            st = self.cache.step_keys(self._key_of[ids_dev], self._table_of[ids_dev], ids_dev)
            got = dict(st.counters, calls=1 if len(ids) else 0, misses=st.missed_accesses)
            to_host = self.backend.to_host
        else:
            st = self.cache.step(ids)
            got = st.counters
            to_host = np.asarray
        for k in COUNTER_NAMES:
            c[k] += int(got[k])
        return (xp.asarray(st.unique_ids).astype(xp.int64), xp.asarray(st.inverse),
                xp.asarray(st.slot).astype(xp.int64), xp.asarray(st.evicted_slots),
                xp.asarray(st.filled_slots), to_host(st.evicted_ids).astype(np.int64),
                to_host(st.filled_ids).astype(np.int64))

    def gather(self, ids: np.ndarray):
        """(inverse on the device, FP32 rows of the batch's unique ids on the device). Runs the
        cache step (write-backs and fills) first."""
        xp = self.xp
        c = self.counters
        if self.cache is None:
            uid, inverse = np.unique(ids, return_inverse=True)
            for k, v in (("calls", 1), ("requested_indices", len(ids)),
                         ("unique_indices", len(uid)), ("unique_misses", len(uid)),
                         ("conflict_unique_misses", len(uid)), ("conflict_misses", len(ids)),
                         ("misses", len(ids))):
                c[k] += v
            uid_dev, inverse = xp.asarray(uid), xp.asarray(inverse.reshape(-1))
            slot = xp.full(len(uid), -1, dtype=xp.int64)
        else:
            uid_dev, inverse, slot, ev_slots, fill_slots, ev_ids, fill_ids = self._step(ids)
            if len(ev_ids):
                self.store.write(ev_ids, self.lines[ev_slots])
            if len(fill_ids):
                self.lines[fill_slots] = self.store.read(fill_ids)
        rows, cached_pos, miss_pos, miss_ids = self._rows(uid_dev, slot, count=True)
        self._last = (uid_dev, slot, cached_pos, miss_pos, miss_ids, rows)
        return inverse, rows

    def _rows(self, uid_dev, slot, count: bool):
        """FP32 rows of the unique ids: their line where slot >= 0, else read from the store.
        Returns (rows, positions cached, positions read, ids read (host))."""
        xp = self.xp
        rows = xp.empty((len(uid_dev), self.dim), dtype=xp.float32)
        cached_pos = xp.flatnonzero(slot >= 0)
        miss_pos = xp.flatnonzero(slot < 0)
        miss_ids = self.backend.to_host(uid_dev[miss_pos]).astype(np.int64)
        if len(cached_pos):
            rows[cached_pos] = self.lines[slot[cached_pos]]
        if len(miss_pos):
            rows[miss_pos] = self.store.read(miss_ids, count=count)
        return rows, cached_pos, miss_pos, miss_ids

    def apply(self, d_rows, lr: float) -> None:
        """Update the rows of the last `gather`: cached ones in their FP32 lines, conflict misses
        re-quantized into the store (D2H)."""
        uid_dev, slot, cached_pos, miss_pos, miss_ids, rows = self._last
        delta = self.opt.step(uid_dev, d_rows, lr)
        if len(cached_pos):
            self.lines[slot[cached_pos]] += delta[cached_pos]
        if len(miss_pos):
            self.store.write(miss_ids, rows[miss_pos] + delta[miss_pos])
        self._last = None

    # -- evaluation and checks ---------------------------------------------------------------
    def lookup(self, ids: np.ndarray):
        """Rows for evaluation: the cache line if cached, else the dequantized store row; the
        cache, its counters and the byte counters do not change."""
        xp = self.xp
        uid, inverse = np.unique(ids, return_inverse=True)
        uid_dev = xp.asarray(uid).astype(xp.int64)
        if self.cache is None:
            slot = xp.full(len(uid), -1, dtype=xp.int64)
        elif self.cache_model in FBGEMM_MODELS:
            slot = self.cache.lines_of(self._key_of[uid_dev], self._table_of[uid_dev])
        else:
            slot = xp.asarray(self.cache.slot_of[uid])
        rows = self._rows(uid_dev, slot, count=False)[0]
        return xp.asarray(inverse.reshape(-1)), rows

    def weights(self) -> np.ndarray:
        """Every row as FP32 on the host: the line where cached, else the dequantized store."""
        out = self.store.dequantized()
        if self.cache is not None:
            line_ids = self.backend.to_host(self.xp.asarray(self.cache.line_ids))
            valid = np.flatnonzero(line_ids >= 0)
            out[line_ids[valid]] = self.backend.to_host(self.lines[self.xp.asarray(valid)])
        return out
