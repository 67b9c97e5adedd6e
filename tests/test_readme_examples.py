"""Every fenced `sh` and `python` block of README.md runs as written, on the shipped data.

Each block runs in a fresh temporary folder holding copies of the files the README names (the
one mapping below, FILES); `sh` blocks run with bash `set -e` (comment lines, such as the
output a block shows, are skipped by bash) and the venv's `cachesim` first on PATH, `python`
blocks with the venv's python. A block that cannot run here is marked in the
README with `<!-- not run: REASON -->` on the line before its fence, and NOT_RUN lists exactly
those blocks (by their first command), so a block is never skipped silently.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DATA = ROOT / "tests" / "data"
SAMPLE = ROOT / "cachesim" / "data" / "criteo_kaggle_head10k.parquet"

# The file names the README's examples use, and the shipped file each one is (README.md says so
# near the top). A name is copied into a block's folder only when the block mentions it.
FILES = {
    "trace.parquet": SAMPLE,                                    # the demo trace (batches of 128)
    "kaggle.parquet": SAMPLE,
    "kaggle_train_head10k.tsv": DATA / "criteo" / "kaggle_train_head10k.tsv",
    "day_0.txt": DATA / "criteo" / "kaggle_train_head10k.tsv",  # a Criteo TSV named like Terabyte's
    "cloudPhysicsIO.oracleGeneral.bin": DATA / "cloudphysics" / "cloudPhysicsIO.oracleGeneral.bin",
    "cloudPhysicsIO.txt": DATA / "cloudphysics" / "cloudPhysicsIO.txt",
    "trace.txt": DATA / "cloudphysics" / "cloudPhysicsIO.txt",   # one integer key a line
    "keys.txt": DATA / "cloudphysics" / "cloudPhysicsIO.txt",
    "examples": ROOT / "examples",                              # for PYTHONPATH=examples
    "batches": "fbgemm-npz",                                    # made by _fbgemm_batches below
}

# The blocks marked `<!-- not run: ... -->` in README.md, by their first command line.
NOT_RUN = {
    "make demo",                        # the make targets: this test is part of `make test`
    "import json, torch",               # needs torchrec
}


def _blocks():
    """(line, language, code, not_run_reason) of every fenced sh/python block, in order."""
    text = README.read_text()
    out = []
    for m in re.finditer(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", text, re.M | re.S):
        lang = m.group(1)
        if lang not in ("sh", "python"):
            continue
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = re.fullmatch(r"<!-- not run: (.+?) -->", before.strip())
        out.append((line, lang, m.group(2), marker.group(1) if marker else None))
    return out


def _first_command(code: str) -> str:
    for line in code.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.split("  #")[0].strip()
    return ""


BLOCKS = _blocks()
RUN = [b for b in BLOCKS if b[3] is None]


def _fbgemm_batches(folder: Path, tables: int = 856, batch_size: int = 4, n: int = 3):
    """A folder of FBGEMM TBE batches (indices, offsets; T from --tables), seeded."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for b in range(n):
        lengths = rng.integers(0, 3, size=tables * batch_size)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        indices = rng.integers(0, 1000, size=int(offsets[-1])).astype(np.int64)
        np.savez(folder / f"b{b}.npz", indices=indices, offsets=offsets)


def _prepare(code: str, work: Path):
    for name, src in FILES.items():
        if not re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", code):
            continue
        if re.search(rf"cachesim (convert \S+|generate) {re.escape(name)}(?![\w.])", code) or \
                re.search(rf"write_trace\(\w+, \"{re.escape(name)}\"", code):
            continue  # the block writes it: a copy there would be the user's, never replaced
        if src == "fbgemm-npz":
            _fbgemm_batches(work / name)
        elif Path(src).is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(src, work / name)  # a copy: an example may overwrite it


def test_not_run_blocks_are_exactly_the_marked_ones():
    marked = {_first_command(code): reason for _, _, code, reason in BLOCKS if reason}
    assert set(marked) == NOT_RUN, (
        "README.md blocks marked `<!-- not run: ... -->` differ from NOT_RUN: "
        f"marked {sorted(marked)}, expected {sorted(NOT_RUN)}")
    assert len(RUN) >= 20, f"only {len(RUN)} README blocks found to run"


def test_readme_says_which_files_the_examples_use():
    head = README.read_text().split("\n## ", 2)
    intro = head[0] + head[1]  # the top and the first section
    for name in ("trace.parquet", "kaggle_train_head10k.tsv", "tests/test_readme_examples.py"):
        assert name in intro, f"README.md's opening does not name {name!r}"


@pytest.mark.parametrize("line,lang,code,_", RUN,
                         ids=[f"L{b[0]}-{b[1]}-{_first_command(b[2])[:40]}" for b in RUN])
def test_readme_block_runs(line, lang, code, _, tmp_path):
    _prepare(code, tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("PYTHONPATH", None)
    if lang == "sh":
        cmd = ["bash", "-e", "-x", "-o", "pipefail", "-c", code]  # -x: stderr shows each command
    else:
        (tmp_path / "block.py").write_text(code)
        cmd = [sys.executable, "block.py"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, (
        f"README.md line {line} ({lang} block) failed with status {proc.returncode}:\n{code}\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
