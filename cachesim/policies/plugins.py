"""Policies from other packages, found through the `cachesim.policies` entry-point group.

A package declares, in its pyproject.toml,

    [project.entry-points."cachesim.policies"]
    lifo = "lifo_policy"              # a module that registers its policies when imported
    mru = "mru_policy:POLICY"         # or a Policy object
    fifo2 = "my_pkg.fifo2:Fifo2"      # or a PythonPolicy subclass, registered as the entry's name

Nothing is imported until a policy name is not found: `get_policy` then loads the entry points
of that name, then, if it is still unknown, every other one (a module may register several
policies or aliases), and looks again. `cachesim --plugin MODULE` imports a module by hand.
"""
from __future__ import annotations

from importlib.metadata import entry_points

from ..errors import CachesimError
from . import base

GROUP = "cachesim.policies"
_loaded: set[tuple[str, str]] = set()


def _group():
    return list(entry_points(group=GROUP))


def _register_loaded(ep, obj) -> None:
    if isinstance(obj, base.Policy):
        if obj.name.lower() not in base.all_policies():
            base.register(obj)
    elif isinstance(obj, type) and issubclass(obj, base.PythonPolicy):
        if ep.name.lower() not in base.all_policies():
            doc = (obj.__doc__ or "").strip().splitlines()
            base.register(base.Policy(name=ep.name, python_class=obj,
                                      description=doc[0] if doc else ""))
    # anything else (a module) registered its policies when it was imported


def load_entry_points(name: str | None = None) -> list[str]:
    """Load the not yet loaded entry points called `name` (all of them when None); return the
    names loaded. A plugin that fails to import raises CachesimError naming its package."""
    done = []
    for ep in _group():
        ident = (ep.name, ep.value)
        if ident in _loaded or (name is not None and ep.name.lower() != name.lower()):
            continue
        _loaded.add(ident)
        try:
            obj = ep.load()
            _register_loaded(ep, obj)
        except Exception as err:  # a broken plugin must not look like an unknown policy
            dist = getattr(getattr(ep, "dist", None), "name", None) or "its package"
            raise CachesimError(
                f"policy plugin {ep.name!r} ({ep.value}, from {dist}) failed to load: "
                f"{type(err).__name__}: {err}; fix or uninstall {dist}") from None
        done.append(ep.name)
    return done


def get_policy(name) -> base.Policy:
    """The policy registered under `name` or an alias, loading plugins that declare it first;
    CachesimError listing the known policies when there is none."""
    try:
        return base.get_policy(name)
    except CachesimError:
        pass
    for which in (str(name).strip(), None):  # first the entry points of that name, then all
        if load_entry_points(which):
            try:
                return base.get_policy(name)
            except CachesimError:
                pass
    return base.get_policy(name)  # the usual error, listing the known policies
