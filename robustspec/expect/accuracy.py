"""Domain-shift expectations: accuracy on the source domain, on target domains, and the drop between them."""

from __future__ import annotations

from pydantic import Field

from ..spec.schema import ExpectationBase, Probability, TargetDomainRef
from .base import EXPECTATIONS, Accuracy, CheckTarget, Difference, Outcome, gate_min
from .classes import class_properties


class SourceAccuracyParams(ExpectationBase):
    min: Probability = Field(description="minimum accuracy on the source domain's test split")


class TargetAccuracyParams(ExpectationBase):
    min: Probability = Field(description="minimum accuracy on each target domain")
    domains: list[TargetDomainRef] | None = Field(
        None, description="target domains (default: every target of the suite)"
    )


class DropParams(ExpectationBase):
    max: Probability = Field(description="maximum drop: source accuracy minus target accuracy")
    domains: list[TargetDomainRef] | None = Field(
        None, description="target domains (default: every target of the suite)"
    )


@EXPECTATIONS.register("source-accuracy")
class SourceAccuracy:
    """Minimum accuracy on the held-out test split of the source domain.

    Records the per-class numbers too: ``balanced_accuracy[<domain>]``, ``class_accuracy[<domain>][<class>]``
    and ``confusion[<domain>]`` (as target-accuracy does; :func:`robustspec.confusion.confusion_properties`).
    """

    Params = SourceAccuracyParams

    def expand(self, params: SourceAccuracyParams, source: str, targets: list[str], variant: str) -> list[CheckTarget]:
        return [CheckTarget("", (source,))]

    def judge(self, params, target, m) -> Outcome:
        acc = m.accuracy(m.source)
        out = gate_min(acc, params.min, params.confidence, f"accuracy on source domain {m.source!r}")
        out.extra.update(class_properties(m.source, acc))
        return out


@EXPECTATIONS.register("target-accuracy")
class TargetAccuracy:
    """Minimum accuracy on each named target domain (one item per domain)."""

    Params = TargetAccuracyParams

    def expand(self, params: TargetAccuracyParams, source: str, targets: list[str], variant: str) -> list[CheckTarget]:
        return [CheckTarget(d, (d,)) for d in (params.domains or targets)]

    def judge(self, params, target, m) -> Outcome:
        domain = target.label
        acc = m.accuracy(domain)
        out = gate_min(acc, params.min, params.confidence, f"accuracy on target domain {domain!r}")
        out.extra.update(class_properties(domain, acc))
        return out


@EXPECTATIONS.register("drop-vs-source")
class DropVsSource:
    """Maximum accuracy drop from the source domain to each target domain.

    With ``confidence``, the gate is the upper bound of Newcombe's interval for the difference of the two
    proportions, so a pass means the drop is confirmed to be below ``max``.
    """

    Params = DropParams

    def expand(self, params: DropParams, source: str, targets: list[str], variant: str) -> list[CheckTarget]:
        return [CheckTarget(d, (source, d)) for d in (params.domains or targets)]

    def judge(self, params, target, m) -> Outcome:
        source = m.source
        src: Accuracy = m.accuracy(source)
        tgt: Accuracy = m.accuracy(target.label)
        diff = Difference.of(src, tgt, params.confidence)
        passed, verdict = diff.gate(params.max, params.confidence, maximum=True)
        drop, lo, hi = diff.value, diff.low, diff.high
        msg = f"drop from {source!r} ({src.value:.3f}, n={src.n}) to {target.label!r} ({tgt.value:.3f}, n={tgt.n}): {verdict}"
        return Outcome(
            passed,
            drop,
            params.max,
            "<=",
            msg,
            tgt.n,
            lo,
            hi,
            params.confidence,
            extra={"source_accuracy": round(src.value, 6), "target_accuracy": round(tgt.value, 6)},
        )
