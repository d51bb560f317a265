"""The smallest variant that still passes a suite's gates: ``robustspec search SUITE --model M --variant V``.

The variant's chain has a budget axis: the first ``prune`` step's ``params`` or ``ratio``, or a ``search``
step's ``params``, ``macs`` or ``size-mb``. The variant is rebuilt at each point of that axis (the step's
budget replaced, everything else as written: a point equal to the written budget *is* the variant, from the
store), and every expectation of the suite that applies to the variant is judged at each point, with the
suite's own code, on **validation** images, never on the test images the gates use when the suite runs:

- the source domain (and a domain derived from it, ``amazon+fog@3``): the images the search step holds
  out of the source train split (:func:`~robustspec.compress.search.carve_validation`, 20 %, seed 0).
  The trained model saw them (it trained on the whole train split); no compression step does;
- every other domain: its train split, which training never sees with labels (an adaptation step, CORAL
  or AdaBN, sees a target's train images without labels: the frontier of a chain with one is transductive
  on that target). A domain scored on all its images (an image tree's target, ``splits: whole``, the
  default) has no train split apart from its test images: searching under its gates is refused, with the
  ``held-out`` split that makes it possible named (:func:`_whole_domains`);
- attacks run on the same images (``Workspace.attack(split="validation")``).

Each measured point records its parameters, MACs and bytes and each gate's value and verdict; the points
no other point beats (fewer or equal parameters and a value at least as good, better in one) are the
Pareto frontier of parameters against that gate's metric. The smallest passing point is the one with
the fewest parameters whose every gate passes, and it is written as a variant to paste into the suite.
Every point, evaluation and attack is an artifact: a second run builds nothing.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .spec.loader import LoadedSuite, ParsedStep
from .spec.schema import ModelSpec

__all__ = ["AXES", "Frontier", "Point", "budget_axis", "default_points", "frontier", "variant_yaml"]

#: The budget axes a step has, in the order they are looked for.
AXES = {"prune": ("params", "ratio"), "search": ("params", "macs", "size_mb")}

#: Points on the axis by default, and how far apart (each a factor of the previous budget).
DEFAULT_POINTS = 6
_FACTOR = 0.75


@dataclass
class Point:
    """One measured point of the axis."""

    value: float  # the budget (a count, a ratio, or MB)
    label: str  # as written in YAML: 4.51M, 0.3, 18.0
    variant: str  # the name it is built under
    parameters: int = 0
    macs: int = 0
    bytes: int = 0
    gates: list[dict[str, Any]] = field(default_factory=list)  # name, passed, status, measured, threshold, comparison
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(g["passed"] for g in self.gates)

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}


@dataclass
class Frontier:
    """What ``robustspec search`` measured along one variant's budget axis."""

    suite: str
    model: str
    variant: str
    step: str
    axis: str
    points: list[Point]
    chain: list[ParsedStep]
    step_index: int
    validation: dict[str, int] = field(default_factory=dict)  # domain -> images scored

    @property
    def measured(self) -> list[Point]:
        return [p for p in self.points if p.error is None]

    @property
    def smallest(self) -> Point | None:
        passing = [p for p in self.measured if p.passed]
        return min(passing, key=lambda p: (p.parameters, p.value)) if passing else None

    def gate_names(self) -> list[str]:
        names: list[str] = []
        for p in self.measured:
            for g in p.gates:
                if g["name"] not in names:
                    names.append(g["name"])
        return names

    def pareto(self, gate: str) -> list[Point]:
        """The points no other point beats on (parameters, this gate's metric): fewer or equal parameters
        and a value as good, better in one."""
        rows = []
        for p in self.measured:
            g = next((g for g in p.gates if g["name"] == gate and g["measured"] is not None), None)
            if g is not None:
                sign = -1.0 if g["comparison"] == "<=" else 1.0  # larger is better after the sign
                rows.append((p, sign * float(g["measured"])))
        return [
            p
            for p, v in rows
            if not any(
                q.parameters <= p.parameters and w >= v and (q.parameters < p.parameters or w > v) for q, w in rows
            )
        ]

    def suggestion(self) -> str | None:
        """The smallest passing point as a variant to paste under the model's ``variants:``."""
        best = self.smallest
        if best is None:
            return None
        return variant_yaml(f"{self.variant}-{best.label.lower()}", self.point_chain(best.value))

    def point_chain(self, value: float) -> list[ParsedStep]:
        steps = list(self.chain)
        steps[self.step_index] = with_budget(steps[self.step_index], self.axis, value)
        return steps

    def as_dict(self) -> dict[str, Any]:
        best = self.smallest
        return {
            "suite": self.suite,
            "model": self.model,
            "variant": self.variant,
            "axis": f"{self.step}.{self.axis.replace('_', '-')}",
            "validation": self.validation,
            "points": [p.as_dict() for p in self.points],
            "pareto": {g: [p.label for p in self.pareto(g)] for g in self.gate_names()},
            "smallest_passing": None if best is None else best.label,
            "variant_yaml": self.suggestion(),
        }

    def render(self) -> str:
        from .compress.prune import format_count

        gates = self.gate_names()
        on = {g: {id(p) for p in self.pareto(g)} for g in gates}
        head = ["budget", "parameters", "MACs", *gates, "all"]
        rows = [head]
        for p in sorted(self.points, key=lambda p: -p.value if self.axis != "ratio" else p.value):
            if p.error is not None:
                error = p.error if len(p.error) <= 100 else p.error[:99] + "…"
                rows.append([p.label, "-", "-", *(["-"] * len(gates)), f"error: {error}"])
                continue
            cells = [p.label, format_count(p.parameters), format_count(p.macs)]
            for name in gates:
                g = next((g for g in p.gates if g["name"] == name), None)
                if g is None:
                    cells.append("")
                    continue
                m = g["measured"]
                value = "-" if m is None else format_count(int(m)) if abs(m) >= 1000 else f"{m:.3f}"
                cells.append(f"{value} {'ok' if g['passed'] else 'FAIL'}{'*' if id(p) in on[name] else ''}")
            cells.append("pass" if p.passed else "fail")
            rows.append(cells)
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            f"{self.suite}: {self.model}/{self.variant} along {self.step}.{self.axis.replace('_', '-')}, "
            f"{len(self.measured)} points measured"
            + (
                " on validation images (" + ", ".join(f"{d}: {n}" for d, n in self.validation.items())
                if self.validation
                else " (no gate reads accuracy"
            )
            + "; never the test splits)",
            "",
        ]
        for r in rows:
            lines.append("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        lines.append("")
        lines.append("* on the Pareto frontier of parameters against that gate's metric")
        best = self.smallest
        if best is None:
            lines.append("no measured point passes every gate")
        else:
            lines.append(f"smallest passing: {best.label} ({format_count(best.parameters)} parameters); as a variant:")
            lines.append("")
            lines.append(f"  {self.suggestion()}")
            lines.append("")
            lines.append(
                f"(under the variants: of model {self.model!r}; add its name where an expectation's variants: "
                f"lists {self.variant!r}, so the same gates apply)"
            )
        return "\n".join(lines) + "\n"


def budget_axis(steps: list[ParsedStep]) -> tuple[int, str]:
    """The index of the chain's first step with a budget, and which budget it gives."""
    for i, step in enumerate(steps):
        for axis in AXES.get(step.kind, ()):
            if getattr(step.params, axis, None) is not None:
                return i, axis
    kinds = ", ".join(s.kind for s in steps) or "none"
    raise UsageError(
        f"{_at(steps)}the variant's chain ({kinds}) has no budget to move along: it needs a prune step (params "
        "or ratio) or a search step (params, macs or size-mb)"
    )


def _at(steps: list[ParsedStep]) -> str:
    """``file:line:col: `` of a chain's first step, where the variant is written ('' for an empty chain)."""
    return f"{steps[0].file}:{steps[0].line}:{steps[0].col}: " if steps else ""


def _round_count(n: float) -> int:
    """A count that ``format_count`` writes exactly (3 significant figures at most)."""
    if n >= 1e6:
        return int(round(n / 1e4)) * 10**4
    if n >= 1e3:
        return int(round(n / 100)) * 100
    return int(round(n))


def default_points(axis: str, value: float, count: int = DEFAULT_POINTS) -> list[float]:
    """``count`` points around the written budget: one above it, the budget, and smaller ones, each a factor
    of :data:`_FACTOR` from the next (ratios: 0.1 apart)."""
    if axis == "ratio":
        pts = [round(value + 0.1 * k, 3) for k in range(-1, count - 1)]
        return [p for p in pts if 0.0 < p <= 0.95]
    pts = [value * _FACTOR**k for k in range(-1, count - 1)]
    if axis == "size_mb":
        return [round(p, 2) for p in pts]
    return [float(_round_count(p)) for p in pts]


def _label(axis: str, value: float) -> str:
    from .compress.prune import format_count

    if axis in ("params", "macs"):
        return format_count(int(value))
    return f"{value:g}"


def with_budget(step: ParsedStep, axis: str, value: float) -> ParsedStep:
    """``step`` with its budget ``axis`` at ``value``, validated as the suite's YAML would be (a UsageError
    says what is wrong with the point)."""
    from pydantic import ValidationError

    number: Any = int(value) if axis in ("params", "macs") and float(value).is_integer() else value
    fields = step.params.model_dump(mode="json", by_alias=True)
    fields[axis.replace("_", "-")] = number
    try:
        params = type(step.params).model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or axis}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"point {value:g} is no {step.kind} budget: {problems}") from None
    return dataclasses.replace(step, params=params)


