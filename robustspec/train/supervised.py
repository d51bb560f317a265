"""Supervised training on the source domain, deterministic for a seed on the CPU."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..data.base import Split
from ..progress import Progress, Timer, duration
from ..spec.schema import TrainRecipe
from .augment import augment_batch

if TYPE_CHECKING:
    import torch
    from torch import nn

    LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["train_supervised", "make_optimizer", "make_schedule", "class_weights"]


def class_weights(labels: torch.Tensor, recipe: TrainRecipe, classes: int) -> torch.Tensor | None:
    """The cross-entropy's per-class weights for ``recipe.class_weights``: None for ``none``; for
    ``balanced``, ``n / (K * n_k)`` for a class of ``n_k`` of the ``n`` training images, K the number of
    classes that have images (scikit-learn's ``compute_class_weight("balanced")``), so the weights of the
    training images sum to n; a class without training images gets 1 (no image carries it).
    """
    import torch

    if recipe.class_weights == "none":
        return None
    counts = torch.bincount(labels.long().flatten(), minlength=classes)[:classes].double()
    present = int((counts > 0).sum())
    weights = torch.where(counts > 0, labels.numel() / (present * counts.clamp(min=1)), torch.ones_like(counts))
    return weights.float()


def make_optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
    import torch

    o = recipe.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.momentum > 0
        )
    if o.name == "adam":
        return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)


def make_schedule(
    opt: torch.optim.Optimizer, recipe: TrainRecipe, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    import torch

    if recipe.schedule == "onecycle" and total_steps > 0:
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=recipe.optimizer.lr, total_steps=total_steps, pct_start=0.15
        )
    if recipe.schedule == "cosine" and total_steps > 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def train_supervised(
    model: nn.Module,
    data: Split,
    recipe: TrainRecipe,
    *,
    device: torch.device,
    label: str = "model",
    loss_fn: LossFn | None = None,
) -> dict[str, float]:
    """Train ``model`` (pixels in [0,1] in, logits out) in place; returns summary statistics.

    Shuffling and augmentation draw from one generator seeded by ``recipe.seed``; with the same thread
    count, two runs give bit-identical weights. ``loss_fn(logits, labels, inputs)`` replaces the
    cross-entropy (distillation passes the augmented inputs on to its teacher); the cross-entropy is
    weighted by :func:`class_weights` (``recipe.class_weights``), which a ``loss_fn`` applies itself.
    """
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(recipe.seed)
    model.to(device).train()
    opt = make_optimizer(model, recipe)
    n = len(data)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    sched = make_schedule(opt, recipe, recipe.epochs * steps_per_epoch)
    timer = Timer()
    weight = None  # the class weights, once the logits say how many classes there are
    loss_sum, correct, seen = 0.0, 0, 0
    # Lines inside an epoch only when one runs long (Progress's rate limit); one line per epoch always.
    progress = Progress(recipe.epochs * steps_per_epoch, f"training {label}", unit="batches", final="never")

    def status() -> str:
        return f"epoch {epoch + 1}/{recipe.epochs}, loss {loss_sum / max(seen, 1):.3f}"

    epoch_started = 0.0
    for epoch in range(recipe.epochs):
        perm = torch.randperm(n, generator=g)
        loss_sum, correct, seen = 0.0, 0, 0
        for start in range(0, n, recipe.batch_size):
            idx = perm[start : start + recipe.batch_size]
            if len(idx) < 2:  # BatchNorm cannot train on one image; the next epoch's permutation covers it
                continue
            x = data.images[idx].float().div_(255.0)
            a = recipe.augment
            x = augment_batch(x, g, crop_pad=a.crop_pad, flip=a.flip, jitter=a.jitter).to(device)
            y = data.labels[idx].to(device)
            logits = model(x)
            if loss_fn is None:
                if weight is None and recipe.class_weights != "none":
                    weight = class_weights(data.labels, recipe, logits.shape[1]).to(device)
                loss = F.cross_entropy(logits, y, weight=weight, label_smoothing=recipe.label_smoothing)
            else:
                loss = loss_fn(logits, y, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            progress.update(1, status)
        elapsed = progress.elapsed
        left = elapsed / (epoch + 1) * (recipe.epochs - epoch - 1)
        progress.line(
            f"training {label}: epoch {epoch + 1}/{recipe.epochs} loss {loss_sum / max(seen, 1):.3f} "
            f"train-acc {correct / max(seen, 1):.3f} ({elapsed - epoch_started:.1f}s/epoch, {duration(elapsed)}"
            + (f", ETA {duration(left)})" if left else ")")
        )
        epoch_started = elapsed
    model.eval()
    return {
        "final_loss": loss_sum / max(seen, 1),
        "final_train_accuracy": correct / max(seen, 1),
        "seconds": timer.seconds,
    }
