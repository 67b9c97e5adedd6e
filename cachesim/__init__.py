"""cachesim: cache-policy simulation and trace analysis for embedding tables.

    >>> import cachesim
    >>> trace = cachesim.read_trace("trace.parquet")
    >>> cachesim.replay(trace, "lru", "5%").hit_ratio   # a cachesim.Result, 32 ways

`replay` returns one `Result` type in both modes (access, batch); caches are 32-way
set-associative by default, as FBGEMM's, and `ways=None` is fully associative.
"""
from .errors import CachesimError
from .traces import Trace, read_trace
from .policies import Policy, PythonPolicy, get_policy, policy_names, register as register_policy
from .result import DEFAULT_WAYS, Result
from .engine import replay
from .batch import BatchCache, BatchResult, replay_batch
from .cost import costs_for, memory_cost
from .sweep import run_sweep
from .sizes import parse_size
from .traces.analysis import analyze
from .traces.generate import criteo_like, fit_profile, generate, generate_like
from .traces.mrc import lru_bytes_curve, lru_curve, mrc, stack_distances, torchrec_stats
from .allocate import allocate
from .executor import train

__version__ = "0.1.0"

__all__ = ["Trace", "read_trace", "replay", "Result", "Policy", "PythonPolicy",
           "register_policy", "get_policy", "policy_names", "parse_size", "CachesimError",
           "replay_batch", "BatchResult", "BatchCache", "DEFAULT_WAYS",
           "costs_for", "memory_cost", "run_sweep",
           "analyze", "generate", "criteo_like", "fit_profile", "generate_like",
           "mrc", "stack_distances", "lru_curve", "lru_bytes_curve", "torchrec_stats", "allocate",
           "train",
           "__version__"]
