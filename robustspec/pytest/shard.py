"""``--robustspec-shard I/N``: keep the items of one shard, deselect the others' (:mod:`robustspec.shard`).

After every other selection (``-k``, ``-m``, ``--lf``: ``trylast``), each robustspec item is keyed by the
content key of the trained model it needs (:meth:`~robustspec.workspace.Workspace.model_key`: no torch,
nothing built), the groups are balanced over the shards, and the items of the other shards are reported
as deselected, as ``-k`` does. Every xdist worker computes the same partition from the same items and
store. Other tests are not sharded: every shard runs them.

What the partition was (shard, groups, balance, the plan's digest) goes to the results file; under xdist
a worker hands it to the controller, which writes that file. A shard left without items (more shards than
groups) is a success, not pytest's "no tests collected".
"""

from __future__ import annotations

from typing import Any

import pytest

from ..errors import RobustSpecError
from ..shard import plan, subtree_seconds
from .item import CheckItem
from .state import plugin_state, verbosity

_WORKER_KEY = "robustspec_shard"


def _group_keys(config: pytest.Config, items: list[CheckItem]) -> dict[str, str]:
    """Item id → the content key of its trained model (a suite file's model where it cannot be computed:
    that item fails when it runs, with the reason)."""
    workspace = plugin_state(config).get_workspace()
    keys: dict[tuple[int, int], str] = {}
    out = {}
    for item in items:
        check = item.check
        memo = (id(check.loaded.suite), id(check.model))
        if memo not in keys:
            try:
                keys[memo] = workspace.model_key(check.loaded.suite, check.model)
            except (RobustSpecError, OSError, ValueError):
                keys[memo] = f"unkeyed:{check.loaded.path}::{check.model.name}"
        out[item.nodeid] = keys[memo]
    return out


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = plugin_state(config)
    if state.shard is None:
        return
    index, count = state.shard
    ours = [item for item in items if isinstance(item, CheckItem)]
    if not ours:
        return
    keys = _group_keys(config, ours)
    seconds = None
    if state.shard_balance == "times" and keys:
        seconds = subtree_seconds(state.get_workspace().store, sorted(set(keys.values())))
    shard_plan = plan(((item.nodeid, keys[item.nodeid]) for item in ours), count, seconds)
    kept = [item for item in items if not isinstance(item, CheckItem) or shard_plan.shards[item.nodeid] == index]
    if len(kept) != len(items):
        kept_ids = {id(item) for item in kept}
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept_ids])
        items[:] = kept
    state.shard_record = {
        "index": index,
        "count": count,
        "balance": shard_plan.balance,
        "groups": len(shard_plan.groups),
        "groups_here": sum(1 for s in shard_plan.groups.values() if s == index),
        "items": sum(1 for s in shard_plan.shards.values() if s == index),
        "collected": len(shard_plan.shards),
        "load": round(shard_plan.load(index), 6),
        "total_load": round(sum(shard_plan.weights.values()), 6),
        "plan": shard_plan.digest,
    }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: every worker computed the same partition; keep the first one reported."""
    state = plugin_state(node.config)
    record = (getattr(node, "workeroutput", None) or {}).get(_WORKER_KEY)
    if state.shard_record is None and isinstance(record, dict):
        state.shard_record = record


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = plugin_state(config)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        if state.shard_record is not None:
            workeroutput[_WORKER_KEY] = state.shard_record
        return
    record = state.shard_record
    if (
        record is not None
        and record["items"] == 0
        and record["collected"] > 0
        and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
    ):
        session.exitstatus = pytest.ExitCode.OK  # an empty shard of a non-empty session is not an error


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    record = plugin_state(config).shard_record
    if record is None or verbosity(config) <= -2 or getattr(config, "workerinput", None) is not None:
        return
    unit = "s of recorded builds" if record["balance"] == "build-times" else " items"
    terminalreporter.write_line(
        f"robustspec shard {record['index']}/{record['count']}: {record['items']} of {record['collected']} "
        f"robustspec items, {record['groups_here']} of {record['groups']} trained-model groups "
        f"(balanced by {record['balance']}: {record['load']:g} of {record['total_load']:g}{unit})"
    )
