"""Minimum-norm attacks: Carlini & Wagner L2 and DeepFool, batched.

- C&W: Carlini, Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017.
- DeepFool: Moosavi-Dezfooli, Fawzi, Frossard, "DeepFool: a simple and accurate method to fool deep
  neural networks", CVPR 2016.

They look for the smallest perturbation that changes the prediction, so they have no budget
(``bounded = False``); an ``eps``, if given, only scores the result (the driver counts a success only
when the perturbation's norm is at most eps). A sample the attack fails on is returned unchanged.

Written here rather than taken from torchattacks, whose DeepFool loops over images one by one and
returns NaN images when a gradient is zero, and whose C&W loss is wrong when every logit is negative and
stops early on a coarse check. Here the margin is taken against the largest *other* logit (masked, not
multiplied by a one-hot), every step runs, and zero gradients give zero steps, never NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from ..spec.schema import Int, Real
from . import ATTACKS
from .base import AttackParams
from .gradient import UnitEps, eps_problems

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["CWParams", "CarliniWagnerL2", "DeepFool", "DeepFoolParams"]


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """True-class logit minus the largest other logit: negative once the sample is misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return true - other


# --- Carlini & Wagner L2 -------------------------------------------------------------------------------


class CWParams(AttackParams):
    """``{name: cw-l2, steps: 50, c: 1.0, kappa: 0, lr: 0.01, binary-search-steps: 1, eps: 0.4}``."""

    eps: UnitEps | None = Field(None, description="if set, a success counts only with an L2 norm <= eps")
    steps: Int = Field(50, ge=1, le=100_000, description="Adam steps per binary-search step")
    c: Real = Field(
        1.0, gt=0.0, description="weight of the misclassification term (the starting value with binary search)"
    )
    kappa: Real = Field(0.0, ge=0.0, description="required margin of the wrong class over the true one")
    lr: Real = Field(0.01, gt=0.0, le=10.0, description="Adam learning rate in tanh space")
    binary_search_steps: Int = Field(1, ge=1, le=100, description="1: a fixed c; more: search c per sample")


@ATTACKS.register("cw-l2")
class CarliniWagnerL2:
    """Carlini & Wagner (2017), L2: Adam on tanh-space images minimising ||delta||^2 + c * max(margin, -kappa).

    The tanh change of variables keeps images in [0, 1]. Each sample keeps its smallest successful
    perturbation over all steps; a sample never misclassified is returned unchanged. With
    ``binary-search-steps`` > 1, c is searched per sample (halved towards success, times 10 on failure).

    Arguments: ``steps`` (50), ``c`` (1.0), ``kappa`` (0), ``lr`` (0.01), ``binary-search-steps`` (1),
    ``eps`` (scoring only). Shapes: ``x`` ``[N, 3, H, W]`` in [0, 1], ``y`` ``[N]``; returns the same shape.
    Cost: ``steps * binary-search-steps`` forward+backward passes (no early stop).
    """

    Params: ClassVar[type[AttackParams]] = CWParams
    norm: ClassVar[str] = "l2"
    bounded: ClassVar[bool] = False
    gradient_free: ClassVar[bool] = False
    order: ClassVar[int] = 50
    loss: ClassVar[str] = "margin"

    def check(self, params: CWParams, num_classes: int) -> list[str]:
        return eps_problems(params, num_classes)

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: CWParams, generator: torch.Generator
    ) -> torch.Tensor:
        import torch

        x = x.detach()
        n = len(x)
        shape = (-1,) + (1,) * (x.dim() - 1)
        kappa = float(params.kappa)
        w0 = torch.atanh((2.0 * x - 1.0).clamp(-1.0 + 1e-6, 1.0 - 1e-6))
        c = torch.full((n,), float(params.c), device=x.device)
        lower = torch.zeros(n, device=x.device)
        upper = torch.full((n,), float("inf"), device=x.device)
        best_l2sq = torch.full((n,), float("inf"), device=x.device)
        best = x.clone()
        for _ in range(params.binary_search_steps):
            w = w0.clone()
            adam_m, adam_v = torch.zeros_like(w), torch.zeros_like(w)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            for t in range(1, params.steps + 1):
                # Only the model's part of the gradient goes through autograd; the distance term and the
                # tanh change of variables have closed-form gradients, applied in place below.
                tw = torch.tanh(w)
                adv = tw.add(1.0).mul_(0.5).requires_grad_(True)
                with torch.enable_grad():
                    logits = model(adv)
                    margin = _margin(logits, y)
                    (grad,) = torch.autograd.grad((c * margin.clamp(min=-kappa)).sum(), adv)
                with torch.no_grad():
                    adv = adv.detach()
                    diff = adv - x
                    l2sq = diff.flatten(1).pow(2).sum(1)
                    # The iterate just evaluated, before this step moves it; margin < 0 means misclassified.
                    ok = (margin < 0) if kappa == 0 else (margin <= -kappa)
                    better = ok & (l2sq < best_l2sq)
                    best_l2sq = torch.where(better, l2sq, best_l2sq)
                    best = torch.where(better.view(shape), adv, best)
                    succeeded |= ok
                    # d/dw of ||adv - x||^2 + c * f(adv), with adv = (tanh(w) + 1) / 2.
                    grad.add_(diff, alpha=2.0).mul_(tw.mul_(tw).mul_(-0.5).add_(0.5))
                    _adam_step(w, grad, adam_m, adam_v, t, params.lr)
            # Per-sample search of c, as in the paper: smaller after a success, larger after a failure.
            upper = torch.where(succeeded, torch.minimum(upper, c), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, c))
            c = torch.where(torch.isinf(upper), c * 10.0, (lower + upper) / 2.0)
        return best.clamp_(0.0, 1.0)


