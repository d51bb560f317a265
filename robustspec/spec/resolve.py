"""Named building blocks: ``specs/{datasets,models,training}.yaml`` and the built-in names.

A suite names a dataset, a training recipe or a model; :class:`SpecsDir` finds the block where it is
written (so it is validated, and its errors point, there). A spec file that cannot be read is reported
once, however many names the suite takes from it, and every name that would have come from it says so
instead of claiming it does not exist.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import SpecError, SpecErrors
from .locate import Problems
from .text import shorten
from .yaml_loader import Located, load_yaml_file

__all__ = ["SPEC_KINDS", "Block", "SpecsDir", "find_specs_dir"]

#: Files of named building blocks inside ``specs/``: a mapping of name -> definition each.
SPEC_KINDS = {"datasets": "datasets.yaml", "models": "models.yaml", "training": "training.yaml"}


def find_specs_dir(start: Path) -> Path | None:
    """The nearest ``specs/`` directory at or above ``start`` (a suite file or a directory)."""
    here = start if start.is_dir() else start.parent
    for d in (here, *here.parents):
        candidate = d / "specs"
        if candidate.is_dir():
            return candidate
    return None


@dataclass(frozen=True)
class Block:
    """One named definition and where it is written."""

    loc: Located
    file: str
    path: tuple

    @property
    def value(self) -> Any:
        return self.loc.data[self.path[0]]


@lru_cache(maxsize=64)
def _read(path: str, mtime_ns: int, size: int) -> tuple[Located | None, tuple[SpecError, ...]]:
    try:
        loc = load_yaml_file(path)
    except SpecErrors as exc:
        return None, tuple(exc.errors)
    if loc.data is not None and not isinstance(loc.data, dict):
        return None, (SpecError(path, *loc.where(()), (), "expected a mapping of name -> definition"),)
    return loc, ()


class SpecsDir:
    """The blocks of one ``specs/`` directory (or none), read once per file and reported once."""

    def __init__(self, problems: Problems, directory: Path | None) -> None:
        self.problems = problems
        self.directory = directory
        self._reported: set[str] = set()

    def _file(self, kind: str) -> tuple[Located | None, str, bool]:
        """(blocks, file, readable): ``readable`` is False when the file exists and has errors."""
        if self.directory is None:
            return None, "", True
        p = self.directory / SPEC_KINDS[kind]
        try:
            st = p.stat()
        except OSError:
            return None, str(p), True
        if not p.is_file():
            return None, str(p), True
        loc, errors = _read(str(p), st.st_mtime_ns, st.st_size)
        if errors and str(p) not in self._reported:
            self._reported.add(str(p))
            self.problems.errors.extend(errors)
        return loc, str(p), not errors

    def lookup(self, kind: str, name: str) -> Block | None:
        loc, file, _ = self._file(kind)
        if loc is None or not isinstance(loc.data, dict) or name not in loc.data:
            return None
        return Block(loc, file, (name,))

    def names(self, kind: str) -> list[str]:
        loc, _, _ = self._file(kind)
        return sorted(loc.data) if loc is not None and isinstance(loc.data, dict) else []

    def unresolved(self, kind: str, name: str, what: str, builtin: list[str], builtin_label: str = "built in") -> str:
        """Why ``name`` is not a ``what``: its spec file is broken (said once, above), or it is unknown."""
        _, file, readable = self._file(kind)
        if not readable:
            return f"{what} {shorten(name)} is not checked: {file} has errors (reported above)"
        known = sorted(set(self.names(kind)) | set(builtin))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6) if len(name) <= 100 else []
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        if kind == "models":
            return f"unknown {what} {shorten(name)}: not in specs/{SPEC_KINDS[kind]} nor {builtin_label}{hint}"
        where = f"specs/{SPEC_KINDS[kind]}" if self.directory else "specs/ (no specs directory found)"
        return f"unknown {what} {shorten(name)}: not defined in {where} nor {builtin_label}{hint}"
