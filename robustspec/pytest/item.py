"""A check item: judge one expectation on one model, variant and target, record its numbers, conclude.

The numbers become ``user_properties`` (JUnit XML, results file); :func:`robustspec.pytest.gate.conclude`
then compares with the baseline and applies the verdict (:mod:`robustspec.verdict`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ..errors import CheckFailed, RobustSpecError
from ..report.changes import RECIPE_PROPERTY
from .gate import conclude
from .progress import ensure_sink
from .state import plugin_state


def _context_properties(ws: Any, c: Any) -> list[tuple[str, Any]]:
    """Numbers every item of a model/variant carries: its size and its accuracy on every domain.

    They are artifacts (computed once, then loaded), and they make each item's JUnit record and the
    accuracy table complete on their own.
    """
    from ..spec.schema import BASELINE

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
    domains = [suite.source, *suite.targets]
    accuracies = {d: ws.accuracy(c.loaded, c.model, c.variant, d) for d in domains}
    props += [(f"accuracy[{d}]", round(a.value, 6)) for d, a in accuracies.items()]
    # Per image right or wrong (robustspec.outcomes): other models on the same images pair with them.
    props += [
        (f"outcomes[{d}]", ws.encoded_outcomes(c.loaded, c.model, c.variant, d))
        for d, a in accuracies.items()
        if a.outcomes is not None and a.items
    ]
    return props


def _recipe(ws: Any, c: Any) -> str:
    """What this item measured, as JSON: compared with a baseline's, it says in words what changed."""
    recipe = ws.subject_recipe(c.loaded, c.model, c.variant)
    recipe["check"] = c.params.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)


class CheckItem(pytest.Item):
    """One expectation on one model, variant and domain."""

    def __init__(self, *, check: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.check = check
        self.add_marker("robustspec")

    def runtest(self) -> None:
        from ..expect import EXPECTATIONS
        from ..workspace import SubjectMeasurements

        c = self.check
        ensure_sink(self.config)
        ws = plugin_state(self.config).get_workspace()
        measurements = SubjectMeasurements(ws, c.loaded, c.model, c.variant)
        outcome = EXPECTATIONS.get(c.kind)().judge(c.params, c.target, measurements)
        props = [
            ("robustspec", "1"),
            ("suite", c.loaded.suite.suite),
            ("model", c.model.name),
            ("variant", c.variant),
            ("check", c.kind),
            ("domain", c.target.label),
            *outcome.properties(),
            *_context_properties(ws, c),
            ("artifact_key", ws.variant_key(c.loaded, c.model, c.variant)),
            (RECIPE_PROPERTY, _recipe(ws, c)),
            *((f"eval_key[{d}]", ws.eval_key(c.loaded, c.model, c.variant, d)) for d in c.target.domains),
        ]
        # Appended directly (not record_property): reaches the JUnit XML under xdist without xunit2 warnings.
        self.user_properties.extend(props)
        conclude(self, outcome)  # baseline comparison and verdict; raises CheckFailed (or a subclass) to fail

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
