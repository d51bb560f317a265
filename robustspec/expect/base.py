"""What an expectation kind is, what it measures, and the verdict it gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ..registry import Registry
from ..spec.schema import ExpectationBase
from ..stats import newcombe_difference, newcombe_paired_difference, wilson_interval

__all__ = [
    "Accuracy",
    "Outcome",
    "Expectation",
    "Measurements",
    "EXPECTATIONS",
    "CheckTarget",
    "gate_min",
    "gate_max",
    "at_least",
    "at_most",
    "Difference",
    "paired_table",
]


@dataclass(frozen=True)
class Accuracy:
    """``correct`` out of ``n`` test images of one domain.

    ``outcomes`` (one bool per image, in the split's order) and ``items`` (what identifies those images,
    e.g. the data artifact's key) are optional; two accuracies with both and the same ``items`` were
    measured on the same images, and :class:`Difference` then uses the paired interval. ``classes``, also
    optional, is the :class:`~robustspec.confusion.Confusion` of the same images (per-class numbers).
    """

    correct: int
    n: int
    outcomes: Any = field(default=None, compare=False, repr=False)
    items: str | None = None
    classes: Any = field(default=None, compare=False, repr=False)

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


class Measurements(Protocol):
    """What a judge may ask for, computed (once, through the store) on demand."""

    source: str
    variant: str  # the variant of the item being judged

    def accuracy(self, domain: str, variant: str | None = None) -> Accuracy:
        """Accuracy on a domain's test split, of this item's variant or of another (``"baseline"``).

        ``variant`` may also be a derived name: ``<variant>~unadapted`` is that variant's chain without its
        adaptation steps (:func:`robustspec.expect.adaptation.unadapted_name`). Its ``classes`` holds the
        per-class numbers (the confusion matrix) of the same images.
        """

    def metrics(self, variant: str | None = None) -> dict[str, Any]:
        """Size metrics: ``parameters``, ``bytes``, ``macs``, ``nonzero_parameters``, ``quantized``."""


class Expectation(Protocol):
    """An expectation kind: its parameter model, how it expands into items, and how it judges one."""

    Params: ClassVar[type[ExpectationBase]]

    def expand(self, params: Any, source: str, targets: list[str], variant: str) -> list[CheckTarget]:
        """The items this expectation becomes for one variant; at collection, so cheap and deterministic.

        A kind whose items depend on the variant's chain may define ``expand_chain(params, source, targets,
        variant, steps)`` too (``steps``: the variant's parsed steps, empty for the baseline); planning then
        calls it instead (``adaptation-gain`` exists only for chains with an adaptation step).
        """

    def judge(self, params: Any, target: CheckTarget, m: Measurements) -> Outcome:
        """The verdict for one item."""


#: Expectation kinds by their YAML name (``target-accuracy``, ...).
EXPECTATIONS: Registry[Expectation] = Registry("expectation")


#: Accuracies are ratios of counts: 0.8 - 0.6 is 0.20000000000000007, which must not fail "max: 0.2".
EPS = 1e-9


def at_least(value: float, minimum: float) -> bool:
    return value >= minimum - EPS


def at_most(value: float, maximum: float) -> bool:
    return value <= maximum + EPS


def gate_min(value: Accuracy, minimum: float, confidence: float | None, what: str) -> Outcome:
    """Pass when the accuracy (or, with ``confidence``, its Wilson lower bound) is at least ``minimum``."""
    lo, hi = value.interval(confidence or 0.95)
    gated = lo if confidence else value.value
    passed = at_least(gated, minimum)
    basis = f"{int((confidence or 0.95) * 100)}% lower bound {lo:.3f}" if confidence else f"{value.value:.3f}"
    level = int(round((confidence or 0.95) * 100))
    msg = (
        f"{what}: measured {value.value:.3f} ({value.correct}/{value.n}, {level}% CI [{lo:.3f}, {hi:.3f}]); "
        f"gate on {basis} {'>=' if passed else '<'} min {minimum:.3f}"
    )
    return Outcome(passed, value.value, minimum, ">=", msg, value.n, lo, hi, confidence)


def gate_max(what: str, measured: float, maximum: float, unit: str = "", scale: float = 1.0) -> Outcome:
    """Pass when a deterministic quantity (parameters, bytes) is at most ``maximum``."""
    passed = at_most(measured, maximum)
    fmt = lambda v: f"{v / scale:.4g}{unit}"  # noqa: E731
    msg = f"{what}: measured {fmt(measured)}; {'<=' if passed else '>'} max {fmt(maximum)}"
    return Outcome(passed, measured, maximum, "<=", msg)


def paired_table(first: Accuracy, second: Accuracy) -> tuple[int, int, int, int] | None:
    """(both right, only the first, only the second, neither) when both accuracies have per-image outcomes
    for the same images, else None."""
    from ..outcomes import contingency

    a, b = first.outcomes, second.outcomes
    if a is None or b is None or first.items is None or first.items != second.items or len(a) != len(b):
        return None
    return contingency(a.tolist() if hasattr(a, "tolist") else a, b.tolist() if hasattr(b, "tolist") else b)


@dataclass(frozen=True)
class Difference:
    """``first - second`` of two accuracies with Newcombe's interval, optionally divided by ``scale``.

    Paired (:func:`~robustspec.stats.newcombe_paired_difference`) when both were measured on the same
    images with per-image outcomes (two models on one test split); else for independent samples (one
    model on two domains).
    """

    value: float
    low: float
    high: float
    level: int  # the interval's confidence in percent
    paired: bool = False

    @classmethod
    def of(cls, first: Accuracy, second: Accuracy, confidence: float | None, scale: float = 1.0) -> Difference:
        level = confidence or 0.95
        table = paired_table(first, second)
        if table is not None:
            lo, hi = newcombe_paired_difference(*table, level)
        else:
            lo, hi = newcombe_difference(first.correct, first.n, second.correct, second.n, level)
        return cls(
            (first.value - second.value) / scale, lo / scale, hi / scale, int(round(level * 100)), table is not None
        )

    def gate(self, limit: float, confidence: float | None, *, maximum: bool, signed: bool = False) -> tuple[bool, str]:
        """Pass or fail against ``limit`` (a max or a min); with ``confidence``, on the interval's far bound.

        Returns the verdict and a message tail: "measured ... (95% CI [...]); gate on ... <= max ...".
        """
        f = "{:+.3f}" if signed else "{:.3f}"
        bound = self.high if maximum else self.low
        gated = bound if confidence else self.value
        passed = at_most(gated, limit) if maximum else at_least(gated, limit)
        side = "upper" if maximum else "lower"
        basis = f"{self.level}% {side} bound {f.format(bound)}" if confidence else f.format(self.value)
        op = ("<=" if passed else ">") if maximum else (">=" if passed else "<")
        kind = "paired CI" if self.paired else "CI"
        return passed, (
            f"measured {f.format(self.value)} ({self.level}% {kind} [{f.format(self.low)}, {f.format(self.high)}]); "
            f"gate on {basis} {op} {'max' if maximum else 'min'} {f.format(limit)}"
        )
