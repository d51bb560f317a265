"""Decoupled Direction and Norm (DDN): a minimum-L2 attack, one forward and one backward pass per step.

Rony, Hafemann, Oliveira, Ben Ayed, Sabourin, Granger, "Decoupling Direction and Norm for Efficient
Gradient-Based L2 Adversarial Attacks and Defenses", CVPR 2019 (Algorithm 1).

Norm: L2, unbounded (``eps``, if given, only scores the result). Every sample carries its own radius
``epsilon``: a normalised gradient step on the cross-entropy picks the direction, then the perturbation is
projected onto the sphere of radius ``epsilon``, which shrinks by ``1 - gamma`` while the current point is
adversarial and grows by ``1 + gamma`` while it is not. The step size follows a cosine schedule from 1 to
0.01. As in the paper, every iterate is quantised to ``levels`` grey levels (256: 8-bit images), so the
returned adversarials are valid images. The smallest adversarial seen per sample is returned; samples
never fooled come back unchanged.

Shapes: ``x`` ``[N, 3, H, W]`` in [0, 1], ``y`` ``[N]``; returns ``[N, 3, H, W]`` in [0, 1].
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from ..spec.schema import Fraction, Int, Real
from . import ATTACKS
from .base import AttackParams, Norm, run_in_batches

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["DDN", "DDNParams"]

_ALPHA_MIN = 0.01


class DDNParams(AttackParams):
    eps: Fraction | None = Field(
        None, description="L2 budget (pixel scale) at which success is scored; the research used 0.24"
    )
    steps: Int = Field(100, ge=1, le=100_000, description="iterations, one forward and one backward pass each")
    init_epsilon: Real = Field(1.0, gt=0.0, description="initial L2 radius of every sample")
    gamma: Real = Field(0.05, gt=0.0, lt=1.0, description="radius factor per step: shrink by 1-gamma, grow by 1+gamma")
    levels: Int | None = Field(
        256, ge=2, le=65_536, description="quantise every iterate to this many grey levels; null disables"
    )


@ATTACKS.register("ddn")
class DDN:
    """Decoupled Direction and Norm (Rony et al., CVPR 2019): minimum-L2 adversarials in ~1 pass per step."""

    Params: ClassVar[type[AttackParams]] = DDNParams
    norm: ClassVar[Norm] = "l2"
    bounded: ClassVar[bool] = False
    gradient_free: ClassVar[bool] = False
    order: ClassVar[int] = 60
    loss: ClassVar[str] = "ce"

    def check(self, params: DDNParams, num_classes: int) -> list[str]:
        problems = []
        if params.eps is not None and not (math.isfinite(params.eps) and params.eps > 0):
            problems.append(f"eps must be a positive L2 radius, got {params.eps}")
        if not math.isfinite(params.init_epsilon):
            problems.append(f"init-epsilon must be finite, got {params.init_epsilon}")
        if num_classes < 2:
            problems.append(f"needs at least 2 classes, got {num_classes}")
        return problems

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: DDNParams, generator: torch.Generator
    ) -> torch.Tensor:
        # The driver may hold inference mode for its clean pass; the attack needs autograd on the input.
        return run_in_batches(_ddn, model, x, y, params, generator)


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _ddn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, p: DDNParams, g: torch.Generator) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    eps = torch.full((n,), float(p.init_epsilon), device=x.device, dtype=x.dtype)
    # The farthest point of the [0,1] box: a larger radius changes nothing after clipping, and letting
    # epsilon grow past it would take many shrinking steps to come back.
    worst = torch.maximum(x, 1 - x).flatten(1).norm(dim=1)
    best = x.clone()
    best_norm = torch.full((n,), math.inf, device=x.device, dtype=x.dtype)

    def keep_best(adv: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        nonlocal best, best_norm
        is_adv = logits.argmax(1) != y
        norm = (adv - x).flatten(1).norm(dim=1)
        better = is_adv & (norm < best_norm)
        best_norm = torch.where(better, norm, best_norm)
        best = torch.where(_per_sample(better, x), adv, best)
        return is_adv

    # The iterate is the adversarial image itself (not x + delta), so quantised values stay exact.
    adv = x.clone()
    for k in range(p.steps):
        alpha = _ALPHA_MIN + (1 - _ALPHA_MIN) * 0.5 * (1 + math.cos(math.pi * k / max(p.steps - 1, 1)))
        adv.requires_grad_(True)
        logits = model(adv)
        loss = F.cross_entropy(logits, y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = adv.detach()
            is_adv = keep_best(adv, logits.detach())
            gnorm = grad.flatten(1).norm(dim=1)
            flat = gnorm < 1e-12
            if bool(flat.any()):
                # A saturated softmax gives an exactly-zero gradient: take a random direction instead of none.
                noise = torch.randn(grad[flat].shape, generator=g, device=g.device).to(grad)
                grad[flat] = noise
                gnorm = grad.flatten(1).norm(dim=1)
            eps = torch.where(is_adv, eps * (1 - p.gamma), eps * (1 + p.gamma)).minimum(worst)
            delta = (adv - x) + alpha * grad / _per_sample(gnorm, x)
            delta = delta * _per_sample(eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12), x)
            adv = (x + delta).clamp_(0, 1)
            if p.levels is not None:
                adv = adv.mul_(p.levels - 1).round_().div_(p.levels - 1)
    with torch.no_grad():
        keep_best(adv, model(adv))  # the last iterate has not been scored yet
    return best.detach()
