"""Compression expectations: a variant against its uncompressed parent, and its size."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..spec.schema import BASELINE, Count, DomainRef, ExpectationBase, Flag, Probability, Real
from .base import EXPECTATIONS, CheckTarget, Difference, Outcome, at_least, gate_max


def _variants_only(variant: str, targets: list[CheckTarget]) -> list[CheckTarget]:
    # Comparing the baseline with itself measures nothing: these items exist for compressed variants only.
    return [] if variant == BASELINE else targets


class DropVsBaselineParams(ExpectationBase):
    max: Probability = Field(description="maximum accuracy drop against the uncompressed model")
    domains: list[DomainRef] | None = Field(None, description="default: the source and every target domain")
    relative: Flag = Field(False, description="drop as a fraction of the baseline's accuracy")


class RetainedParams(ExpectationBase):
    min: Probability = Field(description="minimum fraction of the baseline's accuracy kept")
    domains: list[DomainRef] | None = Field(None, description="default: the source and every target domain")


class MaxParamsParams(ExpectationBase):
    max: Count = Field(description="maximum parameter count, e.g. 11.19M")


class MaxSizeParams(ExpectationBase):
    max: Annotated[Real, Field(gt=0)] = Field(description="maximum stored size in MB (10^6 bytes)")


@EXPECTATIONS.register("drop-vs-baseline")
class DropVsBaseline:
    """Maximum accuracy drop of a variant against its uncompressed parent, per domain.

    With ``confidence``, the gate is the upper bound of Newcombe's interval for the difference (absolute
    drops; a relative drop divides both bounds by the baseline's accuracy).
    """

    Params = DropVsBaselineParams

    def expand(self, params, source, targets, variant) -> list[CheckTarget]:
        return _variants_only(variant, [CheckTarget(d, (d,)) for d in (params.domains or [source, *targets])])

    def judge(self, params, target, m) -> Outcome:
        d = target.label
        base, var = m.accuracy(d, BASELINE), m.accuracy(d)
        scale = base.value if params.relative and base.value > 0 else 1.0
        diff = Difference.of(base, var, params.confidence, scale)
        passed, verdict = diff.gate(params.max, params.confidence, maximum=True)
        drop, lo, hi = diff.value, diff.low, diff.high
        kind = "relative drop" if params.relative else "drop"
        msg = (
            f"{kind} on {d!r} from baseline ({base.value:.3f}, n={base.n}) to {m.variant} ({var.value:.3f}): {verdict}"
        )
        return Outcome(
            passed,
            drop,
            params.max,
            "<=",
            msg,
            var.n,
            lo,
            hi,
            params.confidence,
            extra={"baseline_accuracy": round(base.value, 6), "variant_accuracy": round(var.value, 6)},
        )


@EXPECTATIONS.register("retained")
class Retained:
    """Minimum fraction of the baseline's accuracy that a variant keeps, per domain."""

    Params = RetainedParams

    def expand(self, params, source, targets, variant) -> list[CheckTarget]:
        return _variants_only(variant, [CheckTarget(d, (d,)) for d in (params.domains or [source, *targets])])

    def judge(self, params, target, m) -> Outcome:
        d = target.label
        base, var = m.accuracy(d, BASELINE), m.accuracy(d)
        kept = var.value / base.value if base.value > 0 else 0.0
        passed = at_least(kept, params.min)
        msg = (
            f"accuracy kept on {d!r}: {m.variant} {var.value:.3f} / baseline {base.value:.3f} = measured {kept:.3f}; "
            f"{'>=' if passed else '<'} min {params.min:.3f}"
        )
        return Outcome(
            passed,
            kept,
            params.min,
            ">=",
            msg,
            var.n,
            extra={"baseline_accuracy": round(base.value, 6), "variant_accuracy": round(var.value, 6)},
        )


@EXPECTATIONS.register("max-params")
class MaxParams:
    """Maximum parameter count (int8 weights count as parameters too)."""

    Params = MaxParamsParams

    def expand(self, params, source, targets, variant) -> list[CheckTarget]:
        return [CheckTarget("", ())]

    def judge(self, params, target, m) -> Outcome:
        metrics = m.metrics()
        out = gate_max(f"parameters of {m.variant}", metrics["parameters"], params.max, "M", 1e6)
        out.extra = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
        return out


@EXPECTATIONS.register("max-size-mb")
class MaxSize:
    """Maximum stored size (``torch.save`` of the state dict) in MB."""

    Params = MaxSizeParams

    def expand(self, params, source, targets, variant) -> list[CheckTarget]:
        return [CheckTarget("", ())]

    def judge(self, params, target, m) -> Outcome:
        metrics = m.metrics()
        out = gate_max(f"stored size of {m.variant}", metrics["bytes"] / 1e6, params.max, " MB")
        out.extra = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
        return out
