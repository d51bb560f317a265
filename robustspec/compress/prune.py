"""L1-norm filter pruning (Li, Kadav, Durdanovic, Samet and Graf 2017, "Pruning Filters for Efficient ConvNets").

Each convolution's output filters are ranked by the L1 norm of their weights and the weakest are removed:
the channels really disappear, so the pruned network is smaller and faster, not merely sparse.

Why Torch-Pruning: in a ResNet, the output channels of every block of a stage are tied by the residual
additions (and the downsampling shortcut), and removing a filter also removes the matching input
channels of the next convolutions and the BatchNorm entries in between. Torch-Pruning traces the network
once into a dependency graph and prunes each coupled group as a whole, so residual ties stay consistent.
Its ``MagnitudeImportance(p=1, group_reduction="first", normalizer=None)`` is Li et al.'s criterion: the
L1 norm of the group's first (root) convolution's filters. The classifier is never pruned.

Budgets: ``ratio`` removes that fraction of the filters of every prunable group. ``params`` (a parameter
budget such as ``11.19M``) searches the one global ratio whose pruned network has that many parameters,
within ``tolerance`` (relative). The parameter count falls monotonically with the ratio, roughly as
``(1 - ratio)^2`` (up to the ratio at which the narrowest layer would lose its last channel: Torch-Pruning
then leaves that group whole), so the search keeps a bracket ``[lo, hi]`` inside (0, 0.95) below that
ratio and probes where the
square root of the count, interpolated linearly between the bracket ends, meets the target (bisection
when that guess lands near an end); each probe prunes a fresh copy. It usually lands within 1% in two or
three probes and stops after at most 12.

What is stored is Torch-Pruning's pruning history (which channels of which layer, as plain lists) and a
plain state_dict; ``restore`` replays the history on a copy of the parent and loads the weights, so
everything loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import ArtifactError
from ..models.zoo import classifier_head, count_parameters
from ..progress import Timer, report
from ..spec.schema import Count, Int, Real, Strict, parse_count
from ..train.supervised import train_supervised
from . import COMPRESSIONS
from .base import ChainPosition, StepContext, StepResult

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["parse_count", "format_count", "PruneParams", "Prune", "MAX_RATIO", "MAX_PROBES"]

_log = logging.getLogger(__name__)

#: The search never removes more than this fraction of any group's filters.
MAX_RATIO = 0.95
#: Probes of the budget search (each prunes a fresh copy).
MAX_PROBES = 12
#: A budget below this fraction of the model's parameters is rejected at collection.
MIN_BUDGET_FRACTION = 0.02


def format_count(n: int) -> str:
    """``11190000`` -> ``"11.19M"``; ``51200`` -> ``"51.2k"``."""
    if abs(n) >= 10**6:
        return f"{n / 1e6:.2f}M"
    if abs(n) >= 10**3:
        return f"{n / 1e3:.1f}k"
    return str(n)


class PruneParams(Strict):
    """``prune: {ratio: 0.3}`` or ``prune: {params: 11.19M, finetune: 2}``."""

    method: Literal["l1-filter"] = "l1-filter"
    ratio: Real | None = Field(None, description="fraction of each group's filters to remove, in (0, 1)")
    params: Count | None = Field(
        None, description="parameter budget (11.19M, 500k, 4510000); the ratio is searched to hit it"
    )
    finetune: Int = Field(0, ge=0, le=1000, description="fine-tuning epochs after pruning (lr: the recipe's / 10)")
    tolerance: Real = Field(0.01, gt=0.0, lt=1.0, description="relative tolerance on the parameter budget")

    @field_validator("ratio")
    @classmethod
    def _ratio_open(cls, v: float | None) -> float | None:
        if v is not None:
            if not v > 0.0:
                raise ValueError("must be > 0")
            if not v < 1.0:
                raise ValueError("must be < 1")
        return v

    @field_validator("params")
    @classmethod
    def _params_positive(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError("must be > 0")
        return v

    @model_validator(mode="after")
    def _one_budget(self) -> PruneParams:
        if self.ratio is not None and self.params is not None:
            raise ValueError("give either ratio or params, not both")
        if self.ratio is None and self.params is None:
            raise ValueError("give ratio: (0..1) or params: (a parameter budget like 11.19M)")
        return self


def _example_inputs(model: nn.Module, ctx: StepContext) -> torch.Tensor:
    import torch

    h, w = ctx.train.images.shape[-2:]
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    return torch.zeros(1, 3, int(h), int(w), device=device)


def _classifier(net: nn.Module) -> nn.Module:
    head = classifier_head(net, linear=True)
    if head is None:
        raise ArtifactError("cannot prune: the network has no final nn.Linear classifier to keep")
    return head[1]


def _plain_history(history: Any) -> list[list[Any]]:
    """Torch-Pruning's history as ``[[name, is_out_channel, [int, ...]], ...]`` (safe for weights_only)."""
    return [[str(name), bool(out), [int(i) for i in idxs]] for name, out, idxs in history]


def _prune_copy(parent: nn.Module, ratio: float, example: torch.Tensor) -> tuple[nn.Module, list[list[Any]]]:
    """A pruned deep copy of ``parent`` (a Normalized wrapper) and its pruning history."""
    import torch_pruning as tp

    model = copy.deepcopy(parent).eval()  # eval: tracing must not touch BatchNorm running statistics
    net = model.net
    # No torch.no_grad() here: Torch-Pruning traces the graph through autograd's grad_fn.
    pruner = tp.pruner.BasePruner(
        net,
        example,
        importance=tp.importance.MagnitudeImportance(p=1, group_reduction="first", normalizer=None),
        pruning_ratio=ratio,
        ignored_layers=[_classifier(net)],
    )
    pruner.step()
    history = _plain_history(pruner.pruning_history())
    del pruner
    return model.eval(), history


