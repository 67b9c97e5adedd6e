"""Traces: the in-memory model, formats (read, write, convert), generators and analysis."""
from .model import Trace, dense_remap, next_access
from .formats import Format, format_names, get_format, infer_format, read_trace, register_format
from . import libcachesim_io  # noqa: F401  (registers oracle-general and txt)

__all__ = ["Trace", "read_trace", "register_format", "format_names", "get_format", "Format",
           "infer_format", "dense_remap", "next_access"]
