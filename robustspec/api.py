"""Run a suite from Python (a script, a notebook): :func:`run` returns typed results.

It is the plugin without pytest: the same loader, the same plan (:func:`~robustspec.plan.plan_suite`),
the same store (resolved as the plugin resolves it), the same judging (:mod:`robustspec.judging`) and the
same verdicts (:mod:`robustspec.verdict`), so a number computed here is the one ``pytest suites/`` reads
back from the store, and the other way round::

    import robustspec

    result = robustspec.run("suites/quick.yaml")
    print(result.summary())            # 9 checks: 9 pass
    for check in result.failed:
        print(check.id, check.message)
    result.write("results.json")       # a results file for `robustspec compare` and `robustspec report`

A suite given as a mapping is validated like a file (its errors name the field path and the position
in the YAML written from it); relative paths in it are relative to ``base_dir`` (default: the working
directory).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from .errors import CheckFailed, RobustSpecError
from .verdict import attack_flags, decide

__all__ = ["CheckResult", "RunResult", "run"]

Status = Literal["pass", "fail", "warn", "flagged", "error"]


@dataclass(frozen=True)
class CheckResult:
    """One check: what was measured against what, and the verdict.

    ``id`` is the pytest node id of the same item (``suites/quick.yaml::resnet18::int8::drop-vs-baseline[webcam]``,
    relative to the working directory), so results from :func:`run` and from pytest line up.
    """

    id: str
    suite: str
    model: str
    variant: str
    check: str
    domain: str
    #: pass, fail, warn (a failure of a ``severity: warn`` expectation), flagged (gradient masking or an
    #: attack that did nothing), or error (it could not run: ``message`` says why).
    status: Status
    measured: float | None
    threshold: float | None
    comparison: str | None
    message: str
    ci: tuple[float, float] | None = None
    #: Every number the item records (the results file's ``properties``).
    properties: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        """Whether the check does not fail (pass, or a warning)."""
        return self.status in ("pass", "warn")

    def record(self) -> dict[str, Any]:
        """This check as an item of a results file."""
        outcome = "passed" if self.passed else "failed"
        status = {"flagged": "fail"}.get(self.status, self.status)
        return {
            "id": self.id,
            "suite": self.suite,
            "model": self.model,
            "variant": self.variant,
            "check": self.check,
            "domain": self.domain,
            "status": status,
            "outcome": outcome,
            "message": self.message or None,
            "duration": 0.0,
            "properties": dict(self.properties),
        }


@dataclass(frozen=True)
class RunResult:
    """Every check of a run, in plan order."""

    checks: tuple[CheckResult, ...]

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    @property
    def passed(self) -> bool:
        """Whether no check fails (what pytest's exit status would say)."""
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.checks:
            out[c.status] = out.get(c.status, 0) + 1
        return out

    def summary(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts().items()))
        return f"{len(self.checks)} checks: {counts or 'none'}"

    def __getitem__(self, item_id: str) -> CheckResult:
        for c in self.checks:
            if c.id == item_id:
                return c
        raise KeyError(item_id)

    def document(self) -> dict[str, Any]:
        """A results document (the format pytest's ``--robustspec-results`` writes)."""
        from .report.results import make_document, static_environment

        return make_document([c.record() for c in self.checks], static_environment(), None, {"api": True})

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`document` to ``path`` (atomically), for ``robustspec compare`` and ``report``."""
        from .report.results import write_document

        target = Path(path)
        write_document(target, self.document())
        return target


def _load(suite: str | os.PathLike[str] | Mapping[str, Any], base_dir: Path, specs_dir: Any) -> Any:
    from .spec.loader import load_suite

    if not isinstance(suite, Mapping):
        return load_suite(suite, specs_dir)
    import yaml

    # Validated as a file written next to base_dir's contents, so its relative paths resolve there and its
    # errors have positions; the file is removed afterwards.
    name = str(suite.get("suite") or "suite")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".yaml", dir=base_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(dict(suite), f, sort_keys=False)
        return load_suite(tmp, specs_dir)
    finally:
        os.unlink(tmp)


def _selected(check_id: str, select: str | Sequence[str] | None) -> bool:
    if select is None:
        return True
    patterns = [select] if isinstance(select, str) else list(select)
    return any(fnmatchcase(check_id, p) or p in check_id for p in patterns)


def _node_id(loaded: Any, check: Any, base_dir: Path) -> str:
    try:
        path = os.path.relpath(loaded.path.resolve(), base_dir)
    except ValueError:
        path = str(loaded.path)
    return "::".join((Path(path).as_posix(), check.model.name, check.variant, check.name))


def run(
    suite: str | os.PathLike[str] | Mapping[str, Any],
    *,
    store: str | os.PathLike[str] | Any | None = None,
    device: str = "auto",
    select: str | Sequence[str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    specs_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
    executor: str = "local",
) -> RunResult:
    """Run every check of ``suite`` (a path, or a suite as a mapping) and return their results.

    - ``store``: a directory, a URL (``s3://bucket/prefix``), a :class:`~robustspec.store.Store` or a
      :class:`~robustspec.remote_store.RemoteStore`; default as the plugin resolves it
      (``$ROBUSTSPEC_STORE``, else ``<base_dir>/.robustspec/store``), so both share every artifact;
    - ``device``: ``auto`` (cuda when present), ``cpu``, ``cuda``, ...;
    - ``select``: an id pattern or substring, or several (``"*::int8::*"``, ``"webcam"``): only the checks
      whose id matches one run;
    - ``progress``: a callable for progress lines (default: none shown; they go to the
      ``robustspec.progress`` logger);
    - ``executor``: where builds run, as ``--robustspec-executor`` says: ``local`` (here), ``ray`` or
      ``ray://HOST:PORT`` (a Ray cluster that shares the store; docs/ray.md).

    A suite that is invalid raises :class:`~robustspec.errors.SpecErrors` (every problem, each with its
    file:line:col); a check that cannot run is a result with status ``error``, not an exception.
    """
    from .config import open_store
    from .executors import parse_executor
    from .plan import plan_suite
    from .progress import sink
    from .workspace import Workspace

    runner = parse_executor(executor)  # a bad value is a UsageError before anything is loaded
    here = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    loaded = _load(suite, here, specs_dir)
    if store is not None and not isinstance(store, (str, os.PathLike)):
        the_store = store  # a Store or RemoteStore
    else:
        the_store = open_store(store, os.environ, None, here)
    ws = Workspace(the_store, device)
    results = []
    with sink(progress or (lambda _line: None)):
        checks = [(c, i) for c in plan_suite(loaded) if _selected(i := _node_id(loaded, c, here), select)]
        try:
            runner.start(ws, [c for c, _ in checks], device=device)  # a cluster it cannot reach: UsageError
            for check, check_id in checks:
                results.append(_run_one(ws, check, check_id, runner, device))
        finally:
            runner.close()
    return RunResult(tuple(results))


def _run_one(ws: Any, check: Any, check_id: str, executor: Any = None, device: Any = None) -> CheckResult:
    from .judging import judge

    labels = dict(
        id=check_id,
        suite=check.loaded.suite.suite,
        model=check.model.name,
        variant=check.variant,
        check=check.kind,
        domain=check.target.label,
    )
    try:
        if executor is not None:
            executor.prepare(ws, check, device=device)  # on return, what the check reads is stored
        judged = judge(ws, check)
    except (RobustSpecError, CheckFailed) as exc:
        return CheckResult(**labels, status="error", measured=None, threshold=None, comparison=None, message=str(exc))
    outcome = judged.outcome
    params = check.params
    extra = getattr(outcome, "extra", None) or {}
    verdict = decide(
        outcome.passed,
        outcome.message,
        getattr(params, "severity", "fail") or "fail",
        None,
        attack_flags(extra),
        getattr(params, "on_masking", "fail") or "fail",
        flagged=str(extra.get("flagged", "")).lower() in ("1", "true"),
    )
    props = {k: v for k, v in judged.properties}
    props["status"] = verdict.recorded_status
    props["verdict"] = verdict.status
    ci = (outcome.ci_low, outcome.ci_high) if outcome.ci_low is not None and outcome.ci_high is not None else None
    return CheckResult(
        **labels,
        status=verdict.status,
        measured=outcome.measured,
        threshold=outcome.threshold,
        comparison=outcome.comparison,
        message=verdict.message if (verdict.fails or verdict.status != "pass") else "",
        ci=ci,
        properties=props,
    )
