"""Checks across a suite, once every part of it is valid on its own.

- every reference a parameter model declares (:mod:`robustspec.spec.refs`) names a domain, model or
  variant the suite has;
- each compression chain fits its model (the steps' own ``check``, with the parameter counts they start from);
- local weights fit their architecture;
- every expectation selects at least one item: one that would be dropped silently is an error.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from .locate import Problems
from .refs import Ref, iter_refs
from .schema import BASELINE, ModelSpec
from .selection import expectation_targets, selects
from .text import shorten
from .yaml_loader import Located

__all__ = ["SuiteFacts", "check_refs", "check_chains", "check_weights", "check_selections", "domain_problem"]


@dataclass
class SuiteFacts:
    """What the references of a suite are checked against."""

    domains: list[str]
    source: str | None
    targets: list[str]
    models: list[ModelSpec]
    #: model name -> variant name -> steps (ParsedStep)
    variants: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    #: models that exist but are broken (reported): references to them are not reported again
    unchecked_models: set[str] = field(default_factory=set)
    #: some variants block is broken (reported), so an unknown variant name may be one of its
    unchecked_variants: bool = False

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def variant_names(self) -> list[str]:
        return [BASELINE, *sorted({v for chains in self.variants.values() for v in chains})]


def _fmt_list(names: Iterable[str]) -> str:
    return ", ".join(names)


def domain_problem(name: str, domains: list[str]) -> str | None:
    """Why ``name`` is not a domain of the dataset (with a suggestion), or None; derived names included."""
    if "+" in name:  # a derived domain, amazon+gaussian_noise@3: its base, corruption and severity
        from ..corrupt import domain_problem as derived_problem

        return derived_problem(name, domains)
    if name in domains:
        return None
    close = difflib.get_close_matches(name, domains, n=1, cutoff=0.5) if len(name) <= 100 else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown domain {shorten(name)}{hint} (the dataset has: {_fmt_list(domains)})"


def ref_problem(ref: Ref, value: str, facts: SuiteFacts, owner: str, field_name: str) -> str | None:
    """Why ``value`` is not a valid ``ref`` of this suite, or None."""
    if ref.kind in ("domain", "target-domain"):
        if not facts.domains:
            return None  # the dataset itself is broken, and reported
        problem = domain_problem(value, facts.domains)
        if problem is not None:
            return problem
        if ref.kind == "target-domain" and value == facts.source:
            return f"{owner} {field_name} {value!r} is the source domain: name a target domain"
        return None
    known = facts.model_names if ref.kind == "model" else facts.variant_names
    if value in known:
        return None
    if ref.kind == "model" and value in facts.unchecked_models:
        return None
    if ref.kind == "variant" and (facts.unchecked_variants or facts.unchecked_models):
        return None  # it may be a variant of the broken part
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6) if len(value) <= 100 else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {ref.kind} {shorten(value)}{hint} (the suite has: {_fmt_list(known)})"


def _field_name(path: tuple) -> str:
    """The field a path ends in, singular for an item of a list (``domains[0]`` -> ``domain``)."""
    named = [p for p in path if isinstance(p, str)]
    name = named[-1] if named else ""
    return name[:-1] if path and isinstance(path[-1], int) and name.endswith("s") else name


def check_refs(problems: Problems, loc: Located, file: str, expectations: list[Any], facts: SuiteFacts) -> None:
    """Every declared reference of the expectations and of the compression steps (each step once)."""
    if facts.source is not None and facts.domains:
        problem = domain_problem(facts.source, facts.domains)
        if problem is not None:
            problems.at(loc, file, ("source",), problem)
    for i, t in enumerate(facts.targets):
        problem = domain_problem(t, facts.domains) if facts.domains else None
        if problem is not None:
            problems.at(loc, file, ("targets", i), problem)
        elif t == facts.source:
            problems.at(loc, file, ("targets", i), f"target domain {t!r} is the source domain")
    for e in expectations:
        base = ("expect", e.index, e.kind)
        for path, ref, value in iter_refs(e.params, base):
            problem = ref_problem(ref, value, facts, e.kind, _field_name(path))
            if problem is not None:
                problems.at(loc, file, path, problem)
    seen: set[tuple] = set()
    for chains in facts.variants.values():
        for steps in chains.values():
            for step in steps:
                where = (step.file, step.line, step.col)
                if where in seen:
                    continue  # suite-level variants appear under every model: check them once
                seen.add(where)
                for path, ref, value in iter_refs(step.params, step.path):
                    problem = ref_problem(ref, value, facts, step.kind, _field_name(path))
                    if problem is None:
                        continue
                    if step.where is not None:
                        problems.at(step.where, step.file, path, problem)
                    else:
                        problems.errors.append(SpecError(step.file, step.line, step.col, path, problem))


def _baseline_parameters(arch: str, params: dict[str, Any], classes: int) -> int:
    """Parameter count of an architecture: the zoo's table, else built on the meta device (no memory; any
    torchvision or timm name or factory, see :func:`robustspec.models.zoo.meta_network`)."""
    from ..models.zoo import zoo_parameters

    if not params:
        known = zoo_parameters(arch, classes)
        if known is not None:
            return known
    from ..models.zoo import meta_network

    net = meta_network(arch, classes, dict(params))
    return sum(p.numel() for p in net.parameters())


def check_chains(problems: Problems, facts: SuiteFacts, classes: int) -> None:
    """Each step's own ``check`` with its position in the chain and the parameter count it starts from."""
    from ..compress import COMPRESSIONS
    from ..compress.base import ChainPosition
    from ..models.zoo import MODELS

    for model in facts.models:
        chains = facts.variants.get(model.name, {})
        if not chains:
            continue
        try:
            base = _baseline_parameters(model.arch, model.params, classes)
        except Exception as exc:  # noqa: BLE001 - a user factory that fails to build is reported, not raised
            first = next(s for steps in chains.values() for s in steps)
            problems.errors.append(
                SpecError(first.file, first.line, first.col, first.path, f"model {model.name!r} cannot be built: {exc}")
            )
            continue
        for vname, steps in chains.items():
            kinds = tuple(s.kind for s in steps)
            # What each step starts from: the model, a distilled student, or a budget an earlier step set.
            arch, current = model.arch, base
            for i, step in enumerate(steps):
                position = ChainPosition(i, kinds[:i], kinds[i + 1 :], classes)
                for message in COMPRESSIONS.get(step.kind)().check(step.params, position, arch, current):
                    problems.errors.append(
                        SpecError(
                            step.file,
                            step.line,
                            step.col,
                            step.path,
                            f"{message} (model {model.name!r}, variant {vname!r})",
                        )
                    )
                student = getattr(step.params, "student", None)
                if student is not None and (":" in student or student in MODELS):
                    try:
                        arch, current = student, _baseline_parameters(student, step.params.student_params, classes)
                    except Exception:  # noqa: BLE001 - the student's own problems are the distill step's to report
                        pass
                budget = getattr(step.params, "params", None)
                if isinstance(budget, int) and budget < current:
                    current = budget