def _adam_step(
    w: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    t: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> None:
    """One Adam step in place, the arithmetic of ``torch.optim.Adam`` (single-tensor) without its per-step overhead."""
    m.lerp_(grad, 1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(eps)
    w.addcdiv_(m, denom, value=-lr / (1 - beta1**t))


# --- DeepFool ------------------------------------------------------------------------------------------


class DeepFoolParams(AttackParams):
    """``{name: deepfool, steps: 50, candidates: 10, overshoot: 0.02, norm: l2, eps: 0.004}``."""

    eps: UnitEps | None = Field(None, description="if set, a success counts only with a norm <= eps")
    steps: Int = Field(50, ge=1, le=10_000)
    candidates: Int = Field(
        10, ge=2, le=10_000, description="classes tried per step (the top ones), capped at the class count"
    )
    overshoot: Real = Field(0.02, ge=0.0, le=10.0)
    norm: Literal["l2", "linf"] = "l2"


def _cheaper_to_forward_again(remaining: int, flipped: int, rivals: int) -> bool:
    """Whether one forward pass over the ``remaining`` samples costs less than ``rivals`` backward passes
    over the ``flipped`` ones (a backward pass costs about twice a forward pass)."""
    return 2 * rivals * flipped > remaining


@ATTACKS.register("deepfool")
class DeepFool:
    """DeepFool (Moosavi-Dezfooli et al. 2016), L2 or L-inf: step to the nearest linearised class boundary.

    Candidates are the true class's ``candidates - 1`` strongest rivals on the clean image. Each step
    takes one forward pass over the samples still classified correctly and, per rival, one backward pass
    of the logit difference over that batch (``candidates - 1`` backward passes). When that forward pass
    finds samples that have just flipped, and one more forward pass over the others costs less than the
    backward passes through the flipped ones, it is taken and the flipped ones are left out (in DeepFool
    most samples flip within two or three steps, so this saves about a fifth of the backward passes). Then
    it moves every sample to its nearest linearised boundary plus 1e-4 (in the attack's norm, as in the
    authors' code); the total is scaled by ``1 + overshoot`` and clipped to [0, 1]. A sample still correct
    after ``steps`` is returned unchanged.

    Arguments: ``steps`` (50), ``candidates`` (10), ``overshoot`` (0.02), ``norm`` (l2 | linf), ``eps``
    (scoring only). Shapes: ``x`` ``[N, 3, H, W]`` in [0, 1], ``y`` ``[N]``; returns the same shape.
    """

    Params: ClassVar[type[AttackParams]] = DeepFoolParams
    #: 2: the 1e-4 margin is added to the distance, as in the authors' code (1: to the logit difference,
    #: which under-stepped whenever the gradient norm exceeded 1 and cost an extra step on some images).
    version: ClassVar[int] = 2
    norm: ClassVar[str] = "l2"  # the default; ``params.norm`` says which one a run uses
    bounded: ClassVar[bool] = False
    gradient_free: ClassVar[bool] = False
    order: ClassVar[int] = 10
    loss: ClassVar[str] = "margin"

    def check(self, params: DeepFoolParams, num_classes: int) -> list[str]:
        return eps_problems(params, num_classes)

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: DeepFoolParams, generator: torch.Generator
    ) -> torch.Tensor:
        import torch

        x = x.detach()
        n = len(x)
        adv = x.clone()
        r_tot = torch.zeros_like(x)
        done = torch.zeros(n, dtype=torch.bool, device=x.device)
        active = torch.arange(n, device=x.device)
        rivals: torch.Tensor | None = None
        for step in range(params.steps + 1):
            xa = adv[active].detach().requires_grad_(True)
            with torch.enable_grad():
                logits = model(xa)
            ya = y[active]
            if rivals is None:  # first pass: every sample, the clean images
                k = min(params.candidates, logits.shape[1])
                rivals = logits.detach().scatter(1, y[:, None], float("-inf")).topk(k - 1, dim=1).indices
            still = logits.argmax(1) == ya
            done[active[~still]] = True
            if step == params.steps or not bool(still.any()):
                break
            idx = active[still]
            flipped = len(active) - len(idx)
            rows_of = still
            if flipped and _cheaper_to_forward_again(len(idx), flipped, rivals.shape[1]):
                # Backpropagating through the samples that just flipped would cost k-1 passes over them;
                # one more forward of the remaining ones costs less.
                xa = adv[idx].detach().requires_grad_(True)
                with torch.enable_grad():
                    logits = model(xa)
                rows_of = slice(None)
            with torch.enable_grad():
                zy = logits[rows_of].gather(1, y[idx][:, None])
                zk = logits[rows_of].gather(1, rivals[idx])
                diff = zk - zy  # [m, k-1], negative while the sample is correct
                grads = [
                    torch.autograd.grad(diff[:, j].sum(), xa, retain_graph=j < diff.shape[1] - 1)[0][rows_of]
                    for j in range(diff.shape[1])
                ]
            w = torch.stack(grads, 1)  # [m, k-1, C, H, W]
            f = diff.detach().abs()
            flat = w.flatten(2)
            dual = flat.norm(dim=2) if params.norm == "l2" else flat.abs().sum(2)  # L2 is self-dual, L-inf's dual is L1
            nearest = (f / dual.clamp_min(1e-12)).argmin(1)
            rows = torch.arange(len(idx), device=x.device)
            w_best, f_best, d_best = w[rows, nearest], f[rows, nearest], dual[rows, nearest]
            shape = (-1, 1, 1, 1)
            # The distance to the nearest linearised boundary plus 1e-4, as in the authors' code
            # (r = (|f|/||w|| + 1e-4) w/||w||). A zero (or vanishing) gradient gives a finite step, never NaN.
            distance = (f_best / d_best.clamp_min(1e-12) + 1e-4).view(shape)
            if params.norm == "l2":
                r = distance * w_best / d_best.clamp_min(1e-12).view(shape)
            else:
                r = distance * w_best.sign()
            r_tot[idx] += r
            adv[idx] = (x[idx] + (1.0 + params.overshoot) * r_tot[idx]).clamp(0.0, 1.0)
            active = idx
        return torch.where(done.view(-1, 1, 1, 1), adv, x).detach()
