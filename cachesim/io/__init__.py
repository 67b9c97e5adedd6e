"""Trace formats: read, write and convert; the format registry.

Importing this package registers every built-in format (criteo, avazu, oracle-general, txt, csv,
parquet, fbgemm-npz, dlrm-pt).
"""
from ..trace import Trace, dense_remap, next_access
from .formats import Format, format_names, get_format, infer_format, read_trace, register_format
from . import libcachesim, criteo, avazu, tabular, fbgemm  # noqa: F401,E402  (register formats)
from .tabular import read_parquet_metadata, write_trace  # noqa: E402

__all__ = ["Trace", "read_trace", "register_format", "format_names", "get_format", "Format",
           "infer_format", "dense_remap", "next_access", "write_trace", "read_parquet_metadata"]
