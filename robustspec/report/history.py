"""Runs kept by commit (``--robustspec-history DIR``), to compare with any of them and to draw trends.

In the spirit of pytest-benchmark's autosave: every session that ran robustspec items writes its results
document into the history directory as ``NNNN_<commit>_<UTC time>.json`` (``NNNN`` counts up,
``<commit>`` is the first 12 digits of ``git rev-parse HEAD``, ``nocommit`` outside git). A kept run is
named by

- its number (``3`` or ``0003``), or a negative index (``-1`` the newest, ``-2`` the one before),
- ``latest``,
- a commit prefix of at least 4 hex digits (the newest run of that commit).

``robustspec compare`` takes such a name where it takes a results file (``--history DIR``), and
``robustspec report --history DIR`` adds each item's measured value over the kept runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ResultsError
from .results import finite_number, load_document, write_document

__all__ = ["KeptRun", "keep_run", "kept_runs", "resolve_run", "series", "series_with_intervals"]

_NAME = re.compile(r"^(\d{4,})_([0-9a-f]{4,40}|nocommit)_(\d{8}T\d{6}Z)\.json$")


@dataclass(frozen=True)
class KeptRun:
    """One results document in a history directory."""

    number: int
    commit: str | None
    created: str  # the UTC time in the file name
    path: Path

    @property
    def label(self) -> str:
        return f"{self.number:04d} {self.commit[:8] if self.commit else 'nocommit'}"


def kept_runs(directory: str | os.PathLike[str]) -> list[KeptRun]:
    """The runs kept in ``directory``, oldest first; files not named like kept runs are ignored."""
    root = Path(directory)
    if not root.is_dir():
        return []
    runs = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            commit = None if m.group(2) == "nocommit" else m.group(2)
            runs.append(KeptRun(int(m.group(1)), commit, m.group(3), p))
    return sorted(runs, key=lambda r: r.number)


def keep_run(directory: str | os.PathLike[str], doc: Mapping[str, Any], now: datetime | None = None) -> Path:
    """Write ``doc`` as the next kept run (atomically; an existing file is never overwritten)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    commit = str(doc.get("git_commit") or "")[:12].lower()
    commit = commit if re.fullmatch(r"[0-9a-f]{4,12}", commit) else "nocommit"
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    runs = kept_runs(root)
    number = runs[-1].number + 1 if runs else 1
    while True:
        path = root / f"{number:04d}_{commit}_{stamp}.json"
        try:  # claim the number: two sessions finishing at once get two numbers
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            number += 1
            continue
        os.close(fd)
        break
    write_document(path, doc)
    return path


def resolve_run(directory: str | os.PathLike[str], name: str) -> Path:
    """The kept run ``name`` stands for (see the module docstring); :class:`ResultsError` when none does."""
    runs = kept_runs(directory)
    if not runs:
        raise ResultsError(f"{directory}: no kept runs (run pytest with --robustspec-history {directory})")
    text = name.strip().lower()
    if text == "latest":
        return runs[-1].path
    if re.fullmatch(r"-\d+", text):
        index = int(text)
        if -index > len(runs):
            raise ResultsError(f"{directory}: {name}: only {len(runs)} kept runs")
        return runs[index].path
    if text.isdigit() and len(text) <= 6:
        for run in runs:
            if run.number == int(text):
                return run.path
    if re.fullmatch(r"[0-9a-f]{4,40}", text):
        matching = [r for r in runs if r.commit and (r.commit.startswith(text) or text.startswith(r.commit))]
        if matching:
            return matching[-1].path
    shown = ", ".join(r.label for r in runs[-5:])
    raise ResultsError(
        f"{directory}: no kept run {name!r} (a number, -1 for the newest, latest, or a commit; newest: {shown})"
    )


def series(runs: list[KeptRun]) -> tuple[list[str], dict[str, list[float | None]]]:
    """Run labels, and each item's measured value per run (None where it did not run or had no number)."""
    labels, values, _ = series_with_intervals(runs)
    return labels, values


def series_with_intervals(
    runs: list[KeptRun],
) -> tuple[list[str], dict[str, list[float | None]], dict[str, list[tuple[float, float] | None]]]:
    """:func:`series`, and each value's interval per run (the item's ``ci_low``/``ci_high``; None where it
    recorded none)."""
    labels = [r.label for r in runs]
    values: dict[str, list[float | None]] = {}
    intervals: dict[str, list[tuple[float, float] | None]] = {}
    for i, run in enumerate(runs):
        try:
            doc = load_document(run.path)
        except ResultsError:
            continue
        for item in doc.get("items", []):
            if not isinstance(item, Mapping) or "id" not in item:
                continue
            props = item.get("properties") or {}
            row = values.setdefault(str(item["id"]), [None] * len(runs))
            row[i] = finite_number(props.get("measured"))
            lo, hi = finite_number(props.get("ci_low")), finite_number(props.get("ci_high"))
            cis = intervals.setdefault(str(item["id"]), [None] * len(runs))
            if row[i] is not None and lo is not None and hi is not None and lo <= hi:
                cis[i] = (lo, hi)
    return labels, dict(sorted(values.items())), {k: intervals[k] for k in sorted(values)}
