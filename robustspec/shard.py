"""Sharding a session over machines: items grouped by the trained model they need, groups balanced.

``pytest --robustspec-shard I/N`` runs the I-th of N shards (:mod:`robustspec.pytest.shard` applies it).
Every item that needs one trained model lands in one shard, so no two machines train it: items are grouped
by their trained model's content key (:meth:`robustspec.workspace.Workspace.model_key`, computed without
torch and without building), which also puts two suites' identical models in one group. Each group is
named by the smallest of its item ids (ids are relative to pytest's rootdir), so the name, and with it
every tie between groups, is the same on every machine even where content keys are not (another torch,
another checkout of an image tree).

Groups weigh what their builds took (:func:`subtree_seconds`: the store's build log, summed over every
artifact built from the trained model) when the store has a recorded build for every group, else their
item counts. :func:`assign` places them by greedy longest-processing-time first, deterministically: the
heaviest group first, each onto the least loaded shard (the lowest-numbered among equals).

The partition must be identical in every shard's process: with the same items, the same balance and, for
build times, the same build log. :func:`plan` returns a digest of the whole item→shard assignment, which
each shard's results file records and ``robustspec merge`` checks, so shards that were split differently
(each restored another store, say) are an error rather than items run twice or never.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BALANCES", "ShardPlan", "assign", "parse_shard", "plan", "subtree_seconds"]

#: How groups are weighed: ``times`` (recorded build seconds when every group has them, else item
#: counts) or ``items`` (item counts always).
BALANCES = ("times", "items")


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` → ``(2, 3)``; ValueError with the reason for anything but ``I/N`` with 1 <= I <= N."""
    raw = str(text).strip()
    index, sep, count = raw.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"expected I/N, two whole numbers such as 1/3, got {text!r}")
    i, n = int(index), int(count)
    if n < 1:
        raise ValueError(f"the number of shards must be at least 1, got {text!r}")
    if not 1 <= i <= n:
        raise ValueError(f"shard {i} of {n} does not exist: I must be between 1 and {n}, got {text!r}")
    return i, n


def assign(groups: Mapping[str, float], n: int) -> dict[str, int]:
    """Each group's shard (1..n): greedy longest-processing-time first over the groups sorted by weight.

    The heaviest group goes first (equal weights by name), each onto the shard with the least load so
    far (the lowest number among equals). Deterministic; the most loaded shard carries at most the least
    loaded one's load plus the heaviest group.
    """
    if n < 1:
        raise ValueError(f"the number of shards must be at least 1, got {n}")
    for name, weight in groups.items():
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"group {name!r}: weight must be a finite number >= 0, got {weight!r}")
    loads = [0.0] * n
    out: dict[str, int] = {}
    for name in sorted(groups, key=lambda g: (-groups[g], g)):
        shard = min(range(n), key=lambda s: (loads[s], s))
        loads[shard] += groups[name]
        out[name] = shard + 1
    return out


@dataclass(frozen=True)
class ShardPlan:
    """Which shard each item runs in, and how the groups were weighed."""

    count: int
    shards: dict[str, int]  # item id -> shard (1..count)
    groups: dict[str, int]  # group name (its smallest item id) -> shard
    weights: dict[str, float]  # group name -> weight
    balance: str  # "build-times" or "items": what the weights are
    digest: str  # sha256 of the item -> shard assignment

    def load(self, shard: int) -> float:
        return sum((w for g, w in self.weights.items() if self.groups[g] == shard), 0.0)


