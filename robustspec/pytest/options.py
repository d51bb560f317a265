"""The ``robustspec`` option group and ini keys, and the session state built from them.

The gate's options (results, baselines, tolerance) live in :mod:`robustspec.pytest.gate`.
"""

from __future__ import annotations

import pytest

from ..config import STORE_ENV
from .state import STATE_KEY, PluginState


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("robustspec", "robustness suites for compressed networks")
    group.addoption(
        "--robustspec-store",
        dest="robustspec_store",
        default=None,
        metavar="DIR",
        help=f"artifact store directory (env {STORE_ENV}, ini robustspec_store; default .robustspec/store under rootdir)",
    )
    group.addoption(
        "--robustspec-specs",
        dest="robustspec_specs",
        default=None,
        metavar="DIR",
        help="directory of named building blocks (default: nearest specs/ above each suite)",
    )
    group.addoption(
        "--robustspec-strict",
        dest="robustspec_strict",
        action="store_true",
        default=False,
        help="any invalid suite fails the whole session (nothing runs)",
    )
    group.addoption(
        "--robustspec-device",
        dest="robustspec_device",
        default="auto",
        help="torch device for building and evaluating: auto (cuda when present), cpu, cuda, cuda:1 ...",
    )
    group.addoption(
        "--robustspec-build-threads",
        dest="robustspec_build_threads",
        default=None,
        metavar="N|auto",
        help="torch threads while building artifacts (ini robustspec_build_threads; default 1, so results "
        "do not depend on -n; 'auto' uses the per-worker cap: faster, not reproducible across -n)",
    )
    group.addoption(
        "--robustspec-quiet",
        dest="robustspec_quiet",
        action="store_true",
        default=False,
        help="do not show progress of long builds (neither does -q)",
    )
    parser.addini("robustspec_store", "artifact store directory, relative to rootdir", default="")
    parser.addini("robustspec_specs", "directory of named building blocks, relative to rootdir", default="")
    parser.addini("robustspec_build_threads", "torch threads while building artifacts: a number or auto", default="1")
    parser.addini(
        "robustspec_suite_dirs", "names of directories whose YAML files are suites", type="args", default=["suites"]
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.stash[STATE_KEY] = PluginState(config)
    config.addinivalue_line("markers", "robustspec: an item generated from a robustspec suite")
