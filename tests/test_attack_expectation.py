"""The attack expectation: parameters from the attack, gates, confidence, the baseline comparison, and
verdicts that cannot be fooled (masking flags fail, threat-model-matched black-box checks, the int8 worst case)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from robustspec.errors import SpecErrors
from robustspec.expect import EXPECTATIONS, CheckTarget
from robustspec.expect.attack import (
    attack_label,
    attack_params_model,
    attack_settings,
    blackbox_for,
    masking_evidence,
)
from robustspec.outcomes import decode_outcomes, encode_outcomes
from robustspec.plan import plan_suite
from robustspec.spec.loader import load_suite

REPO_SPECS = Path(__file__).resolve().parents[1] / "specs"
ITEMS = "data.test.seed0"


def _key(params, transfer_from=None) -> str:
    """How the fakes below file a result: the attack's name, the black-box label, or ``name@mode``."""
    if params.name == "square":
        return f"square-{params.norm}"
    if params.name == "sparse-rs":
        return "sparse-rs"
    if transfer_from is not None:
        return f"{params.name}@from-{transfer_from}"
    return params.name if params.mode in ("worst-case", "black-box") else f"{params.name}@{params.mode}"


class Fake:
    """Measurements from a table ``{(variant, key): result}``; a missing comparison result is the item's own."""

    source = "amazon"

    def __init__(self, results: dict, variant: str = "fp", quantized: tuple[str, ...] = ()) -> None:
        self.results, self.variant, self.quantized = results, variant, quantized
        self.asked: list[str] = []

    def metrics(self, variant=None) -> dict:
        return {"quantized": int((variant or self.variant) in self.quantized)}

    def attack(self, params, variant=None, transfer_from=None):
        v, key = variant or self.variant, _key(params, transfer_from)
        self.asked.append(key)
        if (v, key) in self.results:
            return self.results[(v, key)]
        if key.startswith(("square-", "sparse-rs")) or "@from-" in key:
            # no black-box or transfer result given: it does as well as the item's attack, no better
            return next(r for (vv, _), r in self.results.items() if vv == v)
        raise KeyError((v, key))


def result(clean: int, robust: int, n: int = 100, robust_images: list[bool] | None = None, **kw) -> dict:
    """One stored attack result; per image, the first ``robust`` images are robust unless given."""
    images = robust_images if robust_images is not None else [i < robust for i in range(n)]
    assert sum(images) == robust and len(images) == n
    return {
        "n": n,
        "clean_correct": clean,
        "robust_correct": robust,
        "attacked": clean,
        "successes": clean - robust,
        "mode": "white-box",
        "flags": [],
        "robust": encode_outcomes(images, ITEMS),
        **kw,
    }


def params(**values):
    return attack_params_model(values).model_validate(values)


def judge(p, fake):
    return EXPECTATIONS.get("attack")().judge(p, CheckTarget(attack_label(p), ("amazon",)), fake)


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


def test_a_flag_fails_the_item_by_default_and_on_masking_warn_opts_out() -> None:
    fake = Fake({("fp", "fgsm"): result(90, 90, flags=["all input gradients are zero"])})
    out = judge(params(name="fgsm", eps=0.01, **{"max-degradation": 0.5}), fake)
    props = dict(out.properties())
    assert not out.passed and out.message.startswith("FLAGGED: all input gradients are zero")
    assert props["flagged"] == "1" and props["status"] == "fail" and props["on_masking"] == "fail"
    assert props["attack_flags"] == "all input gradients are zero"
    warned = judge(params(name="fgsm", eps=0.01, **{"max-degradation": 0.5, "on-masking": "warn"}), fake)
    props = dict(warned.properties())
    assert warned.passed and "WARNING: all input gradients are zero" in warned.message
    assert props["attack_flags"] == "all input gradients are zero" and "flagged" not in props
    # The gates are judged as before: a failed gate with on-masking warn still fails, without FLAGGED.
    strict = judge(params(name="fgsm", eps=0.01, **{"min-accuracy": 0.95, "on-masking": "warn"}), fake)
    assert not strict.passed and not strict.message.startswith("FLAGGED")


