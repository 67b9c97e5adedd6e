"""`make demo`: replay the shipped Criteo sample through several policies and sizes, then write a
sizing report for it."""
from __future__ import annotations

import shlex
import sys
from importlib import resources

from .cli import cli


def demo_trace_path() -> str:
    return str(resources.files("cachesim") / "data" / "criteo_kaggle_head10k.parquet")


def _run(args: list[str]) -> None:
    print(f"\n$ {shlex.join(['cachesim', *args])}", flush=True)
    cli.main(args=args, prog_name="cachesim", standalone_mode=False)


def main(out_dir: str = "out/demo-report") -> None:
    path = demo_trace_path()
    print(f"Trace: {path}\n  Criteo Kaggle (2014), first 10,000 lines: 26 tables, 260,000 lookups, "
          "batches of 128 samples")
    sizes = "1%,5%,10%,25%"
    _run(["replay", path, "--mode", "access", "--policy", "lru,lfu,fifo,opt", "--size", sizes,
          "--quiet"])
    _run(["replay", path, "--mode", "access", "--policy", "lru", "--ways", "32", "--size", sizes,
          "--quiet"])
    _run(["replay", path, "--mode", "batch", "--policy", "lru,lfu", "--ways", "32", "--size",
          sizes, "--quiet"])
    _run(["report", path, "-o", out_dir, "--target-hit-ratio", "0.5", "--train", "--quiet"])
    print(f"\nThe sizing report is in {out_dir}/report.html (and report.md beside it).")


if __name__ == "__main__":
    main(*sys.argv[1:])
