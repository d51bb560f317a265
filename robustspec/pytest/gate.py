"""The CI gate: baseline comparison and verdict per item, the results file, the baseline summary.

Per item (:func:`conclude`, called by :class:`~robustspec.pytest.item.CheckItem` once its properties are
recorded): the item is compared with its baseline entry (:func:`robustspec.report.compare.compare_item`),
the pure :func:`robustspec.verdict.decide` says what becomes of it, and this module records it:

- ``regression_max_drop`` / ``severity``: the expectation's own settings, when it has them;
- with ``--robustspec-baseline``: ``baseline_status`` (``ok``, ``regression``, ``new``, ...),
  ``baseline_measured``, ``baseline_delta``, ``regression_tolerance``, ``baseline_reason`` and, when the
  comparison says what changed in the item's recipe or code, ``baseline_change``;
- ``verdict``: pass, fail, warn or flagged; ``status`` stays pass, fail or warn (a flagged item that
  fails is ``fail``); a warning is recorded as ``warning`` and emitted as a
  :class:`~robustspec.errors.RobustSpecWarning`;
- a failing verdict raises :class:`~robustspec.errors.CheckFailed` (:class:`BaselineRegression`,
  :class:`CheckFlagged`): one line with the numbers, never a traceback.

Per session, in the controlling process (the xdist controller, or the only process): every robustspec
item's report, ``user_properties`` included, is collected from whichever worker ran it, and the results
file is written at the end (:meth:`GateState.pytest_sessionfinish` → :meth:`GateState.write_results`), and
with ``--robustspec-history DIR`` kept there by commit too (:func:`robustspec.report.history.keep_run`).
Workers send their torch threads and device through xdist's ``workeroutput``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from ..errors import BaselineRegression, CheckFailed, CheckFlagged, RobustSpecWarning
from ..report.compare import compare_item, fmt_number
from ..report.history import keep_run
from ..report.results import (
    ResultsCollector,
    ResultsError,
    git_commit,
    items_by_id,
    load_document,
    make_document,
    runtime_environment,
    static_environment,
    write_document,
)
from ..verdict import Verdict, attack_flags, decide
from .executor import EXECUTOR_KEY
from .state import STATE_KEY, verbosity

__all__ = ["GateState", "gate_state", "conclude", "BASELINE_STATUS"]

_key = pytest.StashKey["GateState"]()
_WORKER_ENV = "robustspec_env"
_WORKER_BASELINE = "robustspec_baseline_path"
_LISTED = 10  # items listed per category in the terminal summary

#: ``baseline_status`` property by comparison status (other statuses are recorded as they are).
BASELINE_STATUS = {"regressed": "regression", "improved": "ok", "unchanged": "ok", "new": "new"}


# --- options and lifecycle -----------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    state = GateState(config)
    config.stash[_key] = state
    config.pluginmanager.register(state, "robustspec-gate-state")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_key, None)
    if state is not None and config.pluginmanager.is_registered(state):
        config.pluginmanager.unregister(state)


def gate_state(config: pytest.Config) -> GateState | None:
    return config.stash.get(_key, None)


# --- one item ------------------------------------------------------------------------------------------


def _warn(item: Any, message: str) -> None:
    check = item.check
    warnings.warn_explicit(
        RobustSpecWarning(message), RobustSpecWarning, filename=str(check.loaded.path), lineno=check.line
    )


def conclude(item: Any, outcome: Any) -> Verdict:
    """Baseline comparison and verdict for one judged item; raises :class:`CheckFailed` when it fails."""
    params = item.check.params
    severity = getattr(params, "severity", "fail") or "fail"
    spec = getattr(params, "regression", None)
    props: list[tuple[str, Any]] = item.user_properties
    if spec is not None:
        props.append(("regression_max_drop", spec.max_drop))
        if spec.confidence is not None:
            props.append(("regression_confidence", spec.confidence))
    if severity != "fail":
        props.append(("severity", severity))

    delta = None
    state = gate_state(item.config)
    if state is not None and state.baseline_items is not None:
        current = {"id": item.nodeid, "status": "pass" if outcome.passed else "fail", "properties": dict(props)}
        delta = compare_item(item.nodeid, state.baseline_items.get(item.nodeid), current, state.tolerance)
        props.append(("baseline_status", BASELINE_STATUS.get(delta.status, delta.status)))
        if delta.old is not None:
            props.append(("baseline_measured", round(delta.old, 6)))
        if delta.delta is not None and delta.status in ("regressed", "improved", "unchanged"):
            props.append(("baseline_delta", round(delta.delta, 6)))
        props.append(("regression_tolerance", delta.tolerance))
        if delta.reason:
            props.append(("baseline_reason", delta.reason))
        changes = list(getattr(delta, "changes", None) or [])
        if changes:
            props.append(("baseline_change", "; ".join(changes)))

    extra = getattr(outcome, "extra", None) or {}
    verdict = decide(
        outcome.passed,
        outcome.message,
        severity,
        delta,
        attack_flags(extra),
        getattr(params, "on_masking", "fail") or "fail",
        flagged=str(extra.get("flagged", "")).lower() in ("1", "true"),
    )
    props[:] = [(k, verdict.recorded_status if k == "status" else v) for k, v in props]
    props.append(("verdict", verdict.status))
    if verdict.status in ("warn", "flagged") and not verdict.fails:
        props.append(("warning", verdict.message))
    for text in verdict.warnings:  # pytest's warnings summary names the item above each
        _warn(item, text)
    if not verdict.fails:
        return verdict
    if verdict.status == "flagged":
        raise CheckFlagged(verdict.message)
    if verdict.regressed:
        raise BaselineRegression(verdict.message)
    raise CheckFailed(verdict.message)


# --- the session: results file and baseline --------------------------------------------------------------


class GateState:
    """Per-process state of the gate (in ``config.stash``, and registered as a plugin for its hooks)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.collector = ResultsCollector()
        self.tolerance = _tolerance(config.getoption("robustspec_regression_tolerance"))
        self.results_path = self._path(config.getoption("robustspec_results")) or (
            config.rootpath / ".robustspec" / "results.json"
        )
        self.save_baseline = self._path(config.getoption("robustspec_save_baseline"))
        self.history = self._path(config.getoption("robustspec_history"))
        self.kept: Path | None = None
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None and _WORKER_BASELINE in workerinput:
            raw = workerinput[_WORKER_BASELINE]
            self.baseline_path: Path | None = Path(raw) if raw else None
        else:
            self.baseline_path = self._path(config.getoption("robustspec_baseline"))
        self.baseline: dict[str, Any] | None = None
        self.baseline_items: dict[str, dict[str, Any]] | None = None
        if self.baseline_path is not None:
            try:
                self.baseline = load_document(self.baseline_path)
                self.baseline_items = items_by_id(self.baseline, str(self.baseline_path))
            except ResultsError as exc:
                raise pytest.UsageError(f"--robustspec-baseline: {exc}") from None
        self.worker_envs: dict[str, dict[str, Any]] = {}
        self.written: Path | None = None
        self.saved: Path | None = None
        self.write_error: str | None = None

    def _path(self, raw: str | None) -> Path | None:
        if not raw:
            return None
        p = Path(os.path.expanduser(raw))
        return (p if p.is_absolute() else self.config.invocation_params.dir / p).resolve()

    @property
    def is_worker(self) -> bool:
        return getattr(self.config, "workerinput", None) is not None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: workers read the baseline the controller resolved (their directory may differ)."""
        node.workerinput[_WORKER_BASELINE] = str(self.baseline_path) if self.baseline_path else ""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_worker:
            self.collector.add(report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        if isinstance(output.get(_WORKER_ENV), dict):
            gateway = getattr(node, "gateway", None)
            self.worker_envs[str(getattr(gateway, "id", len(self.worker_envs)))] = output[_WORKER_ENV]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker:
            session.config.workeroutput[_WORKER_ENV] = runtime_environment(_device(session.config))  # type: ignore[attr-defined]
            return
        records = self.collector.records()
        sharded = _shard_record(session.config) is not None and not session.config.option.collectonly
        if records or sharded:  # a shard's file, even an empty one: robustspec merge expects every shard's
            self.write_results(self.document(records, session, int(exitstatus)))

    def document(self, records: list[dict[str, Any]], session: pytest.Session, exitstatus: int) -> dict[str, Any]:
        """The session's results document."""
        extra: dict[str, Any] = {"exitstatus": exitstatus}
        if self.baseline is not None:
            extra["baseline"] = {
                "path": str(self.baseline_path),
                "git_commit": self.baseline.get("git_commit"),
                "tolerance": self.tolerance,
            }
        shard = _shard_record(session.config)
        if shard is not None:
            extra["shard"] = shard
        return make_document(records, _environment(self), git_commit(session.config.rootpath), extra)

    def write_results(self, doc: dict[str, Any]) -> None:
        """Write the results file (and the baseline copy); the one place a session's results leave it."""
        try:
            write_document(self.results_path, doc)
            self.written = self.results_path
            if self.save_baseline is not None:
                write_document(self.save_baseline, doc)
                self.saved = self.save_baseline
            if self.history is not None:
                self.kept = keep_run(self.history, doc)
        except OSError as exc:
            self.write_error = f"cannot write results: {exc}"

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        level = verbosity(config)
        if self.is_worker or level <= -2:
            return
        tr = terminalreporter
        records = self.collector.records()
        if self.baseline_items is not None and records:
            _baseline_summary(tr, self, records, listed=level >= 0)
        if self.write_error:
            tr.write_line(f"robustspec: {self.write_error}", red=True)
        if level < 0:
            return
        if self.written is not None:
            tr.write_line(f"robustspec results: {_show(self.written, config)}")
        if self.saved is not None:
            tr.write_line(f"robustspec baseline saved: {_show(self.saved, config)}")
        if self.kept is not None:
            tr.write_line(f"robustspec run kept: {_show(self.kept, config)}")
        elif self.save_baseline is not None and not records:
            tr.write_line("robustspec: no robustspec items ran; no baseline saved", yellow=True)


