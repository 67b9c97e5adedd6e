"""Eviction policies: one module each, all behind one registry with aliases.

`get_policy(name)` finds one; `register(Policy(...))` adds one (see `base.py` for the kernel
signature and README.md for a worked example).
"""
from .base import (EVICTIONS, HITS, MISS_BYTES, MISSES, N_COUNTERS, Policy, PythonPolicy, Setup,
                   all_policies, attach_ways, get_policy, policy_names, register)
from .base import BatchRule, batch_policy_names
from .base import loop_state, max_residents, request_loop

# Importing a policy module registers it.
from . import lru  # noqa: F401,E402
from . import fifo, lfu, clock, random_policy, opt  # noqa: F401,E402
from . import sieve, arc, s3fifo  # noqa: F401,E402
from . import setassoc  # noqa: F401,E402  (last: attaches --ways to lru, lfu, fifo)
# get_policy also finds policies that installed packages declare as entry points
from .plugins import get_policy, load_entry_points  # noqa: F811,E402

__all__ = ["Policy", "PythonPolicy", "Setup", "register", "attach_ways", "get_policy",
           "policy_names", "all_policies", "HITS", "MISSES", "MISS_BYTES", "EVICTIONS",
           "N_COUNTERS", "BatchRule", "batch_policy_names", "request_loop", "loop_state",
           "max_residents"]
