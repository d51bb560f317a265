"""Jacobian-based Saliency Map Attack (JSMA): a targeted L0 attack that changes a few input values.

Papernot, McDaniel, Jha, Fredrikson, Celik, Swami, "The Limitations of Deep Learning in Adversarial
Settings", IEEE EuroS&P 2016.

Norm: L0, unbounded (``eps``, a fraction of the ``3*H*W`` input values, only scores the result). Each sample
gets a target class (``random``: uniform over the other classes from the generator; ``next``:
``(y + 1) mod num_classes``; ``least-likely``: the lowest clean logit), with ``num_classes`` read off the
model's output. Each iteration moves two input values by ``theta`` (clipped to [0, 1]) until the model
predicts the target, more than ``gamma`` of the values have changed (so at most one pair beyond the
budget, as in IBM ART), or fewer than two values can still move (values at the bound leave the search
domain).

Saliency: the single-feature variant (as in IBM ART): the two values in the search domain with the largest
gradient of the target logit, ``alpha = dZ_t/dx``. The paper's pair criterion (``alpha_p + alpha_q > 0``,
``beta_p + beta_q < 0`` with ``beta`` the gradient of the sum of the other logits, maximise the product) was
measured here too, as a batched search over the best pairs among the top 48 values: on resnet10-mini at
16 px it lost to this rule (10 classes, gamma 0.02: 33% against 44% targeted success; 4 classes about
even), because the sum of the other logits mostly follows classes that do not compete with the target.
The single-feature rule also needs one Jacobian row, not two: each iteration costs one forward and one
backward pass over the still-active samples of the batch, never a per-image loop or a full Jacobian.

Shapes: ``x`` ``[N, 3, H, W]`` in [0, 1], ``y`` ``[N]``; returns ``[N, 3, H, W]`` in [0, 1].
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from ..spec.schema import Fraction, Int, Real
from . import ATTACKS
from .base import AttackParams, Norm, run_in_batches

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["JSMA", "JSMAParams", "pick_targets"]

Target = Literal["next", "random", "least-likely"]


class JSMAParams(AttackParams):
    eps: Fraction | None = Field(None, description="L0 budget as a fraction of the 3*H*W input values; scores success")
    batch_size: Int = Field(32, ge=1, le=100_000)
    theta: Real = Field(
        1.0, ge=-1.0, le=1.0, description="change per selected value; positive increases, negative decreases"
    )
    gamma: Real = Field(0.1, gt=0.0, le=1.0, description="maximum fraction of input values changed")
    target: Target = Field(
        "random", description="target class per sample: random other class, (y+1) mod classes, or least likely"
    )

    @field_validator("theta")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("theta must not be 0")
        return v


@ATTACKS.register("jsma")
class JSMA:
    """Jacobian-based Saliency Map Attack (Papernot et al., 2016), batched, single-feature saliency."""

    Params: ClassVar[type[AttackParams]] = JSMAParams
    norm: ClassVar[Norm] = "l0"
    bounded: ClassVar[bool] = False
    gradient_free: ClassVar[bool] = False
    order: ClassVar[int] = 70
    loss: ClassVar[str] = "target-logit"

    def check(self, params: JSMAParams, num_classes: int) -> list[str]:
        problems = []
        if params.eps is not None and not 0.0 < params.eps <= 1.0:
            problems.append(f"eps is a fraction of the input values changed and must be in (0, 1], got {params.eps}")
        if num_classes < 2:
            problems.append(f"a targeted attack needs at least 2 classes, got {num_classes}")
        return problems

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: JSMAParams, generator: torch.Generator
    ) -> torch.Tensor:
        return run_in_batches(_jsma, model, x, y, params, generator)


def pick_targets(kind: Target, y: torch.Tensor, logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One target class per sample, never the label; ``num_classes`` is the width of ``logits``."""
    import torch

    num_classes = logits.shape[1]
    if kind == "next":
        return (y + 1) % num_classes
    if kind == "random":
        shift = torch.randint(1, num_classes, y.shape, generator=generator, device=generator.device)
        return (y + shift.to(y.device)) % num_classes
    return logits.detach().scatter(1, y[:, None], math.inf).argmin(1)


def _jsma(model: nn.Module, x: torch.Tensor, y: torch.Tensor, p: JSMAParams, g: torch.Generator) -> torch.Tensor:
    import torch

    n, shape = x.shape[0], x.shape[1:]
    d = x[0].numel()
    adv = x.detach().flatten(1).clone()
    increase = p.theta > 0
    domain = adv < 1 if increase else adv > 0
    budget = p.gamma * d  # a sample keeps going while at most this many values have changed
    changed = torch.zeros_like(domain)
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    targets: torch.Tensor | None = None

    # Terminates: every iteration moves two values of each active sample towards a bound they then leave
    # the domain at, or stops the sample.
    while True:
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        xa = adv[idx].requires_grad_(True)
        logits = model(xa.view(-1, *shape))
        if targets is None:  # first iteration: every sample, clean inputs
            targets = pick_targets(p.target, y, logits, g)
        t = targets[idx]
        stop = (logits.argmax(1) == t) | (domain[idx].sum(1) < 2) | (changed[idx].sum(1) > budget)
        active[idx[stop]] = False
        if bool(stop.all()):
            break
        # One vector-Jacobian product for the whole batch: the target row of the Jacobian.
        (grad_t,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), xa)
        go = ~stop
        rows = idx[go]
        saliency = grad_t[go] if increase else -grad_t[go]  # lowering a value moves Z_t against its gradient
        feats = saliency.masked_fill(~domain[rows], -math.inf).topk(2, dim=1).indices
        r = rows[:, None].expand_as(feats)
        moved = (adv[r, feats] + p.theta).clamp_(0, 1)
        adv[r, feats] = moved
        domain[r, feats] = moved < 1 if increase else moved > 0
        changed[r, feats] = True

    return adv.view(n, *shape)
