"""Adversarial expectations: accuracy under an attack, its degradation, and against the baseline's.

``- attack: {name: pgd-linf, eps: 4/255, steps: 10, max-degradation: 0.5}`` becomes one item per model
and variant, ``attack[pgd-linf]``; with ``mode: white-box``, ``attack[pgd-linf,white-box]``, so both
modes of one attack sit side by side with readable ids. Its parameters are the attack's own (validated by
the attack's parameter model) plus the gates below. The evaluation is an artifact: the same attack on the same model
and samples is never computed twice, whatever the thresholds.

Robust accuracy follows RobustBench: only correctly classified samples are attacked, and robust
accuracy is the fraction still correct afterwards over all ``samples``. Degradation is clean minus
robust accuracy over the same samples, i.e. the fraction of samples the attack flipped: a binomial
proportion, so ``confidence`` gates on its Wilson bound.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..spec.schema import BASELINE, DomainName, ExpectationBase, Int, Probability
from ..stats import wilson_interval
from .base import EXPECTATIONS, CheckTarget, Outcome, at_least, at_most

__all__ = ["AttackExpectation", "AttackGate", "attack_label", "attack_params_model"]


class AttackGate(ExpectationBase):
    """What every ``attack:`` expectation takes besides the attack's own parameters."""

    name: str = Field(
        min_length=1, description="fgsm, pgd-linf, pgd-l2, cw-l2, deepfool, ddn, jsma, square, autoattack"
    )
    samples: Int = Field(
        256, ge=1, le=100_000, description="test images drawn with `seed` (fewer if the split is smaller)"
    )
    seed: Int = Field(0, ge=0)
    domain: DomainName | None = Field(None, description="domain whose test split is attacked (default: the source)")
    mode: Literal["transfer", "white-box"] = Field(
        "transfer",
        description="int8 models: attack the float parent and score on int8 (transfer), or a fake-quant copy",
    )
    max_degradation: Probability | None = Field(None, description="maximum clean minus adversarial accuracy")
    min_accuracy: Probability | None = Field(None, description="minimum adversarial (robust) accuracy")
    max_degradation_vs_baseline: float | None = Field(
        None, ge=-1.0, le=1.0, description="maximum of this variant's degradation minus the baseline's"
    )
    masking_check: bool = Field(
        False,
        description="also run gradient-free Square at the same eps, and (for a variant) the attack transferred "
        "from the baseline; flag gradient masking if either does better",
    )

    @model_validator(mode="after")
    def _one_gate_at_least(self) -> AttackGate:
        if self.max_degradation is None and self.min_accuracy is None and self.max_degradation_vs_baseline is None:
            raise ValueError("give at least one of max-degradation, min-accuracy, max-degradation-vs-baseline")
        return self


class _UnknownAttack(AttackGate):
    """Used when ``name`` is not a known attack: report the name, not every attack parameter as unknown."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        from ..attacks import ATTACKS

        raise ValueError(ATTACKS.unknown_message(value))


@cache
def _combined(attack_name: str) -> type:
    from ..attacks import ATTACKS

    params = ATTACKS.get(attack_name).Params
    return type(f"Attack_{attack_name.replace('-', '_')}", (AttackGate, params), {"__doc__": params.__doc__})


def attack_params_model(value: Any) -> type:
    """The parameter model for one ``attack:`` entry: the gates plus the named attack's own parameters."""
    from ..attacks import ATTACKS

    name = value.get("name") if isinstance(value, dict) else None
    if isinstance(name, str) and name in ATTACKS:
        return _combined(name)
    return _UnknownAttack if isinstance(name, str) else AttackGate


def attack_settings(params: Any) -> dict[str, Any]:
    """The attack's own parameters (what the evaluation artifact depends on), without the gates."""
    from ..attacks import ATTACKS

    gate_fields = set(AttackGate.model_fields) - {"name", "samples", "seed", "domain", "mode"}
    gate_fields.add("masking_check")
    settings = params.model_dump(mode="json", exclude=gate_fields)
    version = getattr(ATTACKS.get(params.name), "version", 1)
    if version > 1:  # revision 1 adds nothing, so the keys of unrevised attacks stay as they were
        settings["version"] = version
    return settings


def attack_label(params: Any) -> str:
    """The item's label: the attack's name, plus the mode when it is not the default (``pgd-linf,white-box``).

    The default mode adds nothing, so existing ids (and the results baselines keyed on them) stay as they
    were; a comma, not a space, keeps the label one word in the summary table and on a command line.
    """
    default = AttackGate.model_fields["mode"].default
    return params.name if params.mode == default else f"{params.name},{params.mode}"


