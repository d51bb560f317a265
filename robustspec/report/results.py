"""The results document: every robustspec item of a session with its numbers, the environment and the keys.

One JSON file per session, written by the controlling process (the xdist controller, or the only process)
from the reports of every worker, so each item appears once whatever ``-n`` is::

    {
      "format": "robustspec-results", "version": 1,
      "created": "2026-11-24T10:00:00+00:00",
      "git_commit": "9a4dea0..." | null,
      "environment": {"python": ..., "platform": ..., "packages": {"torch": ...}, "torch_threads": 1, "device": "cpu", "workers": 2},
      "summary": {"items": 15, "pass": 13, "fail": 1, "warn": 1, "error": 0, "skip": 0},
      "artifacts": {"<suite>/<model>/<variant>": {"artifact_key": ..., "eval_keys": {"<domain>": ...}}},
      "items": [{"id": "suites/x.yaml::resnet18::baseline::source-accuracy", "suite": ..., "model": ...,
                 "variant": ..., "check": ..., "domain": ..., "status": "pass", "outcome": "passed",
                 "message": null, "duration": 0.1, "properties": {"measured": 0.9, ...}}, ...]
    }

``status`` is the verdict: ``pass``, ``fail``, ``warn`` (``severity: warn``), ``error`` (the check could not
run: no numbers) or ``skip``. A baseline (``--robustspec-save-baseline``) is a results document too.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ResultsError

__all__ = [
    "finite_number",
    "domain_accuracies",
    "FORMAT",
    "VERSION",
    "STATUSES",
    "ResultsError",
    "ResultsCollector",
    "make_document",
    "artifacts_of",
    "static_environment",
    "runtime_environment",
    "git_commit",
    "write_document",
    "load_document",
    "items_by_id",
]

FORMAT = "robustspec-results"
VERSION = 1
STATUSES = ("pass", "fail", "warn", "error", "skip")
#: Distributions whose versions go into the environment.
PACKAGES = ("robustspec", "torch", "torchvision", "pytest", "pytest-xdist")
_MESSAGE_LIMIT = 4000
_LABELS = ("suite", "model", "variant", "check", "domain")


# --- building the document from pytest reports ----------------------------------------------------------


def _is_robustspec(report: Any) -> bool:
    if dict(getattr(report, "user_properties", []) or []).get("robustspec") == "1":
        return True
    return "robustspec" in (getattr(report, "keywords", None) or {})


def _message(report: Any) -> str | None:
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2])
    text = getattr(report, "longreprtext", "") or ""
    text = text.strip()
    if not text:
        return None
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


class ResultsCollector:
    """Accumulates the setup/call/teardown reports of robustspec items (from any worker) by node id."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def add(self, report: Any) -> None:
        if not _is_robustspec(report):
            return
        entry = self.items.get(report.nodeid)
        if entry is None:
            entry = self.items[report.nodeid] = {
                "id": report.nodeid,
                "outcome": None,
                "status": None,
                "message": None,
                "duration": 0.0,
                "properties": {},
            }
        entry["duration"] = round(entry["duration"] + float(getattr(report, "duration", 0.0) or 0.0), 6)
        props = {str(k): _plain(v) for k, v in (getattr(report, "user_properties", None) or [])}
        if report.when == "call" or (report.when == "setup" and not report.passed):
            entry["outcome"] = report.outcome
            entry["properties"].update(props)
            entry["message"] = _message(report) if not report.passed else entry["properties"].get("warning")
            entry["status"] = _status(report.outcome, entry["properties"])
        elif report.when == "teardown" and report.failed:
            entry["outcome"] = "failed"
            entry["status"] = "error" if entry["status"] in (None, "pass", "skip") else entry["status"]
            extra = _message(report) or "teardown failed"
            entry["message"] = f"{entry['message']}\n{extra}" if entry["message"] else extra
        for key in _LABELS:
            if key in entry["properties"]:
                entry[key] = entry["properties"][key]

    def records(self) -> list[dict[str, Any]]:
        out = []
        for nodeid in sorted(self.items):
            entry = self.items[nodeid]
            record = {"id": nodeid, **{k: entry[k] for k in _LABELS if k in entry}}
            record.update((k, v) for k, v in entry.items() if k not in record)
            if record["status"] is None:  # only a teardown report: should not happen, but never a silent pass
                record["status"], record["outcome"] = "error", "failed"
            out.append(record)
        return out


