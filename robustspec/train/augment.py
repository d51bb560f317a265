"""Batched, seeded augmentation on uint8-derived float tensors (no per-image Python loop)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["augment_batch", "crop_pixels"]


def crop_pixels(crop_pad: int | float, side: int) -> int:
    """A translation in pixels: ``crop_pad`` itself when an integer, else that share of ``side``."""
    return crop_pad if isinstance(crop_pad, int) else round(crop_pad * side)


def augment_batch(
    x: torch.Tensor, g: torch.Generator, *, crop_pad: int | float = 0, flip: bool = False, jitter: float = 0.0
) -> torch.Tensor:
    """Random translation by up to ``crop_pad`` pixels (pad-and-crop), horizontal flips and brightness/contrast jitter.

    ``crop_pad``: pixels (an integer) or a share of the image's shorter side (a float below 1: 0.1 is 10 %).
    ``x`` is float in [0, 1], ``[N, C, H, W]``; every random draw comes from ``g`` so a seed fixes the result.
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    crop_pad = crop_pixels(crop_pad, min(h, w))
    if crop_pad:
        padded = F.pad(x, (crop_pad,) * 4, mode="replicate")
        dy = torch.randint(0, 2 * crop_pad + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * crop_pad + 1, (n,), generator=g)
        rows = (dy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, x.shape[1], h, w + 2 * crop_pad)
        padded = padded.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(n, x.shape[1], h, w)
        x = padded.gather(3, cols)
    if flip:
        mask = torch.rand(n, generator=g) < 0.5
        x = torch.where(mask.view(n, 1, 1, 1), x.flip(3), x)
    if jitter:
        b = 1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * jitter
        c = 1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * jitter
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * c + mean) * b
        x = x.clamp(0, 1)
    return x
