"""User code and library versions as parts of content keys (robustspec.fingerprint)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from robustspec.fingerprint import describe_source_change, library_versions, source_fingerprint


@pytest.fixture
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path; the fingerprint memo is cleared before and after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    source_fingerprint.cache_clear()
    yield tmp_path
    source_fingerprint.cache_clear()
    for name in [m for m in sys.modules if m.startswith(("rs_fp_", "rs_pkg_"))]:
        del sys.modules[name]


def fingerprint(module: str) -> dict:
    source_fingerprint.cache_clear()
    return source_fingerprint(module)


def test_a_module_file_is_hashed_and_an_edit_changes_it(importable: Path) -> None:
    module = importable / "rs_fp_models.py"
    module.write_text("def build(num_classes):\n    return num_classes\n")
    first = fingerprint("rs_fp_models")
    assert set(first["files"]) == {"rs_fp_models.py"}
    assert fingerprint("rs_fp_models") == first  # untouched: the same
    module.write_text("def build(num_classes):\n    return 2 * num_classes\n")
    second = fingerprint("rs_fp_models")
    assert second != first
    assert describe_source_change(first, second) == "factory source changed (rs_fp_models.py)"


def test_every_file_of_the_package_counts(importable: Path) -> None:
    pkg = importable / "rs_pkg_nets"
    (pkg / "layers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text("from .layers.block import block\n")
    (pkg / "layers" / "__init__.py").write_text("")
    (pkg / "layers" / "block.py").write_text("def block():\n    return 1\n")
    first = fingerprint("rs_pkg_nets.models")
    assert set(first["files"]) == {
        "rs_pkg_nets/__init__.py",
        "rs_pkg_nets/models.py",
        "rs_pkg_nets/layers/__init__.py",
        "rs_pkg_nets/layers/block.py",
    }
    (pkg / "layers" / "block.py").write_text("def block():\n    return 2\n")  # a helper the factory imports
    second = fingerprint("rs_pkg_nets.models")
    assert describe_source_change(first, second) == "factory source changed (rs_pkg_nets/layers/block.py)"


def test_where_the_code_lies_does_not_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two checkouts of the same code (a developer's and CI's) share keys."""
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "rs_fp_same.py").write_text("X = 1\n")
    prints = []
    for where in ("a", "b"):
        with monkeypatch.context() as m:
            m.syspath_prepend(str(tmp_path / where))
            prints.append(fingerprint("rs_fp_same"))
    source_fingerprint.cache_clear()
    assert prints[0] == prints[1]


def test_an_installed_library_is_its_version_and_a_missing_module_says_so() -> None:
    fp = fingerprint("torch_pruning")
    assert fp["distribution"].startswith("torch-pruning==") or fp["distribution"].startswith("torch_pruning==")
    assert "files" not in fp
    assert fingerprint("rs_fp_no_such_module") == {"module": "rs_fp_no_such_module", "missing": True}
    source_fingerprint.cache_clear()


def test_library_versions() -> None:
    import torch

    versions = library_versions("torchvision", "torch", "rs-not-installed")
    assert list(versions) == ["rs-not-installed", "torch", "torchvision"]  # a stable order
    assert torch.__version__.startswith(versions["torch"]) and versions["rs-not-installed"] is None