@EXPECTATIONS.register("attack")
class AttackExpectation:
    """Accuracy under an adversarial attack: ``max-degradation``, ``min-accuracy``, ``max-degradation-vs-baseline``."""

    Params = AttackGate

    def params_model(self, value: Any) -> type:
        return attack_params_model(value)

    def check(self, params: Any, num_classes: int) -> list[str]:
        from ..attacks import ATTACKS

        if params.name not in ATTACKS:
            return [ATTACKS.unknown_message(params.name)]
        return list(ATTACKS.get(params.name)().check(params, num_classes))

    def expand(self, params: Any, source: str, targets: list[str], variant: str) -> list[CheckTarget]:
        if (
            params.max_degradation_vs_baseline is not None
            and params.max_degradation is None
            and params.min_accuracy is None
            and variant == BASELINE
        ):
            return []  # only a comparison with itself: nothing to measure on the baseline
        return [CheckTarget(attack_label(params), (params.domain or source,))]

    def judge(self, params: Any, target: CheckTarget, m: Any) -> Outcome:
        result = m.attack(params)
        n = result["n"]
        clean, robust = result["clean_correct"], result["robust_correct"]
        flipped = clean - robust
        conf = params.confidence
        level = conf or 0.95
        parts: list[str] = []
        verdicts: list[tuple[bool, float, float, str, float | None, float | None]] = []
        deg = flipped / n if n else 0.0
        deg_lo, deg_hi = wilson_interval(flipped, n, level)
        acc = robust / n if n else 0.0
        acc_lo, acc_hi = wilson_interval(robust, n, level)
        if params.max_degradation is not None:
            gated = deg_hi if conf else deg
            ok = at_most(gated, params.max_degradation)
            verdicts.append((ok, deg, params.max_degradation, "<=", deg_lo, deg_hi))
            parts.append(
                f"degradation {deg:.3f} ({int(level * 100)}% CI [{deg_lo:.3f}, {deg_hi:.3f}]) {'<=' if ok else '>'} max {params.max_degradation:.3f}"
            )
        if params.min_accuracy is not None:
            gated = acc_lo if conf else acc
            ok = at_least(gated, params.min_accuracy)
            verdicts.append((ok, acc, params.min_accuracy, ">=", acc_lo, acc_hi))
            parts.append(
                f"robust accuracy {acc:.3f} ({int(level * 100)}% CI [{acc_lo:.3f}, {acc_hi:.3f}]) {'>=' if ok else '<'} min {params.min_accuracy:.3f}"
            )
        if params.max_degradation_vs_baseline is not None and m.variant != BASELINE:
            base = m.attack(params, BASELINE)
            base_deg = (base["clean_correct"] - base["robust_correct"]) / base["n"] if base["n"] else 0.0
            diff = deg - base_deg
            ok = at_most(diff, params.max_degradation_vs_baseline)
            verdicts.append((ok, diff, params.max_degradation_vs_baseline, "<=", None, None))
            parts.append(
                f"degradation vs baseline {deg:.3f} - {base_deg:.3f} = {diff:+.3f} {'<=' if ok else '>'} max {params.max_degradation_vs_baseline:+.3f}"
            )
        passed = all(v[0] for v in verdicts)
        first = next((v for v in verdicts if not v[0]), verdicts[0])
        flags = list(result.get("flags") or [])
        if params.masking_check and params.name != "square" and getattr(params, "eps", None) is not None:
            square = _combined("square").model_validate(
                {
                    "name": "square",
                    "eps": params.eps,
                    "samples": params.samples,
                    "seed": params.seed,
                    "domain": params.domain,
                    "max-degradation": 1.0,
                }
            )
            sq = m.attack(square)
            if sq["robust_correct"] < robust - max(1, round(0.02 * n)):
                flags.append(
                    f"gradient masking suspected: gradient-free Square leaves {sq['robust_correct']}/{n} correct, "
                    f"fewer than {params.name}'s {robust}/{n} at the same eps"
                )
        if params.masking_check and m.variant != BASELINE and str(result.get("mode", "")).startswith("white-box"):
            # The same attack run on the uncompressed parent and transferred: if it does better than the
            # white-box attack on this variant (its own gradients, or an int8 model's fake-quant copy's),
            # this variant's gradients are hiding its weakness.
            transferred = m.attack(params, transfer_from=BASELINE)
            if transferred["robust_correct"] < robust - max(1, round(0.02 * n)):
                flags.append(
                    f"gradient masking suspected: {params.name} transferred from the baseline leaves "
                    f"{transferred['robust_correct']}/{n} correct, fewer than white-box's {robust}/{n}"
                )

        msg = (
            f"{params.name} on {target.domains[0]!r} ({result.get('mode', 'white-box')}, n={n}, clean {clean / n if n else 0:.3f}): "
            + "; ".join(parts)
            + (f"; WARNING: {', '.join(flags)}" if flags else "")
        )
        extra = {
            "attack": params.name,
            **({"eps": round(float(params.eps), 6)} if getattr(params, "eps", None) is not None else {}),
            "attack_mode": result.get("mode", "white-box"),
            "clean_accuracy": round(clean / n, 6) if n else 0.0,
            "robust_accuracy": round(acc, 6),
            "degradation": round(deg, 6),
            "success_rate": round(result["successes"] / result["attacked"], 6) if result.get("attacked") else 0.0,
            "attack_seconds": round(float(result.get("seconds", 0.0)), 3),
        }
        for key in ("median_l2", "median_linf", "mean_l2"):
            if result.get(key) is not None:
                extra[key] = round(float(result[key]), 6)
        if isinstance(result.get("robust"), str):
            extra["outcomes"] = result["robust"]  # per image: robust or not (robustspec.outcomes)
        if flags:
            extra["attack_flags"] = "; ".join(flags)
        return Outcome(passed, first[1], first[2], first[3], msg, n, first[4], first[5], conf, extra=extra)
