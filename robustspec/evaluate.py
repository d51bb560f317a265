"""Clean evaluation: per-image correctness on one split, computed once and stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .data.base import Split

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["predict", "correctness"]


def predict(model: nn.Module, images: torch.Tensor, *, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Predicted labels for uint8 images, in batches, in eval mode (restored afterwards)."""
    import torch

    with torch.inference_mode():
        was_training = model.training
        model.eval()
        try:
            out = []
            for start in range(0, images.shape[0], batch_size):
                x = images[start : start + batch_size].to(device).float().div_(255.0)
                out.append(model(x).argmax(1).cpu())
            return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
        finally:
            model.train(was_training)


def correctness(model: nn.Module, split: Split, *, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """A bool tensor: which test images the model classifies correctly."""
    return predict(model, split.images, device=device, batch_size=batch_size) == split.labels
