"""The model wrapper every consumer sees: pixels in [0, 1] in, logits out; normalisation lives inside."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["Normalized", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalized(nn.Module):
    """Wrap ``net`` so that it takes images in [0, 1]; attacks and evaluation never see normalised inputs."""

    def __init__(self, net: nn.Module, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as ``net`` takes it, on ``x``'s device (for exporting or calibrating ``net`` alone)."""
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def stats(self) -> tuple[list[float], list[float]]:
        """(mean, std) as lists: what a new wrapper around another network is built with."""
        return self.mean.detach().cpu().flatten().tolist(), self.std.detach().cpu().flatten().tolist()
