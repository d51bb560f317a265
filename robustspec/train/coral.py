"""Deep CORAL (Sun and Saenko 2016, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation").

Fine-tunes a network on labeled source batches and unlabeled target batches with

    loss = CE(source logits, source labels) + weight * sum over layers of CORAL(f_s, f_t),
    CORAL(f_s, f_t) = ||C_s - C_t||_F^2 / (4 d^2),

where ``C`` is the unbiased ``d x d`` covariance of a batch of ``d``-dimensional features (the paper's
eq. 1-2). Features are the outputs of named modules of the inner network (4-D outputs are globally
average-pooled to ``[N, C]``), or by default the classifier's input (the pooled 512-d features of a
ResNet-18).

``batchnorm`` says how BatchNorm sees the target images:

- ``joint`` (the default): source and target go through the network as one concatenated batch (one
  forward and one backward per step). BatchNorm normalises both domains together, and its running
  statistics become source+target ones, so the fine-tuned model adapts to the target through BatchNorm
  (an AdaBN-like effect) as well as through the CORAL term.
- ``source``: the source batch goes through in train mode and the target batch separately with every
  BatchNorm layer in eval mode: target features are normalised with the running source statistics, and
  the target never updates them. What the model gains on the target then comes from the CORAL term
  (and from fine-tuning itself) alone; weight 0 is plain source fine-tuning.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..data.base import Split
from ..errors import ArtifactError
from ..models.zoo import classifier_head
from ..progress import Progress, Timer, duration
from ..spec.schema import TrainRecipe
from .augment import augment_batch
from .supervised import class_weights, make_optimizer, make_schedule

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["BATCHNORM_MODES", "CLASSIFIER_INPUT", "capture", "coral_loss", "frozen_batchnorm", "train_coral"]

#: The layer name meaning "the input of the network's classifier" (its last ``nn.Linear``).
CLASSIFIER_INPUT = "classifier-input"
#: How BatchNorm sees the target images while adapting (see the module docstring).
BATCHNORM_MODES = ("joint", "source")


def _covariance(f: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance of the rows of ``f`` ``[n, d]`` -> ``[d, d]``."""
    centred = f - f.mean(dim=0, keepdim=True)
    return centred.T @ centred / (f.shape[0] - 1)


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||C_s - C_t||_F^2 / (4 d^2)`` for source ``[n_s, d]`` and target ``[n_t, d]`` features (n >= 2 each)."""
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"need [n, d] features of equal d, got {tuple(source.shape)} and {tuple(target.shape)}")
    if source.shape[0] < 2 or target.shape[0] < 2:
        raise ValueError("a covariance needs at least 2 samples per domain")
    d = source.shape[1]
    diff = _covariance(source) - _covariance(target)
    return (diff * diff).sum() / (4.0 * d * d)


def _classifier(net: nn.Module) -> nn.Module:
    head = classifier_head(net)
    if head is None:
        raise ArtifactError("CORAL's default layer is the classifier's input, but the network has no nn.Linear")
    return head[1]


@contextmanager
def frozen_batchnorm(net: nn.Module) -> Iterator[None]:
    """Every BatchNorm layer of ``net`` in eval mode (running statistics used, never updated); restored on exit."""
    from torch import nn

    layers = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    try:
        for m in layers:
            m.eval()
        yield
    finally:
        for m in layers:
            m.train()


@contextmanager
def capture(net: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Hooks that store each layer's features (``[N, d]``) of the latest forward pass; removed on exit."""
    modules = dict(net.named_modules())
    feats: dict[str, torch.Tensor] = {}
    handles = []

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if x.ndim == 4 else x.flatten(1)

    try:
        for name in layers:
            if name == CLASSIFIER_INPUT:
                handles.append(
                    _classifier(net).register_forward_pre_hook(
                        lambda m, args, n=name: feats.__setitem__(n, flat(args[0]))
                    )
                )
            elif name in modules:
                handles.append(
                    modules[name].register_forward_hook(lambda m, args, out, n=name: feats.__setitem__(n, flat(out)))
                )
            else:
                raise ArtifactError(
                    f"CORAL layer {name!r} is not a module of the network (it has e.g. {', '.join(list(modules)[1:6])})"
                )
        yield feats
    finally:
        for h in handles:
            h.remove()


