"""The executor: real INT8/INT4 training of DLRM behind an FP32 embedding cache.

One code path over an array module `xp`: CuPy on a GPU, NumPy otherwise (`xp.get_xp`). CuPy is
imported only when a GPU is asked for or probed, never at import.

    >>> from cachesim.executor import train
    >>> records = train(trace, precision=["int8"], size=["5%"], policy=["lru"], ways=32)
"""
from .train import auc_score, train
from .xp import get_xp

__all__ = ["train", "get_xp", "auc_score"]
