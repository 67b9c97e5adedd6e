"""`make demo`: replay the shipped Criteo sample through several policies and sizes."""
from __future__ import annotations

from importlib import resources

from .cli import main


def demo_trace_path() -> str:
    return str(resources.files("cachesim") / "data" / "criteo_kaggle_head10k.parquet")


if __name__ == "__main__":
    path = demo_trace_path()
    print(f"Replaying {path} (Criteo Kaggle, first 10,000 lines: 26 tables, 260,000 lookups)")
    main(["replay", path, "--policy", "lru,lfu,fifo,opt", "--size", "1%,5%,10%,25%", "--quiet"])
