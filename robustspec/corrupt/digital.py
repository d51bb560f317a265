"""Digital corruptions of ImageNet-C (Hendrycks & Dietterich, ICLR 2019): JPEG, pixelate, elastic transform.

Severity parameters, 32-px table (CIFAR-10-C) / 224-px table (ImageNet-C), interpolated in log image
size by :func:`~robustspec.corrupt.base.at_size` (JPEG's 8x8 blocks are a fixed number of pixels, so its
quality is size-dependent too)::

    corruption         parameter                        severity 1 .. 5 (32 px)     severity 1 .. 5 (224 px)
    jpeg_compression   JPEG quality (lower = worse)     80   65   58   50   40       25   18   15   10   7
    pixelate           side kept before upscaling       .95  .90  .85  .75  .65      .60  .50  .40  .30  .25

``pixelate`` box-filters down and back up (PIL's BOX filter both ways, as ImageNet-C does).
``elastic_transform`` is a pure elastic warp (ImageNet-C adds a random affine jitter whose tables are not
ordered by severity): a per-image field of U(-1, 1) noise smoothed by a Gaussian of ``0.1 * size``
pixels, scaled to a displacement of RMS ``a * size`` pixels, borders reflected. Both are fractions of the
image side, so the warp looks the same at every size::

    elastic_transform  RMS displacement / image side    .01  .02  .03  .045  .06     (every size)
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

from .base import at_size, register, size_of, warp

if TYPE_CHECKING:
    import torch

JPEG_QUALITY = ((80, 65, 58, 50, 40), (25, 18, 15, 10, 7))
PIXELATE = ((0.95, 0.90, 0.85, 0.75, 0.65), (0.60, 0.50, 0.40, 0.30, 0.25))
ELASTIC = (0.01, 0.02, 0.03, 0.045, 0.06)
ELASTIC_SMOOTHING = 0.1


@register("jpeg_compression", family="digital", standard=True)
def jpeg_compression(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Lossy JPEG encoding and decoding, through ``torchvision.transforms.v2.functional.jpeg`` on uint8."""
    import torch
    from torchvision.transforms.v2 import functional as F

    quality = max(1, round(at_size(*JPEG_QUALITY, severity, size_of(images))))
    as_bytes = images.clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs in favour of torchcodec, warning once per image.
        warnings.simplefilter("ignore", DeprecationWarning)
        encoded = F.jpeg(as_bytes, quality=quality)
    return encoded.to(images.dtype).div_(255.0)


def box_matrix(n_out: int, n_in: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``[n_out, n_in]`` weights of PIL's BOX filter: each output pixel averages the input it overlaps
    (``dtype`` float32 unless given)."""
    import torch

    dtype = torch.float32 if dtype is None else dtype
    edges = torch.arange(n_out + 1, dtype=torch.float64) * (n_in / n_out)
    j = torch.arange(n_in, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(edges[1:, None], j + 1) - torch.maximum(edges[:-1, None], j)).clamp(min=0)
    return (overlap / overlap.sum(dim=1, keepdim=True)).to(dtype)


def _box_resize(images: torch.Tensor, h: int, w: int) -> torch.Tensor:
    import torch

    rows, cols = box_matrix(h, images.shape[-2], images.dtype), box_matrix(w, images.shape[-1], images.dtype)
    return torch.einsum("oh,nchw,pw->ncop", rows, images, cols)


@register("pixelate", family="digital", standard=True)
def pixelate(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Low resolution: box-filtered down to a fraction of the side and back up, as ImageNet-C does with PIL.

    torchvision's ``resize`` has no box filter, and nearest upscaling by non-integer factors shifts pixels by
    amounts that do not grow with severity; the box filter both ways is one small matrix per axis.
    """
    h, w = images.shape[-2:]
    keep = at_size(*PIXELATE, severity, size_of(images))
    small = _box_resize(images, max(1, int(h * keep)), max(1, int(w * keep)))
    return _box_resize(small, h, w)


@register("elastic_transform", family="digital", standard=True)
def elastic_transform(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Local stretching and contraction: a smooth random displacement field per image."""
    import torch
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    n, _, h, w = images.shape
    size = size_of(images)
    sigma = ELASTIC_SMOOTHING * size
    # A field this smooth is drawn on a grid `step` times coarser (sigma ~2 cells there) and upsampled:
    # the same look as blurring full-size noise, at a fraction of the cost on large images.
    step = max(1, int(sigma // 2))
    gh, gw = -(-h // step), -(-w // step)
    noise = torch.rand((n, 2, gh, gw), generator=generator, dtype=images.dtype) * 2.0 - 1.0
    s = sigma / step
    radius = min(math.ceil(3 * s), min(gh, gw) - 1)
    field = F.gaussian_blur(noise, kernel_size=[2 * radius + 1] * 2, sigma=[s, s])
    if step > 1:
        field = F.resize(field, [h, w], interpolation=InterpolationMode.BILINEAR, antialias=False)
    rms = field.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp(min=1e-12)
    field = field / rms * (ELASTIC[severity - 1] * size)
    return warp(images, field.permute(0, 2, 3, 1))
