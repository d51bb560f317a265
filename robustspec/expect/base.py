"""What an expectation kind is, what it measures, and the verdict it gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ..registry import Registry
from ..spec.schema import ExpectationBase
from ..stats import wilson_interval

__all__ = ["Accuracy", "Outcome", "Expectation", "EXPECTATIONS", "CheckTarget"]


@dataclass(frozen=True)
class Accuracy:
    """``correct`` out of ``n`` test images of one domain."""

    correct: int
    n: int

    @property
    def value(self) -> float:
        return self.correct / self.n if self.n else 0.0

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n, confidence)


@dataclass
class Outcome:
    """A verdict with the numbers behind it; every field reaches the JUnit XML as a property."""

    passed: bool
    measured: float
    threshold: float
    comparison: str  # ">=" or "<="
    message: str
    n: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def properties(self) -> list[tuple[str, Any]]:
        props: list[tuple[str, Any]] = [
            ("measured", round(self.measured, 6)),
            ("threshold", self.threshold),
            ("comparison", self.comparison),
            ("status", "pass" if self.passed else "fail"),
        ]
        if self.n is not None:
            props.append(("n", self.n))
        if self.ci_low is not None:
            props += [("ci_low", round(self.ci_low, 6)), ("ci_high", round(self.ci_high or 0.0, 6))]
        if self.confidence is not None:
            props.append(("confidence", self.confidence))
        props += sorted(self.extra.items())
        return props


@dataclass(frozen=True)
class CheckTarget:
    """One item an expectation expands into: an id label and the domains whose accuracy it needs."""

    label: str  # "" or e.g. "webcam"
    domains: tuple[str, ...]


class Expectation(Protocol):
    """An expectation kind: its parameter model, how it expands into items, and how it judges one."""

    Params: ClassVar[type[ExpectationBase]]

    def expand(self, params: Any, source: str, targets: list[str]) -> list[CheckTarget]:
        """The items this expectation becomes; called at collection, must be cheap and deterministic."""

    def judge(self, params: Any, target: CheckTarget, source: str, accuracy: dict[str, Accuracy]) -> Outcome:
        """The verdict for one item, given the accuracies of the domains it asked for."""


#: Expectation kinds by their YAML name (``target-accuracy``, ...).
EXPECTATIONS: Registry[Expectation] = Registry("expectation")


def gate_min(value: Accuracy, minimum: float, confidence: float | None, what: str) -> Outcome:
    """Pass when the accuracy (or, with ``confidence``, its Wilson lower bound) is at least ``minimum``."""
    lo, hi = value.interval(confidence or 0.95)
    gated = lo if confidence else value.value
    passed = gated >= minimum
    basis = f"{int((confidence or 0.95) * 100)}% lower bound {lo:.3f}" if confidence else f"{value.value:.3f}"
    msg = (
        f"{what}: measured {value.value:.3f} ({value.correct}/{value.n}, "
        f"95% CI [{lo:.3f}, {hi:.3f}]); gate on {basis} {'>=' if passed else '<'} min {minimum:.3f}"
        if not confidence
        else f"{what}: measured {value.value:.3f} ({value.correct}/{value.n}, "
        f"{int(confidence * 100)}% CI [{lo:.3f}, {hi:.3f}]); gate on {basis} {'>=' if passed else '<'} min {minimum:.3f}"
    )
    return Outcome(passed, value.value, minimum, ">=", msg, value.n, lo, hi, confidence)
