"""Adversarial expectations: accuracy under an attack, its degradation, and against the baseline's.

``- attack: {name: pgd-linf, eps: 4/255, steps: 10, max-degradation: 0.5}`` becomes one item per model
and variant, ``attack[pgd-linf]``; with an explicit ``mode`` (``transfer``, ``white-box``, ``black-box``),
``attack[pgd-linf,white-box]``, so the modes of one attack sit side by side with readable ids. Its
parameters are the attack's own (validated by the attack's parameter model) plus the gates below. The
evaluation is an artifact: the same attack on the same model and samples is never computed twice,
whatever the thresholds.

Robust accuracy follows RobustBench: only correctly classified samples are attacked, and robust
accuracy is the fraction still correct afterwards over all ``samples``. Degradation is clean minus
robust accuracy over the same samples, i.e. the fraction of samples the attack flipped: a binomial
proportion, so ``confidence`` gates on its Wilson bound.

Verdicts that cannot be fooled (docs/attacks.md):

- int8 models have no input gradients. The default ``mode: worst-case`` attacks them three ways, every
  time scored on the int8 model: transfer from the float parent, white-box through a fake-quant copy,
  and the threat-model-matched black-box attack on the int8 model itself; an image is robust only if it
  survives all three. ``mode`` names one of them instead.
- Masking check (``masking-check``, on by default): the threat-model-matched black-box attack (Square
  L-inf for L-inf attacks, Square L2 for L2 attacks, Sparse-RS for L0 attacks) runs on the same images;
  for a variant attacked white-box, so does the attack transferred from its float parent (int8) or from
  the baseline. Either one flags gradient masking when it leaves *significantly* fewer images robust: the
  paired 95% interval of robust(attack) - robust(other), image by image, lies entirely above 0.
- A flag (zero input gradients of the attack's own loss, an attack that changed nothing, suspected
  masking) fails the item: ``passed`` False, the message starts with ``FLAGGED:``, ``extra["flagged"]``
  is ``"1"``. ``on-masking: warn`` judges the gates only and leaves the flags as a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..outcomes import contingency, decode_outcomes, encode_outcomes, paired_counts
from ..spec.schema import BASELINE, MAX_SEED, DomainRef, ExpectationBase, Flag, Int, Probability, Real
from ..stats import newcombe_difference, newcombe_paired_difference, wilson_interval
from .base import EXPECTATIONS, CheckTarget, Outcome, at_least, at_most

__all__ = [
    "AttackExpectation",
    "AttackGate",
    "MASKING_CONFIDENCE",
    "MaskingEvidence",
    "attack_label",
    "attack_params_model",
    "blackbox_for",
    "masking_evidence",
]

#: Level of the paired interval that decides a masking flag.
MASKING_CONFIDENCE = 0.95

Mode = Literal["worst-case", "transfer", "white-box", "black-box"]


class AttackGate(ExpectationBase):
    """What every ``attack:`` expectation takes besides the attack's own parameters."""

    name: str = Field(min_length=1, description="the attack, by its registered name (the schema lists them)")
    samples: Int = Field(
        256, ge=1, le=100_000, description="test images drawn with `seed` (fewer if the split is smaller)"
    )
    seed: Int = Field(0, ge=0, le=MAX_SEED)
    domain: DomainRef | None = Field(None, description="domain whose test split is attacked (default: the source)")
    mode: Mode = Field(
        "worst-case",
        description="int8 models: worst-case (robust only if an image survives transfer from the float parent, "
        "white-box on a fake-quant copy and the matched black-box attack), or one of them; black-box: the "
        "threat-model-matched gradient-free attack instead of the named one (any model)",
    )
    max_degradation: Probability | None = Field(None, description="maximum clean minus adversarial accuracy")
    min_accuracy: Probability | None = Field(None, description="minimum adversarial (robust) accuracy")
    max_degradation_vs_baseline: Annotated[Real, Field(ge=-1.0, le=1.0)] | None = Field(
        None, description="maximum of this variant's degradation minus the baseline's"
    )
    masking_check: Flag = Field(
        True,
        description="also run the threat-model-matched black-box attack (Square L-inf / L2; none for L0) and, for a "
        "variant attacked white-box, the attack transferred from its float parent or the baseline; flag gradient "
        "masking if either leaves significantly fewer images robust (paired 95% interval)",
    )
    masking_queries: Int = Field(
        250,
        ge=10,
        le=100_000,
        description="queries of the black-box attack that the masking check and the int8 worst case run "
        "(Square's own default is 1000: the check needs to see a masked model fall, which takes far fewer)",
    )
    on_masking: Literal["fail", "warn"] = Field(
        "fail",
        description="what a masking or no-op flag does: fail the item (FLAGGED), or warn and judge the gates only",
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
    """The attack's own parameters (what the evaluation artifact depends on), without the gates.

    ``worst-case`` and ``black-box`` are keyed as ``transfer``: an artifact is one attack on one model,
    and a float model ignores the mode, so the default entry and an explicit ``mode: transfer`` share it.
    """
    from ..attacks import ATTACKS

    gate_fields = set(AttackGate.model_fields) - {"name", "samples", "seed", "domain", "mode"}
    settings = params.model_dump(mode="json", exclude=gate_fields)
    if settings.get("mode") in ("worst-case", "black-box"):
        settings["mode"] = "transfer"
    version = getattr(ATTACKS.get(params.name), "version", 1)
    if version > 1:  # revision 1 adds nothing, so the keys of unrevised attacks stay as they were
        settings["version"] = version
    return settings


def attack_label(params: Any) -> str:
    """The item's label: the attack's name, plus the mode when it is not the default (``pgd-linf,white-box``).

    The default mode adds nothing, so a plain entry keeps its id; a comma, not a space, keeps the label one
    word in the summary table and on a command line.
    """
    default = AttackGate.model_fields["mode"].default
    return params.name if params.mode == default else f"{params.name},{params.mode}"


# --- the threat-model-matched black-box attack -----------------------------------------------------------


#: How messages write a norm.
_NORM_LABEL = {"linf": "L-inf", "l2": "L2", "l0": "L0"}


def masking_reference(norm: str) -> str | None:
    """The registered attack that serves as the black-box attack of the ``norm`` threat model, if any.

    An attack says so itself: ``masking_reference = ("linf", "l2")`` (Square). Two attacks claiming one
    norm is an error, not a choice made by name.
    """
    from ..attacks import ATTACKS

    claims = [name for name, cls in ATTACKS.items() if norm in getattr(cls, "masking_reference", ())]
    if len(claims) > 1:
        raise _cannot(f"attacks {', '.join(claims)} all claim to be the {norm} masking reference; one may")
    return claims[0] if claims else None


def blackbox_for(params: Any) -> tuple[dict[str, Any] | None, str]:
    """The gradient-free attack in the same threat model as ``params``' attack, or None and why there is none.

    The attack whose ``masking_reference`` holds the norm (:func:`masking_reference`; Square for L-inf
    and L2), at the attack's eps. A gradient-free attack of the norm that declines the role says why in
    ``not_a_masking_reference``: the check rests on an honest model's white-box attack being at least as
    strong as the black-box one, and Sparse-RS is a *stronger* L0 attack than JSMA on honest models
    (Croce et al. 2022; on the embedded data's ResNet-18 it leaves 2 of 100 images robust where JSMA
    leaves 41). Its lead is no evidence of masking, so the item says so; JSMA's zero-gradient check on its
    own loss still runs, and ``sparse-rs`` stays available as an attack of its own.
    """
    from ..attacks import ATTACKS

    cls = ATTACKS.get(params.name)
    if getattr(cls, "gradient_free", False):
        return None, f"{params.name} is itself a black-box attack"
    norm = getattr(params, "norm", None) or cls.norm
    eps = getattr(params, "eps", None)
    reference = masking_reference(norm)
    if reference is None:
        label = _NORM_LABEL.get(norm, norm)
        for name, other in ATTACKS.items():
            why = getattr(other, "not_a_masking_reference", None)
            if why and other.norm == norm and getattr(other, "gradient_free", False):
                return None, (
                    f"the {label} black-box attack ({name}) {why}; the zero-gradient check on {params.name}'s own "
                    "loss still runs"
                )
        return None, f"no black-box attack for the {norm} norm"
    if eps is None:
        return None, f"{params.name} has no eps: a minimum-norm attack without a budget has no ball to search"
    spec: dict[str, Any] = {"name": reference, "eps": float(eps)}
    if "norm" in ATTACKS.get(reference).Params.model_fields:
        spec["norm"] = norm
    return spec, ""


def _blackbox_label(spec: Mapping[str, Any]) -> str:
    """``square-linf``: the reference attack's name, with the norm when it runs in more than one."""
    return f"{spec['name']}-{spec['norm']}" if "norm" in spec else str(spec["name"])


def _blackbox_params(params: Any, spec: Mapping[str, Any]) -> Any:
    from ..attacks import ATTACKS

    values = {
        **spec,
        "samples": params.samples,
        "seed": params.seed,
        "domain": params.domain,
        "max-degradation": 1.0,
        "masking-check": False,
    }
    if "queries" in ATTACKS.get(str(spec["name"])).Params.model_fields:
        values["queries"] = params.masking_queries
    return _combined(str(spec["name"])).model_validate(values)


# --- the masking decision --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskingEvidence:
    """robust(attack) - robust(other attack) on the same images, with its interval and the decision."""

    gap: float
    low: float
    high: float
    paired: bool

    @property
    def suspected(self) -> bool:
        """The other attack leaves significantly fewer images robust: the whole interval is above 0."""
        return self.low > 0.0


def masking_evidence(
    robust: Sequence[bool], other: Sequence[bool], confidence: float = MASKING_CONFIDENCE
) -> MaskingEvidence:
    """Paired evidence from per-image robust outcomes of two attacks on the same images (Newcombe's interval).

    Not a fixed margin: 3 fewer of 100 (38 against 35) is within noise even when the two attacks agree on
    every other image; 20 fewer of 100 is not.
    """
    n = len(robust)
    table = contingency(robust, other)
    low, high = newcombe_paired_difference(*table, confidence)
    gap = (table[1] - table[2]) / n if n else 0.0
    return MaskingEvidence(gap, low, high, True)


def _evidence(result: Mapping[str, Any], other: Mapping[str, Any]) -> MaskingEvidence:
    """:func:`masking_evidence` of two stored attack results; unpaired when they lack per-image outcomes."""
    table = paired_counts(result.get("robust"), other.get("robust"))
    if table is not None:
        low, high = newcombe_paired_difference(*table, MASKING_CONFIDENCE)
        n = sum(table)
        return MaskingEvidence((table[1] - table[2]) / n if n else 0.0, low, high, True)
    r, n = result["robust_correct"], result["n"]
    o, m = other["robust_correct"], other["n"]
    low, high = newcombe_difference(r, n, o, m, MASKING_CONFIDENCE)
    return MaskingEvidence((r / n if n else 0.0) - (o / m if m else 0.0), low, high, False)


# --- measuring -------------------------------------------------------------------------------------------


def _cannot(message: str) -> Exception:
    from ..attacks.evaluate import AttackCheckError

    return AttackCheckError(message)


def _without_gradients(m: Any, variant: str | None = None) -> bool:
    """Whether the variant has no input gradients: int8 (``quantized``), or a runtime's float file."""
    metrics = getattr(m, "metrics", None)
    if metrics is None:
        return False
    values = metrics(variant)
    return bool(values.get("quantized")) or values.get("input_gradients") == 0


def _gradient_free(name: str) -> bool:
    from ..attacks import ATTACKS

    return bool(getattr(ATTACKS.get(name), "gradient_free", False))


def _worst_case(components: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One result from several attacks on the same images: an image is robust only if it survives every one."""
    decoded = {mode: decode_outcomes(r.get("robust")) for mode, r in components.items()}
    items = {d[0] for d in decoded.values() if d is not None}
    lengths = {len(d[1]) for d in decoded.values() if d is not None}
    if any(d is None for d in decoded.values()) or len(items) != 1 or len(lengths) != 1:
        raise _cannot(
            f"the worst case needs per-image outcomes of the same images from every mode ({', '.join(components)})"
        )
    per_image = [all(v) for v in zip(*(d[1] for d in decoded.values() if d is not None))]
    first = next(iter(components.values()))
    clean = int(first["clean_correct"])
    robust = sum(per_image)
    flags = [f"{mode}: {flag}" for mode, r in components.items() for flag in (r.get("flags") or [])]
    return {
        "n": int(first["n"]),
        "clean_correct": clean,
        "robust_correct": robust,
        "attacked": int(first.get("attacked", clean)),
        "successes": clean - robust,
        "mode": "worst-case",
        "worst_case_of": ", ".join(components),
        "flags": flags,
        "seconds": sum(float(r.get("seconds", 0.0)) for r in components.values()),
        "robust": encode_outcomes(per_image, items.pop()),
    }


def _measure(params: Any, m: Any, variant: str | None = None) -> tuple[dict[str, Any], dict[str, Mapping[str, Any]]]:
    """The item's result for ``variant`` (default: the item's), and the per-mode results it combines."""
    if params.mode == "black-box":
        spec, why = blackbox_for(params)
        if spec is None:
            raise _cannot(f"mode black-box: {why}")
        return dict(m.attack(_blackbox_params(params, spec), variant)), {}
    if params.mode == "worst-case" and not _gradient_free(params.name) and _without_gradients(m, variant):
        components: dict[str, Mapping[str, Any]] = {
            "transfer": m.attack(params.model_copy(update={"mode": "transfer"}), variant),
            "white-box": m.attack(params.model_copy(update={"mode": "white-box"}), variant),
        }
        spec, _ = blackbox_for(params)
        if spec is not None:
            components["black-box"] = m.attack(_blackbox_params(params, spec), variant)
        return _worst_case(components), components
    return dict(m.attack(params, variant)), {}


def _masking_checks(
    params: Any, m: Any, result: Mapping[str, Any], components: Mapping[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    """Flags of suspected masking, and the properties that say what was checked and what it measured.

    Every comparison that ran is recorded whether it flags or not (it may have cost minutes): for each
    mode (``black-box``, ``transfer``) the attack compared (``masking_attack[mode]``), its robust accuracy
    and count on the same images, its seconds, the paired gap with its interval, and
    ``masking_suspected[mode]`` (1 or 0); ``masking_verdict`` sums them up: ``suspected``, ``not
    suspected``, ``not run`` (off, or no comparison available) or ``in the worst case`` (int8).
    """
    extra: dict[str, Any] = {}
    if not params.masking_check:
        return [], {"masking_check": "off", "masking_verdict": "not run"}
    if params.mode == "black-box":
        return [], {
            "masking_check": "not available: mode black-box is itself the black-box attack",
            "masking_verdict": "not run",
        }
    if components:
        # Every way of attacking the int8 model is part of the verdict: the other modes cannot beat it.
        return [], {
            "masking_check": f"in the worst case over {', '.join(components)}",
            "masking_verdict": "in the worst case",
        }
    flags: list[str] = []
    spec, why = blackbox_for(params)
    n = result["n"]
    ran: list[bool] = []
    if spec is None:
        extra["masking_check"] = f"not available: {why}"
    else:
        label = _blackbox_label(spec)
        blackbox = _blackbox_params(params, spec)
        other = m.attack(blackbox)
        ev = _evidence(result, other)
        extra["masking_check"] = label
        queries = getattr(blackbox, "queries", None)
        extra["masking_attack[black-box]"] = label + (f", {queries} queries" if queries is not None else "")
        extra.update(_compared_properties("black-box", other, ev))
        ran.append(ev.suspected)
        if ev.suspected:
            flags.append(
                f"gradient masking suspected: gradient-free {label} leaves {other['robust_correct']}/{other['n']} "
                f"robust, fewer than {params.name}'s {result['robust_correct']}/{n} (paired 95% CI of the gap "
                f"[{ev.low:.3f}, {ev.high:.3f}] > 0)"
            )
    if m.variant != BASELINE and str(result.get("mode", "")).startswith("white-box"):
        # The same attack run on a float model (the int8 model's parent, or the uncompressed baseline) and
        # transferred: if it does better than the white-box attack on this variant (its own gradients, or
        # an int8 model's fake-quant copy's), this variant's gradients are hiding its weakness.
        if _without_gradients(m):
            transferred, source = m.attack(params.model_copy(update={"mode": "transfer"})), "the float parent"
        else:
            transferred, source = m.attack(params, transfer_from=BASELINE), "the baseline"
        ev = _evidence(result, transferred)
        extra["masking_attack[transfer]"] = f"{params.name} transferred from {source}"
        extra.update(_compared_properties("transfer", transferred, ev))
        extra["masking_check"] = f"{extra['masking_check']}; transfer from {source}"
        ran.append(ev.suspected)
        if ev.suspected:
            flags.append(
                f"gradient masking suspected: {params.name} transferred from {source} leaves "
                f"{transferred['robust_correct']}/{transferred['n']} robust, fewer than white-box's "
                f"{result['robust_correct']}/{n} (paired 95% CI of the gap [{ev.low:.3f}, {ev.high:.3f}] > 0)"
            )
    extra["masking_verdict"] = "suspected" if any(ran) else "not suspected" if ran else "not run"
    return flags, extra


def _compared_properties(mode: str, other: Mapping[str, Any], ev: MaskingEvidence) -> dict[str, Any]:
    """What one comparison of the masking check measured: the other attack's numbers and the decision."""
    n = other["n"]
    return {
        f"robust_accuracy[{mode}]": round(other["robust_correct"] / n, 6) if n else 0.0,
        f"robust_correct[{mode}]": int(other["robust_correct"]),
        f"attack_seconds[{mode}]": round(float(other.get("seconds", 0.0)), 3),
        **_gap_properties(mode, ev),
        f"masking_paired[{mode}]": int(ev.paired),
        f"masking_suspected[{mode}]": int(ev.suspected),
    }


def _gap_properties(mode: str, ev: MaskingEvidence) -> dict[str, Any]:
    return {
        f"masking_gap[{mode}]": round(ev.gap, 6),
        f"masking_gap_low[{mode}]": round(ev.low, 6),
        f"masking_gap_high[{mode}]": round(ev.high, 6),
    }


@EXPECTATIONS.register("attack")
class AttackExpectation:
    """Accuracy under an adversarial attack: ``max-degradation``, ``min-accuracy``, ``max-degradation-vs-baseline``."""

    Params = AttackGate

    def params_model(self, value: Any) -> type:
        return attack_params_model(value)

    def schema_params(self) -> Any:
        """For the JSON Schema: one model per registered attack (the gates and its own fields), by ``name``."""
        from pydantic import create_model

        from ..attacks import ATTACKS

        members = []
        for name in ATTACKS.names():
            combined = _combined(name)
            doc = (combined.__doc__ or name).strip().splitlines()[0]
            tag = (Literal[name], Field(description=f"the attack: {name}"))
            members.append(create_model(combined.__name__, __base__=combined, __doc__=doc, name=tag))
        return Annotated[Union[tuple(members)], Field(discriminator="name")]  # noqa: UP007

    def check(self, params: Any, num_classes: int) -> list[str]:
        from ..attacks import ATTACKS

        if params.name not in ATTACKS:
            return [ATTACKS.unknown_message(params.name)]
        problems = list(ATTACKS.get(params.name)().check(params, num_classes))
        if params.mode == "black-box":
            spec, why = blackbox_for(params)
            if spec is None:
                problems.append(f"mode black-box: {why}")
        return problems

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
        result, components = _measure(params, m)
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
            base, _ = _measure(params, m, BASELINE)
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
        masking_flags, masking_extra = _masking_checks(params, m, result, components)
        flags += masking_flags

        mode = result.get("mode", "white-box")
        msg = (
            f"{params.name} on {target.domains[0]!r} ({mode}, n={n}, clean {clean / n if n else 0:.3f}): "
            + "; ".join(parts)
        )
        extra: dict[str, Any] = {
            "attack": params.name,
            **({"eps": round(float(params.eps), 6)} if getattr(params, "eps", None) is not None else {}),
            "attack_mode": mode,
            "clean_accuracy": round(clean / n, 6) if n else 0.0,
            "robust_accuracy": round(acc, 6),
            "degradation": round(deg, 6),
            "success_rate": round(result["successes"] / result["attacked"], 6) if result.get("attacked") else 0.0,
            "attack_seconds": round(float(result.get("seconds", 0.0)), 3),
            **masking_extra,
        }
        if result.get("worst_case_of"):
            extra["worst_case_of"] = result["worst_case_of"]
        for name, component in components.items():
            extra[f"robust_accuracy[{name}]"] = round(component["robust_correct"] / component["n"], 6)
            extra[f"attack_mode[{name}]"] = str(component.get("mode", name))  # what ran: surrogate, runtime
            extra[f"attack_seconds[{name}]"] = round(float(component.get("seconds", 0.0)), 3)
        for key in ("median_l2", "median_linf", "mean_l2"):
            if result.get(key) is not None:
                extra[key] = round(float(result[key]), 6)
        if isinstance(result.get("robust"), str):
            extra["outcomes"] = result["robust"]  # per image: robust or not (robustspec.outcomes)
        if flags:
            extra["attack_flags"] = "; ".join(flags)
            extra["on_masking"] = params.on_masking
            if params.on_masking == "fail":
                passed = False
                extra["flagged"] = "1"
                msg = f"FLAGGED: {'; '.join(flags)}; {msg}"
            else:
                msg += f"; WARNING: {', '.join(flags)}"
        return Outcome(passed, first[1], first[2], first[3], msg, n, first[4], first[5], conf, extra=extra)
