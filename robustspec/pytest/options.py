"""The ``robustspec`` option group and ini keys, and the session state built from them.

Every ``--robustspec-*`` option is declared here, the gate's (results, baselines, history, tolerance)
included; :mod:`robustspec.pytest.gate` reads them.
"""

from __future__ import annotations

import pytest

from ..config import CACHE_ENV, STORE_ENV
from ..executors import EXECUTOR_ENV
from ..report.compare import DEFAULT_TOLERANCE
from .state import SHARD_ENV, STATE_KEY, PluginState


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("robustspec", "robustness suites for compressed networks")
    group.addoption(
        "--robustspec-store",
        dest="robustspec_store",
        default=None,
        metavar="DIR|URL",
        help=f"artifact store directory, or URL of a shared one (s3://bucket/prefix, gs://..., file:///dir) "
        f"(env {STORE_ENV}, ini robustspec_store; default .robustspec/store under rootdir)",
    )
    group.addoption(
        "--robustspec-store-cache",
        dest="robustspec_store_cache",
        default=None,
        metavar="DIR",
        help=f"local cache of a store at a URL (env {CACHE_ENV}, ini robustspec_store_cache; "
        "default .robustspec/cache/<digest of the URL> under rootdir)",
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
        help="torch threads every build runs with (ini robustspec_build_threads; default 1, so results do "
        "not depend on -n; training depends on the count, so another count is part of the trained model's key; "
        "'auto': the per-worker share of the cores, so the key then depends on -n)",
    )
    group.addoption(
        "--robustspec-executor",
        dest="robustspec_executor",
        default=None,
        metavar="local|ray|ray://HOST:PORT",
        help=f"where builds run (env {EXECUTOR_ENV}, ini robustspec_executor; default local): 'ray' sends them "
        "as Ray tasks to the cluster of $RAY_ADDRESS or of this machine, 'ray://HOST:PORT' to a Ray Client "
        "address; the workers write artifacts into the store, which they must share, and the items are judged "
        "here (pip install 'robustspec[ray]')",
    )
    group.addoption(
        "--robustspec-quiet",
        dest="robustspec_quiet",
        action="store_true",
        default=False,
        help="do not show progress of long builds (neither does -q)",
    )
    # Sharding (robustspec.pytest.shard).
    group.addoption(
        "--robustspec-shard",
        dest="robustspec_shard",
        default=None,
        metavar="I/N",
        help=f"run only shard I of N (env {SHARD_ENV}, ini robustspec_shard): robustspec items grouped by "
        "the trained model they need, each group in one shard, balanced by recorded build times (else item "
        "counts); the other shards' items are deselected. robustspec merge joins the shards' results files",
    )
    group.addoption(
        "--robustspec-shard-balance",
        dest="robustspec_shard_balance",
        default=None,
        metavar="times|items",
        help="how shards are balanced (ini robustspec_shard_balance): 'times' (default): by the store's "
        "recorded build times when it has one for every group, else by item counts; 'items': by item counts "
        "(every shard must see the same build log for 'times' to split alike)",
    )
    # The gate's: results, baselines, history, tolerance (robustspec.pytest.gate).
    group.addoption(
        "--robustspec-results",
        dest="robustspec_results",
        default=None,
        metavar="PATH",
        help="where the session's results file goes (default .robustspec/results.json under rootdir)",
    )
    group.addoption(
        "--robustspec-baseline",
        dest="robustspec_baseline",
        default=None,
        metavar="PATH",
        help="compare every check with this results file; a regression fails the item",
    )
    group.addoption(
        "--robustspec-save-baseline",
        dest="robustspec_save_baseline",
        default=None,
        metavar="PATH",
        help="also save this session's results as a baseline to PATH",
    )
    group.addoption(
        "--robustspec-history",
        dest="robustspec_history",
        default=None,
        metavar="DIR",
        help="also keep this session's results in DIR by commit (NNNN_<commit>_<time>.json), for "
        "robustspec compare --history DIR and robustspec report --history DIR",
    )
    group.addoption(
        "--robustspec-regression-tolerance",
        dest="robustspec_regression_tolerance",
        default=DEFAULT_TOLERANCE,
        metavar="T",
        help="how far a measured value may move the wrong way against the baseline, unless the "
        "expectation sets regression: {max-drop: ...} (default %(default)s; absolute within "
        "[-1, 1], relative beyond)",
    )
    parser.addini("robustspec_store", "artifact store directory, relative to rootdir, or URL", default="")
    parser.addini("robustspec_store_cache", "local cache of a store at a URL, relative to rootdir", default="")
    parser.addini("robustspec_specs", "directory of named building blocks, relative to rootdir", default="")
    parser.addini("robustspec_build_threads", "torch threads while building artifacts: a number or auto", default="1")
    parser.addini("robustspec_executor", "where builds run: local, ray or ray://HOST:PORT", default="")
    parser.addini("robustspec_shard", "run only this shard of the robustspec items: I/N", default="")
    parser.addini("robustspec_shard_balance", "how shards are balanced: times or items", default="times")
    parser.addini(
        "robustspec_suite_dirs", "names of directories whose YAML files are suites", type="args", default=["suites"]
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.stash[STATE_KEY] = PluginState(config)
    config.addinivalue_line("markers", "robustspec: an item generated from a robustspec suite")
