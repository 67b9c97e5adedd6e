"""Eviction policies: one module each, all behind one registry with aliases.

`get_policy(name)` finds one; `register(Policy(...))` adds one (see `base.py` for the kernel
signature and README.md for a worked example).
"""
from .base import (EVICTIONS, HITS, MISS_BYTES, MISSES, N_COUNTERS, Policy, PythonPolicy, Setup,
                   all_policies, attach_ways, get_policy, policy_names, register)
from .base import BatchRule, batch_policy_names
from .base import loop_state, max_residents, request_loop

from .base import BUILTIN, load_builtins, registered

# Importing a policy module registers it; the built-ins (base.BUILTIN) are imported when first
# asked for by name, or all of them when the policies are listed.
# get_policy also finds policies that installed packages declare as entry points
from .plugins import get_policy, load_entry_points  # noqa: F811,E402

__all__ = ["Policy", "PythonPolicy", "Setup", "register", "attach_ways", "get_policy",
           "policy_names", "all_policies", "HITS", "MISSES", "MISS_BYTES", "EVICTIONS",
           "N_COUNTERS", "BatchRule", "batch_policy_names", "request_loop", "loop_state",
           "max_residents", "load_entry_points", "BUILTIN", "load_builtins", "registered"]
