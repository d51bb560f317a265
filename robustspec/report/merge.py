"""Join per-shard results files (``pytest --robustspec-shard I/N``) into one, for ``compare`` and ``report``.

``robustspec merge OUT shard1.json shard2.json ...``: items are unioned by id. The same record in two
files (the same shard's file given twice) counts once; an id whose records differ in anything but their
durations is an error naming it. Summary and artifacts are recomputed (:func:`make_document`); the
environment keeps what every file agrees on and lists the values where they differ; the git commits must
agree (else a warning, and the merged file records none). Files written by shards say how they were split
(``shard``): files split differently (another shard count, or another partition: their ``plan`` digests
differ) are an error, since some items may then have run in two shards or in none; shards missing from
the files are a warning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ResultsError
from .results import make_document

__all__ = ["merge_documents"]

#: Top-level fields :func:`make_document` writes or the merge derives; any other is kept when all agree.
_OWN = {"format", "version", "created", "git_commit", "environment", "summary", "artifacts", "items"}
_DERIVED = {"exitstatus", "shard", "merged_from"}
#: Fields of an item that may differ between two runs of it without its numbers differing.
_INCIDENTAL = {"duration"}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        if key in _INCIDENTAL:
            continue
        if key == "properties" and isinstance(a.get(key), Mapping) and isinstance(b.get(key), Mapping):
            out += [f"properties.{k}" for k in _differences(a[key], b[key])]
        elif not _same(a.get(key), b.get(key)):
            out.append(key)
    return out


def _environment(envs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each field: the value all files agree on, else the list of their distinct values; workers summed."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for env in envs for k in env):  # in the files' order
        if key == "workers":
            out[key] = sum(v for env in envs if isinstance(v := env.get(key), int))
            continue
        values: list[Any] = []
        for env in envs:
            if key in env and not any(_same(env[key], v) for v in values):
                values.append(env[key])
        out[key] = values[0] if len(values) == 1 else values
    return out


def _exitstatus(statuses: list[int]) -> int:
    """0 when every shard passed; 1 when any failed; else the first other status."""
    bad = [s for s in statuses if s]
    return 1 if 1 in bad else (bad[0] if bad else 0)


def merge_documents(docs: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], list[str]]:
    """``[(name, results document), ...]`` → the merged document and the warnings (one line each).

    :class:`ResultsError` when two files hold different records under one id, or were split differently.
    """
    if not docs:
        raise ResultsError("nothing to merge: name at least one results file")
    warnings: list[str] = []
    _check_shards(docs, warnings)

    records: dict[str, dict[str, Any]] = {}
    source: dict[str, str] = {}
    for name, doc in docs:
        for item in doc.get("items", []):
            iid = item["id"]
            if iid not in records:
                records[iid], source[iid] = dict(item), name
                continue
            diff = _differences(records[iid], item)
            if diff:
                raise ResultsError(
                    f"item {iid!r} is in {source[iid]} and {name} with different results "
                    f"({', '.join(diff[:5])}{' ...' if len(diff) > 5 else ''} differ)"
                )

    commits = {doc.get("git_commit") for _, doc in docs} - {None}
    commit = next(iter(commits)) if len(commits) == 1 else None
    if len(commits) > 1:
        listed = ", ".join(f"{name}: {str(doc.get('git_commit'))[:12]}" for name, doc in docs)
        warnings.append(f"the files come from different git commits ({listed}); the merged file records none")

    extra: dict[str, Any] = {}
    statuses = [doc["exitstatus"] for _, doc in docs if isinstance(doc.get("exitstatus"), int)]
    if statuses:
        extra["exitstatus"] = _exitstatus(statuses)
    for key in sorted({k for _, doc in docs for k in doc} - _OWN - _DERIVED):
        values = [doc.get(key) for _, doc in docs]
        if all(_same(values[0], v) for v in values):
            extra[key] = values[0]
        else:
            warnings.append(f"{key!r} differs between the files; the merged file leaves it out")
    extra["merged_from"] = [
        {
            "path": name,
            "git_commit": doc.get("git_commit"),
            "created": doc.get("created"),
            "items": len(doc.get("items", [])),
            **({"shard": doc["shard"]} if isinstance(doc.get("shard"), Mapping) else {}),
        }
        for name, doc in docs
    ]
    envs = [doc.get("environment") or {} for _, doc in docs]
    merged = make_document([records[i] for i in sorted(records)], _environment(envs), commit, extra)
    return merged, warnings


def _check_shards(docs: Sequence[tuple[str, Mapping[str, Any]]], warnings: list[str]) -> None:
    sharded = [(name, doc["shard"]) for name, doc in docs if isinstance(doc.get("shard"), Mapping)]
    if not sharded:
        return
    first_name, first = sharded[0]
    for name, shard in sharded[1:]:
        if shard.get("count") != first.get("count") or shard.get("plan") != first.get("plan"):
            raise ResultsError(
                f"{first_name} (shard {first.get('index')}/{first.get('count')}) and {name} (shard "
                f"{shard.get('index')}/{shard.get('count')}) were split differently (their shard plans "
                "differ), so some items may have run in two shards or in none: run every shard on the same "
                "items with the same store, or with --robustspec-shard-balance items"
            )
    if len(sharded) < len(docs):
        unsharded = [name for name, doc in docs if not isinstance(doc.get("shard"), Mapping)]
        warnings.append(f"{', '.join(unsharded)}: not a shard's results file; merged as it is")
    count = first.get("count")
    if isinstance(count, int):
        missing = sorted(set(range(1, count + 1)) - {shard.get("index") for _, shard in sharded})
        if missing:
            warnings.append(
                f"shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of {count} "
                "not among the files: their items are missing"
            )
