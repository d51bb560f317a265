"""Low-rank factorization of convolutions and the classifier by truncated SVD.

The method is the SVD variant of Denton et al. 2014 ("Exploiting Linear Structure Within Convolutional
Networks for Efficient Evaluation") and Jaderberg et al. 2014 ("Speeding up Convolutional Neural Networks
with Low Rank Expansions"): a convolution's weight, reshaped to ``W: [out, in*k*k]``, is replaced by its
best rank-``r`` approximation ``W ~= U_r S_r V_r^T`` (Eckart-Young), realised as two layers

    Conv2d(in, r, k, stride, padding, dilation, bias=False)   weight (sqrt(S_r) V_r^T) -> [r, in, k, k]
    Conv2d(r, out, 1, bias=<original bias>)                   weight (U_r sqrt(S_r))   -> [out, r, 1, 1]

and each ``nn.Linear`` (the classifier; the MLPs of a ConvNeXt or a ViT) likewise becomes
``Linear(in, r, bias=False) -> Linear(r, out)``. A layer's rank is
``r = max(1, round(rank_ratio * min(out, in*k*k)))``; a layer is factorized only when that reduces its
parameters, ``r * (in*k*k + out) < in*k*k*out``.

Left alone: the stem (the network's first convolution, ``net.conv1`` of a ResNet: three input channels,
so ``min(out, in*k*k)`` is small and it holds few parameters, while errors there reach every later
layer), grouped and depthwise convolutions (their weight is not one matrix), the projections inside
``nn.MultiheadAttention`` (it reads their weights directly), and, unless ``pointwise: true``, 1x1
convolutions (``in*out`` weights become ``r*(in+out)``: they only shrink for ``r < in*out/(in+out)``,
about half the smaller width, and in a ResNet they are the projection shortcuts and bottleneck ends, a
small share of the parameters; in MobileNets, EfficientNets and RegNets they hold most of them).

A parameter budget (``params: 6.39M``) is met by a binary search on one rank ratio shared by every
layer; ranks are integers, so the count moves in steps and the closest count within ``tolerance`` is
taken (or :class:`~robustspec.errors.ArtifactError` says what was reachable). The stored state is the
per-layer ranks and a plain state_dict; ``restore`` rebuilds the same structure from the ranks (no SVD)
and loads the weights, so the restored model computes exactly what ``apply``'s model computed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_serializer, model_validator

from ..errors import ArtifactError
from ..progress import report
from ..spec.schema import Count, Flag, Int, Ratio, Real, Strict
from ..train.supervised import train_supervised
from . import COMPRESSIONS
from .base import ChainPosition, StepContext, StepResult

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["LowRankParams", "LowRank", "factorize_conv", "factorize_linear", "plan_ranks", "factorize"]


class LowRankParams(Strict):
    """``lowrank: {rank-ratio: 0.5}`` or ``lowrank: {params: 6.39M}``."""

    method: Literal["svd"] = "svd"
    rank_ratio: Ratio | None = Field(None, description="each layer keeps this fraction of its full rank")
    params: Count | None = Field(None, description="parameter budget; one rank ratio is searched to meet it")
    finetune: Int = Field(
        0, ge=0, le=1000, description="epochs of fine-tuning at a tenth of the recipe's learning rate"
    )
    tolerance: Annotated[Real, Field(gt=0.0, lt=1.0)] = Field(
        0.01, description="relative distance allowed from the budget"
    )
    pointwise: Flag = Field(
        False,
        description="also factorize 1x1 convolutions (where MobileNets, EfficientNets and RegNets keep most "
        "of their weights); off by default, as in a ResNet they are a small share",
    )

    @model_serializer(mode="wrap")
    def _added_fields_at_default_are_left_out(self, handler: Any) -> Any:
        # Content keys hash the dumped params: a field added later must not change the key of a step that
        # does not use it.
        data = handler(self)
        if isinstance(data, dict) and not self.pointwise:
            data.pop("pointwise", None)
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> LowRankParams:
        if (self.rank_ratio is None) == (self.params is None):
            raise ValueError(
                "give exactly one of rank-ratio (a fraction of each layer's rank, e.g. 0.5) "
                "or params (a parameter budget, e.g. 6.39M)"
            )
        return self


# --- the factorization ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    name: str
    rows: int  # out
    cols: int  # in * k * k (or in_features)
    bias: int  # bias elements (kept, moved to the second layer)

    def rank(self, ratio: float) -> int:
        return max(1, round(ratio * min(self.rows, self.cols)))

    def reduces(self, r: int) -> bool:
        return r * (self.cols + self.rows) < self.cols * self.rows

    def saving(self, r: int) -> int:
        return self.cols * self.rows - r * (self.cols + self.rows)


def _candidates(model: nn.Module, pointwise: bool = False) -> list[_Layer]:
    """The layers that may be factorized: k>1 ungrouped convolutions but the first (stem), 1x1 ones too
    with ``pointwise``, and every Linear but those inside attention modules (``MultiheadAttention`` uses
    its ``out_proj`` weight directly)."""
    from torch import nn

    from ..models.zoo import linear_layers

    layers: list[_Layer] = []
    stem_seen = False
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if not stem_seen:
                stem_seen = True
                continue
            k = m.kernel_size[0] * m.kernel_size[1]
            if (k > 1 or pointwise) and m.groups == 1:
                layers.append(
                    _Layer(name, m.out_channels, m.in_channels * k, m.out_channels if m.bias is not None else 0)
                )
    for name, m in linear_layers(model):
        layers.append(_Layer(name, m.out_features, m.in_features, m.out_features if m.bias is not None else 0))
    return layers


def plan_ranks(model: nn.Module, ratio: float, pointwise: bool = False) -> tuple[dict[str, int], int]:
    """Ranks of the layers a ratio factorizes, and the parameter count that results (no SVD is done)."""
    total = sum(p.numel() for p in model.parameters())
    ranks: dict[str, int] = {}
    for layer in _candidates(model, pointwise):
        r = layer.rank(ratio)
        if layer.reduces(r):
            ranks[layer.name] = r
            total -= layer.saving(r)
    return ranks, total


def _factorized_conv(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    from torch import nn

    like = {"device": conv.weight.device, "dtype": conv.weight.dtype}
    first = nn.Conv2d(
        conv.in_channels,
        rank,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        bias=False,
        padding_mode=conv.padding_mode,
        **like,
    )
    second = nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None, **like)
    return nn.Sequential(first, second)


def _factorized_linear(linear: nn.Linear, rank: int) -> nn.Sequential:
    from torch import nn

    like = {"device": linear.weight.device, "dtype": linear.weight.dtype}
    return nn.Sequential(
        nn.Linear(linear.in_features, rank, bias=False, **like),
        nn.Linear(rank, linear.out_features, bias=linear.bias is not None, **like),
    )


def _svd_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``W [out, n] ~= A @ B`` with ``A = U_r sqrt(S_r)`` [out, r] and ``B = sqrt(S_r) V_r^T`` [r, n]."""
    import torch

    with torch.no_grad():
        w = weight.detach().to(torch.float64)
        if w.shape[0] < w.shape[1]:
            # LAPACK is far slower on wide matrices here (6 s against 0.2 s for 512 x 4608): take W^T's SVD.
            ut, s, vht = torch.linalg.svd(w.T, full_matrices=False)
            u, vh = vht.T, ut.T
        else:
            u, s, vh = torch.linalg.svd(w, full_matrices=False)
        root = s[:rank].sqrt()
        a = u[:, :rank] * root
        b = root[:, None] * vh[:rank]
        return a.to(weight.dtype), b.to(weight.dtype)


