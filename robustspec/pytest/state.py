"""Per-session state shared by the hook modules, kept in ``config.stash`` (no attributes on Config)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .. import config as rsconfig

__all__ = ["PluginState", "plugin_state", "STATE_KEY", "SHARD_ENV", "verbosity"]

#: The environment variable that says which shard to run (``2/3``), handy in a CI matrix.
SHARD_ENV = "ROBUSTSPEC_SHARD"


class PluginState:
    """What the plugin resolved from options once, and the workspace, created on first use in each process."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.workspace: Any = None
        self.invalid_suites: list[str] = []
        self.build_threads = self._build_threads()  # a bad value stops the session in pytest_configure
        self.shard, self.shard_balance = self._shard()  # likewise
        #: What sharding did (:mod:`robustspec.pytest.shard`): set at collection, or on the xdist
        #: controller from a worker's; the results file records it.
        self.shard_record: dict[str, Any] | None = None

    def store_root(self) -> Path | str:
        """The same resolution as ``robustspec cache`` (:func:`robustspec.config.store_location`): a
        directory, or a URL."""
        return rsconfig.store_location(
            self.config.getoption("robustspec_store"),
            os.environ,
            str(self.config.getini("robustspec_store") or ""),
            self.config.rootpath,
        )

    def open_store(self) -> Any:
        """The store (:func:`robustspec.config.open_store`, as ``robustspec cache`` and the API open it)."""
        return rsconfig.open_store(
            self.config.getoption("robustspec_store"),
            os.environ,
            str(self.config.getini("robustspec_store") or ""),
            self.config.rootpath,
            cache=self.config.getoption("robustspec_store_cache"),
            cache_ini=str(self.config.getini("robustspec_store_cache") or ""),
        )

    def _build_threads(self) -> int | None:
        """Torch threads while building (None: auto)."""
        threads = str(
            self.config.getoption("robustspec_build_threads") or self.config.getini("robustspec_build_threads")
        )
        if threads != "auto" and not (threads.isdigit() and int(threads) > 0):
            raise pytest.UsageError(f"--robustspec-build-threads: expected a positive number or auto, got {threads!r}")
        return None if threads == "auto" else int(threads)

    def _shard(self) -> tuple[tuple[int, int] | None, str]:
        """``(I, N)`` from ``--robustspec-shard``, else ``$ROBUSTSPEC_SHARD``, else the ini key (None: not
        sharded), and how groups are weighed."""
        from ..shard import BALANCES, parse_shard

        balance = str(
            self.config.getoption("robustspec_shard_balance") or self.config.getini("robustspec_shard_balance")
        )
        if balance not in BALANCES:
            raise pytest.UsageError(f"--robustspec-shard-balance: expected {' or '.join(BALANCES)}, got {balance!r}")
        for where, raw in (
            ("--robustspec-shard", self.config.getoption("robustspec_shard")),
            (SHARD_ENV, os.environ.get(SHARD_ENV)),
            ("ini robustspec_shard", self.config.getini("robustspec_shard")),
        ):
            if raw is not None and str(raw).strip():
                try:
                    return parse_shard(str(raw)), balance
                except ValueError as exc:
                    raise pytest.UsageError(f"{where}: {exc}") from None
        return None, balance

    def specs_dir(self) -> Path | None:
        opt = self.config.getoption("robustspec_specs") or self.config.getini("robustspec_specs")
        return (self.config.rootpath / str(opt)).resolve() if opt else None

    def get_workspace(self) -> Any:
        """The process's workspace. torch is not imported here: the workspace imports it, sets the threads
        (under xdist: the cores shared among the workers) and resolves the device when something must be
        built or a model restored, so a warm run judging stored numbers never imports it."""
        if self.workspace is None:
            from ..workspace import Workspace

            threads = None
            workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
            if workers:
                cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
                threads = max(1, cores // workers)
            self.workspace = Workspace(
                self.open_store(),
                self.config.getoption("robustspec_device"),
                build_threads=self.build_threads,
                torch_threads=threads,
            )
        return self.workspace


STATE_KEY = pytest.StashKey[PluginState]()


def plugin_state(config: pytest.Config) -> PluginState:
    return config.stash[STATE_KEY]


def verbosity(config: pytest.Config) -> int:
    """pytest's verbosity: 0 by default, -1 with ``-q``, -2 with ``-qq``, 1 with ``-v``."""
    return int(config.get_verbosity())
