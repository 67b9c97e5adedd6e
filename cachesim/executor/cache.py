"""Embedding rows for training: all on the device, or an FP32 device cache over a host store.

Three ways to hold the rows, one interface (`gather` a batch, `apply` its row gradients,
`lookup` rows for evaluation):

- `DeviceTable`: every row in FP32 on the device, no cache, no copies (precision fp32, size
  "all": the baseline).
- `CachedTable`: every row in a `HostStore` at fp32/int8/int4, and an FP32 cache of `n_lines`
  lines on the device whose slots come from `cachesim.simulate.batch.BatchCache.step` (one unified cache
  over all tables, so all tables share one embedding dim). Per step, in the order the step API
  prescribes: evicted lines are re-quantized into the store (D2H), missing rows are read from the
  store (H2D) and dequantized into their lines, then the batch trains: cached rows are updated in
  FP32 in their lines; conflict-miss rows (no line) are read from the store, and their updates are
  re-quantized and written straight back (a read-modify-write: H2D then D2H).
- `CachedTable` with no cache (size 0): every unique row of every batch is a conflict miss; every
  update is re-quantized at once.

The h2d/d2h counters count the embedding-row bytes copied (the index arrays that go with them are
not counted, as in FBGEMM's cache statistics).
"""
from __future__ import annotations

import numpy as np

from ..errors import CachesimError
from .store import HostStore
from .xp import ArrayBackend

COUNTER_NAMES = ("calls", "requested_indices", "unique_indices", "unique_misses",
                 "conflict_unique_misses", "conflict_misses", "evictions", "misses")
OPTIMIZERS = ("sgd", "adagrad")
ADAGRAD_EPS = 1e-8


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise CachesimError(f"optimizer {name!r} is not one of {', '.join(OPTIMIZERS)}; "
                            "pass --optimizer sgd or adagrad")
    return name


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
    `cachesim.simulate.batch.BatchCache` (capacity 0: no cache, every row a conflict miss)."""

    kind = "cache"

    def __init__(self, backend: ArrayBackend, rows: np.ndarray, precision: str, *,
                 capacity_rows: int, ways: int | None, policy: str, distinct_keys: np.ndarray,
                 key_table: np.ndarray, n_tables: int, rounding: str = "stochastic",
                 optimizer: str = "sgd", seed: int = 0):
        self.backend, self.xp = backend, backend.xp
        n_rows, self.dim = rows.shape
        self.store = HostStore(backend, rows, precision, rounding, seed=seed)
        self.opt = _RowOptimizer(backend, n_rows, optimizer)
        self.cache = None
        self.counters = _zero_counters()
        if capacity_rows > 0:
            from ..simulate.batch import BatchCache
            self.cache = BatchCache(n_keys=n_rows, distinct_keys=distinct_keys,
                                    key_table=key_table, n_tables=n_tables,
                                    capacity_rows=int(capacity_rows), ways=ways, policy=policy)
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
        return (0 if self.lines is None else int(self.lines.nbytes)) + self.opt.nbytes

    @property
    def host_bytes(self) -> int:
        return self.store.nbytes

    # -- one training step -------------------------------------------------------------------
    def gather(self, ids: np.ndarray):
        """(inverse on the device, FP32 rows of the batch's unique ids on the device). Runs the
        cache step (write-backs and fills) first."""
        xp = self.xp
        c = self.counters
        if self.cache is None:
            uid, inverse = np.unique(ids, return_inverse=True)
            inverse = inverse.reshape(-1)
            slot = np.full(len(uid), -1, dtype=np.int64)
            for k, v in (("calls", 1), ("requested_indices", len(ids)),
                         ("unique_indices", len(uid)), ("unique_misses", len(uid)),
                         ("conflict_unique_misses", len(uid)), ("conflict_misses", len(ids)),
                         ("misses", len(ids))):
                c[k] += v
        else:
            step = self.cache.step(ids)
            for k in COUNTER_NAMES:
                c[k] += int(step.counters[k])
            uid = np.asarray(step.unique_ids, dtype=np.int64)
            inverse = np.asarray(step.inverse, dtype=np.int64)
            slot = np.asarray(step.slot, dtype=np.int64)
            ev_slots = np.asarray(step.evicted_slots, dtype=np.int64)
            if len(ev_slots):
                ev_ids = np.asarray(step.evicted_ids, dtype=np.int64)
                self.store.write(ev_ids, self.lines[xp.asarray(ev_slots)])
            fill_slots = np.asarray(step.filled_slots, dtype=np.int64)
            if len(fill_slots):
                fill_ids = np.asarray(step.filled_ids, dtype=np.int64)
                self.lines[xp.asarray(fill_slots)] = self.store.read(fill_ids)
        cached = slot >= 0
        rows = xp.empty((len(uid), self.dim), dtype=xp.float32)
        cached_pos = np.flatnonzero(cached)
        miss_pos = np.flatnonzero(~cached)
        if len(cached_pos):
            rows[xp.asarray(cached_pos)] = self.lines[xp.asarray(slot[cached_pos])]
        if len(miss_pos):
            rows[xp.asarray(miss_pos)] = self.store.read(uid[miss_pos])
        self._last = (uid, slot, cached_pos, miss_pos, rows)
        return xp.asarray(inverse), rows

    def apply(self, d_rows, lr: float) -> None:
        """Update the rows of the last `gather`: cached ones in their FP32 lines, conflict misses
        re-quantized into the store (D2H)."""
        xp = self.xp
        uid, slot, cached_pos, miss_pos, rows = self._last
        delta = self.opt.step(xp.asarray(uid), d_rows, lr)
        if len(cached_pos):
            cp = xp.asarray(cached_pos)
            self.lines[xp.asarray(slot[cached_pos])] += delta[cp]
        if len(miss_pos):
            mp = xp.asarray(miss_pos)
            self.store.write(uid[miss_pos], rows[mp] + delta[mp])
        self._last = None

    # -- evaluation and checks ---------------------------------------------------------------
    def lookup(self, ids: np.ndarray):
        """Rows for evaluation: the cache line if cached, else the dequantized store row; the
        cache, its counters and the byte counters do not change."""
        xp = self.xp
        uid, inverse = np.unique(ids, return_inverse=True)
        slot = self.cache.slot_of[uid] if self.cache is not None else np.full(len(uid), -1)
        rows = xp.empty((len(uid), self.dim), dtype=xp.float32)
        cached_pos = np.flatnonzero(slot >= 0)
        miss_pos = np.flatnonzero(slot < 0)
        if len(cached_pos):
            rows[xp.asarray(cached_pos)] = self.lines[xp.asarray(slot[cached_pos])]
        if len(miss_pos):
            rows[xp.asarray(miss_pos)] = self.store.read(uid[miss_pos], count=False)
        return xp.asarray(inverse.reshape(-1)), rows

    def weights(self) -> np.ndarray:
        """Every row as FP32 on the host: the line where cached, else the dequantized store."""
        out = self.store.dequantized()
        if self.cache is not None:
            line_ids = self.cache.line_ids
            valid = np.flatnonzero(line_ids >= 0)
            out[line_ids[valid]] = self.backend.to_host(self.lines[self.xp.asarray(valid)])
        return out
