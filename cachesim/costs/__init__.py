"""Bytes of an embedding cache: row layouts (`layouts.py`, shared with the executor's row
storage), memory (`memory.py`) and host<->device transfers (`transfers.py`)."""
from .layouts import (RowLayout, cache_row_bytes, check_cache_precision, precision_names,
                      row_bytes, row_layout)
from .memory import (CRITEO_KAGGLE_ROWS, TABLE_PRESETS, MemoryCost, cache_rows_for, format_memory,
                     memory_cost, memory_records, metadata_bytes, parse_dims, parse_rows)
from .transfers import DEFAULT_LINK_GBPS, cache_lines_of, costs_for, result_records, transfer_cost

__all__ = ["RowLayout", "cache_row_bytes", "check_cache_precision", "precision_names",
           "row_bytes", "row_layout", "CRITEO_KAGGLE_ROWS", "TABLE_PRESETS", "MemoryCost",
           "cache_rows_for", "format_memory", "memory_cost", "memory_records", "metadata_bytes",
           "parse_dims", "parse_rows", "DEFAULT_LINK_GBPS", "cache_lines_of", "costs_for",
           "result_records", "transfer_cost"]
