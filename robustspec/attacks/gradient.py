"""Gradient attacks with a fixed budget: FGSM and PGD (L-inf, L2).

- FGSM: Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
- PGD: Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to Adversarial
  Attacks", ICLR 2018.

All are batched and take input gradients only (``torch.autograd.grad`` with respect to the images, so no
parameter gradient is ever computed or accumulated). Cost: FGSM one forward+backward pass, PGD-k exactly
k (the random start costs nothing).

PGD runs all k steps on every sample, with no early stop: the cost is the same for every model, so costs
compare, and in the transfer setting the images are full-strength iterates of the surrogate. The forward
pass each step needs anyway tells which iterates are already misclassified; a sample keeps the latest
such iterate, so a later step cannot undo a success (as AutoAttack keeps its best point). The last
iterate is not evaluated (that would cost one more forward pass); a sample never seen misclassified
returns it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar

from pydantic import AfterValidator, Field

from ..spec.schema import Flag, Fraction, Int
from . import ATTACKS
from .base import AttackParams

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["FGSM", "PGDL2", "FGSMParams", "PGDLinf", "PGDParams", "UnitEps", "eps_problems", "input_gradient"]


def _unit(value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError("eps must be in [0, 1]")
    return value


#: A budget on the [0, 1] pixel scale (``4/255``, ``0.0157``), between 0 and 1.
UnitEps = Annotated[Fraction, AfterValidator(_unit)]


def eps_problems(params: AttackParams, num_classes: int) -> list[str]:
    """Checks shared by every attack (repeated here for parameters built without validation)."""
    problems = []
    eps = getattr(params, "eps", None)
    if eps is not None and not 0.0 <= eps <= 1.0:
        problems.append("eps must be in [0, 1]")
    if num_classes < 2:
        problems.append(f"an attack needs at least 2 classes, the data has {num_classes}")
    return problems


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the summed cross-entropy with respect to ``x``, and the logits: one forward+backward."""
    import torch
    import torch.nn.functional as F

    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        loss = F.cross_entropy(logits, y, reduction="sum")  # summed: a sample's gradient ignores the batch size
        (grad,) = torch.autograd.grad(loss, x)
    return grad, logits.detach()


def _l2(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


# --- FGSM ----------------------------------------------------------------------------------------------


class FGSMParams(AttackParams):
    """``{name: fgsm, eps: 4/255}``."""

    eps: UnitEps = Field(description="L-inf budget on the [0,1] pixel scale: 4/255, 0.0157, ...")


@ATTACKS.register("fgsm")
class FGSM:
    """Fast Gradient Sign Method (Goodfellow et al. 2015), L-inf: one step of size eps along the gradient sign.

    Arguments: ``eps``. Shapes: ``x`` ``[N, 3, H, W]`` in [0, 1], ``y`` ``[N]``; returns ``[N, 3, H, W]``.
    Cost: one forward+backward pass.
    """

    Params: ClassVar[type[AttackParams]] = FGSMParams
    norm: ClassVar[str] = "linf"
    bounded: ClassVar[bool] = True
    gradient_free: ClassVar[bool] = False
    order: ClassVar[int] = 40
    loss: ClassVar[str] = "ce"

    def check(self, params: FGSMParams, num_classes: int) -> list[str]:
        return eps_problems(params, num_classes)

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: FGSMParams, generator: torch.Generator
    ) -> torch.Tensor:
        grad, _ = input_gradient(model, x, y)
        return (x + params.eps * grad.sign()).clamp_(0.0, 1.0).detach()


# --- PGD -----------------------------------------------------------------------------------------------


class PGDParams(AttackParams):
    """``{name: pgd-linf, eps: 4/255, steps: 10, alpha: 1/255, random-start: true}``."""

    eps: UnitEps = Field(description="budget on the [0,1] pixel scale: 4/255 (L-inf), 0.5 (L2), ...")
    steps: Int = Field(10, ge=1, le=100_000)
    alpha: Fraction | None = Field(None, ge=0.0, description="step size; default 2.5 * eps / steps")
    random_start: Flag = Field(True, description="start from a uniform random point of the eps-ball")

    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps


