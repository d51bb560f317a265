"""Blur corruptions of ImageNet-C (Hendrycks & Dietterich, ICLR 2019): defocus, motion, zoom, glass, Gaussian.

Severity parameters, 32-px table (CIFAR-10-C) / 224-px table (ImageNet-C), in pixels, interpolated in
log image size by :func:`~robustspec.corrupt.base.at_size`::

    corruption     parameter              severity 1 .. 5 (32 px)          severity 1 .. 5 (224 px)
    defocus_blur   disk radius            0.3  0.4  0.5  1    1.5          3    4    6    8    10
                   anti-alias sigma       0.4  0.5  0.6  0.2  0.1          0.1  0.5  0.5  0.5  0.5
    motion_blur    length (radius)        6    6    6    8    9            10   15   15   15   20
                   Gaussian fall-off      1    1.5  2    2    2.5          3    5    8    12   15
    zoom_blur      largest zoom factor    1.06 1.11 1.15 1.20 1.25         1.11 1.15 1.20 1.24 1.30
                   zoom step              .01  .01  .01  .01  .01          .01  .01  .02  .02  .03
    glass_blur     sigma (both blurs)     .05  .25  .4   .25  .4           .7   .9   1    1.1  1.5
                   max displacement       1    1    1    1    1            1    2    2    3    4
                   iterations             1    1    1    2    2            2    1    3    2    2
    gaussian_blur  sigma                  0.4  0.6  0.7  0.8  1            1    2    3    4    6

Defocus convolves with an anti-aliased disk, as ImageNet-C does. Motion blur follows ImageMagick's (which
ImageNet-C calls): a one-sided line of ``2 * radius + 1`` taps weighted ``exp(-i^2 / 2 sigma^2)`` at an
angle drawn per image from U(-45, 45) degrees, taps beyond ``3 sigma`` dropped (they weigh < 1 %).

The zoom and glass tables are those of ``make_cifar_c.py`` and ``make_imagenet_c.py`` (the ``imagenet_c``
package has the same ImageNet-C values). Zoom blur's factors are ``np.arange(1, end, step)`` there, and
floating point makes ``np.arange(1, 1.06, 0.01)`` end at 1.06, so the table lists the factors actually
used: 1, 1 + step, ..., largest. Between the tables the extent (largest - 1) and the step are interpolated
and the factors spread evenly over the extent. Glass blur's displacement and iterations are rounded.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .base import at_size, register, size_of, warp

if TYPE_CHECKING:
    import torch

DEFOCUS = (
    ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
)
MOTION = (((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)), ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)))
GAUSSIAN = ((0.4, 0.6, 0.7, 0.8, 1.0), (1.0, 2.0, 3.0, 4.0, 6.0))
# (largest zoom factor, step); (sigma, max displacement, iterations).
ZOOM = (
    ((1.06, 0.01), (1.11, 0.01), (1.15, 0.01), (1.20, 0.01), (1.25, 0.01)),
    ((1.11, 0.01), (1.15, 0.01), (1.20, 0.02), (1.24, 0.02), (1.30, 0.03)),
)
GLASS = (
    ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    ((0.7, 1, 2), (0.9, 2, 1), (1.0, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
)


def _pair(table: tuple, i: int, severity: int, size: int) -> float:
    small, large = table
    return at_size([p[i] for p in small], [p[i] for p in large], severity, size)


def _gaussian_kernel1d(sigma: float, radius: int, dtype: torch.dtype) -> torch.Tensor:
    import torch

    x = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _gaussian(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of std ``sigma`` pixels (taps to ``3 sigma``), through torchvision's ``gaussian_blur``."""
    from torchvision.transforms.v2 import functional as F

    radius = min(math.ceil(3 * sigma), size_of(images) - 1)
    return F.gaussian_blur(images, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])


def zoom(images: torch.Tensor, factor: float) -> torch.Tensor:
    """Every image magnified ``factor`` (>= 1) times about its exact centre, bilinear, same size.

    torchvision's ``affine`` samples all images on one grid, at the exact factor; a centre crop resized
    back up with ``interpolate`` can only zoom by whole-pixel crops (``size / (size - k)``), which at
    32 px would merge CIFAR-10-C's 0.01 zoom steps into a few distinct factors, and is half a pixel off
    centre when the crop is odd.
    """
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    return F.affine(
        images,
        angle=0.0,
        translate=[0.0, 0.0],
        scale=factor,
        shear=[0.0, 0.0],
        interpolation=InterpolationMode.BILINEAR,
    )


