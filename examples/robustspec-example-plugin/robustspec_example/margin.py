"""``min-clean-accuracy-margin``: the source domain's clean accuracy is at least ``min`` above each target's.

The mirror of the built-in ``drop-vs-source`` (a maximum drop): a suite about domain shift tests nothing
when its target domains are as easy as its source, so this checks that the shift is real.

    - min-clean-accuracy-margin: {min: 0.05, confidence: 0.95}
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from robustspec.expect.base import EXPECTATIONS, CheckTarget, Difference, Outcome
from robustspec.spec.schema import ExpectationBase, Real, TargetDomainRef


class MarginParams(ExpectationBase):
    """``{min: 0.05, domains: [webcam]}``."""

    min: Annotated[Real, Field(ge=-1.0, le=1.0)] = Field(
        description="minimum margin: source accuracy minus target accuracy"
    )
    domains: list[TargetDomainRef] | None = Field(None, description="target domains (default: every target)")


@EXPECTATIONS.register("min-clean-accuracy-margin")
class MinCleanAccuracyMargin:
    """Minimum margin of the source domain's clean accuracy over each target domain's (one item per target).

    With ``confidence``, the gate is the lower bound of Newcombe's interval of the difference.
    """

    Params = MarginParams

    def expand(self, params: MarginParams, source: str, targets: list[str], variant: str) -> list[CheckTarget]:
        return [CheckTarget(d, (source, d)) for d in (params.domains or targets)]

    def judge(self, params: MarginParams, target: CheckTarget, m: Any) -> Outcome:
        src, tgt = m.accuracy(m.source), m.accuracy(target.label)
        diff = Difference.of(src, tgt, params.confidence)
        passed, verdict = diff.gate(params.min, params.confidence, maximum=False, signed=True)
        message = f"margin of {m.source!r} ({src.value:.3f}) over {target.label!r} ({tgt.value:.3f}): {verdict}"
        return Outcome(passed, diff.value, params.min, ">=", message, tgt.n, diff.low, diff.high, params.confidence)
