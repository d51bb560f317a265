"""Clean evaluation: per-image correctness on one split, computed once and stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .data.base import Split

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["predict", "correctness", "device_for"]


def device_for(model: nn.Module, device: Any) -> torch.device:
    """Where ``model`` runs when ``device`` is asked for: int8 kernels and runtime programs are CPU-only (the
    one place this rule lives)."""
    import torch

    from .metrics import is_program, is_quantized

    return torch.device("cpu") if is_quantized(model) or is_program(model) else torch.device(device)


def predict(
    model: nn.Module, images: torch.Tensor, *, device: Any, batch_size: int = 256, label: str | None = None
) -> torch.Tensor:
    """Predicted labels, in batches, in eval mode (restored afterwards), on :func:`device_for` ``device``.

    ``images``: uint8 (scaled to [0, 1] here) or float pixels already in [0, 1]. With ``label``, a long
    pass reports its progress under that name (:class:`~robustspec.progress.Progress`; no last line: the
    caller says what it measured).
    """
    import torch

    from .progress import Progress

    device = device_for(model, device)
    progress = Progress(images.shape[0], label, unit="images", final="never") if label else None
    with torch.inference_mode():
        was_training = model.training
        model.eval()
        try:
            out = []
            for start in range(0, images.shape[0], batch_size):
                x = images[start : start + batch_size].to(device)
                if x.dtype == torch.uint8:
                    x = x.float().div_(255.0)
                out.append(model(x).argmax(1).cpu())
                if progress is not None:
                    progress.update(x.shape[0])
            return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
        finally:
            model.train(was_training)


def correctness(model: nn.Module, split: Split, *, device: Any, batch_size: int = 256) -> torch.Tensor:
    """A bool tensor: which test images the model classifies correctly."""
    return predict(model, split.images, device=device, batch_size=batch_size) == split.labels
