"""``gaussian-noise``: random Gaussian noise of a given L2 norm, the worst of a few draws per image.

Not an adversary (it follows no gradient and no score): a floor that any real L2 attack at the same eps
should beat. An image counts as robust when every draw leaves it correctly classified.

    - attack: {name: gaussian-noise, eps: 2.0, draws: 8, min-accuracy: 0.5}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field

from robustspec.attacks import ATTACKS
from robustspec.attacks.base import AttackParams
from robustspec.spec.schema import Int, Real

if TYPE_CHECKING:
    import torch
    from torch import nn


class GaussianNoiseParams(AttackParams):
    """``{name: gaussian-noise, eps: 2.0, draws: 8}``."""

    eps: Annotated[Real, Field(ge=0.0, le=1000.0)] = Field(description="L2 norm of the noise, on the [0,1] pixel scale")
    draws: Int = Field(8, ge=1, le=1000, description="noise draws per image; the first that fools the model is kept")


@ATTACKS.register("gaussian-noise")
class GaussianNoise:
    """Random Gaussian noise of L2 norm ``eps`` (clipped to [0, 1]), the first of ``draws`` draws that fools the model."""

    Params: ClassVar[type[AttackParams]] = GaussianNoiseParams
    norm: ClassVar[str] = "l2"
    bounded: ClassVar[bool] = True  # clipping to [0, 1] only shortens the noise
    gradient_free: ClassVar[bool] = True  # so it runs on int8 models too, and needs no masking check
    order: ClassVar[int] = 90  # report columns: after the built-in white-box attacks

    def check(self, params: GaussianNoiseParams, num_classes: int) -> list[str]:
        return [] if params.eps >= 0 else [f"eps must be >= 0, got {params.eps}"]

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Any, generator: torch.Generator
    ) -> torch.Tensor:
        import torch

        adv = x.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        with torch.no_grad():
            for draw in range(params.draws):
                noise = torch.randn(x.shape, generator=generator).to(x.device)
                noise *= params.eps / noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
                candidate = (x + noise).clamp(0.0, 1.0)
                wrong = model(candidate).argmax(1) != y
                keep = wrong & ~fooled if draw else torch.ones_like(fooled)  # every image gets the first draw
                adv[keep] = candidate[keep]
                fooled |= wrong
        return adv