def train_coral(
    model: nn.Module,
    source: Split,
    target: Split,
    recipe: TrainRecipe,
    *,
    weight: float,
    layers: Sequence[str] = (CLASSIFIER_INPUT,),
    batchnorm: str = "joint",
    device: torch.device,
    label: str = "model",
) -> dict[str, float]:
    """Fine-tune ``model`` (a Normalized wrapper: pixels in, logits out) in place with the Deep CORAL loss.

    One epoch is one pass over the source train split in ``recipe.batch_size`` batches; each source batch
    is paired with as many target images, drawn from a permutation of the target split that is renewed
    when used up. Every random draw (both permutations, augmentation) comes from one generator seeded by
    ``recipe.seed``. The optimizer and schedule are the recipe's (``make_optimizer``/``make_schedule``).
    ``batchnorm`` is one of :data:`BATCHNORM_MODES`.
    """
    import torch
    import torch.nn.functional as F

    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"batchnorm must be one of {BATCHNORM_MODES}, got {batchnorm!r}")
    g = torch.Generator().manual_seed(recipe.seed)
    net = getattr(model, "net", model)
    model.to(device).train()
    opt = make_optimizer(model, recipe)
    n, m, bs = len(source), len(target), recipe.batch_size
    steps_per_epoch = sum(1 for s in range(0, n, bs) if min(bs, n - s) >= 2)
    sched = make_schedule(opt, recipe, recipe.epochs * steps_per_epoch)
    a = recipe.augment
    tperm, tpos = torch.randperm(m, generator=g), 0
    weights = None  # the recipe's class weights (supervised.class_weights), once the logits give the classes
    timer = Timer()
    ce_sum = coral_sum = 0.0
    correct = seen = 0
    progress = Progress(recipe.epochs * steps_per_epoch, f"adapting {label} (CORAL)", unit="batches", final="never")

    def status() -> str:
        return f"epoch {epoch + 1}/{recipe.epochs}, ce {ce_sum / max(seen, 1):.3f}"

    epoch_started = 0.0
    with capture(net, layers) as feats:
        for epoch in range(recipe.epochs):
            perm = torch.randperm(n, generator=g)
            ce_sum = coral_sum = 0.0
            correct = seen = 0
            for start in range(0, n, bs):
                idx = perm[start : start + bs]
                if len(idx) < 2:  # a covariance (and BatchNorm) needs two images
                    continue
                if tpos + len(idx) > m:
                    tperm, tpos = torch.randperm(m, generator=g), 0
                tidx = tperm[tpos : tpos + len(idx)]
                tpos += len(idx)
                x = torch.cat([source.images[idx], target.images[tidx]]).float().div_(255.0)
                x = augment_batch(x, g, crop_pad=a.crop_pad, flip=a.flip, jitter=a.jitter).to(device)
                y = source.labels[idx].to(device)
                k = len(idx)
                if batchnorm == "joint":
                    logits = model(x)[:k]
                    pairs = [(f[:k], f[k:]) for f in feats.values()]
                else:
                    logits = model(x[:k])
                    source_feats = dict(feats)
                    with frozen_batchnorm(net):
                        model(x[k:])
                    pairs = [(source_feats[name], feats[name]) for name in source_feats]
                if weights is None and recipe.class_weights != "none":
                    weights = class_weights(source.labels, recipe, logits.shape[1]).to(device)
                ce = F.cross_entropy(logits, y, weight=weights, label_smoothing=recipe.label_smoothing)
                align = sum((coral_loss(fs, ft) for fs, ft in pairs), torch.zeros((), device=device))
                loss = ce + weight * align
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                ce_sum += float(ce.detach()) * k
                coral_sum += float(align.detach()) * k
                correct += int((logits.argmax(1) == y).sum())
                seen += k
                progress.update(1, status)
            elapsed = progress.elapsed
            left = elapsed / (epoch + 1) * (recipe.epochs - epoch - 1)
            progress.line(
                f"adapting {label} (CORAL): epoch {epoch + 1}/{recipe.epochs} ce {ce_sum / max(seen, 1):.3f} "
                f"coral {coral_sum / max(seen, 1):.4g} train-acc {correct / max(seen, 1):.3f} "
                f"({elapsed - epoch_started:.1f}s/epoch, {duration(elapsed)}"
                + (f", ETA {duration(left)})" if left else ")")
            )
            epoch_started = elapsed
    model.eval()
    return {
        "final_ce": ce_sum / max(seen, 1),
        "final_coral": coral_sum / max(seen, 1),
        "final_train_accuracy": correct / max(seen, 1),
        "seconds": timer.seconds,
    }
