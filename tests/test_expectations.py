"""Expectation kinds: expansion into items and verdicts, with and without confidence."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from robustspec.confusion import Confusion
from robustspec.expect import EXPECTATIONS, Accuracy, CheckTarget


@dataclass
class FakeMeasurements:
    """Fixed numbers per (variant, domain) and per variant, as the workspace would give them."""

    acc: dict  # domain -> Accuracy for this variant, or (variant, domain) -> Accuracy
    metric: dict = field(default_factory=dict)
    variant: str = "fp"
    source: str = "amazon"

    def accuracy(self, domain, variant=None):
        v = variant or self.variant
        return self.acc.get((v, domain)) or self.acc[domain]

    def metrics(self, variant=None):
        return self.metric[variant or self.variant]


def judge(kind: str, params: dict, target: CheckTarget, acc: dict, **kw):
    exp = EXPECTATIONS.get(kind)()
    return exp.judge(exp.Params.model_validate(params), target, FakeMeasurements(acc, **kw))


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
    assert [t.label for t in exp.expand(params, "amazon", ["webcam", "dslr"], "baseline")] == ["webcam", "dslr"]
    params = exp.Params.model_validate({"min": 0.5, "domains": ["dslr"]})
    assert [t.label for t in exp.expand(params, "amazon", ["webcam", "dslr"], "baseline")] == ["dslr"]


@pytest.mark.parametrize(
    "kind", [k for k in EXPECTATIONS.names() if k not in ("attack", "corruption")]
)  # tests/test_attack_expectation.py, tests/test_corruptions_expectation.py
def test_every_expectation_reports_its_numbers(kind: str) -> None:
    exp = EXPECTATIONS.get(kind)()
    name = "max" if "max" in exp.Params.model_fields else "min"
    params = exp.Params.model_validate({name: 2 if kind == "max-params" else 0.5})
    classes = Confusion(("mug", "pen"), ((20, 5), (5, 20)))  # 40 of 50 right, as the accuracy says
    acc = {d: Accuracy(40, 50, classes=classes) for d in ("amazon", "webcam", "dslr")}
    m = FakeMeasurements(
        acc,
        {"fp": {"parameters": 1_000_000, "bytes": 4_000_000, "export.latency_ratio": 0.1, "export.latency_ms": 1.0}},
    )
    targets = exp.expand(params, "amazon", ["webcam", "dslr"], "fp")
    if not targets and hasattr(exp, "expand_chain"):  # items decided by the chain: one ending in export
        from types import SimpleNamespace

        targets = exp.expand_chain(params, "amazon", ["webcam", "dslr"], "fp", (SimpleNamespace(kind="export"),))
    assert targets
    for target in targets:
        props = dict(exp.judge(params, target, m).properties())
        assert {"measured", "threshold", "comparison", "status"} <= set(props)


def test_baseline_comparisons_do_not_apply_to_the_baseline() -> None:
    for kind in ("drop-vs-baseline", "retained"):
        exp = EXPECTATIONS.get(kind)()
        params = exp.Params.model_validate({"max" if kind == "drop-vs-baseline" else "min": 0.5})
        assert exp.expand(params, "amazon", ["webcam"], "baseline") == []
        assert [t.label for t in exp.expand(params, "amazon", ["webcam"], "fp")] == ["amazon", "webcam"]


def test_drop_vs_baseline_absolute_and_relative() -> None:
    acc = {("baseline", "webcam"): Accuracy(80, 100), ("fp", "webcam"): Accuracy(60, 100)}
    t = CheckTarget("webcam", ("webcam",))
    out = judge("drop-vs-baseline", {"max": 0.2}, t, acc)
    assert out.passed and out.measured == pytest.approx(0.2)
    rel = judge("drop-vs-baseline", {"max": 0.2, "relative": True}, t, acc)
    assert not rel.passed and rel.measured == pytest.approx(0.25)
    kept = judge("retained", {"min": 0.75}, t, acc)
    assert kept.passed and kept.measured == pytest.approx(0.75)


def test_size_expectations_parse_counts() -> None:
    m = {"fp": {"parameters": 4_600_000, "bytes": 18_500_000}}
    t = CheckTarget("", ())
    assert not judge("max-params", {"max": "4.51M"}, t, {}, metric=m).passed
    assert judge("max-params", {"max": "4.6M"}, t, {}, metric=m).passed
    assert judge("max-size-mb", {"max": 18.5}, t, {}, metric=m).passed
    assert not judge("max-size-mb", {"max": 18.4}, t, {}, metric=m).passed


def test_a_difference_on_the_same_images_is_paired() -> None:
    import torch

    from robustspec.expect.base import Difference, paired_table
    from robustspec.stats import newcombe_difference, newcombe_paired_difference

    # 500 images: both models right on 430, the first also on 12 more.
    first = torch.zeros(500, dtype=torch.bool)
    first[:442] = True
    second = torch.zeros(500, dtype=torch.bool)
    second[:430] = True
    a = Accuracy(442, 500, outcomes=first, items="data-webcam")
    b = Accuracy(430, 500, outcomes=second, items="data-webcam")
    assert paired_table(a, b) == (430, 12, 0, 58)
    d = Difference.of(a, b, 0.95)
    assert d.paired and (d.low, d.high) == pytest.approx(newcombe_paired_difference(430, 12, 0, 58))
    assert d.low > 0.0
    assert "95% paired CI [+0.010, +0.039]" in d.gate(0.0, None, maximum=False, signed=True)[1]
    # Other images (another domain), or no per-image outcomes: the independent interval.
    for other in (Accuracy(430, 500, outcomes=second, items="data-dslr"), Accuracy(430, 500)):
        d = Difference.of(a, other, 0.95)
        assert not d.paired and (d.low, d.high) == pytest.approx(newcombe_difference(442, 500, 430, 500))
