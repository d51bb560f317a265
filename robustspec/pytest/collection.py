"""Collection: a suite YAML file → one collector per model → one per variant → one check item per check.

Only YAML files in a ``suites/`` directory (ini ``robustspec_suite_dirs``), files named ``*.suite.yaml``,
and YAML files named on the command line are suites; torch is imported only when one is collected.

Item ids are ``<file>::<model>::<variant>::<check>[<label>]``, e.g.
``suites/quick.yaml::resnet18::baseline::attack[pgd-linf]``. The ``[label]`` is the item's
parametrization as pytest understands it (pytest parses ``name[params]`` ids into a name and params when
it reads them back from ``--lf``/``--sw`` caches and command lines), so ``--lf``, ``--ff``, ``--sw`` and
running one item by its id match the item.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ..errors import RobustSpecError, SpecErrors
from .item import CheckItem
from .state import plugin_state


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    config = parent.config
    dirs = config.getini("robustspec_suite_dirs")
    explicit = any(Path(a.split("::")[0]).resolve() == file_path.resolve() for a in config.args)
    if file_path.parent.name in dirs or file_path.name.endswith((".suite.yaml", ".suite.yml")) or explicit:
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class SuiteFile(pytest.File):
    """One suite YAML file."""

    def collect(self):  # type: ignore[override]
        from ..plan import plan_suite
        from ..spec.loader import load_suite

        state = plugin_state(self.config)
        try:
            loaded = load_suite(self.path, state.specs_dir())
        except SpecErrors as exc:
            state.invalid_suites.append(str(self.path))
            if not self.config.getoption("robustspec_strict"):
                # A broken suite must not stop the others, with or without xdist.
                self.config.option.continue_on_collection_errors = True
            raise self.CollectError(_relative_errors(exc, self.config)) from None
        except RobustSpecError as exc:
            state.invalid_suites.append(str(self.path))
            raise self.CollectError(f"{self.path}: {exc}") from None
        checks = plan_suite(loaded)
        by_model: dict[str, list] = {}
        for check in checks:
            by_model.setdefault(check.model.name, []).append(check)
        for model_name, model_checks in by_model.items():
            yield ModelNode.from_parent(self, name=model_name, checks=model_checks)


def _relative_errors(exc: SpecErrors, config: pytest.Config) -> str:
    lines = []
    for e in exc.errors:
        text = str(e)
        try:
            rel = os.path.relpath(e.file, config.invocation_params.dir)
            if not rel.startswith(".."):
                text = text.replace(e.file, rel, 1)
        except ValueError:
            pass
        lines.append(text)
    n = len(lines)
    return f"invalid suite ({n} problem{'s' if n != 1 else ''}):\n" + "\n".join(lines)


class ModelNode(pytest.Collector):
    """The checks of one model, grouped by variant."""

    def __init__(self, *, checks: list, **kw: Any) -> None:
        super().__init__(**kw)
        self.checks = checks

    def collect(self):  # type: ignore[override]
        by_variant: dict[str, list] = {}
        for check in self.checks:
            by_variant.setdefault(check.variant, []).append(check)
        for variant, vchecks in by_variant.items():
            yield VariantNode.from_parent(self, name=variant, checks=vchecks)


class VariantNode(pytest.Collector):
    """The checks of one variant of one model."""

    def __init__(self, *, checks: list, **kw: Any) -> None:
        super().__init__(**kw)
        self.checks = checks

    def collect(self):  # type: ignore[override]
        for check in self.checks:
            # The id given as a string is parsed the way pytest parses ids it reads back (a trailing
            # "[label]" is the parametrization), so the item's id equals the one in pytest's caches.
            yield CheckItem.from_parent(self, name=check.name, nodeid=f"{self.nodeid}::{check.name}", check=check)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = plugin_state(config)
    if config.getoption("robustspec_strict") and state.invalid_suites:
        # Strict: an invalid suite fails the whole session; the same on every xdist worker.
        config.hook.pytest_deselected(items=list(items))
        items[:] = []
