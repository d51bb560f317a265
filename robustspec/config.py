"""Where the artifact store is, resolved one way for the pytest plugin and the ``robustspec`` command.

:func:`store_root`: the option (``--robustspec-store`` / ``--store``), else ``$ROBUSTSPEC_STORE``, else
the ini key ``robustspec_store`` relative to the rootdir, else ``.robustspec/store`` under the rootdir.

The plugin passes pytest's own rootdir and ini value. The command finds them as pytest does
(:func:`find_rootdir`): the nearest directory at or above the working directory with a pytest
configuration file (``pytest.toml``, ``.pytest.toml``, ``pytest.ini``, ``.pytest.ini``, a
``pyproject.toml`` with ``[tool.pytest]`` or ``[tool.pytest.ini_options]``, a ``tox.ini`` with
``[pytest]``, a ``setup.cfg`` with ``[tool:pytest]``); else the first ``pyproject.toml`` found, else the
nearest ``setup.py``, else the working directory. Files are read with tomllib/configparser, never pytest.

The store may be a URL (``s3://bucket/prefix``, ``gs://bucket/prefix``, ``file:///dir``): an object store
shared by machines (:mod:`robustspec.remote_store`), read through a local cache, :func:`cache_root`:
``--robustspec-store-cache`` / ``--cache``, else ``$ROBUSTSPEC_STORE_CACHE``, else the ini key
``robustspec_store_cache``, else ``.robustspec/cache/<digest of the URL>`` under the rootdir.
:func:`open_store` makes the store, for the plugin, the command line and the Python API alike.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "STORE_ENV",
    "STORE_INI",
    "DEFAULT_STORE",
    "CACHE_ENV",
    "CACHE_INI",
    "LEASE_TTL_ENV",
    "store_root",
    "store_location",
    "cache_root",
    "open_store",
    "is_store_url",
    "find_rootdir",
    "RootDir",
]

STORE_ENV = "ROBUSTSPEC_STORE"
STORE_INI = "robustspec_store"
DEFAULT_STORE = Path(".robustspec") / "store"
#: The local cache of a store at a URL.
CACHE_ENV = "ROBUSTSPEC_STORE_CACHE"
CACHE_INI = "robustspec_store_cache"
DEFAULT_CACHE = Path(".robustspec") / "cache"
#: Seconds a build lease on a store at a URL lasts without renewal.
LEASE_TTL_ENV = "ROBUSTSPEC_STORE_LEASE_TTL"

_URL_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_store_url(text: object) -> bool:
    """Whether ``text`` names a store by URL (``scheme://...``) rather than a directory."""
    return isinstance(text, str) and _URL_RE.match(text) is not None


def store_root(option: str | os.PathLike[str] | None, env: Mapping[str, str], ini: str | None, rootdir: Path) -> Path:
    """The store directory, absolute: ``option`` > ``env[ROBUSTSPEC_STORE]`` > ``ini`` (relative to
    ``rootdir``) > ``rootdir/.robustspec/store``. ``option`` and the environment are relative to the
    working directory."""
    return _directory(option, env.get(STORE_ENV), ini, rootdir, DEFAULT_STORE)


def _directory(
    option: str | os.PathLike[str] | None, from_env: str | None, ini: str | None, rootdir: Path, default: Path | str
) -> Path:
    """The first given of ``option`` and ``from_env`` (relative to the working directory), else ``ini``,
    else ``default`` (both relative to ``rootdir``), absolute."""
    if option:
        return Path(option).expanduser().resolve()
    if from_env:
        return Path(from_env).expanduser().resolve()
    if ini:
        return (Path(rootdir) / Path(str(ini)).expanduser()).resolve()
    return (Path(rootdir) / default).resolve()


def store_location(
    option: str | os.PathLike[str] | None, env: Mapping[str, str], ini: str | None, rootdir: Path
) -> Path | str:
    """:func:`store_root`, except that the first of them that is a URL is returned as it is (its
    trailing slashes removed)."""
    for raw in (option, env.get(STORE_ENV), ini):
        if raw:
            if is_store_url(str(raw)):
                return str(raw).rstrip("/")
            break
    return store_root(option, env, ini, rootdir)


def cache_root(
    url: str, option: str | os.PathLike[str] | None, env: Mapping[str, str], ini: str | None, rootdir: Path
) -> Path:
    """The local cache of the store at ``url``: ``option`` > ``env[ROBUSTSPEC_STORE_CACHE]`` > ``ini``
    (relative to ``rootdir``) > ``rootdir/.robustspec/cache/<16 hex of the URL's sha256>``."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return _directory(option, env.get(CACHE_ENV), ini, rootdir, DEFAULT_CACHE / digest)


def open_store(
    option: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    ini: str | None = None,
    rootdir: str | os.PathLike[str] | None = None,
    *,
    cache: str | os.PathLike[str] | None = None,
    cache_ini: str | None = None,
) -> Any:
    """The artifact store, resolved as :func:`store_location` resolves it: a
    :class:`~robustspec.store.Store` for a directory, a :class:`~robustspec.remote_store.RemoteStore`
    (with its cache, :func:`cache_root`) for a URL. ``env`` defaults to ``os.environ``, ``rootdir`` to the
    working directory. Nothing is read or written until the store is used."""
    env = os.environ if env is None else env
    root = Path(rootdir) if rootdir is not None else Path.cwd()
    where = store_location(option, env, ini, root)
    if isinstance(where, Path):
        from .store import Store

        return Store(where)
    from .errors import ArtifactError
    from .remote_store import DEFAULT_LEASE_TTL, RemoteStore

    ttl_text = env.get(LEASE_TTL_ENV) or ""
    try:
        ttl = float(ttl_text) if ttl_text else DEFAULT_LEASE_TTL
    except ValueError:
        ttl = -1.0
    if not 0 < ttl < float("inf"):
        raise ArtifactError(f"${LEASE_TTL_ENV}: expected a positive number of seconds, got {ttl_text!r}")
    return RemoteStore(where, cache_root(where, cache, env, cache_ini, root), lease_ttl=ttl)


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