class _PGD:
    """Shared loop; subclasses define the random start, the step direction and the projection."""

    Params: ClassVar[type[AttackParams]] = PGDParams
    norm: ClassVar[str]
    bounded: ClassVar[bool] = True
    gradient_free: ClassVar[bool] = False
    loss: ClassVar[str] = "ce"

    def check(self, params: PGDParams, num_classes: int) -> list[str]:
        return eps_problems(params, num_classes)

    def _start(self, x: torch.Tensor, eps: float, g: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _step(self, grad: torch.Tensor, alpha: float) -> torch.Tensor:
        raise NotImplementedError

    def _project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        raise NotImplementedError

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: PGDParams, generator: torch.Generator
    ) -> torch.Tensor:
        import torch

        x = x.detach()
        eps, alpha = params.eps, params.step_size()
        adv = (x + self._start(x, eps, generator)).clamp_(0.0, 1.0) if params.random_start else x.clone()
        best = adv.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(params.steps):
            grad, logits = input_gradient(model, adv, y)
            now = logits.argmax(1) != y  # the iterate this gradient was taken at
            best[now] = adv[now]
            fooled |= now
            adv = x + self._project(adv + self._step(grad, alpha) - x, eps)
            adv = adv.clamp_(0.0, 1.0)  # clamping moves each coordinate towards x: the norm only shrinks
        return torch.where(fooled.view(-1, 1, 1, 1), best, adv).detach()


@ATTACKS.register("pgd-linf")
class PGDLinf(_PGD):
    """Projected Gradient Descent (Madry et al. 2018), L-inf: sign steps, projection by clipping.

    Arguments: ``eps``, ``steps`` (10), ``alpha`` (2.5 * eps / steps), ``random-start`` (true).
    Shapes: ``x`` ``[N, 3, H, W]`` in [0, 1], ``y`` ``[N]``; returns ``[N, 3, H, W]``.
    Cost: ``steps`` forward+backward passes.
    """

    norm: ClassVar[str] = "linf"
    order: ClassVar[int] = 20

    def _start(self, x: torch.Tensor, eps: float, g: torch.Generator) -> torch.Tensor:
        import torch

        u = torch.rand(x.shape, generator=g, dtype=x.dtype).to(x.device)
        return (2.0 * u - 1.0) * eps

    def _step(self, grad: torch.Tensor, alpha: float) -> torch.Tensor:
        return alpha * grad.sign()

    def _project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        return delta.clamp(-eps, eps)


@ATTACKS.register("pgd-l2")
class PGDL2(_PGD):
    """Projected Gradient Descent (Madry et al. 2018), L2: normalised gradient steps, projection onto the ball.

    Arguments: ``eps``, ``steps`` (10), ``alpha`` (2.5 * eps / steps), ``random-start`` (true).
    Shapes: ``x`` ``[N, 3, H, W]`` in [0, 1], ``y`` ``[N]``; returns ``[N, 3, H, W]``.
    Cost: ``steps`` forward+backward passes.
    """

    norm: ClassVar[str] = "l2"
    order: ClassVar[int] = 30

    def _start(self, x: torch.Tensor, eps: float, g: torch.Generator) -> torch.Tensor:
        import torch

        # Uniform in the L2 ball: a Gaussian direction, a radius eps * u^(1/d).
        d = x[0].numel()
        direction = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
        radius = torch.rand(len(x), generator=g, dtype=x.dtype).to(x.device).pow(1.0 / d).view(-1, 1, 1, 1)
        return direction / _l2(direction).clamp_min(1e-12) * radius * eps

    def _step(self, grad: torch.Tensor, alpha: float) -> torch.Tensor:
        return alpha * grad / _l2(grad).clamp_min(1e-12)  # a zero gradient stays a zero step

    def _project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        return delta * (eps / _l2(delta).clamp_min(1e-12)).clamp(max=1.0)
