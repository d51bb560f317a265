"""Sparse-RS for L0: a gradient-free random search that changes at most ``k`` input values.

Croce, Andriushchenko, Singh, Flammarion, Hein, "Sparse-RS: a versatile framework for query-efficient
sparse black-box adversarial attacks", AAAI 2022.

Norm: L0, bounded. The budget ``eps`` is a fraction of the ``3*H*W`` input values, as JSMA's (so
``k = floor(eps * 3*H*W)`` values may change); the paper counts pixels (all channels of one), here each
input value counts, which is JSMA's threat model. Each sample starts from ``k`` random values set to a
random extreme (0 or 1, the corners of the box, as in the paper). Each query moves ``alpha * k`` of them
(at least one) to other random positions with new random extremes, and keeps the candidate if the margin
(true logit minus the largest other) does not increase; ``alpha`` starts at ``p-init`` (the paper's 0.3)
and halves on Square's schedule. Samples already misclassified stop querying. Every draw comes from the
run's generator. It needs no gradients, so it runs on int8 models directly: the black-box check of L0
attacks (JSMA).

Shapes: ``x`` ``[N, 3, H, W]`` in [0, 1], ``y`` ``[N]``; returns the same shape. Cost: at most ``queries``
forward passes, no backward.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from ..spec.schema import Fraction, Int, Real
from . import ATTACKS
from .base import AttackParams, Norm
from .blackbox import _fraction
from .minimum_norm import _margin

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["SparseRS", "SparseRSParams"]


class SparseRSParams(AttackParams):
    """``{name: sparse-rs, eps: 0.02, queries: 1000, p-init: 0.3}``."""

    eps: Fraction = Field(description="L0 budget: the fraction of the 3*H*W input values that may change")
    queries: Int = Field(1000, ge=1, le=1_000_000, description="forward passes per sample (the start included)")
    p_init: Real = Field(0.3, gt=0.0, le=1.0, description="initial fraction of the changed values moved per query")


@ATTACKS.register("sparse-rs")
class SparseRS:
    """Sparse-RS (Croce et al., AAAI 2022), L0 over input values: random search, no gradients."""

    Params: ClassVar[type[AttackParams]] = SparseRSParams
    norm: ClassVar[Norm] = "l0"
    bounded: ClassVar[bool] = True
    gradient_free: ClassVar[bool] = True
    order: ClassVar[int] = 100
    #: Why the masking check of L0 attacks does not use it (robustspec.expect.attack.blackbox_for).
    not_a_masking_reference: ClassVar[str] = (
        "is stronger than JSMA on honest models (Croce et al. 2022), so its lead is no evidence of masking"
    )
    loss: ClassVar[str] = "margin"

    def check(self, params: SparseRSParams, num_classes: int) -> list[str]:
        problems = []
        if not 0.0 <= params.eps <= 1.0:
            problems.append(f"eps is a fraction of the input values changed and must be in [0, 1], got {params.eps}")
        if num_classes < 2:
            problems.append(f"an attack needs at least 2 classes, the data has {num_classes}")
        return problems

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: SparseRSParams, generator: torch.Generator
    ) -> torch.Tensor:
        import torch

        with torch.no_grad():
            x = x.detach()
            n, shape, dev = x.shape[0], x.shape[1:], x.device
            flat = x.flatten(1)
            d = flat.shape[1]
            k = min(int(math.floor(params.eps * d + 1e-9)), d)
            if k == 0 or n == 0:
                return x.clone()

            def extremes(rows: int, cols: int) -> torch.Tensor:
                return torch.randint(0, 2, (rows, cols), generator=generator).to(dev, x.dtype)

            pos = torch.rand(n, d, generator=generator).topk(k, dim=1).indices.to(dev)  # k distinct positions
            val = extremes(n, k)
            best = flat.clone().scatter_(1, pos, val)
            margin = _margin(model(best.view(n, *shape)), y)
            for query in range(1, params.queries):
                active = (margin >= 0).nonzero().squeeze(1)
                if len(active) == 0:
                    break
                m = len(active)
                moved = (
                    min(max(round(_fraction(params.p_init, query, params.queries) * k), 1), k, d - k) if d > k else 0
                )
                if moved == 0:  # every value is already in the budget: only new extremes can help
                    new_pos, new_val = pos[active], extremes(m, k)
                else:
                    which = torch.rand(m, k, generator=generator).topk(moved, dim=1).indices.to(dev)
                    score = torch.rand(m, d, generator=generator).to(dev)
                    score.scatter_(1, pos[active], -1.0)  # positions already changed are not drawn again
                    fresh = score.topk(moved, dim=1).indices
                    new_pos = pos[active].scatter(1, which, fresh)
                    new_val = val[active].scatter(1, which, extremes(m, moved))
                cand = flat[active].scatter(1, new_pos, new_val)
                new_margin = _margin(model(cand.view(m, *shape)), y[active])
                better = new_margin <= margin[active]
                rows = active[better]
                best[rows], pos[rows], val[rows] = cand[better], new_pos[better], new_val[better]
                margin[rows] = new_margin[better]
            return best.view(n, *shape)
