"""Common-corruption robustness in the style of ImageNet-C: mean corruption error and accuracy under corruption.

``- corruption: {corruptions: [gaussian_noise, defocus_blur], severities: [1, 3, 5], max-mce: 1.2}`` becomes
one item per model and variant, ``corruption[amazon]``, measured on the derived domains
``amazon+gaussian_noise@1`` ... (each an evaluation artifact of its own, shared with any other check).

Hendrycks & Dietterich (ICLR 2019) normalise a model's errors by a reference model's; here the reference
is the uncompressed baseline, so the number says how much of the baseline's corruption robustness a
compressed variant keeps::

    CE_c  = sum_s err_variant(c, s) / sum_s err_baseline(c, s)      (s over the severities)
    mCE   = mean_c CE_c                                              (c over the corruptions)
    relative CE_c = sum_s (err_variant(c, s) - err_variant(clean)) / sum_s (err_baseline(c, s) - err_baseline(clean))

A baseline without a single error on a corruption gives ``CE_c = 1`` when the variant has none either,
infinity otherwise. ``max-mce`` only expands on compressed variants: on the baseline mCE is 1 by
definition, a gate that cannot fail. ``min-accuracy`` gates the mean accuracy over every corruption and
severity (all sets have the same size, so it is the pooled fraction correct), on any variant; with
``confidence`` it gates the Wilson lower bound of that pooled fraction (an optimistic bound: the sets are
corrupted copies of the same images, not independent samples).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator, model_validator

from ..spec.refs import Choices
from ..spec.schema import BASELINE, DomainRef, ExpectationBase, Int, Probability, Real
from ..stats import wilson_interval
from .base import EXPECTATIONS, CheckTarget, Outcome, at_least, at_most

__all__ = ["CorruptionExpectation", "CorruptionParams", "corruption_errors"]


def _corruption_names() -> list[str]:
    from ..corrupt import CORRUPTIONS

    return CORRUPTIONS.names()


def _known_corruption(name: str) -> str:
    from ..corrupt import CORRUPTIONS

    if name not in CORRUPTIONS:
        raise ValueError(CORRUPTIONS.unknown_message(name))
    return name


def _severity(level: int) -> int:
    if not 1 <= level <= 5:
        raise ValueError(f"severity must be 1-5 (got {level})")
    return level


class CorruptionParams(ExpectationBase):
    """Corruptions and severities to measure, and the gates: ``max-mce``, ``min-accuracy`` (one or both)."""

    domain: DomainRef | None = Field(None, description="base domain to corrupt (default: the source)")
    corruptions: list[Annotated[str, AfterValidator(_known_corruption), Choices(_corruption_names)]] | None = Field(
        None, min_length=1, description="corruption names (default: every registered ImageNet-C benchmark corruption)"
    )
    severities: list[Annotated[Int, AfterValidator(_severity)]] = Field(
        [1, 2, 3, 4, 5], min_length=1, description="severity levels 1-5 (default: all five)"
    )
    max_mce: Annotated[Real, Field(gt=0)] | None = Field(
        None, description="maximum mean corruption error relative to the uncompressed baseline (1 = as robust)"
    )
    min_accuracy: Probability | None = Field(
        None, description="minimum mean accuracy over every corruption and severity"
    )

    @field_validator("corruptions", "severities")
    @classmethod
    def _unique(cls, value: Any) -> Any:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"each entry once (got {value})")
        return value

    @field_validator("domain")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        if value is not None and "+" in value:
            raise ValueError(f"give the base domain ({value.partition('+')[0]!r}); the corruptions are applied to it")
        return value

    @model_validator(mode="after")
    def _gates(self) -> CorruptionParams:
        if self.max_mce is None and self.min_accuracy is None:
            raise ValueError("give max-mce, min-accuracy or both")
        if self.confidence is not None and self.min_accuracy is None:
            raise ValueError("confidence applies to min-accuracy only (mCE is a ratio of error sums, with no interval)")
        return self


def _corruptions(params: CorruptionParams) -> list[str]:
    from ..corrupt import standard_corruptions

    return list(params.corruptions or standard_corruptions())


def corruption_errors(
    variant: Mapping[str, Mapping[int, float]], baseline: Mapping[str, Mapping[int, float]]
) -> tuple[dict[str, float], float]:
    """``(CE per corruption, mCE)`` from error rates ``{corruption: {severity: error}}`` of variant and baseline."""
    ce: dict[str, float] = {}
    for c, errs in variant.items():
        num = sum(errs.values())
        den = sum(baseline[c][s] for s in errs)
        ce[c] = num / den if den > 0 else (1.0 if num <= 0 else math.inf)
    return ce, (sum(ce.values()) / len(ce) if ce else math.nan)


def _relative(
    variant: Mapping[str, Mapping[int, float]],
    baseline: Mapping[str, Mapping[int, float]],
    clean_v: float,
    clean_b: float,
) -> float | None:
    """Mean relative CE over the corruptions where the baseline loses accuracy at all (None if none does)."""
    values = []
    for c, errs in variant.items():
        den = sum(baseline[c][s] - clean_b for s in errs)
        if den > 0:
            values.append(sum(e - clean_v for e in errs.values()) / den)
    return sum(values) / len(values) if values else None


@EXPECTATIONS.register("corruption")
class CorruptionExpectation:
    """Robustness to common corruptions (ImageNet-C style): ``max-mce`` against the baseline, ``min-accuracy``."""

    Params = CorruptionParams

    def expand(self, params: CorruptionParams, source: str, targets: list[str], variant: str) -> list[CheckTarget]:
        if params.min_accuracy is None and variant == BASELINE:
            return []  # mCE of the baseline against itself is 1 by definition
        from ..corrupt import derived_name

        base = params.domain or source
        domains = tuple(derived_name(base, c, s) for c in _corruptions(params) for s in params.severities)
        return [CheckTarget(base, domains)]

    def judge(self, params: CorruptionParams, target: CheckTarget, m: Any) -> Outcome:
        from ..corrupt import derived_name

        base = target.label
        names = _corruptions(params)
        acc = {c: {s: m.accuracy(derived_name(base, c, s)) for s in params.severities} for c in names}
        correct = sum(a.correct for row in acc.values() for a in row.values())
        n = sum(a.n for row in acc.values() for a in row.values())
        mean_acc = correct / n if n else 0.0
        conf = params.confidence
        level = conf or 0.95
        lo, hi = wilson_interval(correct, n, level)
        extra: dict[str, Any] = {"corruption_accuracy": round(mean_acc, 6), "corruptions": ",".join(names)}
        for s in params.severities:
            extra[f"corruption_accuracy@{s}"] = round(sum(acc[c][s].value for c in names) / len(names), 6)

        verdicts: list[tuple[bool, float, float, str, float | None, float | None]] = []
        parts: list[str] = []
        if params.max_mce is not None and m.variant != BASELINE:
            err_v = {c: {s: 1.0 - a.value for s, a in row.items()} for c, row in acc.items()}
            err_b = {
                c: {s: 1.0 - m.accuracy(derived_name(base, c, s), BASELINE).value for s in params.severities}
                for c in names
            }
            ce, mce = corruption_errors(err_v, err_b)
            ok = at_most(mce, params.max_mce)
            verdicts.append((ok, mce, params.max_mce, "<=", None, None))
            worst = max(ce, key=lambda c: ce[c])
            parts.append(
                f"mCE vs baseline {mce:.3f} {'<=' if ok else '>'} max {params.max_mce:.3f} (worst {worst}: CE {ce[worst]:.3f})"
            )
            extra["mce"] = round(mce, 6) if math.isfinite(mce) else str(mce)
            for c, v in ce.items():
                extra[f"ce[{c}]"] = round(v, 6) if math.isfinite(v) else str(v)
            clean_v, clean_b = 1.0 - m.accuracy(base).value, 1.0 - m.accuracy(base, BASELINE).value
            rel = _relative(err_v, err_b, clean_v, clean_b)
            if rel is not None:
                extra["relative_mce"] = round(rel, 6)
        if params.min_accuracy is not None:
            gated = lo if conf else mean_acc
            ok = at_least(gated, params.min_accuracy)
            verdicts.append((ok, mean_acc, params.min_accuracy, ">=", lo, hi))
            basis = f"; gate on {int(level * 100)}% lower bound {lo:.3f}" if conf else ""
            parts.append(
                f"mean accuracy {mean_acc:.3f} ({correct}/{n}, {int(level * 100)}% CI [{lo:.3f}, {hi:.3f}]){basis} "
                f"{'>=' if ok else '<'} min {params.min_accuracy:.3f}"
            )
        passed = all(v[0] for v in verdicts)
        first = next((v for v in verdicts if not v[0]), verdicts[0])
        by_severity = ", ".join(f"{s}: {extra[f'corruption_accuracy@{s}']:.3f}" for s in params.severities)
        msg = (
            f"{len(names)} corruptions x severities {params.severities} of {base!r}: "
            + "; ".join(parts)
            + f"; accuracy by severity {by_severity}"
        )
        return Outcome(passed, first[1], first[2], first[3], msg, n, first[4], first[5], conf, extra=extra)
