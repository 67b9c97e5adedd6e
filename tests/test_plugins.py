"""Plugins: the example LIFO module (numba kernel and PythonPolicy) through the API and the CLI,
hand-traced counts, the README's code run as written, and entry-point discovery."""
import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.policies import base, plugins

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "lifo_policy.py"
README = ROOT / "README.md"

# cap 2: 1 2 3 (evicts 2, the newest) 1 (hit) 2 (evicts 3) 3 (evicts 2)
HAND_KEYS = [1, 2, 3, 1, 2, 3]
HAND_SIZES = [4, 4, 6, 4, 4, 6]   # with 10 bytes the same victims: 24 bytes missed


@pytest.fixture
def registry(monkeypatch):
    """Registrations made by a test are undone afterwards (the registry is process-wide)."""
    base.load_builtins()  # a built-in imported during the test would not register again
    saved = (dict(base._REGISTRY), dict(base._ALIASES), set(plugins._loaded))
    for mod in ("lifo_policy", "readme_lifo", "ep_plugin", "ep_broken_dep"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    yield
    base._REGISTRY.clear()
    base._REGISTRY.update(saved[0])
    base._ALIASES.clear()
    base._ALIASES.update(saved[1])
    plugins._loaded.clear()
    plugins._loaded.update(saved[2])


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _check_hand_traced(names):
    unit = cachesim.Trace.from_keys(HAND_KEYS)
    sized = cachesim.Trace.from_keys(HAND_KEYS, HAND_SIZES)
    for name in names:
        r = cachesim.replay(unit, name, 2)
        assert (r.hits, r.misses, r.evictions) == (1, 5, 3), name
        r = cachesim.replay(sized, name, "10B")
        assert (r.hits, r.misses, r.miss_bytes, r.evictions) == (1, 5, 24, 3), name


def test_example_module_registers_both_versions(registry):
    assert "lifo" not in cachesim.policy_names()
    _load_module(EXAMPLE, "lifo_policy")
    assert {"lifo", "lifo-python"} <= set(cachesim.policy_names())
    assert cachesim.get_policy("stack").name == "lifo"
    assert cachesim.get_policy("lifo-python").is_python
    _check_hand_traced(["lifo", "stack", "lifo-python"])


def test_kernel_and_prototype_agree(registry):
    _load_module(EXAMPLE, "lifo_policy")
    rng = np.random.default_rng(4)
    for trial in range(6):
        keys = rng.zipf(1.3, 400) % 40
        sizes = rng.integers(1, 30, 40)[keys]
        tr = cachesim.Trace(table=rng.integers(0, 2, 400), row=keys, size=sizes)
        for cap in (5, "200B"):
            a = cachesim.replay(tr, "lifo", cap)
            b = cachesim.replay(tr, "lifo-python", cap)
            assert (a.hits, a.misses, a.miss_bytes, a.evictions, a.per_table) == \
                (b.hits, b.misses, b.miss_bytes, b.evictions, b.per_table)


def test_cli_loads_the_plugin(registry, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    path = tmp_path / "keys.txt"
    path.write_text("".join(f"{k}\n" for k in HAND_KEYS))
    res = CliRunner().invoke(cli, ["--plugin", "lifo_policy", "replay", str(path),
                                   "-p", "lifo,lifo-python,lru", "-s", "2", "--json", "-q"])
    assert res.exit_code == 0, res.output
    got = {rec["policy"]: (rec["hits"], rec["misses"]) for rec in json.loads(res.output)}
    assert got == {"lifo": (1, 5), "lifo-python": (1, 5), "lru": (0, 6)}


def test_cli_names_a_plugin_it_cannot_import(registry):
    res = CliRunner().invoke(cli, ["--plugin", "no_such_plugin_xyz", "replay", "x.txt",
                                   "-s", "2"])
    assert res.exit_code == 2
    assert "no_such_plugin_xyz" in res.output and "PYTHONPATH" in res.output


def _readme_section(title):
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def _code_blocks(section, lang):
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def _check_snippet(block, scope):
    """Run a README snippet whose last expression states its value in a comment, either on its
    own line (`# [4, 5]`) or the next (`# [4, 5]: what it means`); compare."""
    lines = block.strip().splitlines()
    if lines[-1].startswith("#"):
        comment = lines.pop()
        expr = lines.pop()
    else:
        expr, comment = lines.pop().split("#", 1)
    exec("\n".join(lines), scope)
    expected = comment.lstrip("# ").split(":")[0]
    assert eval(expr, scope) == eval(expected, scope), (expr, expected)


def test_readme_example_is_the_example_module_and_runs(registry, tmp_path, monkeypatch):
    blocks = _code_blocks(_readme_section("Adding a policy"), "python")
    assert blocks[0] == EXAMPLE.read_text()  # the README shows the tested file, verbatim
    module_file = tmp_path / "readme_lifo.py"
    module_file.write_text(blocks[0])
    _load_module(module_file, "readme_lifo")
    _check_hand_traced(["lifo", "lifo-python"])
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    _check_snippet(blocks[1], {"cachesim": cachesim})


def test_readme_set_associative_example_runs():
    blocks = [b for b in _code_blocks(_readme_section("Policies"), "python") if "ways=" in b]
    assert blocks
    _check_snippet(blocks[0], {"cachesim": cachesim})


# -- entry points ---------------------------------------------------------------------------------

def _fake_distribution(root: Path, name: str, entry_points: dict, modules: dict):
    """An installed-looking distribution on sys.path: a .dist-info folder and its modules."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{plugins.GROUP}]\n{lines}")
    for mod, source in modules.items():
        (root / f"{mod}.py").write_text(source)


EP_SOURCE = '''
import cachesim


class Mru(cachesim.PythonPolicy):
    """Evict the most recently used key."""

    def __init__(self, capacity, unit=True, seed=0):
        super().__init__(capacity, unit, seed)
        self.order = {}   # key -> size, in order of use (last = most recent)

    def access(self, key, size):
        if key in self.order:
            self.order[key] = self.order.pop(key)
            return True
        if size <= self.capacity:
            while sum(self.order.values()) + size > self.capacity:
                victim = next(reversed(self.order))
                del self.order[victim]
                self.evicted(victim)
            self.order[key] = size
        return False
'''


def test_entry_point_is_loaded_when_the_name_is_unknown(registry, tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "cachesim-mru", {"ep-mru": "ep_plugin:Mru"},
                       {"ep_plugin": EP_SOURCE})
    monkeypatch.syspath_prepend(str(tmp_path))
    cachesim.get_policy("lru")
    assert "ep_plugin" not in sys.modules  # known names import nothing
    pol = cachesim.get_policy("EP-MRU")
    assert pol.is_python and pol.description == "Evict the most recently used key."
    # cap 2: 1 2 1 (hit, 1 most recent) 3 evicts 1; 2 hits; 1 evicts 2
    r = cachesim.replay(cachesim.Trace.from_keys([1, 2, 1, 3, 2, 1]), "ep-mru", 2)
    assert (r.hits, r.misses, r.evictions) == (2, 4, 2)
    with pytest.raises(cachesim.CachesimError, match="unknown policy 'nope'.*ep-mru"):
        cachesim.get_policy("nope")


def test_entry_point_through_the_cli(registry, tmp_path, monkeypatch):
    _fake_distribution(tmp_path / "site", "cachesim-mru", {"ep-mru": "ep_plugin:Mru"},
                       {"ep_plugin": EP_SOURCE})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    path = tmp_path / "keys.txt"
    path.write_text("1\n2\n1\n3\n2\n1\n")
    res = CliRunner().invoke(cli, ["replay", str(path), "-p", "ep-mru", "-s", "2", "--json",
                                   "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)[0]["hits"] == 2


def test_broken_entry_point_names_its_package(registry, tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "cachesim-broken", {"ep-broken": "ep_broken_dep"},
                       {"ep_broken_dep": "import no_such_module_xyz\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(cachesim.CachesimError, match="ep-broken.*cachesim-broken.*uninstall"):
        cachesim.get_policy("ep-broken")
