"""Which model an attack computes its gradients on, and what that mode is called.

A variant is a chain of modules (the trained model, then each step's output). The attack always scores
its adversarial images on the last one, the variant; it computes them on:

- the variant itself, when gradients reach its input (``white-box``) or the attack needs none
  (``black-box``: square runs on an int8 model or a runtime's file directly);
- another variant's model (``transfer from <variant>``), when the check asks for it;
- for a variant without input gradients (int8 kernels, a pt2e graph, a runtime's file):
  ``mode: white-box``: the white-box copy of the step that took the gradients away (``quantize``'s
  fake-quant copy; an ``export`` passes the question to its parent); any other mode: the float parent,
  the last module of the chain that has input gradients (``transfer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from ..compress.base import StepContext

__all__ = ["AttackPlan", "plan_attack", "float_parent"]


@dataclass(frozen=True)
class AttackPlan:
    """The model to compute adversarials on (None: the variant itself) and the recorded ``mode``."""

    surrogate: nn.Module | None
    mode: str


def float_parent(modules: Sequence[nn.Module]) -> nn.Module:
    """The last module of a chain that has input gradients (the trained model has)."""
    from ..models.programs import input_gradients

    for module in reversed(modules):
        if input_gradients(module):
            return module
    return modules[0]


def _white_box_copy(modules: Sequence[nn.Module], steps: Sequence[Any], ctx: StepContext) -> AttackPlan:
    from ..compress import COMPRESSIONS
    from ..models.programs import input_gradients

    i = len(modules) - 1
    while i > 0 and not input_gradients(modules[i]):
        step = steps[i - 1]
        make = getattr(COMPRESSIONS.get(step.kind)(), "white_box_surrogate", None)
        if make is not None:
            return AttackPlan(make(modules[i - 1], step.params, ctx), "white-box (fake-quant surrogate)")
        i -= 1
    return AttackPlan(modules[i], "white-box (the float graph the runtime's file was exported from)")


def plan_attack(
    modules: Sequence[nn.Module],
    steps: Sequence[Any],
    ctx: StepContext,
    *,
    mode: str,
    gradient_free: bool,
    transfer: tuple[str, nn.Module] | None = None,
) -> AttackPlan:
    """How to attack ``modules[-1]`` (``steps[i]`` made ``modules[i + 1]``) in the requested ``mode``."""
    from ..models.programs import input_gradients

    if transfer is not None:
        return AttackPlan(transfer[1], f"transfer from {transfer[0]}")
    target = modules[-1]
    if gradient_free:
        return AttackPlan(None, "black-box")
    if input_gradients(target):
        return AttackPlan(None, "white-box")
    if mode == "white-box":
        return _white_box_copy(modules, steps, ctx)
    return AttackPlan(float_parent(modules), "transfer")
