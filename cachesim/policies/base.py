"""The policy interface, the counters every kernel fills, and the registry.

A policy is one module that builds a `Policy` and calls `register`. Its numba kernel has one
signature for every policy:

    kernel(keys, sizes, nxt, key_table, unit, capacity, t0, state, counters) -> None

- `keys`: int32 dense ids of one chunk of the trace, in order;
- `sizes`: int64 object sizes in bytes, one per access, or an empty array when the trace has none;
- `nxt`: int64 index of the next access to the same key (global, -1 if none), or an empty array
  unless the policy sets `needs_next`;
- `key_table`: int32 table of each dense id, to count per table;
- `unit`: True when `capacity` counts rows (every object takes 1), False when it counts bytes;
- `capacity`: int64 rows or bytes;
- `t0`: global index of `keys[0]`, so a kernel that keeps times can resume across chunks;
- `state`: the tuple of arrays that `init(setup)` built; the kernel reads and writes it, so a
  replay can stop after one chunk and resume with the next;
- `counters`: int64 array [n_tables, N_COUNTERS], added to (never reset) by the kernel.

Byte-capacity rules (libCacheSim's): every access to a non-resident object is a miss; an object
larger than the cache is not inserted; on a miss, evict until used + size <= capacity, then
insert; a hit does not update the stored size.

A slow prototype can instead be a plain Python class (see `PythonPolicy`).
"""
from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

from ..errors import CachesimError
from ..numba_util import borrow

HITS, MISSES, MISS_BYTES, EVICTIONS = 0, 1, 2, 3
N_COUNTERS = 4
# batch mode's counters per table, FBGEMM's uvm_cache_stats (columns of batch.BatchCache.counters;
# `misses`: the batch's accesses whose key was not cached when the batch began)
BATCH_COUNTER_NAMES = ("requested_indices", "unique_indices", "unique_misses",
                       "conflict_unique_misses", "conflict_misses", "evictions", "misses")
(REQUESTED, UNIQUE, UNIQUE_MISSES, CONFLICT_UNIQUE_MISSES, CONFLICT_MISSES, BATCH_EVICTIONS,
 BATCH_MISSES) = range(len(BATCH_COUNTER_NAMES))
PREFETCH_AHEAD = 16  # the request loop hints the state of the key this many accesses ahead


def max_residents(setup: Setup) -> int:
    """Most keys a cache can hold at once: rows in unit mode; in bytes, sizes may be 0."""
    return max(1, min(setup.n_keys, setup.capacity) if setup.unit else setup.n_keys)


# The one request loop (libCacheSim's cache_get_base; tests/naive.py's _replay_with_victim).
# `request_loop` writes it into the policy module, with the policy's pieces as globals, so that
# numba compiles it per policy, inlines the pieces and caches it (cache=True cannot cache a
# closure: its free variables are pickled into the cache key anew in every process).
_LOOP = """
def {fn}(keys, sizes, nxt_access, key_table, unit, capacity, t0, state, counters):
    st, stored, meta = {fn}_borrow(state)  # no reference counts in the loop (numba_util.borrow)
    used = meta[0]
    has_sizes = sizes.shape[0] > 0
    has_next = nxt_access.shape[0] > 0
    single = counters.shape[0] == 1
    hits = misses = miss_bytes = evictions = 0
    n = keys.shape[0]
    for i in range(n):
        if i + {ahead_n} < n:
            {fn}_ahead(st, keys[i + {ahead_n}])
        k = keys[i]
        now = t0 + i
        nx = nxt_access[i] if has_next else -1
        if {fn}_hit(st, k, now, nx):
            if single:
                hits += 1
            else:
                counters[key_table[k], {HITS}] += 1
            continue
        s = sizes[i] if has_sizes else 1
        if single:
            misses += 1
            miss_bytes += s
        else:
            t = key_table[k]
            counters[t, {MISSES}] += 1
            if has_sizes:
                counters[t, {MISS_BYTES}] += s
        need = 1 if unit else s
        admit = {fn}_miss(st, k, need)
        if admit == 0 or need > capacity:  # an object larger than the cache is not inserted
            continue
        while used + need > capacity:
            v = {fn}_evict(st, now)
            if v < 0:  # nothing left that frees room (only objects of size 0)
                break
            used -= 1 if unit else stored[v]
            if single:
                evictions += 1
            else:
                counters[key_table[v], {EVICTIONS}] += 1
        if admit == 2:  # room made, but the object is not inserted
            continue
        if not unit:
            stored[k] = s
        {fn}_insert(st, k, now, nx)
        used += need
    if single:
        counters[0, {HITS}] += hits
        counters[0, {MISSES}] += misses
        counters[0, {EVICTIONS}] += evictions
        if has_sizes:  # without sizes MISS_BYTES stays 0: the engine prices misses by row
            counters[0, {MISS_BYTES}] += miss_bytes
    meta[0] = used
"""


