"""What else decides an artifact's bytes besides its recipe: user code and library versions.

Content keys (:func:`robustspec.store.content_key`) hash a recipe, the parents' keys and the builder's
version. A recipe names code (``arch: mymodels:build``) and relies on libraries (torch, torchvision,
torch-pruning, ...); when either changes, the same recipe builds different bytes. This module turns both
into plain JSON for the recipe:

- :func:`source_fingerprint` hashes the source files of a user module: the module's own file, and when it
  belongs to a package, every ``.py`` file of its top-level package. A module installed in site-packages
  is identified by its distribution's name and version instead (hashing an installed library's files on
  every key would cost time and say nothing the version does not).
- :func:`library_versions` gives the installed versions of the named distributions.

Both are memoised per process: keys are computed many times per item, files are read once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import sys
import sysconfig
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["library_versions", "source_fingerprint", "describe_source_change"]

#: Distributions whose versions decide every trained model and evaluation.
CORE_LIBRARIES = ("torch", "torchvision")


@cache
def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_versions(*distributions: str) -> dict[str, str | None]:
    """``{distribution: version}`` (None when not installed), in a stable order."""
    return {name: _version(name) for name in sorted(set(distributions))}


def _installed_roots() -> tuple[Path, ...]:
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib") if k in sysconfig.get_paths()}
    roots |= {p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))}
    return tuple(Path(r).resolve() for r in roots if r)


def _distribution_of(top: str) -> str | None:
    names = importlib.metadata.packages_distributions().get(top) or []
    return names[0] if names else None


def _hash_files(files: list[Path], base: Path) -> dict[str, str]:
    out = {}
    for f in sorted(files):
        try:
            out[f.relative_to(base).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
        except OSError:
            out[f.relative_to(base).as_posix()] = "unreadable"
    return out


@cache
def source_fingerprint(module_name: str) -> dict[str, Any]:
    """Identity of the code of ``module_name`` (``pkg.sub.models``), without importing the module itself.

    ``{"module": ..., "files": {relative path: sha256 prefix}}`` for code of the user's own, or
    ``{"module": ..., "distribution": "name==version"}`` for an installed library, or ``{"module": ...,
    "missing": True}`` when it cannot be found (the build then fails with the import error).
    """
    top = module_name.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        return {"module": module_name, "missing": True}
    origin = Path(spec.origin).resolve()
    if any(root == origin or root in origin.parents for root in _installed_roots()):
        dist = _distribution_of(top)
        if dist is not None:
            return {"module": module_name, "distribution": f"{dist}=={_version(dist)}"}
    if spec.submodule_search_locations:  # a package: every source file under it
        files: list[Path] = []
        base = origin.parent.parent
        for location in spec.submodule_search_locations:
            files += [p for p in Path(location).resolve().rglob("*.py") if "__pycache__" not in p.parts]
        return {"module": module_name, "files": _hash_files(files, base)}
    return {"module": module_name, "files": _hash_files([origin], origin.parent)}


def describe_source_change(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """``factory source changed (models/net.py)``: what differs between two fingerprints, in words."""
    old, new = old or {}, new or {}
    if old == new:
        return ""
    if "distribution" in old or "distribution" in new:
        return f"{old.get('distribution', 'source')} → {new.get('distribution', 'source')}"
    a, b = old.get("files", {}), new.get("files", {})
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return f"factory source changed ({shown})" if shown else "factory source changed"