def streak(images: torch.Tensor, radius: float, sigma: float, angle: torch.Tensor) -> torch.Tensor:
    """ImageMagick's motion blur (see the module docstring) along ``angle`` ``[N]`` (radians, one per image)."""
    import torch

    taps = min(2 * math.ceil(radius) + 1, math.ceil(3 * sigma) + 1)
    n, _, h, w = images.shape
    direction = torch.stack([angle.cos(), angle.sin()], dim=-1).to(images.dtype)  # [N, 2] (x, y)
    weights = torch.exp(-(torch.arange(taps, dtype=images.dtype) ** 2) / (2 * sigma**2))
    weights = weights / weights.sum()
    out = images * weights[0]
    for i in range(1, taps):  # one batched warp per tap, never one per image
        offsets = (i * direction)[:, None, None, :].expand(n, h, w, 2)
        out = out + weights[i] * warp(images, offsets, padding_mode="border")
    return out


def _depthwise(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel with one 2-D kernel, borders reflected (clamped where the image is too small)."""
    import torch

    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    mode = "reflect" if ph < images.shape[-2] and pw < images.shape[-1] else "replicate"
    padded = torch.nn.functional.pad(images, (pw, pw, ph, ph), mode=mode)
    weight = kernel.to(images.dtype).expand(images.shape[1], 1, kh, kw)
    return torch.nn.functional.conv2d(padded, weight, groups=images.shape[1])


def disk_kernel(radius: float, alias_sigma: float, dtype: torch.dtype | None = None) -> torch.Tensor:
    """ImageNet-C's disk: pixels within ``radius`` of the centre, normalised, then blurred by ``alias_sigma``
    (``dtype`` float32 unless given)."""
    import torch

    dtype = torch.float32 if dtype is None else dtype
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
    import torch

    size = size_of(images)
    radius, sigma = _pair(MOTION, 0, severity, size), _pair(MOTION, 1, severity, size)
    angle = (torch.rand(images.shape[0], generator=generator, dtype=torch.float64) * 90.0 - 45.0).deg2rad()
    return streak(images, radius, sigma, angle)


@register("zoom_blur", family="blur", standard=True)
def zoom_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Zooming during the exposure: the mean of the image and copies magnified about its centre.

    As in ImageNet-C, the copies are at factors 1, 1 + step, ..., largest, and the image itself is
    averaged in too (so it counts twice: once as itself, once as the copy at factor 1).
    """
    size = size_of(images)
    extent = at_size([z - 1 for z, _ in ZOOM[0]], [z - 1 for z, _ in ZOOM[1]], severity, size)
    steps = max(1, round(extent / _pair(ZOOM, 1, severity, size)))
    out = images * 2.0  # the image and its copy at factor 1
    for k in range(1, steps + 1):  # one batched resampling per factor (at most 25)
        out = out + zoom(images, 1.0 + extent * k / steps)
    return out / (steps + 2)


@register("glass_blur", family="blur", standard=True)
def glass_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Frosted glass: a Gaussian blur, pixels scrambled locally, blurred again.

    A batched equivalent of ImageNet-C's shuffle, not its sequential order: the reference walks the pixels
    one by one and swaps each with a random neighbour within the max displacement, so a pixel can travel
    along a chain of swaps. Here every iteration draws one integer displacement per pixel, uniform in
    ``[-d, d]`` on each axis (the reference's ``randint(-d, d)`` excludes ``+d``; a symmetric range keeps
    the image from drifting), and every pixel takes the colour at its displacement in one gather, borders
    clamped. The result scrambles as locally as the swaps do, but is a resampling rather than a
    permutation (a colour may appear twice or vanish), and the reference's uint8 rounding between the
    steps is left out.
    """
    import torch

    size = size_of(images)
    sigma = _pair(GLASS, 0, severity, size)
    delta = max(1, round(_pair(GLASS, 1, severity, size)))
    iterations = max(1, round(_pair(GLASS, 2, severity, size)))
    n, c, h, w = images.shape
    rows = torch.arange(h, device=images.device).view(1, h, 1)
    cols = torch.arange(w, device=images.device).view(1, 1, w)
    # One draw, image-major, so a batch split in two gets the same images as the whole.
    shifts = torch.randint(-delta, delta + 1, (n, iterations, 2, h, w), generator=generator).to(images.device)
    out = _gaussian(images, sigma)
    for i in range(iterations):  # one gather per iteration (1-3)
        dy, dx = shifts[:, i, 0], shifts[:, i, 1]
        source = (rows + dy).clamp_(0, h - 1) * w + (cols + dx).clamp_(0, w - 1)
        out = out.flatten(2).gather(2, source.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
    return _gaussian(out, sigma)


@register("gaussian_blur", family="blur", standard=False)
def gaussian_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian blur (an ImageNet-C extra), through ``torchvision.transforms.v2.functional.gaussian_blur``."""
    return _gaussian(images, at_size(*GAUSSIAN, severity, size_of(images)))