def factorize_conv(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """A k x k convolution as (k x k to ``rank`` channels) then (1 x 1 to the output), by truncated SVD."""
    import torch

    with torch.no_grad():
        out, cin, kh, kw = conv.weight.shape
        a, b = _svd_factors(conv.weight.reshape(out, cin * kh * kw), rank)
        seq = _factorized_conv(conv, rank)
        seq[0].weight.copy_(b.reshape(rank, cin, kh, kw))
        seq[1].weight.copy_(a.reshape(out, rank, 1, 1))
        if conv.bias is not None:
            seq[1].bias.copy_(conv.bias)
        return seq


def factorize_linear(linear: nn.Linear, rank: int) -> nn.Sequential:
    """``Linear(in, out)`` as ``Linear(in, rank, bias=False) -> Linear(rank, out)``, by truncated SVD."""
    import torch

    with torch.no_grad():
        a, b = _svd_factors(linear.weight, rank)
        seq = _factorized_linear(linear, rank)
        seq[0].weight.copy_(b)
        seq[1].weight.copy_(a)
        if linear.bias is not None:
            seq[1].bias.copy_(linear.bias)
        return seq


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def factorize(model: nn.Module, ranks: dict[str, int], *, svd: bool = True) -> nn.Module:
    """Replace the named layers in place; with ``svd=False`` only the structure is built (for restore)."""
    from torch import nn

    for name, r in ranks.items():
        layer = model.get_submodule(name)
        if isinstance(layer, nn.Conv2d):
            new = factorize_conv(layer, r) if svd else _factorized_conv(layer, r)
        elif isinstance(layer, nn.Linear):
            new = factorize_linear(layer, r) if svd else _factorized_linear(layer, r)
        else:
            raise ArtifactError(
                f"low-rank state names {name!r}, which is a {type(layer).__name__}, not a Conv2d or Linear"
            )
        _replace(model, name, new)
    return model


def _search_ratio(
    model: nn.Module, target: int, tolerance: float, pointwise: bool = False
) -> tuple[float, dict[str, int], int]:
    """The rank ratio whose parameter count is closest to ``target`` (counts are non-decreasing in the ratio)."""
    lo, hi = 0.0, 1.0  # invariant: count(lo) <= target < count(hi) once both ends are evaluated
    below: tuple[float, dict[str, int], int] | None = None
    above: tuple[float, dict[str, int], int] | None = None
    for _ in range(60):
        mid = (lo + hi) / 2
        ranks, n = plan_ranks(model, mid, pointwise)
        if n <= target:
            lo, below = mid, (mid, ranks, n)
        else:
            hi, above = mid, (mid, ranks, n)
        if hi - lo < 1e-9:
            break
    found = [c for c in (below, above) if c is not None]
    best = min(found, key=lambda c: (abs(c[2] - target), c[2] > target))
    if abs(best[2] - target) > tolerance * target:
        reachable = ", ".join(f"{c[2]:,} (rank ratio {c[0]:.4f})" for c in found)
        raise ArtifactError(
            f"low-rank factorization cannot reach {target:,} parameters within {tolerance:.1%}: "
            f"the closest counts are {reachable}"
        )
    return best


# --- the step ------------------------------------------------------------------------------------------


@COMPRESSIONS.register("lowrank")
class LowRank:
    """``lowrank: {rank-ratio: 0.5}`` or ``lowrank: {params: 6.39M, finetune: 2}``."""

    Params = LowRankParams

    def parse(self, value: Any) -> Any:
        return value

    def check(self, params: LowRankParams, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        problems = []
        if "quantize" in position.previous:
            problems.append("a quantized model cannot be factorized: put lowrank before quantize")
        if "sparsify" in position.previous:
            problems.append("factorizing makes sparsified weights dense again: put lowrank before sparsify")
        if params.params is not None and baseline_params > 0:
            if params.params >= baseline_params:
                problems.append(
                    f"a budget of {params.params:,} parameters is not below the baseline's {baseline_params:,}: nothing to factorize"
                )
            elif params.params < 0.05 * baseline_params:
                problems.append(
                    f"a budget of {params.params:,} parameters is unreachable by low-rank factorization "
                    f"(below 5% of the baseline's {baseline_params:,})"
                )
        return problems

    def apply(self, parent: nn.Module, params: LowRankParams, ctx: StepContext) -> StepResult:
        model = copy.deepcopy(parent)
        if params.params is not None:
            ratio, ranks, _ = _search_ratio(model, params.params, params.tolerance, params.pointwise)
        else:
            ratio = float(params.rank_ratio)
            ranks, _ = plan_ranks(model, ratio, params.pointwise)
        factorize(model, ranks)
        n = sum(p.numel() for p in model.parameters())
        report(
            f"low-rank {ctx.label}: {len(ranks)} layers factorized at rank ratio {ratio:.4f}, {n / 1e6:.2f}M parameters"
        )
        if params.finetune:
            recipe = ctx.recipe
            recipe = recipe.model_copy(
                update={
                    "epochs": params.finetune,
                    "optimizer": recipe.optimizer.model_copy(update={"lr": recipe.optimizer.lr / 10}),
                }
            )
            train_supervised(model, ctx.train, recipe, device=ctx.device, label=f"{ctx.label} (low-rank fine-tuning)")
        model.eval()
        state = {"ranks": dict(ranks), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
        return StepResult(model, state, info={"parameters": n, "rank_ratio": ratio})

    def restore(self, parent: nn.Module, params: LowRankParams, state: dict[str, Any], ctx: StepContext) -> nn.Module:
        model = copy.deepcopy(parent)
        factorize(model, {str(k): int(v) for k, v in state["ranks"].items()}, svd=False)
        model.load_state_dict(state["state_dict"])
        return model.eval()
