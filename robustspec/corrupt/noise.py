"""Noise corruptions of ImageNet-C (Hendrycks & Dietterich, ICLR 2019): Gaussian, shot, impulse, speckle.

Severity parameters, 32-px table (CIFAR-10-C) / 224-px table (ImageNet-C), interpolated in log image
size by :func:`~robustspec.corrupt.base.at_size`::

    corruption       parameter                     severity 1 .. 5 (32 px)       severity 1 .. 5 (224 px)
    gaussian_noise   std of N(0, s) added          .04  .06  .08  .09  .10       .08  .12  .18  .26  .38
    shot_noise       photons per unit (lower=worse) 500  250  100   75   50        60   25   12    5    3
    impulse_noise    fraction of values salt/pepper .01  .02  .03  .05  .07       .03  .06  .09  .17  .27
    speckle_noise    std of multiplicative noise   .06  .10  .12  .16  .20       .15  .20  .35  .45  .60

Noise is drawn from the given generator. ``torchvision.transforms.v2.functional.gaussian_noise`` takes no
generator (it draws from the global RNG), so Gaussian noise is drawn here; the arithmetic is the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import at_size, register, size_of

if TYPE_CHECKING:
    import torch

GAUSSIAN = ((0.04, 0.06, 0.08, 0.09, 0.10), (0.08, 0.12, 0.18, 0.26, 0.38))
SHOT = ((500, 250, 100, 75, 50), (60, 25, 12, 5, 3))
IMPULSE = ((0.01, 0.02, 0.03, 0.05, 0.07), (0.03, 0.06, 0.09, 0.17, 0.27))
SPECKLE = ((0.06, 0.10, 0.12, 0.16, 0.20), (0.15, 0.20, 0.35, 0.45, 0.60))


def _normal(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    import torch

    return torch.randn(images.shape, generator=generator, dtype=images.dtype, device=images.device)


@register("gaussian_noise", family="noise", standard=True)
def gaussian_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Additive Gaussian noise of std ``s`` (sensor noise in low light)."""
    s = at_size(*GAUSSIAN, severity, size_of(images))
    return images + s * _normal(images, generator)


@register("shot_noise", family="noise", standard=True)
def shot_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Poisson (shot) noise: ``Poisson(x * c) / c``; fewer photons per unit, noisier image."""
    import torch

    c = at_size(*SHOT, severity, size_of(images))
    return torch.poisson(images.clamp(0.0, 1.0) * c, generator=generator) / c


@register("impulse_noise", family="noise", standard=True)
def impulse_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Salt-and-pepper noise: a fraction ``a`` of the values (per channel) set to 0 or 1, half each."""
    import torch

    a = at_size(*IMPULSE, severity, size_of(images))
    u = torch.rand(images.shape, generator=generator, dtype=images.dtype, device=images.device)
    out = images.clone()
    out[u < a / 2] = 0.0
    out[(u >= a / 2) & (u < a)] = 1.0
    return out


@register("speckle_noise", family="noise", standard=False)
def speckle_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Multiplicative Gaussian noise ``x + x * N(0, s)`` (an ImageNet-C extra, not in its benchmark 15)."""
    s = at_size(*SPECKLE, severity, size_of(images))
    return images + images * s * _normal(images, generator)
