"""The pytest plugin: suite files become items that build through the store, judge, and report numbers.

Registered through the ``pytest11`` entry point. It collects only YAML files in a ``suites/`` directory
(``robustspec_suite_dirs``), files named ``*.suite.yaml``, and YAML files named on the command line; it
imports torch only when such a file is collected, and patches nothing global.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from .errors import RobustSpecError, SpecErrors

STORE_ENV = "ROBUSTSPEC_STORE"
_state_key = pytest.StashKey["_PluginState"]()


class _PluginState:
    """Per-session state of the plugin (lives in ``config.stash``)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.workspace: Any = None
        self.invalid_suites: list[str] = []
        self.progress_dir: Path | None = None
        self.tail_stop = threading.Event()
        self.tail_thread: threading.Thread | None = None

    # -- configuration ------------------------------------------------------------------------------

    def store_root(self) -> Path:
        opt = self.config.getoption("robustspec_store")
        if opt:
            return Path(opt).expanduser().resolve()
        env = os.environ.get(STORE_ENV)
        if env:
            return Path(env).expanduser().resolve()
        ini = self.config.getini("robustspec_store")
        if ini:
            return (self.config.rootpath / str(ini)).resolve()
        return (self.config.rootpath / ".robustspec" / "store").resolve()

    def build_threads(self) -> int | None:
        """Torch threads while building (None: auto); checked in pytest_configure, so a bad value is a usage error."""
        threads = str(
            self.config.getoption("robustspec_build_threads") or self.config.getini("robustspec_build_threads")
        )
        if threads != "auto" and not (threads.isdigit() and int(threads) > 0):
            raise pytest.UsageError(f"--robustspec-build-threads: expected a positive number or auto, got {threads!r}")
        return None if threads == "auto" else int(threads)

    def specs_dir(self) -> Path | None:
        opt = self.config.getoption("robustspec_specs") or self.config.getini("robustspec_specs")
        return (self.config.rootpath / str(opt)).resolve() if opt else None

    # -- the workspace, created on first use in each process ----------------------------------------

    def get_workspace(self) -> Any:
        if self.workspace is None:
            import torch

            from . import progress
            from .store import Store
            from .workspace import Workspace

            workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
            if workers:
                cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
                torch.set_num_threads(max(1, cores // workers))
            device = self.config.getoption("robustspec_device")
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            self.workspace = Workspace(
                Store(self.store_root()), torch.device(device), build_threads=self.build_threads()
            )
            progress.set_sink(self._progress_sink())
        return self.workspace

    def _progress_sink(self) -> Any:
        workerinput = getattr(self.config, "workerinput", None)
        if workerinput is not None and workerinput.get("robustspec_progress"):
            path = Path(workerinput["robustspec_progress"]) / f"{workerinput.get('workerid', 'gw')}.log"
            worker = workerinput.get("workerid", "")

            def to_file(message: str) -> None:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(f"[{worker}] {message}\n")

            return to_file
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if tr is None or self.config.getoption("robustspec_quiet"):
            return None

        def to_terminal(message: str) -> None:
            if capman is not None:
                with capman.global_and_fixture_disabled():
                    tr.write_line(f"[robustspec] {message}")
            else:
                tr.write_line(f"[robustspec] {message}")

        return to_terminal

    # -- the xdist controller shows workers' progress -----------------------------------------------

    def start_tailing(self) -> None:
        if self.config.getoption("robustspec_quiet"):
            return
        root = self.store_root() / ".progress" / uuid.uuid4().hex[:12]
        root.mkdir(parents=True, exist_ok=True)
        self.progress_dir = root
        offsets: dict[Path, int] = {}

        def tail() -> None:
            while True:
                stopping = self.tail_stop.wait(1.0)
                for p in sorted(root.glob("*.log")):
                    try:
                        with open(p, encoding="utf-8") as f:
                            f.seek(offsets.get(p, 0))
                            chunk = f.read()
                            # Only whole lines; a line being written is picked up next time.
                            cut = chunk.rfind("\n") + 1
                            offsets[p] = offsets.get(p, 0) + len(chunk[:cut].encode("utf-8"))
                    except OSError:
                        continue
                    tr = self.config.pluginmanager.get_plugin("terminalreporter")
                    for line in chunk[:cut].splitlines():
                        if tr is not None:
                            tr.write_line(f"[robustspec] {line}")
                if stopping:
                    return

        self.tail_thread = threading.Thread(target=tail, name="robustspec-progress", daemon=True)
        self.tail_thread.start()

    def stop_tailing(self) -> None:
        if self.tail_thread is not None:
            self.tail_stop.set()
            self.tail_thread.join(timeout=5)
        if self.progress_dir is not None:
            for p in self.progress_dir.glob("*.log"):
                p.unlink(missing_ok=True)
            try:
                self.progress_dir.rmdir()
            except OSError:
                pass


def _state(config: pytest.Config) -> _PluginState:
    return config.stash[_state_key]


# --- hooks: options and lifecycle ---------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("robustspec", "robustness suites for compressed networks")
    group.addoption(
        "--robustspec-store",
        dest="robustspec_store",
        default=None,
        metavar="DIR",
        help=f"artifact store directory (env {STORE_ENV}, ini robustspec_store; default .robustspec/store under rootdir)",
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
        help="torch threads while building artifacts (ini robustspec_build_threads; default 1, so results "
        "do not depend on -n; 'auto' uses the per-worker cap: faster, not reproducible across -n)",
    )
    group.addoption(
        "--robustspec-quiet",
        dest="robustspec_quiet",
        action="store_true",
        default=False,
        help="do not show progress of long builds",
    )
    parser.addini("robustspec_store", "artifact store directory, relative to rootdir", default="")
    parser.addini("robustspec_specs", "directory of named building blocks, relative to rootdir", default="")
    parser.addini("robustspec_build_threads", "torch threads while building artifacts: a number or auto", default="1")
    parser.addini(
        "robustspec_suite_dirs", "names of directories whose YAML files are suites", type="args", default=["suites"]
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_state_key] = _PluginState(config)
    _state(config).build_threads()  # a bad value stops the session here, not in every item
    config.addinivalue_line("markers", "robustspec: an item generated from a robustspec suite")
    if getattr(config, "workerinput", None) is None and _uses_xdist(config):
        _state(config).start_tailing()


def _uses_xdist(config: pytest.Config) -> bool:
    try:
        return bool(config.getoption("numprocesses")) and config.getoption("dist", "no") != "no"
    except ValueError:
        return False


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: tell each worker where to write its progress lines."""
    state = _state(node.config)
    if state.progress_dir is not None:
        node.workerinput["robustspec_progress"] = str(state.progress_dir)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_state_key, None)
    if state is not None:
        state.stop_tailing()
        if state.workspace is not None:
            from . import progress

            progress.set_sink(None)


# --- collection ---------------------------------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    config = parent.config
    dirs = config.getini("robustspec_suite_dirs")
    explicit = any(Path(a.split("::")[0]).resolve() == file_path.resolve() for a in config.args)
    if file_path.parent.name in dirs or file_path.name.endswith((".suite.yaml", ".suite.yml")) or explicit:
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class SuiteError(Exception):
    """A suite file is invalid; shown as a collection error without a traceback."""


class SuiteFile(pytest.File):
    """One suite YAML file."""

    def collect(self):  # type: ignore[override]
        from .plan import plan_suite
        from .spec.loader import load_suite

        state = _state(self.config)
        try:
            loaded = load_suite(self.path, state.specs_dir())
        except SpecErrors as exc:
            state.invalid_suites.append(str(self.path))
            if not self.config.getoption("robustspec_strict"):
                # A broken suite must not stop the others, with or without xdist.
                self.config.option.continue_on_collection_errors = True
            raise self.CollectError(_relative_errors(exc, self.config)) from None
        except RobustSpecError as exc:
            state.invalid_suites.append(str(self.path))
            raise self.CollectError(f"{self.path}: {exc}") from None
        checks = plan_suite(loaded)
        by_model: dict[str, list] = {}
        for check in checks:
            by_model.setdefault(check.model.name, []).append(check)
        for model_name, model_checks in by_model.items():
            yield ModelNode.from_parent(self, name=model_name, checks=model_checks)


def _relative_errors(exc: SpecErrors, config: pytest.Config) -> str:
    lines = []
    for e in exc.errors:
        text = str(e)
        try:
            rel = os.path.relpath(e.file, config.invocation_params.dir)
            if not rel.startswith(".."):
                text = text.replace(e.file, rel, 1)
        except ValueError:
            pass
        lines.append(text)
    n = len(lines)
    return f"invalid suite ({n} problem{'s' if n != 1 else ''}):\n" + "\n".join(lines)


class ModelNode(pytest.Collector):
    """The checks of one model, grouped by variant."""

    def __init__(self, *, checks: list, **kw: Any) -> None:
        super().__init__(**kw)
        self.checks = checks

    def collect(self):  # type: ignore[override]
        by_variant: dict[str, list] = {}
        for check in self.checks:
            by_variant.setdefault(check.variant, []).append(check)
        for variant, vchecks in by_variant.items():
            yield VariantNode.from_parent(self, name=variant, checks=vchecks)


class VariantNode(pytest.Collector):
    """The checks of one variant of one model."""

    def __init__(self, *, checks: list, **kw: Any) -> None:
        super().__init__(**kw)
        self.checks = checks

    def collect(self):  # type: ignore[override]
        for check in self.checks:
            yield CheckItem.from_parent(self, name=check.name, check=check)


def _context_properties(ws: Any, c: Any) -> list[tuple[str, Any]]:
    """Numbers every item of a model/variant carries: its size and its accuracy on every domain.

    They are artifacts (computed once, then loaded), and they make each item's JUnit record and the
    accuracy table complete on their own.
    """
    from .spec.schema import BASELINE

    suite = c.loaded.suite
    metrics = ws.metrics(c.loaded, c.model, c.variant)
    props: list[tuple[str, Any]] = [
        ("parameters", metrics["parameters"]),
        ("bytes", metrics["bytes"]),
        ("macs", metrics["macs"]),
    ]
    if c.variant != BASELINE:
        base = ws.metrics(c.loaded, c.model, BASELINE)
        props += [
            ("compression_ratio", round(base["bytes"] / max(metrics["bytes"], 1), 4)),
            ("parameter_ratio", round(base["parameters"] / max(metrics["parameters"], 1), 4)),
        ]
        props += sorted((k, v) for k, v in metrics.items() if "." in k)  # what the steps reported
    from .outcomes import encode_outcomes

    domains = [suite.source, *suite.targets]
    accuracies = {d: ws.accuracy(c.loaded, c.model, c.variant, d) for d in domains}
    props += [(f"accuracy[{d}]", round(a.value, 6)) for d, a in accuracies.items()]
    # Per image right or wrong (robustspec.outcomes): other models on the same images pair with them.
    props += [
        (f"outcomes[{d}]", encode_outcomes(a.outcomes.tolist(), a.items))
        for d, a in accuracies.items()
        if a.outcomes is not None and a.items
    ]
    return props


class CheckFailed(Exception):
    """The measured value does not meet the expectation."""


class CheckItem(pytest.Item):
    """One expectation on one model, variant and domain."""

    def __init__(self, *, check: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.check = check
        self.add_marker("robustspec")

    def runtest(self) -> None:
        from .expect import EXPECTATIONS

        c = self.check
        ws = _state(self.config).get_workspace()
        suite = c.loaded.suite
        from .workspace import SubjectMeasurements

        measurements = SubjectMeasurements(ws, c.loaded, c.model, c.variant)
        outcome = EXPECTATIONS.get(c.kind)().judge(c.params, c.target, measurements)
        props = [
            ("robustspec", "1"),
            ("suite", suite.suite),
            ("model", c.model.name),
            ("variant", c.variant),
            ("check", c.kind),
            ("domain", c.target.label),
            *outcome.properties(),
            *_context_properties(ws, c),
            ("artifact_key", ws.variant_key(c.loaded, c.model, c.variant)),
            *((f"eval_key[{d}]", ws.eval_key(c.loaded, c.model, c.variant, d)) for d in c.target.domains),
        ]
        # Appended directly (not record_property): reaches the JUnit XML under xdist without xunit2 warnings.
        self.user_properties.extend(props)
        if outcome.extra.get("attack_flags"):
            # An attack that silently did nothing, or suspected gradient masking: a property and a warning.
            import warnings

            from .errors import RobustSpecWarning

            warnings.warn_explicit(
                RobustSpecWarning(f"{c.model.name}/{c.variant} {self.name}: {outcome.extra['attack_flags']}"),
                category=RobustSpecWarning,
                filename=str(c.loaded.path),
                lineno=c.line,
            )
        from .report.gate import conclude

        conclude(self, outcome)  # baseline comparison and severity; raises CheckFailed (or a subclass) to fail

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CheckFailed):
            return f"{self.check.loaded.path}:{self.check.line}: {excinfo.value}"
        if isinstance(excinfo.value, RobustSpecError):
            return f"{self.check.loaded.path}:{self.check.line}: could not run {self.name}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        # Not the node id's tail: pytest turns every "." of a matching tail into "::" in -v lines, which
        # would show the variant fp-11.19m as "fp-11::19m".
        return self.path, self.check.line - 1, f"{self.check.model.name} {self.check.variant} {self.name}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = _state(config)
    if config.getoption("robustspec_strict") and state.invalid_suites:
        # Strict: an invalid suite fails the whole session; the same on every xdist worker.
        config.hook.pytest_deselected(items=list(items))
        items[:] = []


# --- reporting ----------------------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = []
    for status in ("passed", "failed"):
        for rep in terminalreporter.stats.get(status, []):
            if getattr(rep, "when", "") != "call":
                continue
            props = dict(rep.user_properties)
            if props.get("robustspec") != "1":
                continue
            rows.append(props | {"_nodeid": rep.nodeid})
    if not rows:
        return
    rows.sort(key=lambda r: r["_nodeid"])

    def num(v: Any) -> str:
        v = float(v)
        return f"{v / 1e6:.3f}M" if abs(v) >= 1e4 else f"{v:.3f}"

    header = ("suite", "model", "variant", "check", "domain", "measured", "threshold", "status")
    table = [header]
    for r in rows:
        cmp = r.get("comparison", "")
        table.append(
            (
                str(r.get("suite", "")),
                str(r.get("model", "")),
                str(r.get("variant", "")),
                str(r.get("check", "")),
                str(r.get("domain", "")) or "-",
                num(r.get("measured", 0)),
                f"{cmp} {num(r.get('threshold', 0))}",
                {"pass": "PASS", "warn": "WARN"}.get(str(r.get("status")), "FAIL"),
            )
        )
    terminalreporter.write_sep("=", "robustspec summary")
    _write_table(terminalreporter, table, status_column=True)
    _accuracy_table(terminalreporter, rows)


def _write_table(tr: Any, table: list[tuple[str, ...]], status_column: bool = False) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
        if i == 0:
            markup = {"bold": True}
        elif status_column:
            markup = {"FAIL": {"red": True}, "WARN": {"yellow": True}}.get(row[-1], {"green": True})
        else:
            markup = {}
        tr.write_line(line, **markup)


def _accuracy_table(tr: Any, rows: list[dict[str, Any]]) -> None:
    """Rows model / variant / parameters, columns domains: the shape of the research's Table 1."""
    by_subject: dict[tuple[str, str, str], dict[str, Any]] = {}
    domains: list[str] = []
    for r in rows:
        subject = (str(r.get("suite")), str(r.get("model")), str(r.get("variant")))
        entry = by_subject.setdefault(subject, {})
        for k, v in r.items():
            if k.startswith("accuracy[") and k.endswith("]"):
                d = k[len("accuracy[") : -1]
                entry[d] = float(v)
                if d not in domains:
                    domains.append(d)
        for k in ("parameters", "bytes", "compression_ratio"):
            if k in r:
                entry[k] = float(r[k])
    if not by_subject or not domains:
        return
    header = ("suite", "model", "variant", "params (M)", "size (MB)", *domains)
    table = [header]
    for (suite, model, variant), e in by_subject.items():
        table.append(
            (
                suite,
                model,
                variant,
                f"{e['parameters'] / 1e6:.2f}" if "parameters" in e else "-",
                f"{e['bytes'] / 1e6:.1f}" if "bytes" in e else "-",
                *(f"{100 * e[d]:.1f}" if d in e else "-" for d in domains),
            )
        )
    tr.write_sep("-", "accuracy (%) by domain; the first domain is the source")
    _write_table(tr, table)
