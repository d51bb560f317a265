"""Weather corruptions of ImageNet-C (Hendrycks & Dietterich, ICLR 2019): fog and snow.

Severity parameters, 32-px table (CIFAR-10-C, ``make_cifar_c.py``) / 224-px table (ImageNet-C,
``make_imagenet_c.py``; the ``imagenet_c`` package has the same values), interpolated in log image size by
:func:`~robustspec.corrupt.base.at_size`::

    corruption  parameter                          severity 1 .. 5 (32 px)        severity 1 .. 5 (224 px)
    fog         fog thickness (fractal scale)      .2   .5   .75  1    1.5         1.5  2    2.5  2.5  3
                fractal roughness decay            3    3    2.5  2    1.75        2    2    1.7  1.5  1.4
    snow        flake noise mean                   .1   .1   .15  .25  .3          .1   .2   .55  .55  .55
                flake noise std                    .2   .2   .3   .3   .3          .3   .3   .3   .3   .3
                flake zoom (flake size, px)        1    1    1.75 2.25 1.25        3    2    4    4.5  2.5
                flake threshold                    .6   .5   .55  .6   .65         .5   .5   .9   .85  .85
                motion-blur radius (px)            8    10   10   12   14          10   12   12   12   12
                motion-blur sigma (px)             3    4    4    6    12          4    4    8    8    12
                image kept (rest lightened grey)   .95  .9   .9   .85  .8          .8   .7   .7   .65  .55

``fog`` adds a plasma fractal (diamond-square) to the image and scales the sum back by the image's peak
``m`` to ``(x + t * fractal) * m / (m + t)``, as ImageNet-C does: contrast drops by ``m / (m + t)`` under a
cloudy haze. The fractal is drawn on the smallest power-of-two square that covers the image (32 for
CIFAR-10-C, 256 for ImageNet-C, as the reference) and cropped.

``snow`` draws a grey flake layer ``N(mean, std)``, magnifies it about the centre (bigger flakes), zeroes
it below the threshold, streaks it with :mod:`~robustspec.corrupt.blur`'s ImageMagick-style motion blur at
an angle drawn per image from U(-135, -45) degrees (falling, not sideways), blends the image with
``max(x, 1.5 * grey + 0.5)`` (snow light) and adds the layer and its 180-degree rotation. The reference's
uint8 rounding of the flake layer before the blur (it goes through a PNG for ImageMagick) is left out.

``frost`` (ImageNet-C blends in crops of six frost photographs) is not implemented: those photographs are
not shipped here, and a synthetic stand-in would not be ImageNet-C's corruption.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .base import at_size, register, size_of
from .blur import streak, zoom

if TYPE_CHECKING:
    import torch

# (thickness, decay) and (mean, std, zoom, threshold, blur radius, blur sigma, kept), as in the table above.
FOG = (((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)), ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)))
SNOW = (
    (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
)


def _column(table: tuple, i: int, severity: int, size: int) -> float:
    small, large = table
    return at_size([p[i] for p in small], [p[i] for p in large], severity, size)


def plasma_fractal(
    n: int, size: int, decay: float, generator: torch.Generator, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``n`` diamond-square height maps ``[n, m, m]`` in [0, 1], ``m`` the smallest power of two >= ``size``.

    The map wraps around (neighbours are taken modulo ``m``), starts from zero and halves its step each
    level: every square's centre becomes the mean of its 4 corners plus noise, then every edge midpoint the
    mean of its 4 diamond neighbours plus noise. The noise is uniform in ``[-a, a]`` with ``a`` divided by
    ``decay^2`` per level, the reference's ``wibble * U(-wibble, wibble)`` with ``wibble /= decay`` (its
    starting 100^2 is a common factor that the final min-max scaling removes). All maps are built at once,
    one vectorised step per level, from one draw of ``m^2 - 1`` numbers per map (every point but the
    corner), so a batch split in two gets the same maps as the whole. Float32 unless ``dtype`` is given.
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    m = 1 << max(1, (size - 1).bit_length())
    grid = torch.zeros((n, m, m), dtype=torch.float64)
    noise = torch.rand((n, m * m - 1), generator=generator, dtype=torch.float64) * 2.0 - 1.0
    used, amplitude = 0, 1.0

    def jittered_mean(total: torch.Tensor) -> torch.Tensor:
        nonlocal used
        k = total[0].numel()
        jitter = noise[:, used : used + k].view(total.shape)
        used += k
        return total / 4.0 + amplitude * jitter

    step = m
    while step >= 2:
        half = step // 2
        corners = grid[:, ::step, ::step].clone()
        square = corners + corners.roll(-1, dims=1)
        grid[:, half::step, half::step] = jittered_mean(square + square.roll(-1, dims=2))
        centres = grid[:, half::step, half::step]
        # Midpoints of horizontal edges: corners left and right, centres above and below; then vertical edges.
        grid[:, ::step, half::step] = jittered_mean(
            corners + corners.roll(-1, dims=2) + centres + centres.roll(1, dims=1)
        )
        grid[:, half::step, ::step] = jittered_mean(
            corners + corners.roll(-1, dims=1) + centres + centres.roll(1, dims=2)
        )
        step = half
        amplitude /= decay**2
    low, high = grid.amin(dim=(1, 2), keepdim=True), grid.amax(dim=(1, 2), keepdim=True)
    return ((grid - low) / (high - low).clamp(min=1e-12)).to(dtype)


@register("fog", family="weather", standard=True)
def fog(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Fog: a cloudy plasma fractal added, the sum scaled back by the image's peak (lower contrast)."""
    size = size_of(images)
    thickness, decay = _column(FOG, 0, severity, size), _column(FOG, 1, severity, size)
    n, _, h, w = images.shape
    haze = plasma_fractal(n, max(h, w), decay, generator, images.dtype)[:, None, :h, :w].to(images.device)
    peak = images.amax(dim=(1, 2, 3), keepdim=True)
    return (images + thickness * haze) * (peak / (peak + thickness))


@register("snow", family="weather", standard=True)
def snow(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Falling snow: streaked white flakes over a lightened image."""
    import torch
    from torchvision.transforms.v2 import functional as F

    size = size_of(images)
    mean, std, flake_zoom, threshold, radius, sigma, kept = (_column(SNOW, i, severity, size) for i in range(7))
    n, _, h, w = images.shape
    # One uniform draw per image (its flake noise, then its angle), so a batch split in two gets the same
    # images as the whole; the noise is made normal through the inverse CDF.
    u = torch.rand((n, h * w + 1), generator=generator, dtype=torch.float64)
    normal = math.sqrt(2.0) * torch.erfinv(u[:, :-1].clamp(1e-12, 1.0 - 1e-12) * 2.0 - 1.0)
    flakes = (mean + std * normal).view(n, 1, h, w).to(images.dtype).to(images.device)
    if flake_zoom > 1.0:
        flakes = zoom(flakes, flake_zoom)
    flakes = torch.where(flakes < threshold, 0.0, flakes).clamp(0.0, 1.0)
    angle = (u[:, -1] * 90.0 - 135.0).deg2rad()
    flakes = streak(flakes, radius, sigma, angle)
    lit = kept * images + (1.0 - kept) * torch.maximum(images, F.rgb_to_grayscale(images) * 1.5 + 0.5)
    return lit + flakes + flakes.flip(-2, -1)
