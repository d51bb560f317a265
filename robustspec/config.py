"""Where the artifact store is, resolved one way for the pytest plugin and the ``robustspec`` command.

:func:`store_root`: the option (``--robustspec-store`` / ``--store``), else ``$ROBUSTSPEC_STORE``, else
the ini key ``robustspec_store`` relative to the rootdir, else ``.robustspec/store`` under the rootdir.

The plugin passes pytest's own rootdir and ini value. The command finds them as pytest does
(:func:`find_rootdir`): the nearest directory at or above the working directory with a pytest
configuration file (``pytest.toml``, ``.pytest.toml``, ``pytest.ini``, ``.pytest.ini``, a
``pyproject.toml`` with ``[tool.pytest]`` or ``[tool.pytest.ini_options]``, a ``tox.ini`` with
``[pytest]``, a ``setup.cfg`` with ``[tool:pytest]``); else the first ``pyproject.toml`` found, else the
nearest ``setup.py``, else the working directory. Files are read with tomllib/configparser, never pytest.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["STORE_ENV", "STORE_INI", "DEFAULT_STORE", "store_root", "find_rootdir", "RootDir"]

STORE_ENV = "ROBUSTSPEC_STORE"
STORE_INI = "robustspec_store"
DEFAULT_STORE = Path(".robustspec") / "store"


def store_root(option: str | os.PathLike[str] | None, env: Mapping[str, str], ini: str | None, rootdir: Path) -> Path:
    """The store directory, absolute: ``option`` > ``env[ROBUSTSPEC_STORE]`` > ``ini`` (relative to
    ``rootdir``) > ``rootdir/.robustspec/store``. ``option`` and the environment are relative to the
    working directory."""
    if option:
        return Path(option).expanduser().resolve()
    if env.get(STORE_ENV):
        return Path(env[STORE_ENV]).expanduser().resolve()
    if ini:
        return (Path(rootdir) / Path(str(ini)).expanduser()).resolve()
    return (Path(rootdir) / DEFAULT_STORE).resolve()


@dataclass(frozen=True)
class RootDir:
    """pytest's rootdir for a directory, the configuration file that decided it, and its options."""

    path: Path
    inifile: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)


def _toml(path: Path) -> dict[str, Any] | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, ValueError):
        return None


def _ini(path: Path, section: str) -> dict[str, Any] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error):
        return None
    return dict(parser[section]) if parser.has_section(section) else None


def _pytest_toml(path: Path) -> dict[str, Any] | None:
    doc = _toml(path) or {}
    return dict(doc.get("pytest", {}))  # always the configuration file, even if empty


def _pyproject(path: Path) -> dict[str, Any] | None:
    doc = _toml(path) or {}
    tool = doc.get("tool", {}).get("pytest")
    if not isinstance(tool, dict):
        return None
    native = {k: v for k, v in tool.items() if k != "ini_options"}
    if native:
        return native
    ini = tool.get("ini_options")
    return dict(ini) if isinstance(ini, dict) else None


#: The files pytest looks for in each directory, in its order, and how to read their pytest options
#: (None: this file holds no pytest configuration).
_LOADERS = {
    "pytest.toml": _pytest_toml,
    ".pytest.toml": _pytest_toml,
    "pytest.ini": lambda p: _ini(p, "pytest") or {},  # always the configuration file, even if empty
    ".pytest.ini": lambda p: _ini(p, "pytest") or {},
    "pyproject.toml": _pyproject,
    "tox.ini": lambda p: _ini(p, "pytest"),
    "setup.cfg": lambda p: _ini(p, "tool:pytest"),
}


def find_rootdir(start: str | os.PathLike[str] | None = None) -> RootDir:
    """pytest's rootdir when it is run without path arguments in ``start`` (default: the working directory)."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    first_pyproject: Path | None = None
    for base in (here, *here.parents):
        for name, load in _LOADERS.items():
            p = base / name
            if not p.is_file():
                continue
            if name == "pyproject.toml" and first_pyproject is None:
                first_pyproject = p
            options = load(p)
            if options is not None:
                return RootDir(base, p, options)
    if first_pyproject is not None:
        return RootDir(first_pyproject.parent, first_pyproject)
    for base in (here, *here.parents):
        if (base / "setup.py").is_file():
            return RootDir(base)
    return RootDir(here)