def _tolerance(raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"--robustspec-regression-tolerance: expected a number, got {raw!r}") from None
    if not value >= 0.0 or value == float("inf"):
        raise pytest.UsageError(f"--robustspec-regression-tolerance: expected a finite number >= 0, got {raw!r}")
    return value


def _shard_record(config: pytest.Config) -> dict[str, Any] | None:
    """What ``--robustspec-shard`` did (:mod:`robustspec.pytest.shard`), or None."""
    state = config.stash.get(STATE_KEY, None)
    return getattr(state, "shard_record", None)


def _device(config: pytest.Config) -> str | None:
    state = config.stash.get(STATE_KEY, None)
    workspace = getattr(state, "workspace", None)
    return str(workspace.device) if workspace is not None else None


def _environment(state: GateState) -> dict[str, Any]:
    env = static_environment()
    runtime = list(state.worker_envs.values()) or [runtime_environment(_device(state.config))]
    for key in ("torch_threads", "device"):
        values = sorted(
            {str(r[key]) if key == "device" else r[key] for r in runtime if r.get(key) is not None}, key=str
        )
        env[key] = values[0] if len(values) == 1 else (values or None)
    env["workers"] = len(state.worker_envs)
    executor = state.config.stash.get(EXECUTOR_KEY, None)
    if executor is not None and not executor.builds_here:  # where the builds ran (local: not recorded)
        env["executor"] = executor.describe()
    if state.worker_envs:
        env["per_worker"] = dict(sorted(state.worker_envs.items()))
    return env


