"""pytest hooks of the CI gate (entry point ``robustspec-report``): results file, baselines, their summary.

The controlling process (the xdist controller, or the only process) collects every robustspec item's
report, ``user_properties`` included, from whichever worker ran it, and at the end of the session writes
one results file (:mod:`robustspec.report.results`). Workers send their torch threads and device through
xdist's ``workeroutput``. The baseline is read once per process; items compare themselves with it in
:func:`robustspec.report.gate.conclude`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .compare import DEFAULT_TOLERANCE, fmt_number
from .results import (
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

_key = pytest.StashKey["ReportState"]()
_WORKER_ENV = "robustspec_env"
_WORKER_BASELINE = "robustspec_baseline_path"
_LISTED = 10  # items listed per category in the terminal summary


class ReportState:
    """Per-process state of the CI-gate hooks (in ``config.stash``)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.collector = ResultsCollector()
        self.tolerance = _tolerance(config.getoption("robustspec_regression_tolerance"))
        self.results_path = self._path(config.getoption("robustspec_results")) or (
            config.rootpath / ".robustspec" / "results.json"
        )
        self.save_baseline = self._path(config.getoption("robustspec_save_baseline"))
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

    # -- hooks (this object is registered as a plugin) ----------------------------------------------

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
        if not records:
            return
        extra: dict[str, Any] = {"exitstatus": int(exitstatus)}
        if self.baseline is not None:
            extra["baseline"] = {
                "path": str(self.baseline_path),
                "git_commit": self.baseline.get("git_commit"),
                "tolerance": self.tolerance,
            }
        doc = make_document(records, _environment(self), git_commit(session.config.rootpath), extra)
        try:
            write_document(self.results_path, doc)
            self.written = self.results_path
            if self.save_baseline is not None:
                write_document(self.save_baseline, doc)
                self.saved = self.save_baseline
        except OSError as exc:
            self.write_error = f"cannot write results: {exc}"

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if self.is_worker:
            return
        tr = terminalreporter
        records = self.collector.records()
        if self.baseline_items is not None and records:
            _baseline_summary(tr, self, records)
        if self.write_error:
            tr.write_line(f"robustspec: {self.write_error}", red=True)
        if self.written is not None:
            tr.write_line(f"robustspec results: {_show(self.written, config)}")
        if self.saved is not None:
            tr.write_line(f"robustspec baseline saved: {_show(self.saved, config)}")
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


def report_state(config: pytest.Config) -> ReportState | None:
    return config.stash.get(_key, None)


# --- hooks ---------------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("robustspec", "robustness suites for compressed networks")
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
        "--robustspec-regression-tolerance",
        dest="robustspec_regression_tolerance",
        default=DEFAULT_TOLERANCE,
        metavar="T",
        help="how far a measured value may move the wrong way against the baseline, unless the "
        "expectation sets regression: {max-drop: ...} (default %(default)s; absolute within "
        "[-1, 1], relative beyond)",
    )


def pytest_configure(config: pytest.Config) -> None:
    state = ReportState(config)
    config.stash[_key] = state
    config.pluginmanager.register(state, "robustspec-report-state")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_key, None)
    if state is not None and config.pluginmanager.is_registered(state):
        config.pluginmanager.unregister(state)


def _device(config: pytest.Config) -> str | None:
    try:
        from .. import pytest_plugin

        main_state = config.stash.get(pytest_plugin._state_key, None)
        workspace = getattr(main_state, "workspace", None)
        return str(workspace.device) if workspace is not None else None
    except Exception:  # noqa: BLE001 - the device is informative only
        return None


def _environment(state: ReportState) -> dict[str, Any]:
    env = static_environment()
    runtime = list(state.worker_envs.values()) or [runtime_environment(_device(state.config))]
    for key in ("torch_threads", "device"):
        values = sorted(
            {str(r[key]) if key == "device" else r[key] for r in runtime if r.get(key) is not None}, key=str
        )
        env[key] = values[0] if len(values) == 1 else (values or None)
    env["workers"] = len(state.worker_envs)
    if state.worker_envs:
        env["per_worker"] = dict(sorted(state.worker_envs.items()))
    return env


# --- terminal summary ----------------------------------------------------------------------------------


def _show(path: Path, config: pytest.Config) -> str:
    try:
        return os.path.relpath(path, config.invocation_params.dir)
    except ValueError:
        return str(path)


def _baseline_summary(tr: Any, state: ReportState, records: list[dict[str, Any]]) -> None:
    assert state.baseline_items is not None
    tr.write_sep("-", f"robustspec baseline: {_show(state.baseline_path, state.config)}")  # type: ignore[arg-type]
    groups: dict[str, list[str]] = {"regression": [], "new": [], "stale": [], "not compared": []}
    ok = 0
    for r in records:
        props = r.get("properties", {})
        status = props.get("baseline_status")
        if status == "ok":
            ok += 1
        elif status == "regression":
            text = (
                f"{r['id']}: measured {fmt_number(_f(props.get('measured')))} vs baseline "
                f"{fmt_number(_f(props.get('baseline_measured')))} ({fmt_number(_f(props.get('baseline_delta')), signed=True)}"
                f", tolerance {props.get('regression_tolerance')})"
            )
            groups["regression"].append(text + (" [warn]" if r.get("status") == "warn" else ""))
        elif status == "new":
            groups["new"].append(f"{r['id']}: {props.get('baseline_reason', 'not in the baseline')}")
        elif status == "stale":
            groups["stale"].append(f"{r['id']}: {props.get('baseline_reason', '')}")
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
        for line in lines[:_LISTED]:
            tr.write_line(f"{name}: {line}", **({"red": True} if name == "regression" else {"yellow": True}))
        if len(lines) > _LISTED:
            tr.write_line(f"{name}: ... and {len(lines) - _LISTED} more (see the results file)")
    for item in gone[:_LISTED]:
        tr.write_line(f"gone: {item}: in the baseline, not in this run")
    if len(gone) > _LISTED:
        tr.write_line(f"gone: ... and {len(gone) - _LISTED} more")


def _f(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None
