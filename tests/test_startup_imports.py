"""A user pays for what a command uses: which heavy modules each command imports (issue 10).

Each command runs in a fresh interpreter (`cachesim.cli.main` in `python -c`, from a folder
outside the repository so the installed package is the one tested), which then prints the
modules it imported. No timing here: bench/startup.py measures the seconds.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data" / "cloudphysics"
HEAVY = {"numpy", "numba", "llvmlite", "polars", "pyarrow", "matplotlib", "tqdm", "scipy",
         "pandas", "cupy", "torch", "dask", "jinja2"}
COMMANDS = ["replay", "convert", "memory", "sweep", "analyze", "generate", "mrc", "allocate",
            "train", "report"]

PROBE = """
import json, sys
from cachesim.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as end:
    code = end.code or 0
print("\\nIMPORTED " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def imported(tmp_path, *args: str) -> set[str]:
    """The modules a fresh `cachesim ARGS` process has imported when it ends (it must succeed;
    a replay must print its table)."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("IMPORTED ")]
    assert line, f"cachesim {' '.join(args)} printed no module list:\n{proc.stdout}{proc.stderr}"
    end = json.loads(line[-1][len("IMPORTED "):])
    assert end["code"] == 0, f"cachesim {' '.join(args)} failed:\n{proc.stderr}"
    if args and args[0] == "replay" and "--help" not in args:
        assert "hit_ratio" in proc.stdout, proc.stdout
    return set(end["modules"])


def heavy(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules} & HEAVY


@pytest.mark.parametrize("args", [["--version"], ["--help"], []])
def test_version_and_help_import_nothing_heavy(tmp_path, args):
    modules = imported(tmp_path, *args)
    assert "cachesim.cli" in modules  # the probe did run the CLI
    assert heavy(modules) == set()
    assert not any(m.startswith(("cachesim.policies", "cachesim.io", "cachesim.trace"))
                   for m in modules)


def test_every_command_help_imports_nothing_heavy(tmp_path):
    from cachesim.cli import cli
    assert sorted(cli.commands) == sorted(COMMANDS)  # a new command: add it above
    for name in COMMANDS:
        modules = imported(tmp_path, name, "--help")
        assert heavy(modules) == set(), name


@pytest.mark.parametrize("trace", ["cloudPhysicsIO.oracleGeneral.bin", "cloudPhysicsIO.txt"])
def test_access_replay_imports_no_polars_nor_the_fbgemm_model(tmp_path, trace):
    modules = imported(tmp_path, "replay", str(DATA / trace), "--mode", "access", "-p", "lru",
                       "-s", "1000")
    assert "cachesim.simulate.access" in modules and "numba" in modules  # it did replay
    assert heavy(modules) == {"numpy", "numba", "llvmlite"}
    assert "cachesim.simulate.fbgemm" not in modules
    assert "cachesim.simulate.batch" not in modules


def test_polars_is_imported_when_a_reader_needs_it(tmp_path):
    """The lazy polars of the csv/criteo readers still works (and is really imported)."""
    modules = imported(tmp_path, "replay", str(DATA.parent / "criteo" / "kaggle_train_head10k.tsv"),
                       "--mode", "access", "-p", "lru", "-s", "1000")
    assert "polars" in modules
