"""The ``corruption`` expectation: mCE maths, expansion, verdicts, and collection errors at file:line:col."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from robustspec.corrupt import standard_corruptions
from robustspec.errors import SpecErrors, format_path
from robustspec.expect import EXPECTATIONS, Accuracy, CheckTarget
from robustspec.expect.corruption import corruption_errors
from robustspec.plan import plan_suite
from robustspec.spec.loader import load_suite

KIND = EXPECTATIONS.get("corruption")()


def params(**kw):
    return KIND.Params.model_validate({k.replace("_", "-"): v for k, v in kw.items()})


# --- mCE maths on hand-made numbers ------------------------------------------------------------------------


def test_ce_is_the_ratio_of_error_sums_and_mce_their_mean() -> None:
    variant = {"noise": {1: 0.2, 3: 0.4}, "blur": {1: 0.1, 3: 0.1}}
    baseline = {"noise": {1: 0.1, 3: 0.3}, "blur": {1: 0.2, 3: 0.2}}
    ce, mce = corruption_errors(variant, baseline)
    assert ce == pytest.approx({"noise": 0.6 / 0.4, "blur": 0.2 / 0.4})
    assert mce == pytest.approx((1.5 + 0.5) / 2)


def test_the_baseline_against_itself_is_one() -> None:
    errs = {"noise": {1: 0.05, 5: 0.3}, "contrast": {1: 0.01, 5: 0.5}}
    ce, mce = corruption_errors(errs, errs)
    assert all(v == pytest.approx(1.0) for v in ce.values()) and mce == pytest.approx(1.0)


def test_a_baseline_without_errors_gives_one_or_infinity() -> None:
    baseline = {"a": {1: 0.0}, "b": {1: 0.0}}
    ce, mce = corruption_errors({"a": {1: 0.0}, "b": {1: 0.1}}, baseline)
    assert ce["a"] == 1.0 and math.isinf(ce["b"]) and math.isinf(mce)


# --- expansion ---------------------------------------------------------------------------------------------


def test_defaults_are_every_benchmark_corruption_at_five_severities_of_the_source() -> None:
    (target,) = KIND.expand(params(min_accuracy=0.5), "amazon", ["webcam"], "baseline")
    assert target.label == "amazon"
    assert len(target.domains) == 5 * len(standard_corruptions())
    assert "amazon+contrast@5" in target.domains and "amazon+saturate@1" not in target.domains


def test_mce_alone_has_no_item_on_the_baseline() -> None:
    p = params(max_mce=1.2, corruptions=["contrast"], severities=[1, 5])
    assert KIND.expand(p, "amazon", [], "baseline") == []
    (target,) = KIND.expand(p, "amazon", [], "int8")
    assert target.domains == ("amazon+contrast@1", "amazon+contrast@5")
    (target,) = KIND.expand(params(max_mce=1.2, min_accuracy=0.5, domain="dslr"), "amazon", [], "baseline")
    assert target.label == "dslr"


# --- verdicts ----------------------------------------------------------------------------------------------


@dataclass
class Numbers:
    """Fixed accuracies per (variant, domain), as the workspace would give them."""

    acc: dict
    variant: str = "int8"
    source: str = "amazon"

    def accuracy(self, domain, variant=None):
        return self.acc[(variant or self.variant, domain)]


NOISE, BLUR = "gaussian_noise", "defocus_blur"
TWO = {"corruptions": [NOISE, BLUR], "severities": [1, 5]}


def _numbers(variant: str) -> Numbers:
    # Errors per severity 1, 5 of 100 images: baseline noise 10, 30; blur 20, 20. int8 noise 20, 40; blur 10, 10.
    wrong = {
        ("baseline", NOISE): (10, 30),
        ("baseline", BLUR): (20, 20),
        ("int8", NOISE): (20, 40),
        ("int8", BLUR): (10, 10),
    }
    acc = {}
    for (v, c), errs in wrong.items():
        for s, e in zip((1, 5), errs):
            acc[(v, f"amazon+{c}@{s}")] = Accuracy(100 - e, 100)
        acc[(v, "amazon")] = Accuracy(99, 100)
    return Numbers(acc, variant)


def _judge(p, variant: str = "int8"):
    (target,) = KIND.expand(p, "amazon", [], variant)
    return KIND.judge(p, target, _numbers(variant))


def test_mce_gate_and_its_properties() -> None:
    out = _judge(params(max_mce=1.0, **TWO))
    assert out.passed and out.measured == pytest.approx(1.0) and out.comparison == "<="
    assert out.extra["ce[gaussian_noise]"] == pytest.approx(1.5) and out.extra["ce[defocus_blur]"] == pytest.approx(0.5)
    assert out.extra["mce"] == pytest.approx(1.0)
    assert {"measured", "threshold", "comparison", "status", "mce", "ce[gaussian_noise]"} <= set(dict(out.properties()))
    assert out.extra["corruption_accuracy@1"] == pytest.approx((0.8 + 0.9) / 2)
    assert out.extra["corruption_accuracy@5"] == pytest.approx((0.6 + 0.9) / 2)
    assert not _judge(params(max_mce=0.95, **TWO)).passed


def test_both_gates_fail_on_the_first_that_fails() -> None:
    out = _judge(params(max_mce=2.0, min_accuracy=0.5, **TWO))
    assert out.passed and out.n == 400
    out = _judge(params(max_mce=2.0, min_accuracy=0.9, **TWO))
    assert not out.passed and out.comparison == ">=" and out.measured == pytest.approx(0.8)
    assert "mean accuracy 0.800 (320/400" in out.message


def test_confidence_gates_the_pooled_lower_bound() -> None:
    assert _judge(params(min_accuracy=0.78, **TWO), "baseline").passed  # 330/400 = 0.825
    out = _judge(params(min_accuracy=0.78, confidence=0.95, **TWO), "baseline")
    assert not out.passed and out.ci_low < 0.78 < out.measured


# --- collection errors -------------------------------------------------------------------------------------

GOOD = """\
suite: t
data: office-synth
source: amazon
train: fast
models: [mini]
variants:
  int8: {quantize: ptsq}
