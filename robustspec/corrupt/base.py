"""The corruption registry, the severity tables' size rule, and the contract every corruption keeps.

A corruption is a function ``(images, severity, generator) -> images``: ``images`` float ``[N, 3, H, W]``
in [0, 1], ``severity`` an int 1..5, ``generator`` a :class:`torch.Generator` that is the only source of
randomness. It returns a new float tensor of the same shape and dtype, in [0, 1].

Severity parameters come in two published tables by the same authors: ImageNet-C's for 224-px images
and CIFAR-10-C's for 32-px images (Hendrycks & Dietterich, ICLR 2019, github.com/hendrycks/robustness).
:func:`at_size` interpolates between them geometrically in log image size (clamped outside 32..224), so
a 32-px office-synth image gets the CIFAR-10-C constants, a 224-px image the ImageNet-C ones, and sizes
in between something in between.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from ..registry import Registry

if TYPE_CHECKING:
    import torch

__all__ = [
    "CORRUPTIONS",
    "SEVERITIES",
    "Corruption",
    "at_size",
    "check_images",
    "register",
    "size_of",
    "standard_corruptions",
    "warp",
]

#: Severity levels, as in ImageNet-C.
SEVERITIES = (1, 2, 3, 4, 5)

#: The image sizes the two published tables were made for.
SMALL, LARGE = 32, 224


class Corruption(Protocol):
    """A registered corruption function (see the module docstring for the contract)."""

    name: str
    family: str  # noise, blur, weather/color, digital
    standard: bool  # one of ImageNet-C's 15 benchmark corruptions (the default set of an expectation)

    def __call__(self, images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor: ...


#: Corruptions by name (``gaussian_noise``, ``defocus_blur``, ...).
CORRUPTIONS: Registry[Corruption] = Registry(
    "corruption",
    not_provided={
        "frost": "ImageNet-C's frost blends in crops of six frost photographs that ship with the reference code, "
        "not with robustspec (see robustspec/corrupt/weather.py); pick another weather corruption: fog, snow",
    },
)


def register(name: str, *, family: str, standard: bool) -> Callable[[Callable[..., torch.Tensor]], Corruption]:
    """Register a corruption function: checks its inputs and clamps its output to [0, 1]."""

    def decorate(fn: Callable[..., torch.Tensor]) -> Corruption:
        def corruption(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
            check_images(images, severity)
            return fn(images, severity, generator).clamp_(0.0, 1.0)

        corruption.__name__ = corruption.__qualname__ = fn.__name__
        corruption.__doc__ = fn.__doc__
        corruption.__module__ = fn.__module__
        corruption.name = name  # type: ignore[attr-defined]
        corruption.family = family  # type: ignore[attr-defined]
        corruption.standard = standard  # type: ignore[attr-defined]
        return CORRUPTIONS.register(name)(corruption)  # type: ignore[arg-type]

    return decorate


def standard_corruptions() -> list[str]:
    """Names of the registered ImageNet-C benchmark corruptions, sorted (extras such as speckle_noise excluded)."""
    return [n for n in CORRUPTIONS.names() if CORRUPTIONS.get(n).standard]


def check_images(images: torch.Tensor, severity: int) -> None:
    import torch

    if (
        not isinstance(images, torch.Tensor)
        or not images.is_floating_point()
        or images.ndim != 4
        or images.shape[1] != 3
    ):
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor [N, 3, H, W] in [0, 1], got {got}")
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
        raise ValueError(f"severity must be an int 1-5, got {severity!r}")


def at_size(small: Sequence[float], large: Sequence[float], severity: int, size: int) -> float:
    """The severity's parameter for ``size``-px images, between the 32-px and the 224-px tables.

    Geometric in log size: ``small^(1-t) * large^t`` with ``t = log(size/32) / log(224/32)`` clamped to [0, 1].
    Every table value is positive, so the result is too.
    """
    t = min(1.0, max(0.0, math.log(size / SMALL) / math.log(LARGE / SMALL)))
    a, b = float(small[severity - 1]), float(large[severity - 1])
    return a ** (1.0 - t) * b**t


def size_of(images: torch.Tensor) -> int:
    """The image size the severity tables are read at: the shorter side."""
    return int(min(images.shape[-2], images.shape[-1]))


def warp(images: torch.Tensor, offsets: torch.Tensor, padding_mode: str = "reflection") -> torch.Tensor:
    """Sample every image at its own pixel offsets ``[N, H, W, 2]`` (x, y in pixels), bilinearly.

    ``torchvision``'s ``elastic`` applies one displacement to a whole batch and pads with zeros; corruptions
    need one field per image and reflected borders, so this calls ``grid_sample`` directly.
    """
    import torch

    n, _, h, w = images.shape
    ys = (torch.arange(h, dtype=images.dtype, device=images.device) + 0.5) * (2.0 / h) - 1.0
    xs = (torch.arange(w, dtype=images.dtype, device=images.device) + 0.5) * (2.0 / w) - 1.0
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).expand(n, h, w, 2)
    scale = torch.tensor([2.0 / w, 2.0 / h], dtype=images.dtype, device=images.device)
    return torch.nn.functional.grid_sample(
        images, grid + offsets * scale, mode="bilinear", padding_mode=padding_mode, align_corners=False
    )
