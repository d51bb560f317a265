"""The verdict of one check item: its outcome, severity, baseline comparison and attack flags → pass or not.

A pure function (no pytest, no I/O), so the whole decision table is unit-tested directly
(tests/test_verdict.py); the pytest gate (:mod:`robustspec.pytest.gate`) records it and raises.

The rules, in order:

1. *Flagged*: any attack flag, the suspected gradient masking ones and the no-op ones alike (zero input
   gradients of the attack's own loss, adversarials unchanged or NaN), or ``extra["flagged"]`` set by the
   expectation. A check that can be fooled is not a check, so with ``on-masking: fail`` (the default)
   the item is ``flagged`` and fails even if its numbers pass; with ``on-masking: warn`` the flags are a
   warning only, and a passing item is ``warn``.
2. A failing outcome or a regression against the baseline is ``fail``.
3. ``severity: warn`` turns every failure (1 and 2) into a warning: the item never fails, its status is
   ``warn`` (or stays ``flagged``, so the summary still says FLAGGED).

Only a comparison whose status is ``regressed`` counts as a regression; every other status (``new``,
``improved``, ``unchanged``, ``gone``, ``error``, ``skipped``, ...) does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Verdict", "decide", "attack_flags", "is_masking_flag", "STATUSES"]

Status = Literal["pass", "fail", "warn", "flagged"]
#: Every verdict status, with the word the terminal summary shows for it.
STATUSES: dict[str, str] = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "flagged": "FLAGGED"}


@dataclass(frozen=True)
class Verdict:
    """What becomes of one judged item.

    ``status`` is ``pass``, ``fail``, ``warn`` or ``flagged``; ``fails`` says whether the item fails (a
    ``flagged`` item of a ``severity: warn`` expectation does not); ``regressed`` whether the baseline
    comparison found a regression; ``message`` is the one line shown for a failure or warning (the
    outcome's message, and the baseline's when there is one); ``warnings`` are the lines to emit as
    :class:`~robustspec.errors.RobustSpecWarning` (empty for a clean pass).
    """

    status: Status
    fails: bool
    regressed: bool
    message: str
    warnings: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()

    @property
    def word(self) -> str:
        """PASS, FAIL, WARN or FLAGGED."""
        return STATUSES[self.status]

    @property
    def recorded_status(self) -> str:
        """The ``status`` property of the results file and JUnit XML: pass, fail or warn (flagged counts as
        fail when it fails, else warn), so readers of those files see the three values they always saw."""
        if self.status == "flagged":
            return "fail" if self.fails else "warn"
        return self.status


def is_masking_flag(flag: str) -> bool:
    """Whether an attack flag suspects gradient masking (the other flags say an attack did nothing)."""
    return "masking" in flag.lower()


def attack_flags(extra: Mapping[str, Any]) -> list[str]:
    """The attack flags of an outcome's ``extra``: a list of strings, or one string joined with ``"; "``."""
    raw = extra.get("attack_flags")
    if not raw:
        return []
    if isinstance(raw, str):
        return [f for f in (part.strip() for part in raw.split("; ")) if f]
    return [str(f) for f in raw]


def decide(
    passed: bool,
    message: str,
    severity: str = "fail",
    delta: Any = None,
    flags: Iterable[str] = (),
    on_masking: str = "fail",
    flagged: bool = False,
) -> Verdict:
    """The verdict of one item.

    ``passed``/``message``: the expectation's outcome; ``severity``: ``fail`` or ``warn``; ``delta``: the
    baseline comparison of this item (a :class:`~robustspec.report.compare.ItemDelta`, or anything with
    ``status`` and ``message()``), None without a baseline; ``flags``: the attack flags; ``on_masking``:
    ``fail`` or ``warn``; ``flagged``: the expectation itself flagged the outcome (``extra["flagged"]``).
    """
    flags = tuple(flags)
    is_flagged = bool(flags) or flagged
    regressed = delta is not None and getattr(delta, "status", None) == "regressed"
    lenient = severity == "warn"

    text = message
    if delta is not None and (not passed or regressed):
        text = f"{text}; baseline: {delta.message()}"
    warnings: list[str] = []

    if is_flagged and on_masking != "warn":
        if not text.upper().startswith("FLAGGED"):  # the attack expectation may have said so already
            text = f"flagged: {'; '.join(flags) or 'the expectation flagged this outcome'}; {text}"
        if lenient:
            warnings.append(f"severity warn: {text}")
        return Verdict("flagged", not lenient, regressed, text, tuple(warnings), flags)
    if is_flagged:
        warnings.append(f"on-masking warn: {'; '.join(flags) or 'the expectation flagged this outcome'}")

    if passed and not regressed:
        return Verdict("warn" if is_flagged else "pass", False, regressed, text, tuple(warnings), flags)
    if lenient:
        warnings.append(f"severity warn: {text}")
        return Verdict("warn", False, regressed, text, tuple(warnings), flags)
    return Verdict("fail", True, regressed, text, tuple(warnings), flags)