expect:
"""


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    shutil.copytree(Path(__file__).resolve().parents[1] / "specs", tmp_path / "specs")
    return tmp_path


def _load(directory: Path, text: str):
    path = directory / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    return load_suite(path)


#: (id, lines after `expect:` or a replaced `targets:` line, line, col, field path, message fragment)
CASES = [
    (
        "unknown-corruption-in-targets",
        "targets: [webcam, amazon+gausian_noise@3]",
        10,
        19,
        "targets[1]",
        "unknown corruption 'gausian_noise'; did you mean 'gaussian_noise'",
    ),
    ("severity-out-of-range", "targets: [amazon+contrast@6]", 10, 11, "targets[0]", "must be 1-5 (got '6')"),
    (
        "unknown-base-domain",
        "targets: [amazn+contrast@2]",
        10,
        11,
        "targets[0]",
        "unknown base domain 'amazn' in 'amazn+contrast@2'; did you mean 'amazon'?",
    ),
    ("no-severity", "targets: [amazon+contrast]", 10, 11, "targets[0]", "needs a severity 1-5"),
    (
        "derived-in-domains",
        "  - target-accuracy: {min: 0.1, domains: [dslr+pixelate@0]}",
        9,
        43,
        "expect[0].target-accuracy.domains[0]",
        "must be 1-5",
    ),
    (
        "attack-domain",
        "  - attack: {name: fgsm, eps: 1/255, domain: amazon+blurr@2, max-degradation: 1}",
        9,
        46,
        "expect[0].attack.domain",
        "unknown corruption 'blurr'",
    ),
    (
        "expectation-corruptions",
        "  - corruption: {corruptions: [contrast, pixelat], max-mce: 1.2}",
        9,
        42,
        "expect[0].corruption.corruptions[1]",
        "did you mean 'pixelate'",
    ),
    (
        "expectation-severity",
        "  - corruption: {severities: [1, 6], max-mce: 1.2}",
        9,
        34,
        "expect[0].corruption.severities[1]",
        "severity must be 1-5 (got 6)",
    ),
    (
        "expectation-no-gate",
        "  - corruption: {severities: [1]}",
        9,
        17,
        "expect[0].corruption",
        "give max-mce, min-accuracy or both",
    ),
    (
        "expectation-confidence-without-accuracy",
        "  - corruption: {max-mce: 1.2, confidence: 0.9}",
        9,
        17,
        "expect[0].corruption",
        "confidence applies to min-accuracy only",
    ),
    (
        "expectation-derived-base",
        "  - corruption: {domain: amazon+contrast@1, min-accuracy: 0.5}",
        9,
        26,
        "expect[0].corruption.domain",
        "give the base domain ('amazon')",
    ),
    (
        "expectation-unknown-domain",
        "  - corruption: {domain: amazom, min-accuracy: 0.5}",
        9,
        26,
        "expect[0].corruption.domain",
        "unknown domain 'amazom'; did you mean 'amazon'?",
    ),
]


def _text(change: str) -> str:
    if change.startswith("targets:"):
        return GOOD + "  - source-accuracy: {min: 0.5}\n" + change + "\n"
    return GOOD + change + "\n"


@pytest.mark.parametrize(
    ("change", "line", "col", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_corruption_spec_points_at_the_problem(
    suite_dir: Path, change: str, line: int, col: int, path: str, fragment: str
) -> None:
    with pytest.raises(SpecErrors) as info:
        _load(suite_dir, _text(change))
    errs = info.value.errors
    found = [e for e in errs if (e.line, e.col, format_path(e.path)) == (line, col, path) and fragment in e.message]
    assert found, "\n".join(map(str, errs))


def test_derived_domains_load_and_plan(suite_dir: Path) -> None:
    text = GOOD + (
        "  - target-accuracy: {min: 0.1}\n"
        "  - corruption: {corruptions: [contrast], severities: [2], max-mce: 1.2}\n"
        "targets: [webcam, amazon+contrast@2]\n"
    )
    loaded = _load(suite_dir, text)
    names = {(c.variant, c.name) for c in plan_suite(loaded)}
    assert ("baseline", "target-accuracy[amazon+contrast@2]") in names
    assert ("int8", "corruption[amazon]") in names and ("baseline", "corruption[amazon]") not in names


@pytest.mark.slow  # a fresh interpreter: about 4 s
def test_collecting_imports_no_torchvision(suite_dir: Path) -> None:
    import subprocess
    import sys

    path = suite_dir / "suite.yaml"
    path.write_text(GOOD + "  - corruption: {max-mce: 1.2}\ntargets: [amazon+jpeg_compression@3]\n", encoding="utf-8")
    code = (
        "import sys; from robustspec.spec.loader import load_suite; from robustspec.plan import plan_suite; "
        f"plan_suite(load_suite({str(path)!r})); print('torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_check_target_is_what_the_plugin_records() -> None:
    # Every corrupted set an item needs is in its target, so its eval keys are recorded with it.
    (target,) = KIND.expand(
        params(min_accuracy=0.5, corruptions=["contrast", "pixelate"], severities=[3]), "amazon", [], "int8"
    )
    assert target == CheckTarget("amazon", ("amazon+contrast@3", "amazon+pixelate@3"))
