"""Judging one planned check: its outcome and every number it records, the same for pytest and the API.

:func:`judge` runs the expectation on a :class:`~robustspec.workspace.Workspace` (building what it needs
through the store) and returns the :class:`~robustspec.expect.base.Outcome` with the item's properties:
the outcome's numbers, the subject's size and accuracy on every domain, how each domain is split, the
content keys, and the recipe that says in words what changed against a baseline. The pytest item
(:mod:`robustspec.pytest.item`) and :func:`robustspec.run` both call it, so a script and a CI run
record the same numbers under the same keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .plan import Check
from .report.changes import RECIPE_PROPERTY

__all__ = ["Judged", "context_properties", "judge", "recipe_json"]


@dataclass(frozen=True)
class Judged:
    """An expectation's outcome on one check, and the properties its record carries (in order)."""

    outcome: Any
    properties: list[tuple[str, Any]]


def context_properties(ws: Any, c: Check) -> list[tuple[str, Any]]:
    """Numbers every item of a model/variant carries: its size, its accuracy on every domain, and how
    every domain is split.

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
    domains = [suite.source, *suite.targets]
    accuracies = {d: ws.accuracy(c.loaded, c.model, c.variant, d) for d in domains}
    props += [(f"accuracy[{d}]", round(a.value, 6)) for d, a in accuracies.items()]
    for d in domains:  # the protocol: how each domain is split, and how many images each split has
        counts = ws.split_counts(suite, d)
        if counts is not None:
            props += [(f"split[{d}]", counts["protocol"]), (f"n_train[{d}]", counts["train"])]
            props.append((f"n_test[{d}]", counts["test"]))
    # Per image right or wrong (robustspec.outcomes): other models on the same images pair with them.
    props += [
        (f"outcomes[{d}]", ws.encoded_outcomes(c.loaded, c.model, c.variant, d))
        for d, a in accuracies.items()
        if a.outcomes is not None and a.items
    ]
    return props


def recipe_json(ws: Any, c: Check) -> str:
    """What this item measured, as JSON: compared with a baseline's, it says in words what changed."""
    recipe = ws.subject_recipe(c.loaded, c.model, c.variant)
    recipe["check"] = c.params.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)


def judge(ws: Any, c: Check) -> Judged:
    """Judge ``c`` on ``ws``: build or load what it needs, and every property its record carries."""
    from .expect import EXPECTATIONS
    from .workspace import SubjectMeasurements

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
        *context_properties(ws, c),
        ("artifact_key", ws.variant_key(c.loaded, c.model, c.variant)),
        (RECIPE_PROPERTY, recipe_json(ws, c)),
        *((f"eval_key[{d}]", ws.eval_key(c.loaded, c.model, c.variant, d)) for d in c.target.domains),
    ]
    return Judged(outcome, props)