def plan(entries: Iterable[tuple[str, str]], count: int, seconds: Mapping[str, float] | None = None) -> ShardPlan:
    """Partition ``(item id, group key)`` pairs into ``count`` shards, a group never split.

    ``seconds`` maps group keys (the trained models' content keys) to recorded build seconds; they are
    the weights when every group has one, else each group weighs its item count.
    """
    members: dict[str, list[str]] = {}
    for item_id, key in entries:
        members.setdefault(key, []).append(item_id)
    names = {key: min(ids) for key, ids in members.items()}
    timed = bool(members) and seconds is not None and all(key in seconds for key in members)
    weights = {
        names[key]: (float(seconds[key]) if timed else float(len(ids)))  # type: ignore[index]
        for key, ids in members.items()
    }
    groups = assign(weights, count)
    shards = {item_id: groups[names[key]] for key, ids in members.items() for item_id in ids}
    lines = "".join(f"{item_id}\t{shards[item_id]}\n" for item_id in sorted(shards))
    digest = hashlib.sha256(f"{count}\n{lines}".encode()).hexdigest()
    return ShardPlan(count, shards, groups, weights, "build-times" if timed else "items", digest)


def subtree_seconds(store: Any, roots: Sequence[str]) -> dict[str, float]:
    """Recorded build seconds of each root (a trained model's key) and of everything built from it.

    Read from the store's build log (:meth:`robustspec.store.Store.builds`): each build's own seconds,
    without the builds nested in it, and of a key built twice its latest build; and from the sidecars'
    ``parents``, which lead each artifact to the trained model it was built from. Only roots with a
    recorded build of their own are in the result; data (which models are built from, not the other way
    round) counts for no group.
    """
    latest = dict(_own_seconds(store.builds()))  # a key built twice: its latest build
    wanted = set(roots)
    found: dict[str, str | None] = {}

    def root_of(key: str, depth: int = 0) -> str | None:
        if key in wanted:
            return key
        if key in found:
            return found[key]
        found[key] = None  # content keys form no cycles; this only guards against a damaged store
        if depth < 64:
            for parent in _parents(store, key):
                hit = root_of(parent, depth + 1)
                if hit is not None:
                    found[key] = hit
                    break
        return found[key]

    totals: dict[str, float] = {}
    for key, secs in latest.items():
        root = root_of(key)
        if root is not None:
            totals[root] = totals.get(root, 0.0) + secs
    return {root: round(total, 6) for root, total in totals.items() if root in latest}


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else None


def _own_seconds(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, float]]:
    """``(key, seconds)`` per build record, less the builds nested in it.

    A build that needs a parent not yet built builds it inside its own (an evaluation trains its model):
    its record's seconds include the parent's. Records of one process whose intervals (``time`` is when
    the build ended) lie within another's are its nested builds, and are subtracted from it; records
    without a process or an end time count as they are.
    """
    rows: list[list[Any]] = []  # [key, seconds, pid, start, end, own]
    for record in records:
        key, secs = record.get("key"), _number(record.get("seconds"))
        if isinstance(key, str) and secs is not None:
            end = _number(record.get("time"))
            rows.append([key, secs, record.get("pid"), None if end is None else end - secs, end, secs])
    by_pid: dict[Any, list[list[Any]]] = {}
    for row in rows:
        if row[2] is not None and row[4] is not None:
            by_pid.setdefault(row[2], []).append(row)
    slack = 0.01  # the end is wall-clock time, the seconds monotonic
    for pid_rows in by_pid.values():
        stack: list[list[Any]] = []
        for row in sorted(pid_rows, key=lambda r: (r[3], -r[4])):
            while stack and stack[-1][4] < row[4] - slack:
                stack.pop()  # ended before this one ended: not its parent
            if stack and stack[-1][3] <= row[3] + slack:
                stack[-1][5] = max(0.0, stack[-1][5] - row[1])
            stack.append(row)
    return [(row[0], round(row[5], 6)) for row in rows]


def _parents(store: Any, key: str) -> list[str]:
    try:
        meta, _ = store._read_meta(key)
    except Exception:  # noqa: BLE001 - a malformed key or an unreadable sidecar: no known parents
        return []
    parents = (meta or {}).get("parents") or []
    return [p for p in parents if isinstance(p, str)]