@numba.njit(cache=True, inline="always")
def _no_ahead(st, k):
    pass


@numba.njit(cache=True, inline="always")
def _admit_all(st, k, need):
    return 1


def request_loop(namespace: dict, *, hit, insert, evict, ahead=None, miss=None,
                 name: str = "replay"):
    """The request loop of one access-mode policy, as a numba kernel with the engine's signature
    (see this module's doc); its state is `loop_state(setup, policy_state)`.

    Pieces (numba functions, best `inline="always"`; `st` is the policy's tuple of arrays):
    `hit(st, k, now, nx) -> bool` is True when dense id k is resident, after updating the state
    for the hit; `evict(st, now) -> v` removes a victim from the state and returns it;
    `insert(st, k, now, nx)` makes k resident (room is made first); `ahead(st, k)` may prefetch
    k's state. `now` is the access's global index, `nx` its next access (-1: none, or not
    `needs_next`). The loop counts, keeps `used` and the stored sizes, and applies the capacity
    rules. Policies with ghosts also give `miss(st, k, need) -> 0 | 1 | 2`, called on every miss
    before the capacity rule (0: do not insert; 1: make room and insert; 2: make room only), and
    may return -1 from `evict` when nothing is left that frees room (the loop then inserts);
    the loop sets the stored size of k before `insert`, so a policy that shares the stored sizes
    (`loop_state(..., stored=)`) reads it there. `namespace` is the calling module's `globals()`: the loop is compiled there (cached
    beside the module)."""
    fn = f"_{name}_loop_{hashlib.sha1(_LOOP.encode()).hexdigest()[:8]}"
    namespace.update({f"{fn}_borrow": borrow, f"{fn}_hit": hit, f"{fn}_insert": insert, f"{fn}_evict": evict,
                      f"{fn}_ahead": ahead or _no_ahead, f"{fn}_miss": miss or _admit_all})
    src = _LOOP.format(fn=fn, ahead_n=PREFETCH_AHEAD, HITS=HITS, MISSES=MISSES,
                       MISS_BYTES=MISS_BYTES, EVICTIONS=EVICTIONS)
    path = namespace.get("__file__")  # numba caches a function beside its source file
    cache = bool(path) and os.path.isfile(path)
    exec(compile(src, path if cache else f"<{fn}>", "exec"), namespace)  # noqa: S102
    return numba.njit(cache=cache, nogil=True)(namespace[fn])  # nogil: set parts run on threads


def loop_state(setup: Setup, policy_state: tuple, stored: np.ndarray | None = None) -> tuple:
    """The state a `request_loop` kernel takes: the policy's arrays, the stored size of each
    key (byte mode only; `stored_sizes(setup)`, when the policy shares it) and [used]."""
    if stored is None:
        stored = stored_sizes(setup)
    return (policy_state, stored, np.zeros(1, dtype=np.int64))


def stored_sizes(setup: Setup) -> np.ndarray:
    """The stored size of each dense id (int64), empty when the capacity counts rows."""
    return np.zeros(0 if setup.unit else setup.n_keys, dtype=np.int64)


