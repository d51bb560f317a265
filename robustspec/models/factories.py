"""User model factories (``arch: mymodels:resnet20``), found the way pytest finds conftest files.

A factory is written ``package.module:function``. Its module is looked for next to the suite file, then
in each directory above it up to the rootdir (pytest's: the nearest directory with a pytest configuration
file, else the working directory when it lies above the suite), nearest first, as ``module.py`` or
``module/__init__.py`` (dotted names as the matching path). The directory it is found in goes to the front
of ``sys.path`` (what pytest's default ``prepend`` import mode does for a conftest's directory), so the
module imports without ``PYTHONPATH``, in every xdist worker (each collects, so each imports it), and later
imports by name (a build, the source fingerprint of its key) find the same file. A module found in none of
those directories is imported from ``sys.path`` as it is (an installed package); when that fails too, the
error lists every place it looked. Two different files for one module name (two suites' ``models.py``) are
an error, except that an installed package already imported wins over a copy of its source.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["FACTORY_PATTERN", "import_factory", "search_dirs", "is_factory_ref"]

FACTORY_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_factory_ref(arch: str) -> bool:
    """``package.module:function`` (and not a ``timm:`` / ``torchvision:`` name)."""
    return ":" in arch and arch.split(":", 1)[0] not in ("timm", "torchvision")


def _rootdir_above(start: Path) -> Path | None:
    """pytest's rootdir for ``start`` when it lies at or above it (a configuration file's directory)."""
    from ..config import find_rootdir

    root = find_rootdir(start)
    if root.inifile is not None and (root.path == start or root.path in start.parents):
        return root.path
    return None


def search_dirs(*files: str | os.PathLike[str]) -> list[Path]:
    """Where a factory module of a suite is looked for: from each file's directory up to the rootdir.

    Without a configuration file above, the walk stops at the working directory when it lies above the
    file (what pytest would take as the rootdir), else it is the file's directory alone. Nearest first,
    each directory once.
    """
    out: list[Path] = []
    cwd = Path.cwd().resolve()
    for f in files:
        start = Path(f).resolve().parent
        root = _rootdir_above(start)
        if root is None:
            root = cwd if cwd == start or cwd in start.parents else start
        d = start
        while True:
            if d not in out:
                out.append(d)
            if d == root or d.parent == d:
                break
            d = d.parent
    return out


def _file_in(directory: Path, module_name: str) -> Path | None:
    base = directory.joinpath(*module_name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _origin(module: Any) -> list[Path]:
    """Where an imported (top-level) module lives: its file, or a namespace package's directories."""
    file = getattr(module, "__file__", None)
    if file:
        p = Path(file).resolve()
        return [p.parent if p.name == "__init__.py" else p]
    return [Path(p).resolve() for p in getattr(module, "__path__", [])]


def _installed(path: Path) -> bool:
    from ..fingerprint import _installed_roots

    return any(root == path or root in path.parents for root in _installed_roots())


def _import_from(directory: Path, module_name: str, ref: str) -> Any:
    top = module_name.split(".")[0]
    expected = (directory / top).resolve()
    loaded = sys.modules.get(top)
    if loaded is not None and getattr(loaded, "__file__", None) is not None:  # (a namespace package extends)
        origins = _origin(loaded)
        if origins and not any(o == expected or o == expected.with_suffix(".py") for o in origins):
            if _installed(origins[0]):
                # An installed package (robustspec itself, from a checkout of its source): the one in use.
                return importlib.import_module(module_name)
            raise ModelError(
                f"factory {ref!r}: module {top!r} is already imported from {origins[0]}, but the suite's "
                f"{directory} has another one: give one of them another name"
            )
    text = str(directory)
    if text not in sys.path:
        sys.path.insert(0, text)
        importlib.invalidate_caches()
    return importlib.import_module(module_name)


def import_factory(ref: str, search: Iterable[str | os.PathLike[str]] = ()) -> Callable[..., nn.Module]:
    """Resolve ``package.module:function`` (imported, never evaluated), looking in ``search`` first.

    ``search``: directories, nearest first (:func:`search_dirs`). Raises :class:`ModelError` when the
    reference is malformed, the module is found nowhere (saying where it looked) or fails to import, or
    the attribute is not callable.
    """
    if not FACTORY_PATTERN.match(ref):
        raise ModelError(f"a model factory is written 'package.module:function', got {ref!r}")
    module_name, attr = ref.split(":")
    dirs: Sequence[Path] = [Path(d) for d in search]
    found = next((d for d in dirs if _file_in(d, module_name) is not None), None)
    try:
        if found is not None:
            module = _import_from(found, module_name, ref)
        else:
            module = importlib.import_module(module_name)
    except ModelError:
        raise
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            rel = "/".join(module_name.split("."))
            places = ", ".join(str(d) for d in dirs) if dirs else "no suite directory"
            raise ModelError(
                f"cannot import module {module_name!r} for factory {ref!r}: there is no {rel}.py or "
                f"{rel}/__init__.py in {places} (searched from the suite's directory up to the rootdir), "
                "and it is not importable from sys.path"
            ) from exc
        raise ModelError(f"cannot import module {module_name!r} for factory {ref!r}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any error in the user's module is reported as theirs
        raise ModelError(
            f"cannot import module {module_name!r} for factory {ref!r}: {type(exc).__name__}: {exc}"
        ) from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ModelError(f"module {module_name!r} has no callable {attr!r}")
    return fn