@COMPRESSIONS.register("prune")
class Prune:
    """``prune: {ratio: 0.3}`` or ``prune: {params: 11.19M, finetune: 2}`` (L1 filter pruning)."""

    Params = PruneParams
    #: Distributions whose version enters this step's content key (their code decides its output).
    libraries = ("torch-pruning",)

    def parse(self, value: Any) -> Any:
        return value  # a mapping passes through; anything else is left for validation to reject

    def check(self, params: PruneParams, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        problems = []
        if "quantize" in position.previous:
            problems.append("a quantized model cannot be pruned: put prune before quantize")
        if params.params is not None and baseline_params > 0:
            budget, base = format_count(params.params), format_count(baseline_params)
            if params.params >= baseline_params:
                problems.append(f"budget {budget} is not below the model's {base} parameters")
            elif params.params < MIN_BUDGET_FRACTION * baseline_params:
                problems.append(
                    f"budget {budget} is below {MIN_BUDGET_FRACTION:.0%} of the model's {base} parameters: "
                    "so small that layers would vanish"
                )
        return problems

    def apply(self, parent: nn.Module, params: PruneParams, ctx: StepContext) -> StepResult:
        example = _example_inputs(parent, ctx)
        timer = Timer()
        if params.ratio is not None:
            ratio = float(params.ratio)
            model, history = _prune_copy(parent, ratio, example)
            n = count_parameters(model)
            report(f"pruning {ctx.label}: ratio {ratio:.3f} -> {format_count(n)} parameters ({timer.seconds:.1f}s)")
        else:
            ratio, model, history, n = self._search(
                parent, int(params.params), float(params.tolerance), example, ctx.label
            )
            report(
                f"pruning {ctx.label}: ratio {ratio:.3f} -> {format_count(n)} parameters "
                f"(target {format_count(int(params.params))}, {timer.seconds:.1f}s)"
            )
        if params.finetune > 0:
            o = ctx.recipe.optimizer
            recipe = ctx.recipe.model_copy(
                update={"epochs": params.finetune, "optimizer": o.model_copy(update={"lr": o.lr / 10})}
            )
            train_supervised(
                model, ctx.train, recipe, device=ctx.device, label=f"{ctx.label} (fine-tuning after pruning)"
            )
        model.eval()
        state = {
            "history": history,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "ratio": ratio,
        }
        return StepResult(model, state, info={"ratio": ratio, "parameters": n})

    def _search(
        self, parent: nn.Module, target: int, tolerance: float, example: torch.Tensor, label: str
    ) -> tuple[float, nn.Module, list[list[Any]], int]:
        """The ratio whose pruned copy of ``parent`` has ``target`` parameters within ``tolerance``."""
        from torch import nn

        base = count_parameters(parent)
        if target >= base:
            raise ArtifactError(
                f"cannot prune {label} to {format_count(target)}: it has only {format_count(base)} parameters"
            )
        # Bracket: count(lo) > target > count(hi); count(hi) is estimated until probed. Torch-Pruning
        # keeps int(channels * (1 - r)) channels and leaves a group whole when that would be 0, so the
        # count is monotone only while the narrowest layer keeps one channel: stay below that ratio.
        widths = [m.out_channels for m in parent.modules() if isinstance(m, nn.Conv2d)]
        lo, n_lo = 0.0, base
        hi = min([MAX_RATIO] + [1.0 - 1.001 / w for w in widths if w > 1])
        n_hi = base * (1.0 - hi) ** 2
        best: tuple[float, nn.Module, list[list[Any]], int] | None = None
        for probe in range(MAX_PROBES):
            # The count falls about as (1 - r)^2: interpolate sqrt(count) linearly inside the bracket.
            s_lo, s_hi, s_t = math.sqrt(n_lo), math.sqrt(max(n_hi, 0.0)), math.sqrt(target)
            r = lo + (hi - lo) * (s_lo - s_t) / (s_lo - s_hi) if s_lo > s_hi else (lo + hi) / 2
            margin = 0.05 * (hi - lo)
            if probe > 0 and not lo + margin <= r <= hi - margin:
                r = (lo + hi) / 2
            r = min(max(r, lo + 1e-4), hi - 1e-4)
            model, history = _prune_copy(parent, r, example)
            n = count_parameters(model)
            _log.debug("pruning %s: probe %d ratio %.4f -> %d parameters (target %d)", label, probe + 1, r, n, target)
            if best is None or abs(n - target) < abs(best[3] - target):
                best = (r, model, history, n)
            if abs(n - target) <= tolerance * target:
                break
            if n > target:
                lo, n_lo = r, n
            else:
                hi, n_hi = r, n
            if hi - lo < 1e-4:
                break
        assert best is not None
        r, model, history, n = best
        if abs(n - target) > tolerance * target:
            raise ArtifactError(
                f"cannot prune {label} to {format_count(target)} ({target}) parameters within {tolerance:.1%}: "
                f"the closest reachable count is {format_count(n)} ({n}) at ratio {r:.3f}"
            )
        return r, model, history, n

    def restore(self, parent: nn.Module, params: PruneParams, state: Mapping[str, Any], ctx: StepContext) -> nn.Module:
        import torch_pruning as tp

        model = copy.deepcopy(parent).eval()
        graph = tp.DependencyGraph().build_dependency(model.net, example_inputs=_example_inputs(model, ctx))
        graph.load_pruning_history(_plain_history(state["history"]))
        del graph
        model.load_state_dict(state["state_dict"])
        return model.eval()