# --- terminal summary ----------------------------------------------------------------------------------


def _show(path: Path, config: pytest.Config) -> str:
    try:
        return os.path.relpath(path, config.invocation_params.dir)
    except ValueError:
        return str(path)


def _baseline_summary(tr: Any, state: GateState, records: list[dict[str, Any]], listed: bool = True) -> None:
    """Counts per comparison category; regressions always listed, the other categories with ``listed``."""
    assert state.baseline_items is not None
    if listed:
        tr.write_sep("-", f"robustspec baseline: {_show(state.baseline_path, state.config)}")  # type: ignore[arg-type]
    groups: dict[str, list[str]] = {"regression": [], "new": [], "changed": [], "not compared": []}
    ok = 0
    for r in records:
        props = r.get("properties", {})
        status = props.get("baseline_status")
        change = f" [changed: {props['baseline_change']}]" if props.get("baseline_change") else ""
        if status == "ok":
            ok += 1
            if change:  # compared, within tolerance: still the change under review, so it is listed
                groups["changed"].append(
                    f"{r['id']}: measured {fmt_number(_f(props.get('measured')))} vs baseline "
                    f"{fmt_number(_f(props.get('baseline_measured')))}{change}"
                )
        elif status == "regression":
            text = (
                f"{r['id']}: measured {fmt_number(_f(props.get('measured')))} vs baseline "
                f"{fmt_number(_f(props.get('baseline_measured')))} ({fmt_number(_f(props.get('baseline_delta')), signed=True)}"
                f", tolerance {props.get('regression_tolerance')})"
            )
            groups["regression"].append(text + change + (" [warn]" if r.get("status") == "warn" else ""))
        elif status == "new":
            groups["new"].append(f"{r['id']}: {props.get('baseline_reason', 'not in the baseline')}")
        else:
            groups["not compared"].append(
                f"{r['id']}: {r.get('status')}: could not be compared "
                f"({(r.get('message') or 'no numbers').strip().splitlines()[-1]})"
            )
    ran = {r["id"] for r in records}
    gone = sorted(set(state.baseline_items) - ran)
    counts = [f"{ok} ok"] + [f"{len(v)} {k}" for k, v in groups.items() if v or k in ("regression", "new")]
    counts.append(f"{len(gone)} in the baseline but not run")
    tr.write_line("compared with the baseline: " + ", ".join(counts), bold=True)
    for name, lines in groups.items():
        if name != "regression" and not listed:
            continue
        for line in lines[:_LISTED]:
            tr.write_line(f"{name}: {line}", **({"red": True} if name == "regression" else {"yellow": True}))
        if len(lines) > _LISTED:
            tr.write_line(f"{name}: ... and {len(lines) - _LISTED} more (see the results file)")
    if not listed:
        return
    for item in gone[:_LISTED]:
        tr.write_line(f"gone: {item}: in the baseline, not in this run")
    if len(gone) > _LISTED:
        tr.write_line(f"gone: ... and {len(gone) - _LISTED} more")


def _f(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None
