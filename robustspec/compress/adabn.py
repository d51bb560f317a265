"""AdaBN as a chain step (Li et al. 2016, "Revisiting Batch Normalization For Practical Domain Adaptation").

``adabn: {target: webcam}`` re-estimates every BatchNorm layer's running mean and variance on the
unlabeled train split of ``target`` and changes nothing else: no gradients, no labels, a few forward
passes. It is the cheapest adaptation there is, and a natural last step after compression: pruning's
fine-tuning re-estimates BatchNorm on the source, which undoes an earlier adaptation (see
``suites/adaptation.yaml``); ``[{coral: {target: webcam}}, {prune: ...}, {adabn: {target: webcam}}]``
puts the target statistics back.

The new statistics are BatchNorm's own with ``momentum=None``: the average over the batches of each
batch's mean and (unbiased) variance. With one batch (``batch-size`` at least the number of images) they
are exactly the target features' mean and variance; with several, the variance leaves out the small spread
between batch means. ``images`` caps how many target images are used (drawn with ``seed``); the default
uses them all. What is stored is the adapted copy's state_dict; ``restore`` loads it into a copy of
the restored parent.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from pydantic import Field

from ..errors import ArtifactError
from ..progress import Timer, report
from ..spec.schema import MAX_SEED, Int, Strict, TargetDomainRef
from . import COMPRESSIONS
from .base import AdaptationStep, ChainPosition, StepContext, StepResult

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["AdaBN", "AdaBNParams", "reestimate_batchnorm"]


class AdaBNParams(Strict):
    """``adabn: {target: webcam}`` or ``adabn: {target: dslr, images: 500, batch-size: 128}``."""

    target: TargetDomainRef = Field(
        description="target domain (or a derived one, amazon+fog@3); its train split is used without labels"
    )
    images: Int | None = Field(
        None, ge=2, le=10_000_000, description="target train images to use (default: all of them)"
    )
    batch_size: Int = Field(256, ge=2, le=100_000, description="images per forward pass")
    seed: Int = Field(0, ge=0, le=MAX_SEED, description="draws the images when `images` is set")


def _batchnorms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    from torch import nn

    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def reestimate_batchnorm(model: nn.Module, images: torch.Tensor, *, batch_size: int, device: torch.device) -> int:
    """Replace every BatchNorm layer's running statistics of ``model`` (in place) by those of ``images``
    (uint8 ``[N, 3, H, W]``); returns how many layers were re-estimated. Everything else stays in eval mode.
    """
    import torch

    with torch.no_grad():
        layers = _batchnorms(model)
        if not layers:
            return 0
        model.to(device).eval()
        saved = [(m, m.momentum) for m in layers]
        try:
            for m in layers:
                m.reset_running_stats()
                m.momentum = None  # cumulative average: the exact statistics of all the batches seen
                m.train()
            for start in range(0, len(images), batch_size):
                batch = images[start : start + batch_size]
                if len(batch) < 2 and start > 0:
                    break  # a single-image batch has no variance; the statistics already cover the rest
                model(batch.to(device).float().div_(255.0))
        finally:
            for m, momentum in saved:
                m.momentum = momentum
                m.eval()
        return len(layers)


@COMPRESSIONS.register("adabn")
class AdaBN(AdaptationStep):
    """``adabn: {target: webcam}`` (BatchNorm statistics re-estimated on an unlabeled target domain)."""

    Params = AdaBNParams

    def check(self, params: AdaBNParams, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        if "quantize" in position.previous:
            return [
                "adabn cannot follow quantize: int8 conversion folds BatchNorm into the convolutions; put adabn before quantize"
            ]
        return []

    def apply(self, parent: nn.Module, params: AdaBNParams, ctx: StepContext) -> StepResult:
        import torch

        target = ctx.domain_train(params.target)
        images = target.images
        if params.images is not None and params.images < len(images):
            pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(params.seed))[: params.images]
            images = images[pick]
        timer = Timer()
        model = copy.deepcopy(parent)  # the parent is a cached artifact: never change it in place
        layers = reestimate_batchnorm(model, images, batch_size=params.batch_size, device=ctx.device)
        if layers == 0:
            raise ArtifactError(f"{ctx.label}: adabn found no BatchNorm layer to re-estimate")
        report(
            f"{ctx.label}: BatchNorm statistics of {layers} layers re-estimated on {len(images)} unlabeled "
            f"{params.target!r} images ({timer.seconds:.1f}s)"
        )
        state = self.weights_state(model)
        return StepResult(model.eval(), state, info={"target": params.target, "images": len(images), "layers": layers})
