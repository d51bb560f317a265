"""Knowledge distillation (Hinton, Vinyals and Dean 2014, "Distilling the Knowledge in a Neural Network").

The teacher is the trained uncompressed model of the same suite model; the student is any zoo model
(any torchvision classification model, ``timm:<name>``) or ``package.module:function`` factory, its
``student-params`` checked against its builder at collection, trained from scratch on the source domain
only with

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, y).

Teacher and student see the same augmented batch. The loss is a few lines, so no framework is pulled in
(torchdistill's KDLoss agrees to 6 digits, per shared/design/FACTS.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..errors import ModelError, RegistryError
from ..metrics import parameter_count
from ..models.zoo import arch_params_problems, resolve_arch
from ..progress import report
from ..spec.schema import MAX_SEED, Int, Real, Strict
from ..train.supervised import class_weights, train_supervised
from . import COMPRESSIONS
from .base import ChainPosition, StepContext, StepResult

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["DistillParams", "Distill", "kd_loss"]


class DistillParams(Strict):
    student: str = Field(
        min_length=1,
        description="zoo name (resnet18, mobilenet_v2, any torchvision classification model), timm:<name>, "
        "or package.module:function",
    )
    student_params: dict[str, Any] = Field(default_factory=dict)
    temperature: Real = Field(4.0, gt=0.0, le=100.0)
    alpha: Real = Field(
        0.9, ge=0.0, le=1.0, description="weight of the distillation term; 1 - alpha goes to the labels"
    )
    epochs: Int | None = Field(None, ge=1, le=1000, description="default: the suite's training epochs")
    seed: Int = Field(0, ge=0, le=MAX_SEED)


def kd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hinton's loss: softened KL (scaled by T^2 so its gradients match CE's scale) plus hard-label CE;
    ``weight``: the CE's per-class weights (the recipe's ``class-weights``), None for none."""
    import torch.nn.functional as F

    t = temperature
    soft = F.kl_div(
        F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), reduction="batchmean", log_target=True
    )
    return alpha * t * t * soft + (1.0 - alpha) * F.cross_entropy(student, labels, weight=weight)


@COMPRESSIONS.register("distill")
class Distill:
    """``distill: {student: resnet18, temperature: 4, alpha: 0.9}``."""

    Params = DistillParams

    def parse(self, value: Any) -> Any:
        return {"student": value} if isinstance(value, str) else value

    def check(self, params: DistillParams, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        problems = []
        if position.index != 0:
            problems.append("distill must be the first step: its teacher is the uncompressed model")
        try:
            student = resolve_arch(params.student)
        except (ModelError, RegistryError) as exc:
            problems.append(f"unknown student: {exc}")
            return problems
        for p in arch_params_problems(student, dict(params.student_params)):
            problems.append(f"student-params{'.' + p.name if p.name else ''}: {p.message}")
        return problems

    def apply(self, parent: nn.Module, params: DistillParams, ctx: StepContext) -> StepResult:
        import torch

        teacher = parent.to(ctx.device).eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            student = ctx.new_network(params.student, dict(params.student_params))
        recipe = ctx.recipe.model_copy(update={"epochs": params.epochs or ctx.recipe.epochs, "seed": params.seed})
        report(
            f"distilling {ctx.label}: student {params.student} ({parameter_count(student) / 1e6:.2f}M), T={params.temperature}, alpha={params.alpha}"
        )

        weight = class_weights(ctx.train.labels, recipe, ctx.num_classes)
        weight = None if weight is None else weight.to(ctx.device)

        def loss(logits: torch.Tensor, labels: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                target = teacher(inputs)
            return kd_loss(logits, target, labels, params.temperature, params.alpha, weight)

        was_training = teacher.training
        try:
            stats = train_supervised(
                student, ctx.train, recipe, device=ctx.device, label=f"{ctx.label} (student)", loss_fn=loss
            )
        finally:
            teacher.train(was_training)
        student.eval()
        state = {"state_dict": {k: v.detach().cpu() for k, v in student.state_dict().items()}}
        return StepResult(
            student, state, info={"student": params.student, "final_train_accuracy": stats["final_train_accuracy"]}
        )

    def restore(self, parent: nn.Module, params: DistillParams, state: dict[str, Any], ctx: StepContext) -> nn.Module:
        student = ctx.new_network(params.student, dict(params.student_params))
        student.load_state_dict(state["state_dict"])
        return student.eval()
