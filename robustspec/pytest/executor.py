"""The session's executor (:mod:`robustspec.executors`): where builds run, the items staying here.

``--robustspec-executor``, else ``$ROBUSTSPEC_EXECUTOR``, else the ini key ``robustspec_executor``, else
``local``. A value no executor takes stops the session in ``pytest_configure``. With an executor that
builds elsewhere (``ray``), the process that runs the items hands it every selected check before the
first runs (``pytest_runtestloop``), so the cluster builds them in parallel while the items, in order,
wait for theirs and judge them from the store; an xdist worker, which gets its items one at a time, hands
each over as it comes.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from ..errors import RobustSpecError, UsageError
from ..executors import EXECUTOR_ENV, Executor, parse_executor
from .progress import ensure_sink
from .state import plugin_state

__all__ = ["EXECUTOR_KEY", "executor_for", "resolve_executor"]

EXECUTOR_KEY = pytest.StashKey[Executor]()


def resolve_executor(config: pytest.Config) -> Executor:
    """The option, else the environment, else the ini key, else ``local``; a bad value is a usage error."""
    for where, raw in (
        ("--robustspec-executor", config.getoption("robustspec_executor")),
        (EXECUTOR_ENV, os.environ.get(EXECUTOR_ENV)),
        ("ini robustspec_executor", config.getini("robustspec_executor")),
    ):
        if raw is not None and str(raw).strip():
            try:
                return parse_executor(str(raw))
            except RobustSpecError as exc:
                raise pytest.UsageError(f"{where}: {exc}") from None
    return parse_executor("local")


def executor_for(config: pytest.Config) -> Executor:
    return config.stash[EXECUTOR_KEY]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[EXECUTOR_KEY] = resolve_executor(config)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    config = session.config
    executor = executor_for(config)
    xdist = getattr(config, "workerinput", None) is not None or config.pluginmanager.has_plugin("dsession")
    if executor.builds_here or xdist or config.option.collectonly:
        return None
    checks = [item.check for item in session.items if getattr(item, "check", None) is not None]
    if checks:
        ensure_sink(config)
        try:
            executor.start(plugin_state(config).get_workspace(), checks, device=config.getoption("robustspec_device"))
        except UsageError as exc:  # the cluster cannot be reached: nothing would run
            raise pytest.UsageError(f"--robustspec-executor {executor.describe()}: {exc}") from None
    return None  # pytest's own loop runs the items


def pytest_unconfigure(config: pytest.Config) -> None:
    executor = config.stash.get(EXECUTOR_KEY, None)
    if executor is not None:
        executor.close()
