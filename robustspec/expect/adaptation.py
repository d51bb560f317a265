"""Domain adaptation expectations: what an adaptation step (``coral``) gains on its target domains.

``adaptation-gain`` compares a variant whose chain adapts (``[coral, prune]``, ``[prune, coral]``, ...) with
the same chain without its adaptation steps (``[prune]``; the baseline when nothing is left). That
"unadapted" chain is measured like any variant, under the derived name ``<variant>~unadapted`` which the
workspace resolves (see :func:`unadapted_name`); content keys make it share the artifacts of a declared
variant with the same chain, so nothing is built twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from ..spec.schema import ExpectationBase, Real, TargetDomainRef, VariantRef
from .base import EXPECTATIONS, CheckTarget, Difference, Outcome

__all__ = [
    "UNADAPTED_SUFFIX",
    "AdaptationGain",
    "AdaptationGainParams",
    "adaptation_kinds",
    "unadapted_name",
    "without_adaptation",
]

#: Appended to a variant's name to measure its chain without adaptation steps (not a valid variant name).
UNADAPTED_SUFFIX = "~unadapted"


def unadapted_name(variant: str) -> str:
    """The derived variant name for ``variant``'s chain with its adaptation steps removed."""
    return variant + UNADAPTED_SUFFIX


def adaptation_kinds() -> frozenset[str]:
    """Step kinds that adapt to a target domain (their class sets ``adapts = True``): ``coral``."""
    # Imported here, not at module level: expectations stay free of torch imports.
    from ..compress import COMPRESSIONS

    return frozenset(k for k in COMPRESSIONS.names() if getattr(COMPRESSIONS.get(k), "adapts", False))


def without_adaptation(steps: Sequence[Any]) -> list[Any]:
    """The steps of a chain (anything with a ``kind``) that are not adaptation steps, in order."""
    kinds = adaptation_kinds()
    return [s for s in steps if s.kind not in kinds]


class AdaptationGainParams(ExpectationBase):
    min: Annotated[Real, Field(ge=-1.0, le=1.0)] = Field(
        description="minimum gain: target accuracy of the adapted variant minus that of the same chain without adaptation"
    )
    domains: list[TargetDomainRef] | None = Field(
        None, description="default: the target domains of the variant's adaptation steps"
    )
    versus: VariantRef | None = Field(
        None,
        description="compare with this variant of the same model instead of the chain without adaptation "
        "(e.g. a control such as {coral: {target: webcam, weight: 0}}, to isolate the CORAL term)",
    )


@EXPECTATIONS.register("adaptation-gain")
class AdaptationGain:
    """Minimum target-accuracy gain of an adapted variant over the same chain without its adaptation steps.

    Items exist only for variants whose chain adapts. With ``confidence``, the gate is the lower bound of
    Newcombe's interval for the difference of the two accuracies, so a pass means the gain is confirmed to
    be at least ``min``.
    """

    Params = AdaptationGainParams

    def expand(self, params: AdaptationGainParams, source: str, targets: list[str], variant: str) -> list[CheckTarget]:
        return [CheckTarget(d, (d,)) for d in (params.domains or targets)]

    def expand_chain(
        self, params: AdaptationGainParams, source: str, targets: list[str], variant: str, steps: Sequence[Any]
    ) -> list[CheckTarget]:
        """Items for one variant given its chain: none unless the chain adapts; default domains its targets."""
        kinds = adaptation_kinds()
        adapted = [s for s in steps if s.kind in kinds]
        if not adapted:
            return []
        domains = params.domains or list(dict.fromkeys(s.params.target for s in adapted))
        # A comparison with a named variant is its own item beside the default one: webcam,vs-coral-webcam-w0.
        suffix = f",vs-{params.versus}" if params.versus else ""
        return [CheckTarget(d + suffix, (d,)) for d in domains]

    def judge(self, params: AdaptationGainParams, target: CheckTarget, m: Any) -> Outcome:
        d = target.domains[0]
        other = params.versus or unadapted_name(m.variant)
        adapted, plain = m.accuracy(d), m.accuracy(d, other)
        diff = Difference.of(adapted, plain, params.confidence)
        passed, verdict = diff.gate(params.min, params.confidence, maximum=False, signed=True)
        gain, lo, hi = diff.value, diff.low, diff.high
        msg = (
            f"adaptation gain on {d!r}: {m.variant} {adapted.value:.3f} ({adapted.correct}/{adapted.n}) against "
            f"{params.versus or 'the same chain without adaptation'} {plain.value:.3f} ({plain.correct}/{plain.n}): {verdict}"
        )
        return Outcome(
            passed,
            gain,
            params.min,
            ">=",
            msg,
            adapted.n,
            lo,
            hi,
            params.confidence,
            extra={
                "adapted_accuracy": round(adapted.value, 6),
                "unadapted_accuracy": round(plain.value, 6),
                "versus": params.versus or "the chain without adaptation",
            },
        )