@dataclass(frozen=True)
class Setup:
    """What `init` needs to size a policy's state for one replay."""

    n_keys: int            # distinct keys in the trace (dense ids 0..n_keys-1)
    capacity: int          # rows (unit) or bytes
    unit: bool             # True: capacity counts rows
    n_tables: int = 1
    ways: int | None = None
    n_sets: int = 1        # ceil(capacity / ways) when set-associative
    set_of: np.ndarray | None = None  # set of each dense id (int64), when set-associative
    seed: int = 0


class PythonPolicy:
    """Base of a plain-Python policy (slow prototypes; the engine loops in Python).

    Subclasses implement `access(key, size) -> bool` (True on a hit) and call
    `self.evicted(key)` for each eviction. `key` is a dense id; `size` is 1 in unit mode.
    """

    def __init__(self, capacity: int, unit: bool = True, seed: int = 0):
        self.capacity = capacity
        self.unit = unit
        self.seed = seed
        self.evictions: list[int] = []

    def evicted(self, key: int) -> None:
        self.evictions.append(key)

    def access(self, key: int, size: int) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


BATCH_ORDERS = ("stamp", "count")
BATCH_ADMISSIONS = ("always", "count-at-least")


@dataclass(frozen=True)
class BatchRule:
    """How a policy runs in batch mode (README, "Embedding-cache semantics"): data the batch
    kernel reads, not a callback per access.

    - `order`: which of a set's takeable lines a miss takes first. 'stamp': the oldest stamp
      (the batch that filled the line, and, with `stamp_on_hit`, of each hit), ties lowest way;
      the set's misses are served in ascending key. 'count': every access of every batch adds 1
      to its row's count (cached or not); the lowest count of the line's key first, ties oldest
      stamp, then lowest way; the misses are served in descending count, ties ascending key.
    - `stamp_on_hit`: a hit restamps its line (LRU); False keeps the fill stamp (FIFO; LFU's
      ties).
    - `admission`: 'always', or 'count-at-least' (order 'count' only): a miss takes a valid line
      only if its count is at least the count of the line's key; the first refusal leaves every
      later miss of the set uncached for that batch.
    """

    order: str = "stamp"
    stamp_on_hit: bool = True
    admission: str = "always"

    def __post_init__(self):
        if self.order not in BATCH_ORDERS:
            raise ValueError(f"BatchRule order {self.order!r}: use one of {BATCH_ORDERS}")
        if self.admission not in BATCH_ADMISSIONS:
            raise ValueError(f"BatchRule admission {self.admission!r}: use one of "
                             f"{BATCH_ADMISSIONS}")
        if self.admission == "count-at-least" and self.order != "count":
            raise ValueError("BatchRule admission 'count-at-least' needs order 'count' (misses "
                             "are then served in descending count, so a refusal ends the set)")


@dataclass(frozen=True)
class Policy:
    """A registered policy: a numba kernel with its state builder, or a Python class."""

    name: str
    kernel: Callable | None = None
    init: Callable[[Setup], tuple] | None = None
    python_class: type | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    needs_next: bool = False
    supports_bytes: bool = True
    set_associative: "Policy | None" = None  # the variant used when --ways is given
    batch_rule: BatchRule | None = None  # None: no batch mode (access replay only)
    # device bytes of the policy's own state for a cache of `lines` lines over tables of
    # `total_rows` rows (the cost model adds the tags); None: not modelled, 0
    policy_state_bytes: Callable[[int, int], int] | None = None
    # the victim rule of its W-way variant (policies/setassoc.py RULES: 'lru' last use, 'fifo'
    # fill, 'lfu' count); `register` then attaches the variant. None: no set-associative mode
    set_rule: str | None = None

    @property
    def is_python(self) -> bool:
        return self.python_class is not None


_REGISTRY: dict[str, Policy] = {}
_ALIASES: dict[str, str] = {}
# builds the W-way variant of a policy that declares a set_rule (setassoc.py installs it)
_set_variant: Callable[[Policy], Policy] | None = None
# The built-in policies are this folder's modules other than these (a policy `name` lives in
# `name.py`, or `name_policy.py` where the name would shadow a standard module). A module is
# imported, and so registered, when its policy is first asked for, so a command pays only for
# the policies it runs; listing the policies, or a name that is not a module's (an alias),
# imports them all. Listing order: LISTED first, then any other built-in by name.
_NOT_POLICIES = {"base", "flags", "plugins", "setassoc"}
LISTED = ("lru", "fifo", "lfu", "clock", "random", "opt", "sieve", "arc", "s3fifo")