def test_an_unflagged_item_records_its_black_box_check() -> None:
    fake = Fake({("baseline", "pgd-linf"): result(90, 40), ("baseline", "square-linf"): result(90, 60)}, "baseline")
    out = judge(params(name="pgd-linf", eps="4/255", **{"min-accuracy": 0.3}), fake)
    props = dict(out.properties())
    assert out.passed and "attack_flags" not in props and "flagged" not in props
    assert props["masking_check"] == "square-linf" and props["robust_accuracy[black-box]"] == 0.6
    assert props["masking_gap[black-box]"] == pytest.approx(-0.2) and props["masking_gap_high[black-box]"] < 0


@pytest.mark.parametrize(
    "entry, fragment",
    [
        ("{name: pgd-linf, eps: 1.5, max-degradation: 0.5}", "eps"),
        ("{name: pgd-linf, eps: 4/255, steps: -1, max-degradation: 0.5}", "steps"),
        ("{name: hammer, eps: 4/255, max-degradation: 0.5}", "unknown attack 'hammer'"),
        ("{name: fgsm, eps: 4/255}", "at least one of max-degradation"),
        ("{name: fgsm, eps: 4/255, max-degradation: 0.5, bogus: 1}", "unknown key 'bogus'"),
        (
            "{name: fgsm, eps: 4/255, max-degradation: 0.5, on-masking: ignore}",
            "attack.on-masking: input should be 'fail' or 'warn' (got 'ignore')",
        ),
        ("{name: fgsm, eps: 4/255, max-degradation: 0.5, mode: grey-box}", "attack.mode: input should be"),
        ("{name: ddn, mode: black-box, max-degradation: 0.5}", "mode black-box: ddn has no eps"),
    ],
    ids=[
        "eps-out-of-range",
        "negative-steps",
        "unknown-attack",
        "no-gate",
        "unknown-key",
        "unknown-on-masking",
        "unknown-mode",
        "black-box-without-budget",
    ],
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
    fake = Fake(
        {
            ("fp", "fgsm"): result(90, 85),
            ("fp", "square-linf"): result(90, 90),
            # the baseline's adversarials fool this variant far more often than its own gradients do
            ("fp", "fgsm@from-baseline"): result(90, 30, mode="transfer from baseline"),
        }
    )
    out = judge(params(name="fgsm", eps=0.01, **{"max-degradation": 0.5}), fake)
    props = dict(out.properties())
    assert not out.passed and out.message.startswith("FLAGGED: gradient masking suspected")
    assert "transferred from the baseline" in props["attack_flags"] and props["robust_accuracy[transfer]"] == 0.3
    assert props["masking_check"] == "square-linf; transfer from the baseline"
    assert judge(params(name="fgsm", eps=0.01, **{"max-degradation": 0.5, "on-masking": "warn"}), fake).passed
    # masking-check: false runs neither comparison (the driver's own flags still count).
    fake.asked.clear()
    off = judge(params(name="fgsm", eps=0.01, **{"max-degradation": 0.5, "masking-check": False}), fake)
    assert off.passed and fake.asked == ["fgsm"] and dict(off.properties())["masking_check"] == "off"


def test_a_black_box_attack_significantly_stronger_flags_masking() -> None:
    # Square fools 40 images PGD could not, on the same images: the paired interval is far above 0.
    fake = Fake({("baseline", "pgd-l2"): result(90, 80), ("baseline", "square-l2"): result(90, 40)}, "baseline")
    out = judge(params(name="pgd-l2", eps=0.5, **{"min-accuracy": 0.5}), fake)
    props = dict(out.properties())
    assert not out.passed and "gradient-free square-l2 leaves 40/100 robust" in out.message
    assert props["masking_check"] == "square-l2" and props["masking_gap_low[black-box]"] > 0


@pytest.mark.parametrize(
    "entry, spec",
    [
        ({"name": "pgd-linf", "eps": 0.03}, {"name": "square", "norm": "linf", "eps": 0.03}),
        ({"name": "fgsm", "eps": 0.03}, {"name": "square", "norm": "linf", "eps": 0.03}),
        ({"name": "deepfool", "norm": "linf", "eps": 0.03}, {"name": "square", "norm": "linf", "eps": 0.03}),
        ({"name": "pgd-l2", "eps": 0.5}, {"name": "square", "norm": "l2", "eps": 0.5}),
        ({"name": "ddn", "eps": 0.5}, {"name": "square", "norm": "l2", "eps": 0.5}),
        ({"name": "cw-l2", "eps": 0.4}, {"name": "square", "norm": "l2", "eps": 0.4}),
        ({"name": "autoattack", "eps": 0.5, "norm": "l2"}, {"name": "square", "norm": "l2", "eps": 0.5}),
        ({"name": "jsma", "gamma": 0.02}, "not available: the L0 black-box attack (sparse-rs) is stronger"),
        ({"name": "ddn"}, "not available: ddn has no eps"),
        ({"name": "cw-l2"}, "not available: cw-l2 has no eps"),
        ({"name": "square", "eps": 0.03}, "not available: square is itself a black-box attack"),
        ({"name": "sparse-rs", "eps": 0.03}, "not available: sparse-rs is itself a black-box attack"),
    ],
    ids=lambda v: v["name"] if isinstance(v, dict) and "gamma" not in v else None,
)
def test_the_masking_check_uses_the_attacks_own_threat_model(entry, spec) -> None:
    p = params(**entry, **{"min-accuracy": 0.0})
    found, why = blackbox_for(p)
    if isinstance(spec, dict):
        assert found == spec
    else:
        assert found is None and f"not available: {why}".startswith(spec)
        fake = Fake({("fp", p.name): result(90, 50)})
        assert dict(judge(p, fake).properties())["masking_check"].startswith(spec)


def test_paired_masking_decision_flags_only_a_significant_gap() -> None:
    # 38 robust under the white-box attack, 35 under the black-box one, agreeing on every other image:
    # three images are noise, not evidence (a fixed margin of 1 or 2 % would have flagged it).
    white = [i < 38 for i in range(100)]
    black = [i < 35 for i in range(100)]
    ev = masking_evidence(white, black)
    assert ev.gap == pytest.approx(0.03) and ev.low <= 0 < ev.high and not ev.suspected
    # 60 against 30: clearly worse, flagged.
    ev = masking_evidence([i < 60 for i in range(100)], [i < 30 for i in range(100)])
    assert ev.low > 0 and ev.suspected
    # The black-box attack doing better on other images than it does worse: never a flag.
    ev = masking_evidence([i < 50 for i in range(100)], [i >= 50 for i in range(100)])
    assert ev.gap == 0 and not ev.suspected
    assert not masking_evidence(black, white).suspected  # the white-box attack stronger: nothing to flag


def test_modes_are_part_of_the_label_but_the_default_is_not() -> None:
    expand = EXPECTATIONS.get("attack")().expand
    gate = {"max-degradation": 0.5}
    # The default mode (worst-case) adds nothing: a plain entry's id is attack[pgd-linf].
    assert attack_label(params(name="pgd-linf", eps="4/255", **gate)) == "pgd-linf"
    assert attack_label(params(name="pgd-linf", eps="4/255", mode="transfer", **gate)) == "pgd-linf,transfer"
    assert attack_label(params(name="pgd-linf", eps="4/255", mode="black-box", **gate)) == "pgd-linf,black-box"
    white = params(name="pgd-linf", eps="4/255", mode="white-box", domain="webcam", **gate)
    assert expand(white, "amazon", ["webcam"], "int8") == [CheckTarget("pgd-linf,white-box", ("webcam",))]
    # worst-case is keyed as transfer: the default entry and an explicit transfer share one artifact, and
    # the masking settings are gates (a changed on-masking rebuilds nothing).
    default = params(name="pgd-linf", eps="4/255", **gate)
    warn = params(name="pgd-linf", eps="4/255", mode="transfer", **gate, **{"on-masking": "warn"})
    assert attack_settings(default) == attack_settings(warn) and attack_settings(default)["mode"] == "transfer"
    assert "on_masking" not in attack_settings(default) and "masking_check" not in attack_settings(default)


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
    fake = Fake(
        {
            ("int8", "fgsm@white-box"): result(90, 85, mode="white-box (fake-quant surrogate)"),
            ("int8", "square-linf"): result(90, 90, mode="black-box"),
            ("int8", "fgsm@transfer"): result(90, 30, mode="transfer"),  # the float parent's adversarials
        },
        variant="int8",
        quantized=("int8",),
    )
    p = params(name="fgsm", eps=0.01, mode="white-box", **{"max-degradation": 0.5})
    out = judge(p, fake)
    assert "transferred from the float parent" in dict(out.properties())["attack_flags"] and not out.passed


def _pattern(seed: int, n: int = 40, p: float = 0.6) -> list[bool]:
    import random

    rng = random.Random(seed)
    return [rng.random() < p for _ in range(n)]


def test_int8_default_is_the_per_image_worst_case_of_three_modes() -> None:
    t, w, b = _pattern(1), _pattern(2), _pattern(3)
    fake = Fake(
        {
            ("int8", "pgd-linf@transfer"): result(40, sum(t), n=40, robust_images=t, mode="transfer"),
            ("int8", "pgd-linf@white-box"): result(40, sum(w), n=40, robust_images=w, mode="white-box"),
            ("int8", "square-linf"): result(40, sum(b), n=40, robust_images=b, mode="black-box"),
        },
        variant="int8",
        quantized=("int8",),
    )
    out = judge(params(name="pgd-linf", eps="4/255", **{"min-accuracy": 0.0}), fake)
    props = dict(out.properties())
    worst = [x and y and z for x, y, z in zip(t, w, b)]
    assert decode_outcomes(props["outcomes"]) == (ITEMS, worst)
    assert props["robust_accuracy"] == sum(worst) / 40 < min(sum(t), sum(w), sum(b)) / 40
    assert props["robust_accuracy[transfer]"] == sum(t) / 40 and props["robust_accuracy[black-box]"] == sum(b) / 40
    assert props["robust_accuracy[white-box]"] == sum(w) / 40
    assert props["attack_mode"] == "worst-case" and props["worst_case_of"] == "transfer, white-box, black-box"
    assert props["masking_check"].startswith("in the worst case") and out.passed
    # An explicit mode measures that mode only; a float model ignores the mode.
    fake.asked.clear()
    assert (
        dict(judge(params(name="pgd-linf", eps="4/255", mode="transfer", **{"min-accuracy": 0}), fake).properties())[
            "robust_accuracy"
        ]
        == sum(t) / 40
    )
    assert fake.asked == ["pgd-linf@transfer", "square-linf"]


def test_mode_black_box_runs_the_matched_black_box_attack() -> None:
    fake = Fake({("fp", "square-linf"): result(90, 20, mode="white-box")})
    out = judge(params(name="pgd-linf", eps="4/255", mode="black-box", **{"min-accuracy": 0.1}), fake)
    props = dict(out.properties())
    assert out.passed and props["robust_accuracy"] == 0.2 and fake.asked == ["square-linf"]
    assert props["masking_check"].startswith("not available: mode black-box")


def test_int8_worst_case_through_the_workspace_is_the_and_of_the_three_modes(tmp_path: Path) -> None:
    """A real int8 model: the default item's per-image outcome is the AND of the three modes' items."""
    from robustspec.store import Store
    from robustspec.workspace import SubjectMeasurements, Workspace

    shutil.copytree(REPO_SPECS, tmp_path / "specs")
    path = tmp_path / "s.yaml"
    path.write_text(
        "data: {name: office-synth, classes: 3, image-size: 16, train-per-class: 20, test-per-class: 12}\n"
        "source: amazon\ntrain: {epochs: 3, batch-size: 12}\nmodels: [resnet10-mini]\n"
        "variants: {int8: {quantize: {method: ptsq, calibration: 16}}}\n"
        "expect:\n  - attack: {name: fgsm, eps: 1/255, samples: 36, min-accuracy: 0.0}\n"
    )
    loaded = load_suite(path, tmp_path / "specs")
    m = SubjectMeasurements(Workspace(Store(tmp_path / "store")), loaded, loaded.suite.models[0], "int8")
    gate = {"name": "fgsm", "eps": "1/255", "samples": 36, "min-accuracy": 0.0}
    outcomes = {}
    for mode in ("transfer", "white-box", "black-box"):
        outcomes[mode] = decode_outcomes(dict(judge(params(**gate, mode=mode), m).properties())["outcomes"])[1]
    default = dict(judge(params(**gate), m).properties())
    worst = [t and w and b for t, w, b in zip(outcomes["transfer"], outcomes["white-box"], outcomes["black-box"])]
    assert decode_outcomes(default["outcomes"])[1] == worst  # image by image
    assert default["robust_accuracy"] == pytest.approx(sum(worst) / 36, abs=1e-6)
    for mode in ("transfer", "white-box", "black-box"):
        assert default[f"robust_accuracy[{mode}]"] == pytest.approx(sum(outcomes[mode]) / 36, abs=1e-6)
    assert default["attack_mode"] == "worst-case" and default["worst_case_of"] == "transfer, white-box, black-box"


ROUNDNET = '''
import torch
from torch import nn

from robustspec.models import build_network


class Rounded(nn.Module):
    """Rounds its input to 8 bits first: every input gradient is zero."""

    def __init__(self, num_classes):
        super().__init__()
        self.inner = build_network("resnet10-mini", num_classes)

    def forward(self, x):
        return self.inner(torch.round(x * 255) / 255)


def make(num_classes):
    return Rounded(num_classes)
'''


def test_end_to_end_a_flagged_item_fails_and_on_masking_warn_passes_with_a_warning(
    isolated_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester = isolated_pytester
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    shutil.copytree(REPO_SPECS, pytester.path / "specs")
    (pytester.path / "roundnet.py").write_text(ROUNDNET)
    (pytester.path / "suites").mkdir()
    entry = "{name: fgsm, eps: 8/255, samples: 16, max-degradation: 1.0, masking-check: false"
    (pytester.path / "suites" / "s.yaml").write_text(
        "data: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 8}\n"
        "source: amazon\ntrain: {epochs: 1, batch-size: 12}\n"
        "models:\n  - {name: rounded, arch: 'roundnet:make'}\n"
        f"expect:\n  - attack: {entry}}}\n  - attack: {entry}, on-masking: warn}}\n"
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--robustspec-store={pytester.path / 'store'}",
        "suites/s.yaml", timeout=300,
    )  # fmt: skip
    text = result.stdout.str()
    result.assert_outcomes(passed=1, failed=1)  # attack#2[fgsm], on-masking: warn, passes with a warning
    assert "FLAGGED: all input gradients are zero" in text
    assert re.search(r"attack#2\[fgsm\]\n.*RobustSpecWarning: on-masking warn: all input gradients are zero", text), (
        text
    )
    assert re.search(r"attack\s+fgsm\s+.*FLAGGED", text), text


@pytest.mark.parametrize(("written", "queries"), [({}, 250), ({"masking-queries": 1000}, 1000)], ids=["default", "set"])
def test_the_masking_check_runs_square_with_masking_queries(written, queries) -> None:
    from robustspec.expect.attack import _blackbox_params

    p = params(name="pgd-linf", eps=0.03, **{"min-accuracy": 0.0}, **written)
    spec, _ = blackbox_for(p)
    square = _blackbox_params(p, spec)
    assert (square.name, square.norm, square.queries, square.masking_check) == ("square", "linf", queries, False)
    # The queries are the black-box artifact's own parameter; the white-box attack's key does not see them.
    assert attack_settings(square)["queries"] == queries
    assert attack_settings(p) == attack_settings(params(name="pgd-linf", eps=0.03, **{"min-accuracy": 0.0}))


def test_a_masking_check_that_does_not_flag_still_records_what_it_compared() -> None:
    """Every comparison that ran is in the item's properties, flagged or not (it may have cost minutes)."""
    fake = Fake(
        {
            ("fp", "fgsm"): result(90, 60, seconds=2.0),
            ("fp", "square-linf"): result(90, 58, seconds=648.0),  # 2 fewer robust of 100: noise, not masking
            ("fp", "fgsm@from-baseline"): result(90, 70, mode="transfer from baseline", seconds=3.0),
        }
    )
    out = judge(params(name="fgsm", eps=0.01, **{"max-degradation": 0.5}), fake)
    props = dict(out.properties())
    assert out.passed and "flagged" not in props and "attack_flags" not in props
    assert props["masking_verdict"] == "not suspected"
    assert props["masking_check"] == "square-linf; transfer from the baseline"
    assert props["masking_attack[black-box]"] == "square-linf, 250 queries"
    assert props["masking_attack[transfer]"] == "fgsm transferred from the baseline"
    assert (props["robust_accuracy[black-box]"], props["robust_correct[black-box]"]) == (0.58, 58)
    assert (props["robust_accuracy[transfer]"], props["robust_correct[transfer]"]) == (0.7, 70)
    assert props["attack_seconds[black-box]"] == 648.0 and props["attack_seconds[transfer]"] == 3.0
    assert props["masking_suspected[black-box]"] == 0 and props["masking_suspected[transfer]"] == 0
    assert props["masking_paired[black-box]"] == 1
    assert props["masking_gap[black-box]"] == pytest.approx(0.02)
    assert props["masking_gap_low[black-box]"] <= 0 <= props["masking_gap_high[black-box]"]
    # Flagged: the same properties, with the verdict.
    fake.results[("fp", "square-linf")] = result(90, 20)
    props = dict(judge(params(name="fgsm", eps=0.01, **{"max-degradation": 0.5}), fake).properties())
    assert props["masking_verdict"] == "suspected" and props["masking_suspected[black-box]"] == 1
    assert props["masking_suspected[transfer]"] == 0 and props["flagged"] == "1"
    # Nothing compared: the verdict says so.
    off = dict(
        judge(params(name="fgsm", eps=0.01, **{"max-degradation": 0.5, "masking-check": False}), fake).properties()
    )
    assert off["masking_verdict"] == "not run" and not any(k.startswith("masking_attack") for k in off)


def test_end_to_end_an_unflagged_masking_check_is_in_the_results_file_and_junit_xml(
    isolated_pytester: pytest.Pytester, tmp_path: Path
) -> None:
    import json
    import xml.etree.ElementTree as ET

    pytester = isolated_pytester
    shutil.copytree(REPO_SPECS, pytester.path / "specs")
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "s.yaml").write_text(
        "data: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 8}\n"
        "source: amazon\ntrain: {epochs: 1, batch-size: 12}\nmodels: [resnet10-mini]\n"
        "expect:\n  - attack: {name: fgsm, eps: 1/255, samples: 16, max-degradation: 1.0, masking-queries: 20}\n"
    )
    results, xml = tmp_path / "results.json", tmp_path / "out.xml"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--robustspec-store={tmp_path / 'store'}",
        f"--robustspec-results={results}", f"--junitxml={xml}", "suites/s.yaml", timeout=300,
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    [item] = json.loads(results.read_text())["items"]
    recorded = item["properties"]
    [case] = ET.parse(xml).getroot().iter("testcase")
    junit = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert recorded["masking_verdict"] == junit["masking_verdict"] == "not suspected"
    assert recorded["masking_attack[black-box]"] == junit["masking_attack[black-box]"] == "square-linf, 20 queries"
    for key in ("robust_accuracy[black-box]", "robust_correct[black-box]", "attack_seconds[black-box]"):
        assert key in recorded and key in junit, (key, recorded)
    assert recorded["masking_suspected[black-box]"] == 0 and junit["masking_suspected[black-box]"] == "0"
    # The Square run's progress was on the terminal.
    assert any(line.startswith("[robustspec] attack square on resnet10-mini/baseline") for line in result.stdout.lines)
