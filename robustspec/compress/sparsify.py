"""Unstructured magnitude pruning (Han et al. 2015, "Learning both Weights and Connections for Efficient
Neural Networks"): the weights of smallest absolute value are set to zero.

Every ``nn.Conv2d`` and ``nn.Linear`` weight takes part, and the projection weights of attention modules
(``nn.MultiheadAttention``: a ViT's); biases, norms, embeddings and tokens do not. With
``scope: global`` one threshold is shared by all those weights (``torch.nn.utils.prune.global_unstructured``
with ``L1Unstructured``), so layers end with different sparsities; with ``scope: layer`` each weight tensor
loses the same fraction (``l1_unstructured`` per layer). Optional fine-tuning runs with the pruning
reparametrization still active (``weight = weight_orig * mask``), so pruned weights stay exactly zero;
``prune.remove`` then leaves a plain state_dict.

What this does *not* do, honestly: no parameter is removed (the tensors keep their shapes, and the
parameter count is unchanged), and dense kernels do exactly the same work, so there is no speed-up and no
smaller ``state_dict`` file. Only a sparse storage format (or sparse kernels) would gain from the zeros;
``info`` reports the zero fraction and the non-zero count for that reason.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..progress import report
from ..spec.schema import Int, Ratio, Strict
from ..train.supervised import train_supervised
from . import COMPRESSIONS
from .base import ChainPosition, StepContext, StepResult

if TYPE_CHECKING:
    from torch import nn

__all__ = ["SparsifyParams", "Sparsify"]


class SparsifyParams(Strict):
    """``sparsify: {sparsity: 0.9}`` (or ``90%``)."""

    method: Literal["magnitude"] = "magnitude"
    sparsity: Ratio = Field(description="fraction of the Conv2d/Linear weights set to zero")
    finetune: Int = Field(
        0, ge=0, le=1000, description="epochs of fine-tuning (masks kept) at a tenth of the recipe's learning rate"
    )
    scope: Literal["global", "layer"] = Field(
        "global", description="one threshold for all weights, or the same fraction per layer"
    )


def _targets(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Every Conv2d and Linear weight, and the projection weights of attention modules (a ViT's)."""
    from torch import nn

    targets: list[tuple[nn.Module, str]] = [
        (m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention):
            names = (
                ("in_proj_weight",)
                if m.in_proj_weight is not None
                else ("q_proj_weight", "k_proj_weight", "v_proj_weight")
            )
            targets += [(m, name) for name in names]
    return targets


def _attention_hooks(model: nn.Module) -> list[Any]:
    """Make each attention module re-apply its ``out_proj`` mask before it runs.

    ``nn.MultiheadAttention`` reads ``out_proj.weight`` itself and never calls ``out_proj``, so the
    pruning hook on ``out_proj`` would never run: its masked weight would be the one computed once when
    pruning started (fine-tuning would backpropagate through a freed graph). Returns the hook handles.
    """
    from torch import nn
    from torch.nn.utils import prune

    handles = []
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention):
            proj = m.out_proj
            masks = [h for h in proj._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]

            def reapply(module: nn.Module, args: Any, proj: nn.Module = proj, masks: list = masks) -> None:
                for mask in masks:
                    mask(proj, None)

            handles.append(m.register_forward_pre_hook(reapply))
    return handles


@COMPRESSIONS.register("sparsify")
class Sparsify:
    """``sparsify: {sparsity: 0.9, scope: global, finetune: 2}``."""

    Params = SparsifyParams

    def parse(self, value: Any) -> Any:
        return value

    def check(self, params: SparsifyParams, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        if "quantize" in position.previous:
            return ["a quantized model cannot be sparsified: put sparsify before quantize"]
        return []

    def apply(self, parent: nn.Module, params: SparsifyParams, ctx: StepContext) -> StepResult:
        import torch
        from torch.nn.utils import prune

        model = copy.deepcopy(parent)
        targets = _targets(model)
        if params.scope == "global":
            prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=params.sparsity)
        else:
            for module, name in targets:
                prune.l1_unstructured(module, name, amount=params.sparsity)
        hooks = _attention_hooks(model)
        if params.finetune:
            recipe = ctx.recipe
            recipe = recipe.model_copy(
                update={
                    "epochs": params.finetune,
                    "optimizer": recipe.optimizer.model_copy(update={"lr": recipe.optimizer.lr / 10}),
                }
            )
            # The masks stay applied by their forward pre-hooks: zeros stay zero while the rest trains.
            train_supervised(model, ctx.train, recipe, device=ctx.device, label=f"{ctx.label} (sparse fine-tuning)")
        for handle in hooks:
            handle.remove()
        for module, name in targets:
            prune.remove(module, name)
        model.eval()
        with torch.no_grad():
            zeros = sum(int((getattr(m, n) == 0).sum()) for m, n in targets)
            total = sum(getattr(m, n).numel() for m, n in targets)
            nonzero = sum(int((p != 0).sum()) for p in model.parameters())
        sparsity = zeros / max(total, 1)
        report(
            f"sparsify {ctx.label}: {sparsity:.1%} of {total:,} weights are zero ({params.scope}); parameters are not removed"
        )
        state = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
        return StepResult(model, state, info={"sparsity": sparsity, "nonzero_parameters": nonzero})

    def restore(self, parent: nn.Module, params: SparsifyParams, state: dict[str, Any], ctx: StepContext) -> nn.Module:
        model = copy.deepcopy(parent)
        model.load_state_dict(state["state_dict"])
        return model.eval()
