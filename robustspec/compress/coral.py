"""Deep CORAL adaptation as a chain step (Sun and Saenko 2016, "Deep CORAL: Correlation Alignment for Deep
Domain Adaptation").

``coral: {target: webcam}`` fine-tunes a copy of its parent on the labeled source train split and the
unlabeled train split of ``target``, with cross-entropy on the source plus ``weight`` times the CORAL
distance between the source and target feature covariances (see :mod:`robustspec.train.coral`). It is a
step like pruning, so it sits anywhere in a variant's chain:

    adapt-then-prune: [{coral: {target: webcam}}, {prune: {params: 4.51M, finetune: 3}}]
    prune-then-adapt: [{prune: {params: 4.51M, finetune: 3}}, {coral: {target: webcam}}]

Before compression the compressed model inherits the adapted weights; after it, the compressed model is
adapted. The two orders are different artifacts because a step's key includes its parent's key. The
target's labels are never read. What is stored is a plain state_dict of the adapted copy; ``restore``
loads it into a copy of the restored parent (adaptation changes weights, not structure).
"""

from __future__ import annotations

import copy
import difflib
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from ..models.zoo import MODELS
from ..progress import report
from ..spec.schema import MAX_SEED, Int, Real, Strict, TargetDomainRef
from ..train.coral import CLASSIFIER_INPUT, train_coral
from . import COMPRESSIONS
from .base import AdaptationStep, ChainPosition, StepContext, StepResult

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Coral", "CoralParams"]


class CoralParams(Strict):
    """``coral: {target: webcam}`` or ``coral: {target: dslr, weight: 10, layers: [layer4], epochs: 5}``."""

    target: TargetDomainRef = Field(
        description="target domain (or a derived one, amazon+gaussian_noise@3); its train split is used without labels"
    )
    weight: Annotated[Real, Field(ge=0.0, le=1e6)] = Field(1.0, description="lambda: weight of the CORAL term")
    layers: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        min_length=1,
        description=f"modules of the network whose outputs are aligned (4-D outputs are average-pooled); "
        f"default: the classifier's input ({CLASSIFIER_INPUT})",
    )
    epochs: Int = Field(3, ge=1, le=1000, description="passes over the source train split")
    lr: Annotated[Real, Field(gt=0.0, le=10.0)] | None = Field(
        None, description="default: the suite recipe's learning rate / 10"
    )
    batch_size: Int | None = Field(
        None, ge=2, le=4096, description="source images per step (as many target images); default: the recipe's"
    )
    seed: Int = Field(0, ge=0, le=MAX_SEED)
    batchnorm: Literal["joint", "source"] = Field(
        "joint",
        description="joint: source and target pass BatchNorm as one batch (its statistics adapt to the target too); "
        "source: target features are normalised with the running source statistics, which the target never updates "
        "(isolates the CORAL term)",
    )


def _module_names(arch: str) -> list[str] | None:
    """Module names of a zoo architecture (built on the meta device: no memory, no time); None if unknown."""
    if ":" in arch or arch not in MODELS:
        return None
    import torch

    from ..models.zoo import build_network

    try:
        with torch.device("meta"):
            net = build_network(arch, 2, {})
    except Exception:  # noqa: BLE001 - a model that needs parameters: leave the check to the build
        return None
    return [name for name, _ in net.named_modules() if name]


@COMPRESSIONS.register("coral")
class Coral(AdaptationStep):
    """``coral: {target: webcam, weight: 1.0}`` (Deep CORAL fine-tuning towards an unlabeled target domain)."""

    Params = CoralParams

    def check(self, params: CoralParams, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        problems = []
        if "quantize" in position.previous:
            problems.append(
                "coral cannot follow quantize: an int8 model has no gradients to fine-tune; put coral before quantize"
            )
        names = _module_names(arch) if params.layers else None
        if names is not None:
            for layer in params.layers or []:
                if layer != CLASSIFIER_INPUT and layer not in names:
                    close = difflib.get_close_matches(layer, names, n=1, cutoff=0.6)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    problems.append(f"layer {layer!r} is not a module of {arch}{hint} (or use {CLASSIFIER_INPUT!r})")
        return problems

    def apply(self, parent: nn.Module, params: CoralParams, ctx: StepContext) -> StepResult:
        recipe = ctx.recipe
        o = recipe.optimizer
        recipe = recipe.model_copy(
            update={
                "epochs": params.epochs,
                "seed": params.seed,
                "batch_size": params.batch_size or recipe.batch_size,
                "optimizer": o.model_copy(update={"lr": params.lr if params.lr is not None else o.lr / 10}),
            }
        )
        layers = list(params.layers or [CLASSIFIER_INPUT])
        target = ctx.domain_train(params.target)
        report(
            f"adapting {ctx.label} to {params.target!r} (CORAL, weight {params.weight:g}, layers {', '.join(layers)}, "
            f"batchnorm {params.batchnorm}): "
            f"{len(ctx.train)} source + {len(target)} unlabeled target images, {params.epochs} epochs"
        )
        model = copy.deepcopy(parent)  # the parent is a cached artifact: never train it in place
        stats = train_coral(
            model,
            ctx.train,
            target,
            recipe,
            weight=float(params.weight),
            layers=layers,
            batchnorm=params.batchnorm,
            device=ctx.device,
            label=ctx.label,
        )
        state = self.weights_state(model)
        info = {"target": params.target, "final_coral": stats["final_coral"], "final_ce": stats["final_ce"]}
        return StepResult(model, state, info=info)
