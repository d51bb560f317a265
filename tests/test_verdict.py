"""The verdict (robustspec.verdict.decide) as a decision table: no pytest run, no torch, no store."""

from __future__ import annotations

import itertools

import pytest

from robustspec.report.compare import ItemDelta
from robustspec.verdict import Verdict, attack_flags, decide, is_masking_flag

MASKING = "gradient masking suspected: gradient-free Square leaves 3/24 correct, fewer than pgd's 9/24"
UNCHANGED = "attack left every input unchanged"

OUTCOMES = {"pass": True, "fail": False}
BASELINES = ("none", "new", "regressed", "improved", "unchanged")
SEVERITIES = ("fail", "warn")
#: name -> (attack flags, on_masking, extra["flagged"])
FLAGS = {
    "no-flags": ((), "fail", False),
    "no-op-flag/on-masking=fail": ((UNCHANGED,), "fail", False),
    "no-op-flag/on-masking=warn": ((UNCHANGED,), "warn", False),
    "masking/on-masking=fail": ((MASKING,), "fail", False),
    "masking/on-masking=warn": ((MASKING,), "warn", False),
    "flagged-by-expectation": ((), "fail", True),
}


def delta(status: str) -> ItemDelta | None:
    if status == "none":
        return None
    return ItemDelta("suites/s.yaml::m::baseline::target-accuracy[webcam]", status, 0.80, 0.70, ">=", 0.02)


def expected(outcome: str, baseline: str, severity: str, flags: str) -> tuple[str, bool]:
    """The rules of robustspec.verdict, written out: (status, fails)."""
    if flags in ("masking/on-masking=fail", "no-op-flag/on-masking=fail", "flagged-by-expectation"):
        return "flagged", severity == "fail"
    if outcome == "fail" or baseline == "regressed":
        return ("warn", False) if severity == "warn" else ("fail", True)
    return ("warn" if flags.endswith("on-masking=warn") else "pass"), False


TABLE = [
    pytest.param(o, b, s, f, id=f"outcome={o}-baseline={b}-severity={s}-{f}")
    for o, b, s, f in itertools.product(OUTCOMES, BASELINES, SEVERITIES, FLAGS)
]


@pytest.mark.parametrize(("outcome", "baseline", "severity", "flags"), TABLE)
def test_decision_table(outcome: str, baseline: str, severity: str, flags: str) -> None:
    attack, on_masking, flagged = FLAGS[flags]
    v = decide(OUTCOMES[outcome], "measured 0.700", severity, delta(baseline), attack, on_masking, flagged)
    assert (v.status, v.fails) == expected(outcome, baseline, severity, flags)
    assert v.regressed == (baseline == "regressed")
    assert v.word == v.status.upper()
    # The results file and JUnit XML keep their three statuses.
    assert v.recorded_status in ("pass", "fail", "warn")
    assert v.recorded_status == ("fail" if v.fails else ("pass" if v.status == "pass" else "warn"))
    # Whatever does not fail but is not a clean pass says why, as a warning.
    if v.status != "pass" and not v.fails:
        assert v.warnings
    if v.status == "pass" and flags == "no-flags":
        assert v.warnings == ()
    if flags == "no-op-flag/on-masking=warn":
        assert any(UNCHANGED in w for w in v.warnings)
    if flags == "no-op-flag/on-masking=fail" and v.fails:
        assert UNCHANGED in v.message


def test_messages_name_the_baseline_and_the_flag() -> None:
    v = decide(True, "measured 0.700", "fail", delta("regressed"))
    assert v.status == "fail" and v.message.startswith("measured 0.700; baseline: regressed: measured 0.700 vs")
    v = decide(True, "measured 0.700", "fail", None, [MASKING])
    assert v == Verdict("flagged", True, False, f"flagged: {MASKING}; measured 0.700", (), (MASKING,))
    v = decide(False, "FLAGGED: the attack changed no input; measured 0.700", "fail", None, [UNCHANGED], flagged=True)
    assert v.status == "flagged" and v.message == "FLAGGED: the attack changed no input; measured 0.700"
    v = decide(False, "measured 0.700", "warn")
    assert v.status == "warn" and v.warnings == ("severity warn: measured 0.700",)
    assert decide(True, "measured 0.700", "fail", delta("improved")).message == "measured 0.700"


@pytest.mark.parametrize("status", ["gone", "error", "skipped", "stale", "a-status-compare-may-add"])
def test_only_regressed_is_a_regression(status: str) -> None:
    assert not decide(True, "ok", "fail", delta(status)).regressed
    assert decide(True, "ok", "fail", delta(status)).status == "pass"


@pytest.mark.parametrize(
    ("extra", "flags"),
    [
        pytest.param({}, [], id="none"),
        pytest.param({"attack_flags": ""}, [], id="empty"),
        pytest.param({"attack_flags": f"{UNCHANGED}; {MASKING}"}, [UNCHANGED, MASKING], id="joined-string"),
        pytest.param({"attack_flags": [MASKING]}, [MASKING], id="list"),
    ],
)
def test_attack_flags_from_extra(extra: dict, flags: list[str]) -> None:
    assert attack_flags(extra) == flags


def test_masking_flags() -> None:
    assert is_masking_flag(MASKING) and is_masking_flag("Gradient MASKING suspected")
    assert not is_masking_flag(UNCHANGED) and not is_masking_flag("zero input gradients on the first batch")


def test_verdict_is_frozen() -> None:
    v = decide(True, "ok")
    with pytest.raises(AttributeError):
        v.status = "fail"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("props", "word"),
    [
        pytest.param({"verdict": "flagged", "status": "fail"}, "FLAGGED", id="flagged"),
        pytest.param({"verdict": "warn", "status": "warn"}, "WARN", id="warn"),
        pytest.param({"verdict": "pass", "status": "pass"}, "PASS", id="pass"),
        pytest.param({"status": "fail"}, "FAIL", id="before-verdict-was-recorded"),
        pytest.param({}, "FAIL", id="could-not-run"),
    ],
)
def test_summary_shows_the_verdict(props: dict, word: str) -> None:
    from robustspec.pytest.summary import _word

    assert _word(props) == word
