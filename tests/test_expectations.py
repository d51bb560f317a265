"""Expectation kinds: expansion into items and verdicts, with and without confidence."""

from __future__ import annotations

import pytest

from robustspec.expect import EXPECTATIONS, Accuracy, CheckTarget


def judge(kind: str, params: dict, target: CheckTarget, acc: dict):
    exp = EXPECTATIONS.get(kind)()
    return exp.judge(exp.Params.model_validate(params), target, "amazon", acc)


def test_confidence_turns_a_point_pass_into_a_fail() -> None:
    acc = {"webcam": Accuracy(905, 1000)}
    t = CheckTarget("webcam", ("webcam",))
    assert judge("target-accuracy", {"min": 0.9}, t, acc).passed
    out = judge("target-accuracy", {"min": 0.9, "confidence": 0.95}, t, acc)
    assert not out.passed and out.ci_low == pytest.approx(0.885, abs=1e-3)
    assert "measured 0.905" in out.message and "min 0.900" in out.message


def test_drop_vs_source_measures_the_difference() -> None:
    acc = {"amazon": Accuracy(95, 100), "dslr": Accuracy(60, 100)}
    t = CheckTarget("dslr", ("amazon", "dslr"))
    out = judge("drop-vs-source", {"max": 0.4}, t, acc)
    assert out.passed and out.measured == pytest.approx(0.35)
    assert not judge("drop-vs-source", {"max": 0.3}, t, acc).passed
    # The upper bound of the interval is above the point estimate, so a confirmed pass needs more room.
    assert not judge("drop-vs-source", {"max": 0.4, "confidence": 0.95}, t, acc).passed


def test_expansion_is_one_item_per_domain() -> None:
    exp = EXPECTATIONS.get("target-accuracy")()
    params = exp.Params.model_validate({"min": 0.5})
    assert [t.label for t in exp.expand(params, "amazon", ["webcam", "dslr"])] == ["webcam", "dslr"]
    params = exp.Params.model_validate({"min": 0.5, "domains": ["dslr"]})
    assert [t.label for t in exp.expand(params, "amazon", ["webcam", "dslr"])] == ["dslr"]


@pytest.mark.parametrize("kind", EXPECTATIONS.names())
def test_every_expectation_reports_its_numbers(kind: str) -> None:
    exp = EXPECTATIONS.get(kind)()
    field = "max" if "max" in exp.Params.model_fields else "min"
    params = exp.Params.model_validate({field: 0.5})
    acc = {d: Accuracy(40, 50) for d in ("amazon", "webcam", "dslr")}
    for target in exp.expand(params, "amazon", ["webcam", "dslr"]):
        props = dict(exp.judge(params, target, "amazon", acc).properties())
        assert {"measured", "threshold", "comparison", "status", "n", "ci_low", "ci_high"} <= set(props)