def variant_yaml(name: str, steps: list[ParsedStep]) -> str:
    """``name: {step: {...}}`` (or a list for a chain) in YAML's flow style, as a suite writes it."""
    from .compress.prune import format_count

    def scalar(key: str, v: Any) -> str:
        if key in ("params", "macs") and isinstance(v, int):
            return format_count(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return f"{v:g}" if isinstance(v, float) else str(v)
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {scalar(k, x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(scalar(key, x) for x in v) + "]"
        return str(v) if v is not None else "null"

    def one(step: ParsedStep) -> str:
        fields = step.params.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return "{" + f"{step.kind}: " + scalar(step.kind, fields) + "}"

    body = one(steps[0]) if len(steps) == 1 else "[" + ", ".join(one(s) for s in steps) + "]"
    return f"{name}: {body}"


class ValidationMeasurements:
    """:class:`~robustspec.expect.base.Measurements` on validation images (module docstring), through a
    workspace and its store."""

    def __init__(self, ws: Any, loaded: LoadedSuite, model: ModelSpec, variant: str) -> None:
        self.ws, self.loaded, self.model_spec, self.variant = ws, loaded, model, variant

    @property
    def source(self) -> str:
        return self.loaded.suite.source

    def accuracy(self, domain: str, variant: str | None = None) -> Any:
        return validation_accuracy(self.ws, self.loaded, self.model_spec, variant or self.variant, domain)

    def metrics(self, variant: str | None = None) -> dict[str, Any]:
        return self.ws.metrics(self.loaded, self.model_spec, variant or self.variant)

    def attack(self, params: Any, variant: str | None = None, transfer_from: str | None = None) -> dict[str, Any]:
        return self.ws.attack(
            self.loaded, self.model_spec, variant or self.variant, params, transfer_from, split="validation"
        )


def validation_accuracy(ws: Any, loaded: LoadedSuite, model: ModelSpec, variant: str, domain: str) -> Any:
    """Accuracy on ``domain``'s validation images (:meth:`~robustspec.workspace.Workspace.validation`), an
    evaluation artifact of its own (split ``validation``)."""
    from .confusion import Confusion
    from .evaluate import predict
    from .expect import Accuracy
    from .outcomes import decode_classes, decode_outcomes, encode_classes, encode_outcomes
    from .store import content_key
    from .workspace import BUILDER_VERSIONS, VALIDATION_FRACTION

    suite = loaded.suite
    items = f"{ws.data_key(suite, domain)}.validation"
    names = tuple(ws.dataset(suite).classes)
    parents = ws.eval_parents(loaded, model, variant, domain)
    recipe = {"split": "validation", "domain": domain, "fraction": VALIDATION_FRACTION}
    key = content_key("eval", recipe, parents, BUILDER_VERSIONS["eval"])

    def build() -> dict[str, Any]:
        net = ws.model(loaded, model, variant)
        split = ws.validation(suite, domain)
        labels = [int(v) for v in split.labels.tolist()]
        seen = f"evaluating {model.name}/{variant} on {domain!r} (validation)"
        predicted = [int(v) for v in predict(net, split.images, device=ws.torch_device, label=seen).tolist()]
        ok = [t == p for t, p in zip(labels, predicted)]
        return {
            "n": len(ok),
            "correct": sum(ok),
            "outcomes": encode_outcomes(ok, items),
            "classes": len(names),
            "labels": encode_classes(labels, len(names)),
            "predicted": encode_classes(predicted, len(names)),
        }

    ev = ws._get_or_build(
        key,
        build,
        meta={"model": model.name, "variant": variant, "domain": domain, "split": "validation"},
        describe=f"eval {model.name}/{variant}/{domain} (validation)",
        parents=parents,
    )
    outcomes = tuple(decode_outcomes(ev["outcomes"])[1])  # type: ignore[index]
    labels = decode_classes(ev["labels"], ev["n"], len(names)) or []
    confusion = Confusion.of(labels, decode_classes(ev["predicted"], ev["n"], len(names)) or [], names)
    return Accuracy(sum(outcomes), len(outcomes), outcomes=outcomes, items=items, classes=confusion)


def _point_name(variant: str, label: str) -> str:
    return f"{variant}@{label}"


def frontier(
    ws: Any,
    loaded: LoadedSuite,
    model_name: str,
    variant: str,
    points: list[float] | None = None,
    count: int = DEFAULT_POINTS,
    progress: Any = None,
) -> Frontier:
    """Measure ``variant`` of ``model_name`` along its budget axis (module docstring)."""
    from .errors import RobustSpecError
    from .expect import EXPECTATIONS
    from .plan import plan_suite
    from .spec.schema import BASELINE
    from .verdict import attack_flags, decide

    models = {m.name: m for m in loaded.suite.models}
    if model_name not in models:
        raise UsageError(f"no model {model_name!r} in {loaded.path.name} (models: {', '.join(models)})")
    model = models[model_name]
    chains = loaded.variants.get(model_name, {})
    if variant == BASELINE or variant not in chains:
        known = ", ".join(chains) or "none"
        raise UsageError(f"no variant {variant!r} of model {model_name!r} in {loaded.path.name} (variants: {known})")
    chain = chains[variant]
    index, axis = budget_axis(chain)
    written = float(getattr(chain[index].params, axis))
    values = sorted(set(points if points else default_points(axis, written, count)), reverse=axis != "ratio")
    if not values:
        raise UsageError("no point to measure: give --points")
    checks = [c for c in plan_suite(loaded) if c.model.name == model_name and c.variant == variant]
    if not checks:
        raise UsageError(
            f"{_at(chain)}no expectation of {loaded.path.name} applies to {model_name}/{variant}: nothing to gate on "
            "(an expectation's models: and variants: select what it applies to)"
        )
    whole = _whole_domains(ws, loaded, checks)
    if whole:
        held_out = ", ".join(f"{d}: held-out" for d in whole)
        raise UsageError(
            f"{loaded.path.name}: the gates score {', '.join(repr(d) for d in whole)} on every image (splits: whole), "
            "so no image is left to search on that is not a test image, and the search would choose by the test; "
            f"give each a held-out split in the suite (data: {{splits: {{{held_out}}}}}) to search under its gates"
        )
    result = Frontier(loaded.suite.suite, model_name, variant, chain[index].kind, axis, [], chain, index)
    # Every point is a variant of its own (its chain's key decides its artifacts, not its name), checked as
    # the suite's variants are at collection (a budget above the model's size or too small for it).
    extra: dict[str, list[ParsedStep]] = {}
    for value in values:
        label = _label(axis, value)
        result.points.append(Point(value, label, _point_name(variant, label)))
        steps = result.point_chain(value)
        problems = _chain_problems(loaded, model, steps)
        if problems:
            raise UsageError(f"point {label}: {'; '.join(problems)}")
        extra[result.points[-1].variant] = steps
    variants = {**loaded.variants, model_name: {**chains, **extra}}
    probe = dataclasses.replace(loaded, variants=variants)
    for point in result.points:
        if progress is not None:
            progress(f"{model_name}/{variant}: point {point.label}")
        try:
            m = ws.metrics(probe, model, point.variant)
            point.parameters, point.macs, point.bytes = int(m["parameters"]), int(m["macs"]), int(m["bytes"])
            measurements = ValidationMeasurements(ws, probe, model, point.variant)
            for c in checks:
                outcome = EXPECTATIONS.get(c.kind)().judge(c.params, c.target, measurements)
                extra_props = getattr(outcome, "extra", None) or {}
                verdict = decide(
                    outcome.passed,
                    outcome.message,
                    getattr(c.params, "severity", "fail") or "fail",
                    None,
                    attack_flags(extra_props),
                    getattr(c.params, "on_masking", "fail") or "fail",
                    flagged=str(extra_props.get("flagged", "")).lower() in ("1", "true"),
                )
                measured = outcome.measured
                point.gates.append(
                    {
                        "name": c.name,
                        "passed": not verdict.fails,
                        "status": verdict.status,
                        "measured": None if measured is None or not math.isfinite(measured) else float(measured),
                        "threshold": outcome.threshold,
                        "comparison": outcome.comparison,
                        "message": outcome.message,
                    }
                )
        except RobustSpecError as exc:
            point.error = str(exc).splitlines()[0]
    for domain in _domains(checks, loaded.suite.source):
        result.validation[domain] = len(ws.validation(loaded.suite, domain))
    return result


def _chain_problems(loaded: LoadedSuite, model: ModelSpec, steps: list[ParsedStep]) -> list[str]:
    """What each step's own ``check`` says about a point's chain (as collection says it of a suite's)."""
    from .compress import COMPRESSIONS
    from .compress.base import ChainPosition
    from .spec.checks import _baseline_parameters

    current = _baseline_parameters(model.arch, model.params, loaded.classes)
    kinds = tuple(s.kind for s in steps)
    problems = []
    for i, step in enumerate(steps):
        position = ChainPosition(i, kinds[:i], kinds[i + 1 :], loaded.classes)
        problems += COMPRESSIONS.get(step.kind)().check(step.params, position, model.arch, current)
        budget = getattr(step.params, "params", None)
        if isinstance(budget, int) and budget < current:
            current = budget
    return problems


def _whole_domains(ws: Any, loaded: LoadedSuite, checks: list[Any]) -> list[str]:
    """The gated domains whose every image is a test image (:meth:`Workspace.scored_whole`), by base name."""
    from .corrupt.domain import parse_domain

    out: list[str] = []
    for domain in _domains(checks, loaded.suite.source):
        base = parse_domain(domain)[0]
        if base not in out and ws.scored_whole(loaded.suite, base):
            out.append(base)
    return out


def _domains(checks: list[Any], source: str) -> list[str]:
    out: list[str] = []
    for c in checks:
        for d in c.target.domains:
            if d not in out:
                out.append(d)
    return out
