"""cachesim: cache-policy simulation and trace analysis for embedding tables.

    >>> import cachesim
    >>> trace = cachesim.read_trace("trace.parquet")
    >>> cachesim.replay(trace, "lru", "5%").hit_ratio
"""
from .errors import CachesimError
from .traces import Trace, read_trace
from .policies import Policy, PythonPolicy, get_policy, policy_names, register as register_policy
from .engine import Result, replay
from .sizes import parse_size

__version__ = "0.1.0"

__all__ = ["Trace", "read_trace", "replay", "Result", "Policy", "PythonPolicy",
           "register_policy", "get_policy", "policy_names", "parse_size", "CachesimError",
           "__version__"]