def _status(outcome: str, props: Mapping[str, Any]) -> str:
    if outcome == "skipped":
        return "skip"
    status = props.get("status")
    if "measured" not in props or status not in ("pass", "fail", "warn"):
        return "error" if outcome == "failed" else ("pass" if status == "pass" else "error")
    if outcome == "failed" and status != "fail":
        return "fail"
    if outcome == "passed" and status == "fail":  # cannot happen through the plugin; the verdict is pytest's
        return "pass"
    return str(status)


def artifacts_of(items: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Content keys of every subject (suite/model/variant) the items measured, from their properties."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        props = item.get("properties", {})
        if "artifact_key" not in props:
            continue
        subject = f"{props.get('suite')}/{props.get('model')}/{props.get('variant')}"
        entry = out.setdefault(subject, {"artifact_key": props["artifact_key"], "eval_keys": {}})
        for k, v in props.items():
            if k.startswith("eval_key[") and k.endswith("]"):
                entry["eval_keys"][k[len("eval_key[") : -1]] = v
    return dict(sorted(out.items()))


def make_document(
    records: list[dict[str, Any]],
    environment: Mapping[str, Any] | None = None,
    commit: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    summary = {"items": len(records), **{s: 0 for s in STATUSES}}
    for r in records:
        summary[r.get("status", "error")] = summary.get(r.get("status", "error"), 0) + 1
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "environment": dict(environment or {}),
        "summary": summary,
        "artifacts": artifacts_of(records),
        "items": records,
    }
    if extra:
        doc.update(extra)
    return doc


# --- environment ---------------------------------------------------------------------------------------


def static_environment() -> dict[str, Any]:
    """Python, platform and package versions; imports nothing heavy."""
    from importlib.metadata import PackageNotFoundError, version

    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "packages": packages,
    }


def runtime_environment(device: str | None = None) -> dict[str, Any]:
    """Torch threads and device of this process, if torch is loaded here (it is not imported for this)."""
    torch = sys.modules.get("torch")
    out: dict[str, Any] = {}
    if torch is not None:
        try:
            out["torch_threads"] = int(torch.get_num_threads())
        except Exception:  # noqa: BLE001 - a half-imported torch must not break the results file
            pass
    if device:
        out["device"] = device
    return out


def git_commit(cwd: Path) -> str | None:
    """``git rev-parse HEAD`` in ``cwd``, or None (no git, not a repository, no commit yet, ...)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


# --- reading and writing -------------------------------------------------------------------------------


def write_document(path: Path, doc: Mapping[str, Any]) -> None:
    """Write atomically: a temporary file in the same directory, flushed, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a results (or baseline) file; problems are :class:`ResultsError` with the path."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{p}: no such file") from None
    except OSError as exc:
        raise ResultsError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{p}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ResultsError(f'{p}: not a robustspec results file (no "format": "{FORMAT}")')
    if doc.get("version") != VERSION:
        raise ResultsError(f"{p}: results format version {doc.get('version')!r}; this robustspec reads {VERSION}")
    items = doc.get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in items):
        raise ResultsError(f'{p}: "items" must be a list of objects with an "id"')
    items_by_id(doc, source=str(p))
    return doc


def items_by_id(doc: Mapping[str, Any], source: str = "results") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in doc.get("items", []):
        if item["id"] in out:
            raise ResultsError(f"{source}: item {item['id']!r} appears twice")
        item.setdefault("properties", {})
        out[item["id"]] = item
    return out


def finite_number(value: Any) -> float | None:
    """A property's value as a finite float; None for missing, booleans, text and NaN/inf."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def domain_accuracies(props: Mapping[str, Any]) -> dict[str, float]:
    """The ``accuracy[<domain>]`` properties of an item, as {domain: accuracy}, in recorded order."""
    out: dict[str, float] = {}
    for k, v in props.items():
        x = finite_number(v)
        if k.startswith("accuracy[") and k.endswith("]") and x is not None:
            out[k[len("accuracy[") : -1]] = x
    return out
