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

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import CachesimError

HITS, MISSES, MISS_BYTES, EVICTIONS = 0, 1, 2, 3
N_COUNTERS = 4


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
    params: dict = field(default_factory=dict)

    @property
    def is_python(self) -> bool:
        return self.python_class is not None


_REGISTRY: dict[str, Policy] = {}
_ALIASES: dict[str, str] = {}


def register(policy: Policy, *, replace: bool = False) -> Policy:
    """Add a policy under its name and aliases; the CLI, sweeps and reports see it."""
    if (policy.kernel is None) == (policy.python_class is None):
        raise ValueError(f"policy {policy.name!r} needs exactly one of kernel or python_class")
    if policy.kernel is not None and policy.init is None:
        raise ValueError(f"policy {policy.name!r}: a kernel needs an init(setup) state builder")
    name = policy.name.lower()
    if name in _REGISTRY and not replace:
        raise ValueError(f"policy {name!r} is already registered (pass replace=True)")
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
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise CachesimError(f"unknown policy {name!r}; known policies: {', '.join(policy_names())}"
                            " (a new one is one module and a register() call: see README.md)")
    return _REGISTRY[key]


def policy_names() -> list[str]:
    return sorted(_REGISTRY)


def all_policies() -> dict[str, Policy]:
    return dict(_REGISTRY)
