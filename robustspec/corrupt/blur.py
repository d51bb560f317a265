"""Blur corruptions of ImageNet-C (Hendrycks & Dietterich, ICLR 2019): defocus, motion, Gaussian.

Severity parameters, 32-px table (CIFAR-10-C) / 224-px table (ImageNet-C), in pixels, interpolated in
log image size by :func:`~robustspec.corrupt.base.at_size`::

    corruption     parameter              severity 1 .. 5 (32 px)          severity 1 .. 5 (224 px)
    defocus_blur   disk radius            0.3  0.4  0.5  1    1.5          3    4    6    8    10
                   anti-alias sigma       0.4  0.5  0.6  0.2  0.1          0.1  0.5  0.5  0.5  0.5
    motion_blur    length (radius)        6    6    6    8    9            10   15   15   15   20
                   Gaussian fall-off      1    1.5  2    2    2.5          3    5    8    12   15
    gaussian_blur  sigma                  0.4  0.6  0.7  0.8  1            1    2    3    4    6

Defocus convolves with an anti-aliased disk, as ImageNet-C does. Motion blur follows ImageMagick's (which
ImageNet-C calls): a one-sided line of ``2 * radius + 1`` taps weighted ``exp(-i^2 / 2 sigma^2)`` at an
angle drawn per image from U(-45, 45) degrees, taps beyond ``3 sigma`` dropped (they weigh < 1 %).
"""

from __future__ import annotations

import math

import torch

from .base import at_size, register, size_of, warp

DEFOCUS = (((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)), ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)))
MOTION = (((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)), ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)))
GAUSSIAN = ((0.4, 0.6, 0.7, 0.8, 1.0), (1.0, 2.0, 3.0, 4.0, 6.0))


def _pair(table: tuple, i: int, severity: int, size: int) -> float:
    small, large = table
    return at_size([p[i] for p in small], [p[i] for p in large], severity, size)


def _gaussian_kernel1d(sigma: float, radius: int, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _depthwise(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel with one 2-D kernel, borders reflected (clamped where the image is too small)."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    mode = "reflect" if ph < images.shape[-2] and pw < images.shape[-1] else "replicate"
    padded = torch.nn.functional.pad(images, (pw, pw, ph, ph), mode=mode)
    weight = kernel.to(images.dtype).expand(images.shape[1], 1, kh, kw)
    return torch.nn.functional.conv2d(padded, weight, groups=images.shape[1])


def disk_kernel(radius: float, alias_sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ImageNet-C's disk: pixels within ``radius`` of the centre, normalised, then blurred by ``alias_sigma``."""
    r = max(1, math.ceil(radius))
    xs = torch.arange(-r, r + 1, dtype=dtype)
    disk = ((xs[None, :] ** 2 + xs[:, None] ** 2) <= radius**2).to(dtype)
    disk /= disk.sum()
    g = _gaussian_kernel1d(alias_sigma, 1 if r <= 8 else 2, dtype)
    g2 = g[:, None] * g[None, :]
    # Full (zero-padded) convolution of the disk with the small Gaussian, as cv2 blurs the padded disk.
    k = torch.nn.functional.conv2d(disk[None, None], g2[None, None], padding=g2.shape[-1] - 1)[0, 0]
    return k / k.sum()


@register("defocus_blur", family="blur", standard=True)
def defocus_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Out-of-focus lens: convolution with an anti-aliased disk."""
    size = size_of(images)
    kernel = disk_kernel(_pair(DEFOCUS, 0, severity, size), _pair(DEFOCUS, 1, severity, size), images.dtype)
    return _depthwise(images, kernel)


@register("motion_blur", family="blur", standard=True)
def motion_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Camera shake: a weighted sum of the image shifted along a line at a random angle (one per image)."""
    size = size_of(images)
    radius, sigma = _pair(MOTION, 0, severity, size), _pair(MOTION, 1, severity, size)
    taps = min(2 * math.ceil(radius) + 1, math.ceil(3 * sigma) + 1)
    n, _, h, w = images.shape
    angle = (torch.rand(n, generator=generator, dtype=torch.float64) * 90.0 - 45.0).deg2rad()
    direction = torch.stack([angle.cos(), angle.sin()], dim=-1).to(images.dtype)  # [N, 2] (x, y)
    weights = torch.exp(-torch.arange(taps, dtype=images.dtype) ** 2 / (2 * sigma**2))
    weights = weights / weights.sum()
    out = images * weights[0]
    for i in range(1, taps):  # one batched warp per tap, never one per image
        offsets = (i * direction)[:, None, None, :].expand(n, h, w, 2)
        out = out + weights[i] * warp(images, offsets, padding_mode="border")
    return out


@register("gaussian_blur", family="blur", standard=False)
def gaussian_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian blur (an ImageNet-C extra), through ``torchvision.transforms.v2.functional.gaussian_blur``."""
    from torchvision.transforms.v2 import functional as F

    sigma = at_size(*GAUSSIAN, severity, size_of(images))
    radius = min(math.ceil(3 * sigma), size_of(images) - 1)
    return F.gaussian_blur(images, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])
