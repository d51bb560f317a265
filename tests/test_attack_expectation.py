"""The attack expectation: parameters from the attack, gates, confidence, and the baseline comparison."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from robustspec.errors import SpecErrors
from robustspec.expect import EXPECTATIONS, CheckTarget
from robustspec.expect.attack import attack_label, attack_params_model, attack_settings
from robustspec.plan import plan_suite
from robustspec.spec.loader import load_suite

REPO_SPECS = Path(__file__).resolve().parents[1] / "specs"


class Fake:
    source = "amazon"

    def __init__(self, results: dict, variant: str = "fp") -> None:
        self.results, self.variant = results, variant

    def attack(self, params, variant=None):
        return self.results[(variant or self.variant, params.name)]


def result(clean: int, robust: int, n: int = 100, **kw) -> dict:
    return {
        "n": n,
        "clean_correct": clean,
        "robust_correct": robust,
        "attacked": clean,
        "successes": clean - robust,
        "mode": "white-box",
        "flags": [],
        **kw,
    }


def params(**values):
    return attack_params_model(values).model_validate(values)


def judge(p, fake):
    return EXPECTATIONS.get("attack")().judge(p, CheckTarget(p.name, ("amazon",)), fake)


def test_eps_is_a_pixel_fraction_and_settings_exclude_gates() -> None:
    p = params(name="pgd-linf", eps="4/255", steps=10, **{"max-degradation": 0.5})
    assert p.eps == pytest.approx(4 / 255)
    settings = attack_settings(p)
    assert "max_degradation" not in settings and settings["steps"] == 10 and settings["name"] == "pgd-linf"
    # Changing a threshold must not change what is computed (the artifact key depends on the settings only).
    assert attack_settings(params(name="pgd-linf", eps="4/255", steps=10, **{"max-degradation": 0.1})) == settings


def test_gates_degradation_accuracy_and_baseline() -> None:
    fake = Fake({("fp", "fgsm"): result(90, 40), ("baseline", "fgsm"): result(95, 70)})
    assert not judge(params(name="fgsm", eps=0.01, **{"max-degradation": 0.4}), fake).passed  # 0.5 > 0.4
    assert judge(params(name="fgsm", eps=0.01, **{"min-accuracy": 0.4}), fake).passed
    out = judge(params(name="fgsm", eps=0.01, **{"max-degradation-vs-baseline": 0.2}), fake)
    assert not out.passed and out.measured == pytest.approx(0.5 - 0.25)


def test_confidence_gates_on_the_wilson_bound() -> None:
    fake = Fake({("fp", "fgsm"): result(90, 45)})
    assert judge(params(name="fgsm", eps=0.01, **{"min-accuracy": 0.4}), fake).passed
    assert not judge(params(name="fgsm", eps=0.01, confidence=0.95, **{"min-accuracy": 0.4}), fake).passed


def test_flags_reach_the_message_and_properties() -> None:
    fake = Fake({("fp", "fgsm"): result(90, 90, flags=["all input gradients are zero"])})
    out = judge(params(name="fgsm", eps=0.01, **{"max-degradation": 0.5}), fake)
    assert "WARNING" in out.message and dict(out.properties())["attack_flags"] == "all input gradients are zero"


@pytest.mark.parametrize(
    "entry, fragment",
    [
        ("{name: pgd-linf, eps: 1.5, max-degradation: 0.5}", "eps"),
        ("{name: pgd-linf, eps: 4/255, steps: -1, max-degradation: 0.5}", "steps"),
        ("{name: hammer, eps: 4/255, max-degradation: 0.5}", "unknown attack 'hammer'"),
        ("{name: fgsm, eps: 4/255}", "at least one of max-degradation"),
        ("{name: fgsm, eps: 4/255, max-degradation: 0.5, bogus: 1}", "unknown key 'bogus'"),
    ],
    ids=["eps-out-of-range", "negative-steps", "unknown-attack", "no-gate", "unknown-key"],
)
def test_bad_attack_entries_are_positioned_errors(tmp_path: Path, entry: str, fragment: str) -> None:
    shutil.copytree(REPO_SPECS, tmp_path / "specs")
    path = tmp_path / "s.yaml"
    path.write_text(f"source: amazon\nmodels: [mini]\nexpect:\n  - attack: {entry}\n")
    with pytest.raises(SpecErrors) as info:
        load_suite(path)
    assert any(line.startswith(f"{path}:4:") and fragment in line for line in str(info.value).splitlines()), str(
        info.value
    )


def test_masking_check_flags_a_transfer_that_beats_white_box() -> None:
    class Masked(Fake):
        def attack(self, params, variant=None, transfer_from=None):
            if params.name == "square":
                return result(90, 90)
            if transfer_from == "baseline":
                return result(90, 30)  # the baseline's adversarials fool this variant far more often
            return result(90, 85)

    out = judge(params(name="fgsm", eps=0.01, **{"max-degradation": 0.5, "masking-check": True}), Masked({}))
    assert out.passed and "transferred from the baseline" in out.message
    assert "gradient masking suspected" in dict(out.properties())["attack_flags"]


def test_a_non_default_mode_is_part_of_the_label() -> None:
    expand = EXPECTATIONS.get("attack")().expand
    gate = {"max-degradation": 0.5}
    # The default mode adds nothing: ids (and results baselines keyed on them) are those of before modes.
    assert attack_label(params(name="pgd-linf", eps="4/255", **gate)) == "pgd-linf"
    assert attack_label(params(name="pgd-linf", eps="4/255", mode="transfer", **gate)) == "pgd-linf"
    white = params(name="pgd-linf", eps="4/255", mode="white-box", domain="webcam", **gate)
    assert expand(white, "amazon", ["webcam"], "int8") == [CheckTarget("pgd-linf,white-box", ("webcam",))]


def test_both_modes_of_one_attack_get_unique_readable_ids(tmp_path: Path) -> None:
    shutil.copytree(REPO_SPECS, tmp_path / "specs")
    path = tmp_path / "s.yaml"
    path.write_text(
        "source: amazon\nmodels:\n  - name: resnet10-mini\n    variants: {int8: {quantize: ptsq}}\nexpect:\n"
        "  - attack: {name: pgd-linf, eps: 4/255, min-accuracy: 0.5}\n"
        "  - attack: {name: pgd-linf, eps: 4/255, mode: white-box, min-accuracy: 0.5}\n"
        "  - attack: {name: pgd-linf, eps: 8/255, min-accuracy: 0.2}\n"
    )
    names = [c.name for c in plan_suite(load_suite(path)) if c.variant == "int8"]
    # A second entry of the same attack in the same mode still gets "#2"; another mode does not need it.
    assert names == ["attack[pgd-linf]", "attack[pgd-linf,white-box]", "attack#2[pgd-linf]"]
    # Labels become the last part of a node id and a JUnit classname/name: no "::" or "." in them.
    assert not any("::" in n or "." in n or " " in n for n in names)


def test_masking_check_runs_for_a_fake_quant_white_box_attack() -> None:
    class Int8(Fake):
        def attack(self, params, variant=None, transfer_from=None):
            if params.name == "square":
                return result(90, 90, mode="black-box")
            if transfer_from == "baseline":
                return result(90, 30, mode="transfer from baseline")
            return result(90, 85, mode="white-box (fake-quant surrogate)")

    p = params(name="fgsm", eps=0.01, mode="white-box", **{"max-degradation": 0.5, "masking-check": True})
    out = judge(p, Int8({}, variant="int8"))
    assert "transferred from the baseline" in dict(out.properties())["attack_flags"]
