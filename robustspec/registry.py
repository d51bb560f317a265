"""One generic registry, used once per kind of component (datasets, models, expectations, ...).

Built-in components register themselves when their module is imported: a component package imports
every module it holds (:func:`import_modules`), so a new built-in is one file and no list names it.

Installed packages add components through entry points, one group per kind: ``robustspec.attacks``,
``robustspec.compressions``, ``robustspec.corruptions``, ``robustspec.datasets``,
``robustspec.executors``, ``robustspec.expectations``, ``robustspec.models``, ``robustspec.runtimes``
(``robustspec.`` + the registry's kind + ``s``). The contract (docs/extending.md):

- the entry point's *name* is the component's YAML name, and its *value* is the module that defines it
  (``module`` or ``module:object``); loading it imports that module, which **registers itself** exactly
  as a built-in does (``@ATTACKS.register("gaussian-noise")``);
- a registry loads its group lazily, once, on its first lookup or listing (``get``, ``in``, iteration,
  ``names``), after the built-ins;
- loading a plugin fails with a :class:`~robustspec.errors.RegistryError` that names the distribution and
  the entry point, not a traceback, when its module cannot be imported, when it does not register the
  entry point's name, or when it registers a name that a built-in (or another plugin) already has. The
  error is raised again at every later lookup of that registry: a broken plugin is fixed or uninstalled,
  never silently skipped.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import RegistryError

__all__ = ["Registry", "import_modules"]

T = TypeVar("T")

#: Entry-point group prefix; a registry of kind ``attack`` reads the group ``robustspec.attacks``.
GROUP_PREFIX = "robustspec."


def import_modules(package: str) -> None:
    """Import every module of ``package`` (names starting with ``_`` excepted), sorted by name.

    Component packages call it from their ``__init__``: each module registers the components it defines,
    so adding a built-in component is adding its file.
    """
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def _entry_points(group: str) -> list[Any]:
    from importlib.metadata import entry_points

    return sorted(entry_points(group=group), key=lambda ep: (_dist_name(ep), ep.name))


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.metadata["Name"] or "?") if dist is not None else "?"


def _describe(ep: Any, group: str) -> str:
    """``plugin robustspec-example 0.1.0 (entry point 'gaussian-noise = pkg.module', group robustspec.attacks)``."""
    dist = getattr(ep, "dist", None)
    who = f"{_dist_name(ep)} {dist.version}" if dist is not None else "of an unknown distribution"
    return f"plugin {who} (entry point '{ep.name} = {ep.value}', group {group})"


class Registry(Generic[T]):
    """Names to components of one kind; unknown names fail with close-match suggestions."""

    def __init__(self, kind: str, not_provided: dict[str, str] | None = None, *, group: str | None = None) -> None:
        """``not_provided``: names users will try that are deliberately missing, with the reason.

        ``group``: the entry-point group plugins register in (default ``robustspec.<kind>s``).
        """
        self.kind = kind
        self.group = group if group is not None else f"{GROUP_PREFIX}{kind}s"
        self._entries: dict[str, T] = {}
        #: name -> who registered it: a module of robustspec, or a plugin's entry point
        self._origins: dict[str, str] = {}
        #: names registered by robustspec's own modules
        self._builtins: set[str] = set()
        self._not_provided = dict(not_provided or {})
        self._lock = threading.RLock()
        self._plugins: str = "unloaded"  # unloaded -> loading -> loaded
        self._loading: str | None = None  # the plugin being loaded, for the origin of what it registers
        self._plugin_error: RegistryError | None = None

    # -- registering ----------------------------------------------------------------------------------

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@DATASETS.register("office-synth")``. Registering a name twice is an error."""

        def decorate(obj: T) -> T:
            with self._lock:
                module = str(getattr(obj, "__module__", "?"))
                origin = self._loading or f"module {module}"
                if name in self._entries and self._entries[name] is not obj:
                    raise RegistryError(self._twice(name, origin))
                self._entries[name] = obj
                self._origins[name] = origin
                if self._loading is None and module.split(".")[0] == "robustspec":
                    self._builtins.add(name)
            return obj

        return decorate

    def _twice(self, name: str, origin: str) -> str:
        if name in self._builtins:
            return (
                f"{self.kind} {name!r} is built in ({self._origins[name]}) and registered again by {origin}: "
                "a plugin cannot replace a built-in component; give it another name"
            )
        return f"{self.kind} {name!r} is registered twice: by {self._origins[name]} and by {origin}"

    # -- plugins --------------------------------------------------------------------------------------

    def _load_plugins(self) -> None:
        """Load the group's entry points once; raise the (remembered) error of a broken plugin."""
        if self._plugins == "loaded":
            if self._plugin_error is not None:
                raise self._plugin_error
            return
        with self._lock:
            if self._plugins != "unloaded":  # loaded meanwhile, or a plugin's own import looks things up
                if self._plugins == "loaded" and self._plugin_error is not None:
                    raise self._plugin_error
                return
            self._plugins = "loading"
            problems: list[str] = []
            try:
                for ep in _entry_points(self.group):
                    problem = self._load_one(ep)
                    if problem:
                        problems.append(problem)
            finally:
                self._plugins = "loaded"
            if problems:
                self._plugin_error = RegistryError("\n".join(problems))
                raise self._plugin_error

    def _load_one(self, ep: Any) -> str | None:
        who = _describe(ep, self.group)
        if ep.name in self._builtins:
            return self._twice(ep.name, who)
        before = set(self._entries)
        self._loading = who
        try:
            ep.load()
        except RegistryError as exc:  # a name clash says who it is; anything else is said here
            return str(exc) if who in str(exc) else f"{who}: {exc}"
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin's import is reported, not raised
            return f"{who} cannot be loaded: {type(exc).__name__}: {exc}"
        finally:
            self._loading = None
        if ep.name not in self._entries:
            added = sorted(set(self._entries) - before)
            what = f"it registered {', '.join(repr(n) for n in added)}" if added else "it registered nothing"
            return (
                f"{who} registers no {self.kind} named {ep.name!r} ({what}): the entry point's module must "
                f"register its component under the entry point's name"
            )
        return None

    def origin(self, name: str) -> str | None:
        """Who registered ``name`` (a module of robustspec, or a plugin's entry point); None if nobody."""
        self._load_plugins()
        return self._origins.get(name)

    def builtin(self, name: str) -> bool:
        """Whether ``name`` is one of robustspec's own components."""
        self._load_plugins()
        return name in self._builtins

    def plugin(self, name: str) -> str | None:
        """Who registered ``name`` when it is not built in (a plugin's entry point, its distribution), else None."""
        self._load_plugins()
        return self._origins[name] if name in self._entries and name not in self._builtins else None

    # -- lookups (each loads the plugins first) -------------------------------------------------------

    def get(self, name: str) -> T:
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        self._load_plugins()
        shown = repr(name) if len(name) <= 80 else f"{name[:60]!r}... ({len(name)} characters)"
        if name in self._not_provided:
            return f"{self.kind} {shown} is not provided: {self._not_provided[name]}"
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.6) if len(name) <= 100 else []
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {shown}{hint} (known: {', '.join(sorted(self._entries))})"

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, component)`` pairs, sorted by name."""
        return [(name, self._entries[name]) for name in self.names()]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r}, {len(self._entries)} entries)"
