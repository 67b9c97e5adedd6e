"""The package's folders are layers: a module imports only from its own layer or lower ones,
and no import cycle joins two modules. The order is the one README.md's "Layout" gives."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cachesim"

# lowest first; a module belongs to the first entry that is it or its package
LAYERS = [
    ["cachesim.errors", "cachesim.version", "cachesim.hashing", "cachesim.sizes",
     "cachesim.files", "cachesim.progress", "cachesim.plotting",
     "cachesim.numba_util", "cachesim.lazy"],
    ["cachesim.trace"],
    ["cachesim.io"],
    ["cachesim.policies"],
    ["cachesim.simulate"],
    ["cachesim.costs"],
    ["cachesim.analysis"],
    ["cachesim.synth"],
    ["cachesim.executor"],
    ["cachesim.sweep", "cachesim.sweep_stream"],
    ["cachesim.reports"],
    ["cachesim.options", "cachesim.cli", "cachesim.demo", "cachesim.__main__", "cachesim"],
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    best = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if module == p or module.startswith(p + "."):
                if best is None or len(p) > best[1]:
                    best = (i, len(p))
    assert best is not None, f"{module} is in no layer: add it to LAYERS and README.md"
    return best[0]


def from_target(node: ast.ImportFrom, pkg: str) -> str | None:
    """The cachesim module a `from ... import` names (relative ones resolved in package `pkg`),
    None for another package's."""
    if node.level:
        base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))
    if node.module and node.module.split(".")[0] == "cachesim":
        return node.module
    return None


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every cachesim module `path` imports, at module level or inside a function."""
    me = module_name(path)
    pkg = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "cachesim"}
        elif isinstance(node, ast.ImportFrom):
            target = from_target(node, pkg)
            if target is None:
                continue
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules}
    return {m for m in found if m in modules and m != me}


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def test_every_module_has_a_layer():
    for module in graph():
        layer_of(module)


def test_no_import_points_up():
    upward = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
              for m, targets in graph().items() for t in sorted(targets)
              if layer_of(t) > layer_of(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    g = graph()
    # a package's __init__ importing its own submodules is how packages are built, not a cycle
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in g.items()}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_checker_sees_an_upward_import(tmp_path):
    """The walk resolves relative imports: a reader importing a report would be caught."""
    fake = PACKAGE / "io" / "formats.py"
    modules = set(graph())
    assert "cachesim.errors" in imports_of(fake, modules)
    assert layer_of("cachesim.reports.report") > layer_of("cachesim.io.formats")
    assert layer_of("cachesim.io") > layer_of("cachesim.trace") > layer_of("cachesim.errors")


def private_uses(path: Path, modules: set[str]) -> list[str]:
    """Names with a leading underscore that `path` takes from another cachesim module: `from M
    import _x`, or `m._x` on a module `m` it imported (`_x` defined in M, not dunders)."""
    me = module_name(path)
    pkg = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = from_target(node, pkg)
            if target is None:
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in modules:  # `from . import tabular`: a module
                    aliases[a.asname or a.name] = sub
                elif target in modules and a.name.startswith("_") and not a.name.startswith("__") \
                        and target != me:
                    found.append(f"{me}: from {target} import {a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            found.append(f"{me}: {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_module_takes_another_ones_private_names():
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    found = [u for p in paths for u in private_uses(p, modules)]
    assert not found, found


def test_the_private_check_sees_a_private_import(tmp_path, monkeypatch):
    modules = {"cachesim.io.tabular", "cachesim.trace", "cachesim.io", "cachesim.io.x"}
    fake = tmp_path / "cachesim" / "io" / "tabular.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ..trace import _dense_remap, KeyMap\nfrom . import x\nx._y(x.z)\n")
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path / "cachesim")
    assert private_uses(fake, modules) == [
        "cachesim.io.tabular: from cachesim.trace import _dense_remap",
        "cachesim.io.tabular: cachesim.io.x._y"]
