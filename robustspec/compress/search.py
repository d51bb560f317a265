"""Compression search: the per-stage widths that keep most accuracy under a budget (``search:``).

``search: {params: 4.51M, method: evolution, trials: 24}`` looks for how much to prune each stage (or each
channel group) of any network ``prune`` can prune, instead of one ratio for every group:

- **Space.** Torch-Pruning's channel groups (:func:`~robustspec.compress.prune.prunable_groups`; the
  classifier is never pruned) are the dimensions of ``space: groups``; ``space: stages`` (default) ties the
  groups of one stage together: the groups whose root layers share the first name that tells them apart
  (``conv1``, ``layer1`` ... ``layer4`` of a ResNet: ``conv1`` holds the stem's width, which the residual
  additions of ``layer1`` share). A candidate is a *shape*: one multiplier per dimension from
  :data:`GRID` (0: leave it whole, 1: as much as the others, 2: twice as much). Its group ``g`` is pruned
  at ratio ``min(t * shape[g], ceiling)``, and ``t`` is searched (as ``prune`` searches its one ratio) so
  that the pruned network meets the budget from below: within ``tolerance`` under it, never over it.
  The all-ones shape, candidate 0, is uniform L1 filter pruning at the budget.
- **Budgets.** ``params`` (a count: ``4.51M``), ``macs`` (multiply-accumulates per image, torch's
  ``FlopCounterMode``: ``150M``) or ``size-mb`` (``torch.save`` of the state dict, 1 MB = 10^6 bytes): one.
- **Proxy score** (EagleEye's adaptive BatchNorm, Li et al. 2020): a candidate is pruned, its BatchNorm
  statistics re-estimated on ``bn-images`` source training images without a gradient step, and scored by
  its accuracy on a *validation* split carved from the source train split (``validation``: the fraction,
  stratified per class and drawn with seed 0, so every search of a suite scores on the same images; the
  source test split, which the gates use, is never looked at). Re-estimation and fine-tuning use the rest.
- **Method.** ``random``: each trial draws a shape; ``evolution``: the first ``population`` trials draw
  shapes, each later one mutates (and crosses over) shapes picked by tournament from the best
  ``population`` so far. Trial ``i`` is drawn from ``seed`` and ``i`` alone, given the trials before it, so
  the same seed always gives the same candidates, and a search with more trials begins with the
  candidates of one with fewer (its best proxy score is never worse). A shape seen before is drawn again.
- **Top k.** The ``top-k`` best by proxy are fine-tuned for ``finetune`` epochs (the suite's recipe at a
  tenth of its learning rate, as ``prune``) on the source train split without the validation images and
  scored again; the best on validation wins (ties: the lower validation loss, then the better proxy).
  ``finetune: 0`` takes the best proxy. Ties in accuracy are broken by the mean cross-entropy on the same
  images: the trained model has seen the source validation images (they are a part of its train split),
  so after fine-tuning, and for mild pruning even before it, many candidates classify all of them.

Every candidate (its prune and proxy score) and every fine-tuned candidate is an artifact of its own
(:attr:`~robustspec.compress.base.StepContext.cache`), keyed by the shape, the budget and the scoring
settings and the parent's key, not by the method, seed or trial count: a rerun builds nothing, and a
wider search, another seed or the other method rebuilds only the shapes it has not seen (under xdist
too). The winner is an ordinary variant, stored as ``prune`` stores one (a pruning history and a state
dict): every expectation applies and a chain continues after it (``[{search: ...}, {quantize: ptsq}]``).
What the search did is the step's info: every candidate's shape, ratio, budget measure and scores, and
the winner's per-stage ratios and channel widths.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import ArtifactError, StructuralError
from ..metrics import macs, parameter_count, stored_bytes
from ..progress import Progress, Timer, report
from ..spec.schema import MAX_SEED, Count, Int, Real, Strict
from . import COMPRESSIONS
from .adabn import reestimate_batchnorm
from .base import ChainPosition, StepContext, StepResult
from .prune import (
    MAX_RATIO,
    _example_inputs,
    _prune_copy,
    bracket_search,
    budget_problems,
    finetune_after_pruning,
    format_count,
    prunable_groups,
    prune_by_history,
    ratio_ceiling,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..data.base import Split

__all__ = ["GRID", "Search", "SearchParams", "carve_validation", "search_dimensions"]

#: The multipliers a shape is made of: how much each dimension is pruned relative to the others.
GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
_UNIFORM = GRID.index(1.0)
#: Redraws of a shape seen before, before a trial takes it anyway (and scores it from the store).
_REDRAWS = 50
#: Images per forward pass when BatchNorm statistics are re-estimated.
_BN_BATCH = 64
#: Enters the step's key (``key_params``): bump it when a change of this module changes what it chooses.
VERSION = "4"
#: Enters every candidate's key: bump it when a change of this module changes how a candidate is pruned
#: or scored (the step's VERSION covers how the search chooses among them).
CANDIDATE_VERSION = "1"
#: Seed of the validation split (one split for every search of a suite, whatever its seed).
VALIDATION_SEED = 0
#: The default fraction held out (``robustspec search`` scores the source on the same images).
VALIDATION_FRACTION = 0.2


class SearchParams(Strict):
    """``search: {params: 4.51M}`` or ``search: {params: 4.51M, method: random, trials: 32, top-k: 3}``."""

    method: Literal["random", "evolution"] = Field("evolution", description="how candidates are proposed")
    space: Literal["stages", "groups"] = Field(
        "stages", description="one width per stage (groups of one stage tied) or per channel group"
    )
    params: Count | None = Field(None, description="parameter budget (4.51M, 500k)")
    macs: Count | None = Field(None, description="multiply-accumulates per image budget (150M)")
    size_mb: Real | None = Field(None, description="stored size budget in MB (10^6 bytes)")
    trials: Int = Field(16, ge=1, le=10_000, description="candidates proposed and scored by the proxy")
    seed: Int = Field(0, ge=0, le=MAX_SEED, description="draws the candidates")
    top_k: Int = Field(2, ge=1, le=1000, description="best candidates by proxy that are fine-tuned")
    finetune: Int = Field(1, ge=0, le=1000, description="fine-tuning epochs of each of the top k")
    population: Int = Field(
        8, ge=2, le=10_000, description="evolution: random trials first, then parents drawn from the best this many"
    )
    validation: Real = Field(
        VALIDATION_FRACTION,
        gt=0.0,
        lt=1.0,
        description="fraction of the source train split held out to score candidates",
    )
    bn_images: Int = Field(256, ge=2, le=10_000_000, description="source train images that re-estimate BatchNorm")
    tolerance: Real = Field(0.02, gt=0.0, lt=1.0, description="how far below the budget a candidate may land")

    @field_validator("params", "macs", "size_mb")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        if v is not None and v <= 0:
            raise ValueError("must be > 0")
        return v

    @model_validator(mode="after")
    def _one_budget(self) -> SearchParams:
        given = [k for k in ("params", "macs", "size_mb") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give one budget: params: (a parameter count like 4.51M), macs: (like 150M) or size-mb: (like 18)"
                + (f", not {' and '.join(k.replace('_', '-') for k in given)}" if given else "")
            )
        return self

    @property
    def budget(self) -> tuple[str, int]:
        """The budget's axis and its value in the axis's unit (size: bytes)."""
        if self.params is not None:
            return "params", int(self.params)
        if self.macs is not None:
            return "macs", int(self.macs)
        return "size-mb", int(round(float(self.size_mb or 0) * 1e6))


def carve_validation(split: Split, fraction: float, seed: int = VALIDATION_SEED) -> tuple[Split, Split]:
    """``split`` as (the rest, a validation split of ``fraction`` of each class), drawn with ``seed``: the
    same images every time. Each class keeps at least one image on each side where it has two."""
    import torch

    from ..data.base import Split

    g = torch.Generator().manual_seed(seed)
    val: list[torch.Tensor] = []
    fit: list[torch.Tensor] = []
    for c in torch.unique(split.labels).tolist():
        idx = torch.nonzero(split.labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = int(round(fraction * len(idx)))
        k = min(max(k, 1 if len(idx) > 1 else 0), len(idx) - 1) if len(idx) > 1 else 0
        val.append(idx[:k])
        fit.append(idx[k:])
    vi, fi = torch.sort(torch.cat(val)).values, torch.sort(torch.cat(fit)).values
    if len(vi) == 0:
        raise ArtifactError(f"the source train split ({len(split)} images) is too small to hold out validation images")
    return Split(split.images[fi], split.labels[fi]), Split(split.images[vi], split.labels[vi])


#: ``space: stages`` splits the network by name until it has at least this many stages (where it can).
MIN_STAGES = 4


def search_dimensions(groups: list[tuple[str, int]], space: str) -> list[tuple[str, list[int]]]:
    """The dimensions of a search: (name, indices into ``groups``), in the network's order. ``groups``: one
    per group, named by its root layer; ``stages``: groups whose root layers share a name prefix, the first
    name part (``layer3`` of ``layer3.0.conv1``), and while there are fewer than :data:`MIN_STAGES` the part
    with the most groups split by its next name part (RegNet's ``trunk_output`` into ``trunk_output.block1``
    ... ``block4``, MobileNet's ``features`` into ``features.1`` ...)."""
    if space == "groups" or len(groups) <= 1:
        return [(name, [i]) for i, (name, _) in enumerate(groups)]
    parts = [name.split(".") for name, _ in groups]

    def split(depth: int, members: list[int]) -> tuple[int, list[list[int]]] | None:
        """The members by their first name parts past ``depth`` that tell two apart; None when none do."""
        d = depth + 1
        while True:
            by: dict[tuple[str, ...], list[int]] = {}
            for i in members:
                by.setdefault(tuple(parts[i][:d]), []).append(i)
            if len(by) > 1:
                return d, list(by.values())
            if all(len(parts[i]) <= d for i in members):
                return None
            d += 1

    stages: list[tuple[int, list[int]]] = [(0, list(range(len(groups))))]
    while len(stages) < MIN_STAGES or stages[0][0] == 0:
        for k in sorted(range(len(stages)), key=lambda k: -len(stages[k][1])):
            found = split(*stages[k])
            if found is not None:
                stages[k : k + 1] = [(found[0], m) for m in found[1]]
                break
        else:
            break  # nothing left to split
    return [(".".join(parts[m[0]][:depth]), m) for depth, m in stages]


def _shape_key(shape: list[float]) -> tuple[float, ...]:
    """Shapes that prune alike: the same up to scale (``t`` absorbs it)."""
    top = max(shape)
    return tuple(round(v / top, 6) for v in shape) if top > 0 else tuple(shape)


def _random_shape(rng: random.Random, dims: int) -> list[float]:
    while True:
        shape = [rng.choice(GRID) for _ in range(dims)]
        if max(shape) > 0:
            return shape


def _mutate(rng: random.Random, shape: list[float]) -> list[float]:
    """Each multiplier moves one step of :data:`GRID` with probability 1/len (at least one does); one in
    five moves jumps to any value instead."""
    child = list(shape)
    n = len(child)
    picks = [i for i in range(n) if rng.random() < 1.0 / n] or [rng.randrange(n)]
    for i in picks:
        j = GRID.index(child[i])
        if rng.random() < 0.2:
            j = rng.randrange(len(GRID))
        else:
            j = min(max(j + rng.choice((-1, 1)), 0), len(GRID) - 1)
        child[i] = GRID[j]
    return child if max(child) > 0 else list(shape)


def propose(method: str, seed: int, i: int, dims: int, population: int, scored: list[dict[str, Any]]) -> list[float]:
    """Trial ``i``'s shape: drawn from ``seed`` and ``i``, and (evolution) from the trials scored before it.

    Trial 0 is uniform pruning. ``scored``: the earlier trials' records (``shape``, ``proxy``: None when
    infeasible). A shape seen before is redrawn up to :data:`_REDRAWS` times.
    """
    if i == 0:
        return [GRID[_UNIFORM]] * dims
    rng = random.Random(f"robustspec-search:{seed}:{i}")
    seen = {_shape_key(r["shape"]) for r in scored}
    feasible = sorted((r for r in scored if r.get("proxy") is not None), key=_rank)[:population]
    shape: list[float] = []
    for _ in range(_REDRAWS):
        if method == "random" or i < population or len(feasible) < 2:
            shape = _random_shape(rng, dims)
        else:

            def tournament() -> list[float]:
                a, b = rng.sample(feasible, 2)
                return (a if _rank(a) < _rank(b) else b)["shape"]

            shape = tournament()
            if dims > 1 and rng.random() < 0.5:
                other = tournament()
                shape = [x if rng.random() < 0.5 else y for x, y in zip(shape, other)]
            shape = _mutate(rng, shape)
        if _shape_key(shape) not in seen:
            break
    return shape


def _measure(axis: str, image_size: int) -> Any:
    if axis == "params":
        return parameter_count
    if axis == "macs":
        return lambda m: macs(m, image_size)
    return stored_bytes


def _format(axis: str, value: float) -> str:
    return (
        f"{value / 1e6:.2f} MB" if axis == "size-mb" else format_count(int(value)) + (" MACs" if axis == "macs" else "")
    )


def _score(model: nn.Module, split: Split, device: Any, batch_size: int = 256) -> tuple[int, float]:
    """Images of ``split`` that ``model`` classifies correctly, and its mean cross-entropy on them."""
    import torch
    import torch.nn.functional as F

    from ..evaluate import device_for

    device = device_for(model, device)
    correct, loss = 0, 0.0
    model.to(device).eval()
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            x = split.images[start : start + batch_size].to(device).float().div_(255.0)
            y = split.labels[start : start + batch_size].to(device)
            logits = model(x).float()
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
    return correct, loss / max(len(split), 1)


def _rank(r: dict[str, Any]) -> tuple[float, float, int]:
    """Better first: higher proxy accuracy, then lower proxy loss (source validation accuracy saturates
    where the trained model has seen the images: the loss still orders them), then the earlier trial."""
    return (-r["proxy"], r["proxy_loss"], r["index"])


@COMPRESSIONS.register("search")
class Search:
    """``search: {params: 4.51M}``: per-stage L1 filter pruning widths searched under a budget."""

    Params = SearchParams
    libraries = ("torch-pruning",)

    def parse(self, value: Any) -> Any:
        return value

    def key_params(self, params: SearchParams) -> dict[str, Any]:
        """The parameters and :data:`VERSION`: a change of how the search chooses is another artifact."""
        return {**params.model_dump(mode="json"), "version": VERSION}

    def check(self, params: SearchParams, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        problems = []
        if "quantize" in position.previous:
            problems.append("a quantized model cannot be searched: put search before quantize")
        if params.params is not None:
            problems += budget_problems(params.params, baseline_params)
        if params.top_k > params.trials:
            problems.append(f"top-k {params.top_k} is more than the {params.trials} trials")
        if params.method == "evolution" and params.population > params.trials:
            problems.append(
                f"population {params.population} is more than the {params.trials} trials: "
                "an evolution that never evolves (lower population, or method: random)"
            )
        return problems

    def apply(self, parent: nn.Module, params: SearchParams, ctx: StepContext) -> StepResult:
        try:
            return self._apply(parent, params, ctx)
        except ArtifactError as exc:
            if isinstance(exc, StructuralError):
                raise
            raise StructuralError(f"cannot search {ctx.label}: {exc}") from exc

    def _apply(self, parent: nn.Module, params: SearchParams, ctx: StepContext) -> StepResult:
        timer = Timer()
        example = _example_inputs(parent, ctx)
        fit, val = carve_validation(ctx.train, float(params.validation))
        groups = prunable_groups(parent, example)
        if not groups:
            raise StructuralError(f"cannot search {ctx.label}: the network has no channel group to prune")
        dims = search_dimensions(groups, params.space)
        axis, target = params.budget
        measure = _measure(axis, int(example.shape[-1]))
        base = measure(parent)
        if target >= base:
            raise StructuralError(
                f"cannot search {ctx.label}: the budget {_format(axis, target)} is not below its {_format(axis, base)}"
            )
        bn = fit.images[: params.bn_images]
        scoring = {
            "budget": {axis: target},
            "tolerance": float(params.tolerance),
            "validation": float(params.validation),
            "validation-seed": VALIDATION_SEED,
            "bn-images": len(bn),
            "bn-batch": _BN_BATCH,
            "score": "accuracy, cross-entropy",
            # What a shape's multipliers apply to: each dimension's groups (a shape means nothing without).
            "dimensions": {name: [groups[g][0] for g in members] for name, members in dims},
            "candidate-version": CANDIDATE_VERSION,
        }
        ceilings = [ratio_ceiling(w) for _, w in groups]

        def ratios_of(shape: list[float], t: float) -> dict[str, float]:
            out: dict[str, float] = {}
            for (_, members), s in zip(dims, shape):
                for g in members:
                    out[groups[g][0]] = min(t * s, ceilings[g])
            return out

        def prune_shape(shape: list[float]) -> tuple[float, nn.Module, list[list[Any]], int] | None:
            hi = max(ceilings[g] / s for (_, members), s in zip(dims, shape) if s > 0 for g in members)

            def probe(t: float) -> tuple[tuple[nn.Module, list[list[Any]]], int]:
                model, history = _prune_copy(parent, min(t, MAX_RATIO), example, ratios_of(shape, t))
                return (model, history), measure(model)

            found, _, _ = bracket_search(
                probe,
                0.0,
                base,
                hi,
                base * (1.0 - min(hi, MAX_RATIO)) ** 2,
                target,
                float(params.tolerance),
                at_most=True,
            )
            return None if found is None else (found[0], found[1][0], found[1][1], found[2])

        def proxy(shape: list[float]) -> dict[str, Any]:
            def build() -> dict[str, Any]:
                pruned = prune_shape(shape)
                if pruned is None:
                    return {"shape": shape, "feasible": False}
                t, model, history, n = pruned
                reestimate_batchnorm(model, bn, batch_size=_BN_BATCH, device=ctx.device)
                correct, loss = _score(model, val, ctx.device)
                return {
                    "shape": shape,
                    "feasible": True,
                    "t": t,
                    "measure": n,
                    "parameters": parameter_count(model),
                    "widths": _widths(model, groups),
                    "history": history,
                    "correct": correct,
                    "loss": loss,
                    "n": len(val),
                }

            return ctx.cache(
                {"phase": "proxy", "shape": shape, "space": params.space, **scoring}, build, f"candidate {shape}"
            )

        progress = Progress(params.trials, f"search {ctx.label}", unit="candidates", final="never")
        records: list[dict[str, Any]] = []
        for i in range(params.trials):
            shape = propose(params.method, params.seed, i, len(dims), params.population, records)
            stored = proxy(shape)
            record: dict[str, Any] = {"index": i, "shape": shape, "proxy": None}
            if stored["feasible"]:
                record.update(
                    proxy=stored["correct"] / stored["n"],
                    proxy_loss=round(stored["loss"], 6),
                    measure=stored["measure"],
                    parameters=stored["parameters"],
                    t=stored["t"],
                )
            records.append(record)
            best = max((r["proxy"] for r in records if r["proxy"] is not None), default=None)
            progress.update(1, f"best proxy {best:.3f}" if best is not None else "none within the budget yet")
        ranked = sorted((r for r in records if r["proxy"] is not None), key=_rank)
        if not ranked:
            raise StructuralError(
                f"cannot search {ctx.label}: none of the {params.trials} candidates reaches "
                f"{_format(axis, target)} within {float(params.tolerance):.0%} below it"
            )
        unique: list[dict[str, Any]] = []
        for r in ranked:  # a shape drawn twice is fine-tuned once
            if all(_shape_key(u["shape"]) != _shape_key(r["shape"]) for u in unique):
                unique.append(r)
        top = unique[: params.top_k]

        def restored(shape: list[float]) -> nn.Module:
            stored = proxy(shape)
            model = prune_by_history(parent, stored["history"], example)
            reestimate_batchnorm(model, bn, batch_size=_BN_BATCH, device=ctx.device)
            return model

        winner = top[0]
        if params.finetune > 0:
            recipe = {"phase": "finetune", "shape": None, "space": params.space, **scoring, "epochs": params.finetune}
            recipe["train"] = ctx.recipe.model_dump(mode="json")
            for r in top:

                def build(shape: list[float] = r["shape"], rank: int = top.index(r)) -> dict[str, Any]:
                    m = restored(shape)
                    finetune_after_pruning(
                        m, fit, params.finetune, ctx, f"{ctx.label} (search: candidate {rank + 1} of {len(top)})"
                    )
                    m.eval()
                    correct, loss = _score(m, val, ctx.device)
                    return {
                        "state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()},
                        "correct": correct,
                        "loss": loss,
                        "n": len(val),
                    }

                stored = ctx.cache({**recipe, "shape": r["shape"]}, build, f"fine-tuned {r['shape']}")
                r["finetuned"] = stored["correct"] / stored["n"]
                r["finetuned_loss"] = round(stored["loss"], 6)
                r["_state"] = stored["state_dict"]
            winner = sorted(top, key=lambda r: (-r["finetuned"], r["finetuned_loss"], *_rank(r)))[0]
        chosen = proxy(winner["shape"])
        model = prune_by_history(parent, chosen["history"], example)
        if params.finetune > 0:
            model.load_state_dict(winner["_state"])
        else:
            reestimate_batchnorm(model, bn, batch_size=_BN_BATCH, device=ctx.device)
        model.eval()
        for r in top:
            r.pop("_state", None)
        n = measure(model)
        stage_ratios = {name: round(winner["t"] * s, 6) for (name, _), s in zip(dims, winner["shape"])}
        report(
            f"search {ctx.label}: {params.trials} candidates ({len(ranked)} within the budget), winner "
            f"#{winner['index']} {winner['shape']} -> {_format(axis, n)} (budget {_format(axis, target)}), proxy "
            f"{winner['proxy']:.3f}, uniform {records[0]['proxy'] if records[0]['proxy'] is not None else float('nan'):.3f} "
            f"({timer.seconds:.1f}s)"
        )
        state = {
            "history": chosen["history"],
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        }
        info: dict[str, Any] = {
            "parameters": parameter_count(model),
            "budget": _format(axis, target),
            "measure": n,
            "method": params.method,
            "trials": params.trials,
            "feasible": len(ranked),
            "winner": winner["index"],
            "proxy": winner["proxy"],
            "best_proxy": ranked[0]["proxy"],
            "uniform_proxy": records[0]["proxy"] if records[0]["proxy"] is not None else -1.0,
            "validation": winner.get("finetuned", winner["proxy"]),
            "validation_images": len(val),
            "dimensions": [name for name, _ in dims],
            "shape": winner["shape"],
            "stage_ratios": stage_ratios,
            "widths": chosen["widths"],
            # The same as one line each, so that results files and JUnit properties (numbers and text
            # only) carry them too.
            "stages": ", ".join(f"{name} {ratio:g}" for name, ratio in stage_ratios.items()),
            "channels": ", ".join(f"{name} {kept}/{width}" for name, (kept, width) in chosen["widths"].items()),
            "scores": "; ".join(
                f"#{r['index']} {_shape_text(r['shape'])} "
                + ("out of reach" if r["proxy"] is None else f"{r['proxy']:.3f}")
                + (f" -> {r['finetuned']:.3f}" if "finetuned" in r else "")
                for r in records
            ),
            "candidates": records,
        }
        return StepResult(model, state, info=info)

    def restore(self, parent: nn.Module, params: SearchParams, state: dict[str, Any], ctx: StepContext) -> nn.Module:
        from .prune import replay_pruning

        return replay_pruning(parent, state["history"], state["state_dict"], _example_inputs(parent, ctx))


def _shape_text(shape: list[float]) -> str:
    return "[" + ",".join(f"{v:g}" for v in shape) + "]"


def _widths(model: nn.Module, groups: list[tuple[str, int]]) -> dict[str, list[int]]:
    """Each group's root layer: [channels kept, channels before]."""
    out: dict[str, list[int]] = {}
    for name, width in groups:
        m = model.net.get_submodule(name)
        kept = getattr(m, "out_channels", None) or getattr(m, "out_features", None)
        out[name] = [int(kept or 0), int(width)]
    return out