def check_weights(
    problems: Problems, models: list[ModelSpec], where: dict[str, tuple[Located, str, tuple]], classes: int
) -> None:
    """Each model's weights file fits its architecture (names and shapes; a head of another size is fine)."""
    from ..models.weights import weights_fit_problems

    for model in models:
        if model.weights is None or model.name not in where:
            continue
        loc, file, path = where[model.name]
        try:
            found = weights_fit_problems(model.weights, model.arch, model.params, classes)
        except Exception as exc:  # noqa: BLE001 - a user factory that fails to build is reported, not raised
            found = [f"cannot check the weights of model {model.name!r}: {exc}"]
        for message in found:
            problems.at(loc, file, path, message)


def check_selections(
    problems: Problems, loc: Located, file: str, expectations: list[Any], facts: SuiteFacts, targets: list[str]
) -> None:
    """An expectation that becomes no item is an error at its position, with what it failed to select."""
    source = facts.source or ""
    for e in expectations:
        pairs = [
            (m.name, v)
            for m in facts.models
            for v in [BASELINE, *facts.variants.get(m.name, {})]
            if selects(e.params, m.name, v)
        ]
        items = 0
        for model_name, variant in pairs:
            steps = () if variant == BASELINE else facts.variants[model_name][variant]
            items += len(expectation_targets(e.kind, e.params, source, targets, variant, steps))
        if items:
            continue
        path = ("expect", e.index, e.kind)
        if not pairs:
            wanted = []
            if e.params.models is not None:
                wanted.append(f"models {_fmt_list(e.params.models)}")
            if e.params.variants is not None:
                wanted.append(f"variants {_fmt_list(e.params.variants)}")
            problems.at(
                loc,
                file,
                path,
                f"{e.kind} selects nothing: no model of the suite has {' and '.join(wanted)}",
                key=True,
            )
        elif all(v == BASELINE for _, v in pairs):
            problems.at(
                loc,
                file,
                path,
                f"{e.kind} selects nothing: it compares a variant with its baseline, and it selects only the "
                "baseline (define variants, or drop this expectation)",
                key=True,
            )
        else:
            shown = _fmt_list(f"{m}/{v}" for m, v in pairs[:6]) + (" ..." if len(pairs) > 6 else "")
            problems.at(
                loc,
                file,
                path,
                f"{e.kind} selects nothing: it has no item on {shown} (e.g. no domain, or no variant it applies to)",
                key=True,
            )
