"""Traces: the in-memory model, formats (read, write, convert), generators and analysis."""
from .model import Trace, dense_remap, next_access
from .formats import Format, format_names, get_format, infer_format, read_trace, register_format
from . import libcachesim_io  # noqa: F401  (registers oracle-general and txt)
from . import criteo, avazu, tabular, fbgemm  # noqa: F401,E402  (register the other formats)
from .tabular import read_parquet_metadata, write_trace  # noqa: E402
from .analysis import analyze  # noqa: E402
from .generate import criteo_like, fit_profile, generate_like  # noqa: E402  (module: .generate)

__all__ = ["Trace", "read_trace", "register_format", "format_names", "get_format", "Format",
           "infer_format", "dense_remap", "next_access", "write_trace", "read_parquet_metadata",
           "analyze", "criteo_like", "fit_profile", "generate_like"]