def _builtin_modules() -> dict[str, str]:
    import pkgutil
    found = {}
    for m in pkgutil.iter_modules([os.path.dirname(__file__)]):
        if m.name not in _NOT_POLICIES and not m.name.startswith("_"):
            found[m.name.removesuffix("_policy")] = m.name
    return {**{n: found[n] for n in LISTED if n in found},
            **{n: found[n] for n in sorted(found) if n not in LISTED}}


BUILTIN = _builtin_modules()  # policy name -> module


_importing: set[str] = set()  # the built-ins whose module is being imported now


def install_set_variant(build: Callable[[Policy], Policy]) -> None:
    """Have `register` give each policy that declares a set_rule its W-way variant (setassoc)."""
    global _set_variant
    _set_variant = build


def _load_builtin(name: str) -> None:
    if name not in _REGISTRY and name not in _importing:
        _importing.add(name)
        try:
            importlib.import_module(f"{__package__}.setassoc")  # first: it attaches --ways
            importlib.import_module(f"{__package__}.{BUILTIN[name]}")
        finally:
            _importing.discard(name)


def load_builtins() -> None:
    """Import every built-in policy module (each registers its policy)."""
    for name in BUILTIN:
        _load_builtin(name)


def register(policy: Policy, *, replace: bool = False) -> Policy:
    """Add a policy under its name and aliases; the CLI, sweeps and reports see it."""
    if (policy.kernel is None) == (policy.python_class is None):
        raise ValueError(f"policy {policy.name!r} needs exactly one of kernel or python_class")
    if policy.kernel is not None and policy.init is None:
        raise ValueError(f"policy {policy.name!r}: a kernel needs an init(setup) state builder")
    name = policy.name.lower()
    if name in BUILTIN and not replace:
        _load_builtin(name)  # a built-in's name: the built-in comes first, so this one is refused
    if name in _REGISTRY and not replace:
        raise ValueError(f"policy {name!r} is already registered (pass replace=True)")
    if policy.set_rule is not None and policy.set_associative is None and _set_variant:
        policy = Policy(**{**policy.__dict__, "set_associative": _set_variant(policy)})
    _REGISTRY[name] = policy
    for alias in policy.aliases:
        _ALIASES[alias.lower()] = name
    return policy


def attach_ways(name: str, variant: Policy) -> None:
    """Give policy `name` its set-associative variant (used when ways is given)."""
    base = _REGISTRY[name]
    _REGISTRY[name] = Policy(**{**base.__dict__, "set_associative": variant})


def get_policy(name: str) -> Policy:
    """The policy registered under `name` or an alias; CachesimError listing the known ones."""
    key = str(name).strip().lower()
    if key in BUILTIN:
        _load_builtin(key)
    elif _ALIASES.get(key, key) not in _REGISTRY:
        load_builtins()  # perhaps an alias of a built-in
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise CachesimError(f"unknown policy {name!r}; known policies: {', '.join(policy_names())}"
                            " (a new one is one module and a register() call: see README.md)")
    return _REGISTRY[key]


def policy_names() -> list[str]:
    load_builtins()
    return sorted(_REGISTRY)


def _listed() -> list[str]:
    """Every policy name: the built-ins in BUILTIN's order, then the others as registered."""
    load_builtins()
    return [*BUILTIN, *(n for n in _REGISTRY if n not in BUILTIN)]


def batch_policy_names() -> list[str]:
    """The policies that declare a batch rule: the built-ins first, then in registration order."""
    return [name for name in _listed() if _REGISTRY[name].batch_rule is not None]


def registered() -> dict[str, Policy]:
    """The policies registered so far (built-ins not yet asked for are not imported)."""
    return dict(_REGISTRY)


def all_policies() -> dict[str, Policy]:
    return {name: _REGISTRY[name] for name in _listed()}
