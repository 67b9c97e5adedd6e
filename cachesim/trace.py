"""The in-memory trace: one row per access, columnar numpy arrays.

Per access: `table` (int32) and `row` (int64, the trace's own row id; for a single-table cache
trace, the object id) and, where the source has them, `batch`, `sample`, `ts` and `size` (bytes).
Per sample (when the source has them): `labels` and `dense` features, for training.
Per table: `table_names`, `table_rows` (from the source's metadata, else largest row id + 1,
and then `table_rows_inferred` is True) and `table_dims` (embedding dimension, default 16: DLRM's Criteo Kaggle preset).

Checked on construction (`InvalidAccess`, a CachesimError naming the access, which a reader turns
into its file and line): a negative `size`; where `table_rows` is inferred, a row that is
negative or 2^63-1 (rows are row ids 0..2^63-2, so that largest + 1 fits int64); and always,
table rows 0 or more and at most MAX_ROWS = 2^63-1 together. Where `table_rows` is given and
there are several tables, linearising (`keys`) refuses a row outside its table's rows (its key
would be another table's). A single table with given rows takes any int64 key (object ids).

Derived once, on first use, and cached on the object:
- `keys`: the key linearised over tables, (rows of all earlier tables) + row, int64; the set hash
  and every user-visible key use it;
- `dense_ids` (int32, 0..n_distinct-1 in order of first access), `distinct_keys` (the map back)
  and `key_table` (the table of each dense id): kernels index arrays with dense ids, never hash;
- `next_access`: index of the next access to the same key, -1 if none (OPT reads it);
- `batch_starts`: start of each batch (run of equal `batch` values), then len(trace).
Each is cached keyed by the columns it derives from (their identity): assigning a column
(`trace.batch = ...`) derives again; a trace made by `dataclasses.replace` starts with no derived
columns. Change columns by assigning new arrays, never in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from .errors import CachesimError
from .hashing import fmix64
from .numba_util import prefetch

DEFAULT_DIM = 16
MAX_ROWS = 2**63 - 1  # rows of all tables together: row ids 0..2^63-2, and their count, fit int64


class InvalidAccess(CachesimError):
    """An access the trace model refuses (a negative row or size, a row past the int64 range):
    carries the access `index` (0-based), the `column` and `value`, so that a reader can name
    its line; the message names the access."""

    def __init__(self, index: int, column: str, value: int, what: str, fix: str,
                 source: str = ""):
        self.index, self.column, self.value, self.what, self.fix = index, column, value, what, fix
        super().__init__(f"{source or 'trace'}: access {index:,} (0-based): {what} ({fix})")


def check_table_rows(table_rows: np.ndarray, source: str = "") -> None:
    """Rows per table must be 0 or more and at most MAX_ROWS together (keys linearise over
    tables as int64); raises CachesimError naming the table otherwise."""
    total = 0
    for t, r in enumerate(table_rows.tolist()):
        if r < 0:
            raise CachesimError(f"{source or 'trace'}: table {t} has {r:,} rows; a table has 0 "
                                "rows or more (fix the trace's table_rows)")
        total += r
    if total > MAX_ROWS:
        raise CachesimError(f"{source or 'trace'}: its {len(table_rows)} tables hold {total:,} "
                            f"rows together; keys linearise over tables as int64 row ids, so at "
                            f"most 2^63-1 = {MAX_ROWS:,} (renumber the rows densely)")


@dataclass(eq=False)
class Trace:
    table: np.ndarray
    row: np.ndarray
    batch: np.ndarray | None = None
    sample: np.ndarray | None = None
    ts: np.ndarray | None = None
    size: np.ndarray | None = None
    table_names: list[str] = field(default_factory=list)
    table_rows: np.ndarray | None = None
    table_dims: np.ndarray | None = None
    labels: np.ndarray | None = None
    dense: np.ndarray | None = None
    source: str = ""
    next_access_given: np.ndarray | None = None
    # True when table_rows came from no source (largest row id + 1 per table): FBGEMM's cache
    # geometry (num_embeddings) then rests on a guess (`cachesim replay --table-rows`)
    table_rows_inferred: bool = False
    # derived columns: name -> (the columns it derives from, value); not an argument, so
    # dataclasses.replace never copies it
    _derived: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        self.table = np.ascontiguousarray(self.table, dtype=np.int32)
        self.row = np.ascontiguousarray(self.row, dtype=np.int64)
        n = self.row.shape[0]
        if self.table.shape[0] != n:
            raise ValueError("table and row must have one entry per access")
        for name in ("batch", "sample", "ts", "size"):
            col = getattr(self, name)
            if col is not None:
                col = np.ascontiguousarray(col, dtype=np.int64)
                if col.shape[0] != n:
                    raise ValueError(f"{name} must have one entry per access")
                setattr(self, name, col)
        # n_tables needs a pass over `table`: done only when a default below needs it (a reader
        # that gives names, rows and dims from its metadata never pays for it)
        if (not self.table_names or self.table_rows is None or self.table_dims is None
                or np.shape(self.table_dims)[0] == 1):
            n_tables = int(self.table.max()) + 1 if n else max(1, len(self.table_names))
            n_tables = max(n_tables, len(self.table_names),
                           0 if self.table_rows is None else len(self.table_rows))
        if not self.table_names:
            self.table_names = [f"t{i}" for i in range(n_tables)] if n_tables > 1 else ["t0"]
        if self.table_rows is None:
            self.table_rows = rows_per_table(self.table, self.row, n_tables, self.table_names,
                                             self.source)
            self.table_rows_inferred = True
        self.table_rows = np.asarray(self.table_rows, dtype=np.int64)
        check_table_rows(self.table_rows, self.source)
        if self.size is not None and n and self.size.min() < 0:
            i = int(np.argmax(self.size < 0))
            raise InvalidAccess(i, "size", int(self.size[i]), f"size {int(self.size[i])} is "
                                "negative", "object sizes are bytes, 0 or more", self.source)
        if self.table_dims is None:
            self.table_dims = np.full(n_tables, DEFAULT_DIM, dtype=np.int64)
        self.table_dims = np.asarray(self.table_dims, dtype=np.int64)
        if self.table_dims.shape[0] == 1 and n_tables > 1:
            self.table_dims = np.full(n_tables, int(self.table_dims[0]), dtype=np.int64)

    # -- shape -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.row.shape[0])

    _EQ_COLUMNS = ("table", "row", "batch", "sample", "ts", "size", "table_rows", "table_dims",
                   "labels", "dense")

    def __eq__(self, other) -> bool:
        """Same accesses (every column) and metadata (table names, rows and dims, labels, dense
        features); `source`, a reader's `next_access_given` and the derived caches (keys, dense
        ids, next accesses) are not compared. So `read_trace(write_trace(t, p)) == t` wherever
        the format keeps every column."""
        if not isinstance(other, Trace):
            return NotImplemented
        if list(self.table_names) != list(other.table_names):
            return False
        for name in self._EQ_COLUMNS:
            a, b = getattr(self, name), getattr(other, name)
            if (a is None) != (b is None):
                return False
            if a is not None and not np.array_equal(a, b):
                return False
        return True

    __hash__ = None  # mutable arrays: not hashable

    @property
    def n_tables(self) -> int:
        return len(self.table_names)

    @property
    def has_batches(self) -> bool:
        return self.batch is not None

    @property
    def has_sizes(self) -> bool:
        return self.size is not None

    @property
    def n_batches(self) -> int:
        """How many distinct batches the trace's accesses fall in (0 without batches); counted
        once (a sweep costs every configuration x precision with it)."""
        if self.batch is None:
            return 0
        return self._derive("n_batches", (self.batch,),
                            lambda: int(np.unique(self.batch).shape[0]))

    @classmethod
    def from_keys(cls, keys, sizes=None, *, batch=None, source="array") -> "Trace":
        """A single-table trace from a sequence of keys (and optional sizes in bytes)."""
        keys = np.asarray(keys, dtype=np.int64)
        return cls(table=np.zeros(keys.shape[0], np.int32), row=keys,
                   size=None if sizes is None else np.asarray(sizes, np.int64),
                   batch=batch, source=source)

    def require_nonempty(self) -> None:
        if len(self) == 0:
            raise CachesimError(f"{self.source or 'trace'}: the trace has no accesses "
                                "(check the file and its --format)")

    # -- derived columns ----------------------------------------------------------------------
    def _derive(self, name: str, sources: tuple, compute):
        """The derived column `name`: cached while `sources` (the arrays it derives from) are the
        very objects it was computed from, else computed again by `compute()`."""
        hit = self._derived.get(name)
        if hit is not None and len(hit[0]) == len(sources) and all(
                a is b for a, b in zip(hit[0], sources)):
            return hit[1]
        value = compute()
        self._derived[name] = (sources, value)
        return value

    def given_remap(self, dense_ids: np.ndarray, distinct_keys: np.ndarray) -> "Trace":
        """Adopt a reader's dense remap of `keys` (it computed one anyway); returns the trace."""
        if dense_ids.shape[0] != len(self):
            raise ValueError("dense_ids must have one entry per access")
        self._derived["remap"] = ((self.keys,), (dense_ids, distinct_keys))
        return self

    @property
    def table_offsets(self) -> np.ndarray:
        """Linearisation offsets: rows of all earlier tables, int64, one per table."""
        off = np.zeros(self.n_tables, dtype=np.int64)
        if self.n_tables > 1:
            np.cumsum(self.table_rows[:-1], out=off[1:])
        return off

    @property
    def keys(self) -> np.ndarray:
        """Key linearised over tables: (rows of all earlier tables) + row."""
        return self._derive("keys", (self.table, self.row, self.table_rows, self.table_names),
                            self._linearised)

    def _linearised(self) -> np.ndarray:
        if self.n_tables == 1:
            return self.row
        keys = np.empty(len(self), dtype=np.int64)
        i = int(_linearise(self.table, self.row, self.table_offsets, self.table_rows,
                           keys))
        if i >= 0:  # table_rows given (metadata) but a row outside them
            t, r = int(self.table[i]), int(self.row[i])
            if not 0 <= t < min(self.n_tables, len(self.table_rows)):
                raise InvalidAccess(i, "table", t, f"table {t} is not one of the "
                                    f"trace's {len(self.table_rows)} tables",
                                    "give table_rows and names for every table",
                                    self.source)
            raise InvalidAccess(
                i, "row", r, f"row {r:,} of table {self.table_names[t]} is outside its "
                f"{int(self.table_rows[t]):,} rows, so its key would be another "
                "table's", "rows of a table are 0..rows-1: fix the row or the table's "
                "rows", self.source)
        return keys

    def _remap(self):
        keys = self.keys
        return self._derive("remap", (keys,), lambda: dense_remap(keys))

    @property
    def dense_ids(self) -> np.ndarray:
        """Dense id of each access, 0..n_distinct-1 in order of first access (int32)."""
        return self._remap()[0]

    @property
    def distinct_keys(self) -> np.ndarray:
        """The linearised key of each dense id (the map back)."""
        return self._remap()[1]

    @property
    def n_distinct(self) -> int:
        return int(self.distinct_keys.shape[0])

    @property
    def key_table(self) -> np.ndarray:
        """Table of each dense id (int32)."""
        def compute():
            kt = np.zeros(self.n_distinct, dtype=np.int32)
            if self.n_tables > 1:
                kt[self.dense_ids] = self.table
            return kt
        return self._derive("key_table", (self.table, self.dense_ids), compute)

    @property
    def next_access(self) -> np.ndarray:
        """Index of the next access to the same key, -1 if none (int64)."""
        if self.next_access_given is not None:
            return self.next_access_given
        return self._derive("next_access", (self.dense_ids,),
                            lambda: next_access(self.dense_ids, self.n_distinct))

    @property
    def batch_starts(self) -> np.ndarray:
        """Start of each batch (consecutive equal `batch` values), then len(trace), int64; a
        CachesimError if the trace has no batches or its batch ids decrease."""
        return self._derive("batch_starts", (self.batch,), self._batch_starts)

    def _batch_starts(self) -> np.ndarray:
        if self.batch is None:
            raise CachesimError(f"{self.source or 'the trace'} has no batches, so it cannot be "
                                "replayed in batch mode; read it with batch_size=N (sample-based "
                                "formats) or use mode=\"access\"")
        batch = self.batch
        step = np.diff(batch)
        if (step < 0).any():
            i = int(np.flatnonzero(step < 0)[0]) + 1
            raise CachesimError(f"{self.source or 'the trace'}: batch ids must not decrease, but "
                                f"access {i} has batch {int(batch[i])} after batch "
                                f"{int(batch[i - 1])}; sort the trace by batch (or renumber its "
                                "batches)")
        cuts = np.flatnonzero(step != 0) + 1
        return np.concatenate([[0], cuts, [len(self)]]).astype(np.int64)

    def row_bytes_fp32(self) -> np.ndarray:
        """Bytes of one fp32 row per table (4 x dim)."""
        return 4 * self.table_dims

    def slice(self, start: int, stop: int) -> "Trace":
        """Accesses [start, stop) as a new trace with the same tables (no derived columns)."""
        return self.take(slice(start, stop))

    def take(self, index, *, table: int | None = None, batches: bool = True,
             source: str | None = None) -> "Trace":
        """The accesses at `index` (a slice, a boolean mask or positions, in that order) as a new
        trace: every per-access column cut alike (the batch column dropped when `batches` is
        False), labels and dense features kept (sample ids are kept), no derived columns.
        With `table=t` every access taken must be of table t: the result is the one-table trace
        of t (table column 0, t's name, rows and dim)."""
        cut = lambda a: None if a is None else a[index]
        row = self.row[index]
        if table is None:
            tables = dict(table=self.table[index], table_names=list(self.table_names),
                          table_rows=self.table_rows.copy(), table_dims=self.table_dims.copy(),
                          table_rows_inferred=self.table_rows_inferred)
        else:
            t = int(table)
            tables = dict(table=np.zeros(row.shape[0], np.int32), table_names=[self.table_names[t]],
                          table_rows=self.table_rows[t:t + 1].copy(),
                          table_dims=self.table_dims[t:t + 1].copy(),
                          table_rows_inferred=self.table_rows_inferred)
        return Trace(row=row, batch=cut(self.batch) if batches else None,
                     sample=cut(self.sample), ts=cut(self.ts), size=cut(self.size),
                     labels=self.labels, dense=self.dense,
                     source=self.source if source is None else source, **tables)

    def per_table(self):
        """(t, the one-table trace of table t's accesses, `take(..., table=t)`) for each table
        t with accesses, in table order; a one-table trace yields itself."""
        if self.n_tables == 1:
            yield 0, self
            return
        order = np.argsort(self.table, kind="stable")
        bounds = np.searchsorted(self.table[order], np.arange(self.n_tables + 1))
        for t, name in enumerate(self.table_names):
            idx = order[bounds[t]:bounds[t + 1]]
            if idx.shape[0]:
                yield t, self.take(idx, table=t, source=f"{self.source}:{name}")

    def fingerprint(self) -> str:
        """The trace's identity for saved results (a sweep's parts, a report's --from): a
        digest (`hashing.digest`) of what a replay reads (keys, batches, table rows and names)
        and the cachesim version, 32 hex digits."""
        import json

        from .hashing import digest
        from .version import __version__
        h = digest()
        h.update(__version__.encode())
        h.update(memoryview(np.ascontiguousarray(self.keys)).cast("B"))  # (no copy)
        if self.batch is not None:
            h.update(memoryview(np.ascontiguousarray(self.batch)).cast("B"))
        h.update(np.asarray(self.table_rows, dtype=np.int64).tobytes())
        h.update(json.dumps(list(self.table_names)).encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        extra = [c for c in ("batch", "sample", "ts", "size") if getattr(self, c) is not None]
        return (f"Trace({len(self):,} accesses, {self.n_tables} table(s), columns table,row"
                f"{''.join(',' + c for c in extra)}, source={self.source!r})")


@numba.njit(cache=True)
def _linearise(table, row, offsets, rows, out):
    """out[i] = offsets[table[i]] + row[i]; returns the first access whose row is outside
    0..rows[table]-1 (its key would fall in another table), -1 when there is none."""
    for i in range(table.shape[0]):
        t = table[i]
        r = row[i]
        if t < 0 or t >= rows.shape[0] or r < 0 or r >= rows[t]:
            return i
        out[i] = offsets[t] + r
    return -1


@numba.njit(cache=True)
def _rows_per_table(table, row, out):
    """Largest row + 1 per table into `out`; returns the first access whose row is negative or
    2^63-1 (whose row + 1 does not fit int64), -1 when there is none."""
    last = np.int64(MAX_ROWS)
    for i in range(table.shape[0]):
        r = row[i]
        if r < 0 or r == last:
            return i
        r += 1
        if r > out[table[i]]:
            out[table[i]] = r
    return -1


def rows_per_table(table: np.ndarray, row: np.ndarray, n_tables: int,
                   table_names=None, source: str = "") -> np.ndarray:
    """Largest row id + 1 per table (0 for a table with no access). Raises InvalidAccess for
    the first row outside 0..2^63-2: rows are row ids, and their count must fit int64."""
    out = np.zeros(n_tables, dtype=np.int64)
    i = int(_rows_per_table(table, row, out))
    if i >= 0:
        t, r = int(table[i]), int(row[i])
        name = table_names[t] if table_names and t < len(table_names) else f"t{t}"
        what = (f"row {r:,} of table {name} is negative" if r < 0 else
                f"row {r:,} of table {name} is 2^63-1, so its table's rows (row + 1) overflow "
                "int64")
        raise InvalidAccess(i, "row", r, what, "rows are row ids, 0..2^63-2: fix or drop that "
                            "access", source)
    return out


_AHEAD = 32  # accesses to look ahead: prefetch the slot of key i + _AHEAD while numbering key i


@numba.njit(cache=True, nogil=True)
def _dense_remap(keys, out, start, slots, distinct, n_distinct):
    """Number keys[start:] into `out` in order of first appearance, continuing from
    `n_distinct` ids. `slots` is an open-addressing table of [key, id] pairs (id -1: empty;
    power-of-two slots), `distinct` the keys by id. Stops before the table passes half full or
    `distinct` fills, and returns (next index, ids so far): the caller grows both and resumes.
    Tables are allocated by numpy (the caller), so that large ones get transparent huge pages."""
    mask = np.uint64(slots.shape[0] // 2 - 1)
    limit = min(slots.shape[0] // 4, distinct.shape[0])
    nd = n_distinct
    n = keys.shape[0]
    for i in range(start, n):
        if nd >= limit:
            return i, nd
        if i + _AHEAD < n:
            prefetch(slots, 2 * (fmix64(np.uint64(keys[i + _AHEAD])) & mask))
        k = keys[i]
        h = fmix64(np.uint64(k)) & mask
        while True:
            v = slots[2 * h + 1]
            if v == -1:
                slots[2 * h] = k
                slots[2 * h + 1] = nd
                distinct[nd] = k
                out[i] = nd
                nd += 1
                break
            if slots[2 * h] == k:
                out[i] = v
                break
            h = (h + np.uint64(1)) & mask
    return n, nd


@numba.njit(cache=True, nogil=True)
def _dense_rehash(distinct, slots):
    """Insert distinct[j] -> j into the empty table `slots` (keys are unique)."""
    mask = np.uint64(slots.shape[0] // 2 - 1)
    m = distinct.shape[0]
    for j in range(m):
        if j + _AHEAD < m:
            prefetch(slots, 2 * (fmix64(np.uint64(distinct[j + _AHEAD])) & mask))
        k = distinct[j]
        h = fmix64(np.uint64(k)) & mask
        while slots[2 * h + 1] != -1:
            h = (h + np.uint64(1)) & mask
        slots[2 * h] = k
        slots[2 * h + 1] = j


@numba.njit(cache=True, nogil=True)
def _key_range(keys):
    """(smallest, largest) of a non-empty int64 array, in one pass."""
    lo = hi = keys[0]
    for i in range(1, keys.shape[0]):
        k = keys[i]
        if k < lo:
            lo = k
        elif k > hi:
            hi = k
    return lo, hi


_DIRECT_AHEAD = 64  # the direct table's loads are cheaper than hashing: look further ahead


@numba.njit(cache=True, nogil=True)
def _dense_remap_direct(keys, lo, first, out, distinct, nd=0):
    """Number `keys` into `out` in order of first appearance through a direct-address table:
    `first[k - lo]` holds 1 + the id of key k, 0 if not seen yet (so a zeroed table, whose
    untouched pages the OS never maps, is the empty one), continuing from `nd` ids (`distinct`
    has room for every new one). Returns the number of ids."""
    n = keys.shape[0]
    for i in range(n):
        if i + _DIRECT_AHEAD < n:
            prefetch(first, keys[i + _DIRECT_AHEAD] - lo)
        k = keys[i]
        v = first[k - lo]
        if v == 0:
            first[k - lo] = nd + 1
            distinct[nd] = k
            out[i] = nd
            nd += 1
        else:
            out[i] = v - 1
    return nd


DIRECT_SMALL_RANGE = 1 << 16  # key ranges up to this many always use the direct table
DIRECT_MAX_RANGE = 1 << 30    # never a direct table wider than this (4 GiB of int32)
DIRECT_RANGE_PER_ACCESS = 4   # else direct when range <= this x accesses (table <= 16 B/access)


def dense_remap(keys: np.ndarray, method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Dense ids (int32, order of first access) and the distinct keys, from int64 keys.

    `method`: 'direct' numbers through a table indexed by key - min (needs a key range of at
    most DIRECT_MAX_RANGE), 'hash' through an open-addressing hash table (any keys), 'auto'
    (default) takes 'direct' when the range is at most DIRECT_SMALL_RANGE, or at most
    DIRECT_RANGE_PER_ACCESS x the number of accesses (and DIRECT_MAX_RANGE), else 'hash'.
    Both give the same result."""
    if method not in ("auto", "direct", "hash"):
        raise ValueError(f"dense_remap method {method!r}: use 'auto', 'direct' or 'hash'")
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    n = keys.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64)
    if method != "hash":
        # numpy for a small array: one kernel less to load at start-up
        lo, hi = ((int(keys.min()), int(keys.max())) if n <= 1 << 20 else
                  (int(x) for x in _key_range(keys)))
        span = hi - lo + 1  # Python ints: no overflow near the int64 limits
        fits = span <= DIRECT_MAX_RANGE
        if method == "direct" and not fits:
            raise ValueError(f"dense_remap: key range {span:,} is wider than DIRECT_MAX_RANGE "
                             f"({DIRECT_MAX_RANGE:,}); use method='hash' or 'auto'")
        if method == "direct" or (fits and (span <= DIRECT_SMALL_RANGE
                                            or span <= DIRECT_RANGE_PER_ACCESS * n)):
            return _remap_direct(keys, lo, span)
    if method == "auto" and n <= SMALL_REMAP:
        return _remap_sorted(keys)
    return _remap_hash(keys)


SMALL_REMAP = 1 << 18  # 'auto' numbers up to this many keys by sorting: no kernel to load


def _remap_sorted(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dense_remap by numpy's sort: the distinct keys ordered by their first access."""
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(order.shape[0], dtype=np.int32)
    rank[order] = np.arange(order.shape[0], dtype=np.int32)
    return rank[inverse.reshape(-1)], uniq[order]


def _remap_direct(keys: np.ndarray, lo: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    n = keys.shape[0]
    out = np.empty(n, dtype=np.int32)
    first = np.zeros(span, dtype=np.int32)
    distinct = np.empty(min(n, span), dtype=np.int64)
    n_distinct = _dense_remap_direct(keys, np.int64(lo), first, out, distinct)
    return out, distinct[:n_distinct].copy()


def _remap_hash(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keymap = KeyMap(growth=4, most=keys.shape[0], direct=False)
    out = keymap.add(keys)
    return out, keymap.distinct_keys.copy()


@numba.njit(cache=True, nogil=True)
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


DIRECT_KEYMAP_MAX = 1 << 26  # a KeyMap indexes keys directly while all are in [0, this)


class KeyMap:
    """Keys -> dense ids (int32) in order of first access, growing as keys arrive.

    While every key is in [0, DIRECT_KEYMAP_MAX) (row ids, as embedding traces have), a
    direct-address table (`first[key]` = 1 + id; 256 MiB at most, and the OS maps only the
    pages touched) numbers them, about 2x faster than hashing; the first key outside that range
    moves the keys seen so far into an open-addressing table of [key, id] slots that grows
    `growth`x whenever half full. A streamed replay keeps one for the whole file (growth 2:
    32-64 bytes of slots a key); `dense_remap` numbers one array with growth 4 (fewer rehashes),
    `most` = its length (no more distinct keys than accesses) and `direct=False` (it has chosen
    hashing for its key range)."""

    def __init__(self, growth: int = 2, most: int | None = None, direct: bool = True):
        self._growth, self._most = growth, most
        self._first = np.zeros(0, dtype=np.int32) if direct else None
        self._cap = 1 << 12  # slots
        self._slots = None if direct else np.full(2 * self._cap, -1, dtype=np.int64)
        self._distinct = np.empty(1 << 12 if direct else self._room(), dtype=np.int64)
        self.n = 0

    def _add_direct(self, keys: np.ndarray, out: np.ndarray) -> bool:
        """Dense ids into `out` through the direct table; False (then hashing) when a key is
        outside it."""
        if keys.shape[0] == 0:
            return True
        lo, hi = (int(x) for x in _key_range(keys))
        if lo < 0 or hi >= DIRECT_KEYMAP_MAX:
            self._to_hash()
            return False
        if hi >= self._first.shape[0]:
            grown = np.zeros(1 << max(12, hi.bit_length()), dtype=np.int32)
            grown[:self._first.shape[0]] = self._first
            self._first = grown
        if self.n + keys.shape[0] > self._distinct.shape[0]:
            room = max(2 * self._distinct.shape[0], self.n + keys.shape[0])
            grown = np.empty(min(room, DIRECT_KEYMAP_MAX), dtype=np.int64)
            grown[:self.n] = self._distinct[:self.n]
            self._distinct = grown
        self.n = int(_dense_remap_direct(keys, np.int64(0), self._first, out, self._distinct,
                                         self.n))
        return True

    def _to_hash(self) -> None:
        """From the direct table to hashing, keeping every id."""
        self._first = None
        while self._cap // 4 < max(self.n, 1):  # the hash kernel stops at half full
            self._cap *= 2
        self._slots = np.full(2 * self._cap, -1, dtype=np.int64)
        _dense_rehash(self._distinct[:self.n], self._slots)
        grown = np.empty(max(self._room(), self.n), dtype=np.int64)
        grown[:self.n] = self._distinct[:self.n]
        self._distinct = grown

    def _room(self) -> int:
        half = self._cap // 2
        return half if self._most is None else min(self._most, half)

    def _grow(self) -> None:
        self._cap *= self._growth
        self._slots = np.full(2 * self._cap, -1, dtype=np.int64)
        _dense_rehash(self._distinct[:self.n], self._slots)
        grown = np.empty(self._room(), dtype=np.int64)
        grown[:self.n] = self._distinct[:self.n]
        self._distinct = grown

    def add(self, keys: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Dense ids of `keys` (int64, strided views too), numbering the new ones; into `out`
        (int32, as long as keys) when given."""
        if keys.dtype != np.int64 or keys.ndim != 1:
            keys = np.ascontiguousarray(keys, dtype=np.int64).reshape(-1)
        if out is None:
            out = np.empty(keys.shape[0], dtype=np.int32)
        if self._first is not None and self._add_direct(keys, out):
            return out
        i = 0
        while True:
            i, self.n = _dense_remap(keys, out, i, self._slots, self._distinct, self.n)
            if i == keys.shape[0]:
                return out
            self._grow()

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Dense ids of `keys`, which must all have been added."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        if self._first is not None:
            inside = keys.shape[0] == 0 or (int(keys.min()) >= 0 and
                                            int(keys.max()) < self._first.shape[0])
            out = (self._first[keys] - 1).astype(np.int32) if inside else None
            if out is not None and (out.shape[0] == 0 or int(out.min()) >= 0):
                return out
            raise CachesimError("a key of the trace was not in its first pass: the file "
                                "changed while it was read; replay it again once it is "
                                "complete")
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
        table = self._first if self._first is not None else self._slots
        return int(table.nbytes + self._distinct.nbytes)


@numba.njit(cache=True)
def _next_access(ids, n_ids, out):
    last = np.full(n_ids, -1, dtype=np.int64)
    for i in range(ids.shape[0] - 1, -1, -1):
        k = ids[i]
        out[i] = last[k]
        last[k] = i


def next_access(dense_ids: np.ndarray, n_distinct: int) -> np.ndarray:
    """Index of the next access to the same id, -1 if none."""
    out = np.empty(dense_ids.shape[0], dtype=np.int64)
    _next_access(dense_ids, n_distinct, out)
    return out
