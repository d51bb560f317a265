"""Photometric corruptions of ImageNet-C (Hendrycks & Dietterich, ICLR 2019): brightness, contrast, saturate.

Severity parameters, 32-px table (CIFAR-10-C) / 224-px table (ImageNet-C), interpolated in log image
size by :func:`~robustspec.corrupt.base.at_size`::

    corruption   parameter                          severity 1 .. 5 (32 px)     severity 1 .. 5 (224 px)
    brightness   added to HSV value V               .05  .10  .15  .20  .30      .10  .20  .30  .40  .50
    contrast     contrast factor (lower = worse)    .75  .50  .40  .30  .15      .40  .30  .20  .10  .05
    saturate     saturation factor                  0.3  0.1  1.5  2    2.5      0.3  0.1  2    5    20

``brightness`` adds to V in HSV (keeping hue and saturation), as ImageNet-C does: every pixel is scaled by
``min(V + c, 1) / V``. torchvision's ``adjust_brightness`` multiplies by one factor instead, which leaves
black black, so it is not used. ``contrast`` and ``saturate`` use torchvision's ``adjust_contrast`` and
``adjust_saturation`` (blends with the grey mean / the grey image); ImageNet-C's small additive saturation
offsets at severities 4-5 (0.1, 0.2) are left out. ``saturate`` alternates de- and over-saturation, so its
distortion is not ordered by severity; like ImageNet-C, it is an extra, outside the default mCE set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import at_size, register, size_of

if TYPE_CHECKING:
    import torch

BRIGHTNESS = ((0.05, 0.10, 0.15, 0.20, 0.30), (0.10, 0.20, 0.30, 0.40, 0.50))
CONTRAST = ((0.75, 0.50, 0.40, 0.30, 0.15), (0.40, 0.30, 0.20, 0.10, 0.05))
SATURATE = ((0.3, 0.1, 1.5, 2.0, 2.5), (0.3, 0.1, 2.0, 5.0, 20.0))


@register("brightness", family="weather", standard=True)
def brightness(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Brighter light: ``c`` added to the HSV value of every pixel, hue and saturation kept."""
    import torch

    c = at_size(*BRIGHTNESS, severity, size_of(images))
    value = images.amax(dim=1, keepdim=True)
    lifted = (value + c).clamp(max=1.0)
    # A black pixel (V = 0) has no hue: it becomes grey at the new value.
    return torch.where(value > 0, images * (lifted / value.clamp(min=1e-12)), lifted.expand_as(images))


@register("contrast", family="digital", standard=True)
def contrast(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Lower contrast: every image blended towards its mean grey."""
    from torchvision.transforms.v2 import functional as F

    return F.adjust_contrast(images, at_size(*CONTRAST, severity, size_of(images)))


@register("saturate", family="digital", standard=False)
def saturate(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Colour saturation changed: less at severities 1-2, more at 3-5 (an ImageNet-C extra)."""
    from torchvision.transforms.v2 import functional as F

    return F.adjust_saturation(images, at_size(*SATURATE, severity, size_of(images)))
