"""Import hygiene: the optional heavy dependencies stay out until a command needs them.

Each check runs in a fresh interpreter (`sys.executable -c ...`), so modules imported by other
tests in this process cannot hide or fake an import.
"""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ["cupy", "torch", "dask", "distributed"]
ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON object as its last line."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _who_imports(module: str, imports: str) -> str:
    """For a failure message: the innermost cachesim module on the stack when `module` loads."""
    code = f"""
        import builtins, json, sys, traceback
        real_import = builtins.__import__
        culprit = []
        def spy(name, *args, **kwargs):
            if not culprit and name.split(".")[0] == {module!r}:
                culprit.extend(f"{{f.filename}}:{{f.lineno}}" for f in traceback.extract_stack()
                               if "cachesim" in f.filename)
            return real_import(name, *args, **kwargs)
        builtins.__import__ = spy
        {imports}
        print(json.dumps({{"culprit": culprit[-3:]}}))
    """
    try:
        return " <- ".join(reversed(_run(code)["culprit"])) or "unknown"
    except Exception as err:  # only used to explain a failure
        return f"unknown ({err})"


def test_import_cachesim_pulls_in_no_gpu_or_cluster_library():
    imports = "import cachesim, cachesim.cli, cachesim.executor, cachesim.reports"
    found = _run(f"""
        import json, sys
        {imports}
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
    """)
    assert found == [], (f"`{imports}` imported {found}: import it inside the function that "
                         f"needs it (from: {_who_imports(found[0], imports)})")


def test_top_level_help_imports_no_plotting_or_heavy_library():
    found = _run(f"""
        import json, sys
        from click.testing import CliRunner
        from cachesim.cli import cli
        result = CliRunner().invoke(cli, ["--help"], prog_name="cachesim")
        assert result.exit_code == 0, result.output
        assert "Usage: cachesim" in result.output and "replay" in result.output
        print(json.dumps(sorted(m for m in ["matplotlib"] + {HEAVY!r} if m in sys.modules)))
    """)
    assert found == [], (f"`cachesim --help` imported {found} "
                         f"(from: {_who_imports(found[0], 'import cachesim.cli')})")


def test_every_command_help_imports_no_plotting_library():
    # --help of each command must not run the command's body (where the lazy imports are).
    found = _run("""
        import json, sys
        from click.testing import CliRunner
        from cachesim.cli import cli
        for name in cli.commands:
            result = CliRunner().invoke(cli, [name, "--help"], prog_name="cachesim")
            assert result.exit_code == 0, (name, result.output)
        print(json.dumps(sorted(m for m in ["matplotlib", "cupy", "torch", "dask"]
                                if m in sys.modules)))
    """)
    assert found == []


def test_console_entry_help_runs():
    proc = subprocess.run([sys.executable, "-m", "cachesim", "--help"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: cachesim [OPTIONS] COMMAND [ARGS]...")
    assert proc.stderr == ""
