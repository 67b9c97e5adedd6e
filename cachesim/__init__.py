"""cachesim: cache-policy simulation and trace analysis for embedding tables.

    >>> import cachesim
    >>> trace = cachesim.read_trace("trace.parquet")
    >>> cachesim.replay(trace, "lru", "5%").hit_ratio   # a cachesim.Result, 32 ways

`replay` returns one `Result` type in both modes (access, batch); caches are 32-way
set-associative by default, as FBGEMM's, and `ways=None` is fully associative.

The names below are imported on first use (PEP 562), so `import cachesim` and
`cachesim --version` do not pay for numba, polars or the kernels.
"""
from __future__ import annotations

import importlib

from .errors import CachesimError
from .version import __version__

# public name -> module that defines it
_LAZY = {
    "Trace": "cachesim.trace",
    "read_trace": "cachesim.io", "write_trace": "cachesim.io",
    "Policy": "cachesim.policies", "PythonPolicy": "cachesim.policies",
    "get_policy": "cachesim.policies", "policy_names": "cachesim.policies",
    "DEFAULT_WAYS": "cachesim.simulate.result", "Result": "cachesim.simulate.result",
    "replay": "cachesim.simulate.access",
    "BatchCache": "cachesim.simulate.batch", "BatchResult": "cachesim.simulate.batch",
    "replay_batch": "cachesim.simulate.batch",
    "costs_for": "cachesim.costs", "memory_cost": "cachesim.costs",
    "run_sweep": "cachesim.sweep",
    "parse_size": "cachesim.sizes",
    "analyze": "cachesim.analysis.profile",
    "criteo_like": "cachesim.synth.generate", "fit_profile": "cachesim.synth.fit",
    "generate": "cachesim.synth.generate", "generate_like": "cachesim.synth.fit",
    "lru_bytes_curve": "cachesim.analysis.stack", "lru_curve": "cachesim.analysis.stack",
    "mrc": "cachesim.analysis.mrc", "stack_distances": "cachesim.analysis.stack",
    "torchrec_stats": "cachesim.analysis.torchrec",
    "allocate": "cachesim.analysis.allocate",
    "train": "cachesim.executor.train",
}
_RENAMED = {"register_policy": ("cachesim.policies", "register")}

__all__ = sorted([*_LAZY, *_RENAMED, "CachesimError", "__version__"])


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _RENAMED:
        module, attr = _RENAMED[name]
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'cachesim' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
