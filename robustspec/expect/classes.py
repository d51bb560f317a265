"""Per-class expectations: balanced accuracy (the mean per-class recall) and the worst class's accuracy.

Both read the confusion matrix of an evaluation (:class:`robustspec.confusion.Confusion`, the ``classes``
of :meth:`Measurements.accuracy`); a class without test images on a domain has no accuracy there and is
left out of both.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..confusion import Confusion, confusion_properties
from ..errors import ArtifactError
from ..spec.schema import DomainRef, ExpectationBase, Probability
from .base import EXPECTATIONS, Accuracy, CheckTarget, Outcome, at_least

__all__ = ["BalancedAccuracy", "MinClassAccuracy", "class_properties"]

#: How many classes a message names.
NAMED = 3


class BalancedAccuracyParams(ExpectationBase):
    min: Probability = Field(description="minimum balanced accuracy: the mean of the per-class accuracies")
    domains: list[DomainRef] | None = Field(None, description="default: the source and every target domain")


class MinClassAccuracyParams(ExpectationBase):
    min: Probability = Field(description="minimum accuracy of every class (the worst class's accuracy)")
    domains: list[DomainRef] | None = Field(None, description="default: the source and every target domain")


def confusion_of(acc: Accuracy, domain: str) -> Confusion:
    """The per-class numbers behind an accuracy; an error when it was measured without them."""
    if not isinstance(acc.classes, Confusion) or not acc.classes.present():
        raise ArtifactError(f"the evaluation on {domain!r} holds no per-class numbers (no predicted classes)")
    return acc.classes


def class_properties(domain: str, acc: Accuracy) -> dict[str, Any]:
    """:func:`~robustspec.confusion.confusion_properties` of an accuracy that has per-class numbers, else {}."""
    return confusion_properties(domain, acc.classes) if isinstance(acc.classes, Confusion) else {}


def _class(name: str, correct: int, n: int, low: float | None = None) -> str:
    bound = "" if low is None else f", lower bound {low:.3f}"
    return f"{name} {correct / n:.3f} ({correct}/{n}{bound})"


def _named(rows: list[str], total: int) -> str:
    more = f" and {total - len(rows)} more" if total > len(rows) else ""
    return ", ".join(rows) + more


def _domains(params: Any, source: str, targets: list[str]) -> list[CheckTarget]:
    return [CheckTarget(d, (d,)) for d in (params.domains or [source, *targets])]


@EXPECTATIONS.register("balanced-accuracy")
class BalancedAccuracy:
    """Minimum balanced accuracy (mean per-class accuracy) on each domain (one item per domain).

    With ``confidence``, the gate is the lower bound of an interval for the mean of the per-class
    proportions: each class's Wilson limits combined by MOVER (Zou and Donner 2008), whose half-width is
    ``z sqrt(sum p_k (1 - p_k) / n_k) / K`` away from 0 and 1
    (:func:`robustspec.stats.mean_proportion_interval`). Classes count equally, whatever their number of
    test images; a class without test images is left out.
    """

    Params = BalancedAccuracyParams

    def expand(
        self, params: BalancedAccuracyParams, source: str, targets: list[str], variant: str
    ) -> list[CheckTarget]:
        return _domains(params, source, targets)

    def judge(self, params: BalancedAccuracyParams, target: CheckTarget, m: Any) -> Outcome:
        d = target.label
        acc = m.accuracy(d)
        conf = confusion_of(acc, d)
        value = conf.balanced_accuracy
        level = params.confidence or 0.95
        lo, hi = conf.balanced_interval(level)
        gated = lo if params.confidence else value
        passed = at_least(gated, params.min)
        pct = int(round(level * 100))
        basis = f"{pct}% lower bound {lo:.3f}" if params.confidence else f"{value:.3f}"
        classes = len(conf.present())
        worst = conf.worst(NAMED)
        msg = (
            f"balanced accuracy on {d!r}: measured {value:.3f} (mean of {classes} classes' accuracy, "
            f"{pct}% CI [{lo:.3f}, {hi:.3f}]; accuracy {acc.value:.3f}); gate on {basis} "
            f"{'>=' if passed else '<'} min {params.min:.3f}; worst classes: "
            + _named([_class(*w) for w in worst], classes)
        )
        extra = {**class_properties(d, acc), "classes": classes, "worst_class": worst[0][0]}
        return Outcome(passed, value, params.min, ">=", msg, acc.n, lo, hi, params.confidence, extra=extra)


@EXPECTATIONS.register("min-class-accuracy")
class MinClassAccuracy:
    """Minimum accuracy of every class on each domain: the worst class's accuracy >= ``min``.

    With ``confidence``, every class's Wilson lower bound must reach ``min``: an intersection-union test
    (a pass needs each class confirmed), which holds its level without a multiplicity correction. The
    interval recorded is ``[min_k l_k, min_k u_k]`` of the classes' Wilson limits. A class without test
    images is left out.
    """

    Params = MinClassAccuracyParams

    def expand(
        self, params: MinClassAccuracyParams, source: str, targets: list[str], variant: str
    ) -> list[CheckTarget]:
        return _domains(params, source, targets)

    def judge(self, params: MinClassAccuracyParams, target: CheckTarget, m: Any) -> Outcome:
        d = target.label
        acc = m.accuracy(d)
        conf = confusion_of(acc, d)
        level = params.confidence or 0.95
        pct = int(round(level * 100))
        intervals = conf.class_intervals(level)
        rows = conf.present()
        worst_name, worst_c, worst_n = conf.worst(1)[0]
        value = worst_c / worst_n
        lo = min(low for low, _ in intervals.values())
        hi = min(high for _, high in intervals.values())

        def gated(row: tuple[str, int, int]) -> float:
            return intervals[row[0]][0] if params.confidence else row[1] / row[2]

        failing = sorted((r for r in rows if not at_least(gated(r), params.min)), key=lambda r: (gated(r), r[0]))
        passed = not failing
        bound = lambda r: intervals[r[0]][0] if params.confidence else None  # noqa: E731
        what = f"{pct}% lower bound of every class" if params.confidence else "every class"
        head = (
            f"worst class on {d!r}: {_class(worst_name, worst_c, worst_n)} of {len(rows)} classes "
            f"({pct}% CI [{lo:.3f}, {hi:.3f}]); gate on {what} "
        )
        if passed:
            msg = head + f">= min {params.min:.3f}"
        else:
            msg = (
                head
                + f">= min {params.min:.3f} fails for {len(failing)}: "
                + _named([_class(*r, bound(r)) for r in failing[:NAMED]], len(failing))
            )
        extra: dict[str, Any] = {**class_properties(d, acc), "classes": len(rows), "worst_class": worst_name}
        if failing:
            extra["failing_classes"] = ", ".join(r[0] for r in failing)
        return Outcome(passed, value, params.min, ">=", msg, worst_n, lo, hi, params.confidence, extra=extra)
