"""Square (gradient-free, ours) and AutoAttack (an ensemble assembled from torchattacks' components).

- Square: Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box
  adversarial attack via random search", ECCV 2020.
- AutoAttack: Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
  parameter-free attacks", ICML 2020.

Square is written here, batched, drawing only from the run's generator: torchattacks' Square seeds and
draws from the global RNG, loops over images one by one, and its base class prints when a model has no
parameters. Square needs no gradients, so it runs on int8 models directly.

AutoAttack uses torchattacks' APGD, APGD-T, FAB and Square, assembled here with the reference's settings,
because ``torchattacks.AutoAttack`` leaves APGD and FAB at 10 steps (the reference uses 100), assumes 10
classes unless told, and attacks every one of the ``n_classes - 1`` target classes (the reference: 9).
Versions: ``standard`` = APGD-CE, APGD-T, FAB-T, Square-5000 (the reference's); ``rand`` = APGD-CE and
APGD-DLR with 20 EOT samples (for randomised defences); ``fast`` = APGD-CE and APGD-T only (cheaper, about
(1 + 9) * steps passes per sample still correct). The class count comes from the model's output, and
the seed from the run's generator; torchattacks seeds the global RNG, so the run forks it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from ..spec.schema import Int, Real
from . import ATTACKS
from .base import AttackParams
from .gradient import UnitEps, eps_problems
from .minimum_norm import _margin

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["AutoAttack", "AutoAttackParams", "Square", "SquareParams"]


# --- Square --------------------------------------------------------------------------------------------


class SquareParams(AttackParams):
    """``{name: square, eps: 4/255, norm: linf, queries: 1000, p-init: 0.8}``."""

    eps: UnitEps = Field(description="budget on the [0,1] pixel scale: L-inf (4/255) or L2 (0.5)")
    norm: Literal["linf", "l2"] = Field("linf", description="threat model: L-inf or L2 (the paper's two versions)")
    queries: Int = Field(
        1000, ge=1, le=1_000_000, description="forward passes per sample (the initialisation included)"
    )
    p_init: Real | None = Field(
        None, gt=0.0, le=1.0, description="initial fraction of pixels changed per query; default 0.8 (L-inf), 0.1 (L2)"
    )

    def initial_fraction(self) -> float:
        if self.p_init is not None:
            return self.p_init
        return 0.8 if self.norm == "linf" else 0.1  # L2: the reference implementation's default


def _fraction(p_init: float, query: int, queries: int) -> float:
    """The paper's schedule: halve p at these query counts, rescaled from a 10000-query budget."""
    at = int(query / queries * 10_000)
    halvings = sum(at > t for t in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    return p_init / 2**halvings


def _signs(shape: tuple[int, ...], g: torch.Generator, device: torch.device) -> torch.Tensor:
    import torch

    return (torch.randint(0, 2, shape, generator=g) * 2 - 1).float().to(device)


@ATTACKS.register("square")
class Square:
    """Square Attack (Andriushchenko et al. 2020), L-inf or L2, gradient-free random search on the margin loss.

    L-inf: starts from vertical stripes of +-eps; each query changes one random square window per sample
    to a new +-eps per channel and keeps it if the margin (true logit minus the best other) decreases.
    L2 (the paper's Algorithm 3, as in the reference code): starts from a grid of +-"pseudo-Gaussian"
    bumps scaled to norm eps; each query moves the perturbation's mass from a second random window into
    a new bump on the first (so the norm stays eps) and keeps it if the margin decreases. The window's side
    shrinks on the paper's schedule from ``p-init`` of the image. Samples already misclassified stop querying.

    Arguments: ``eps``, ``norm`` (linf), ``queries`` (1000), ``p-init`` (0.8 L-inf, 0.1 L2). Shapes: ``x``
    ``[N, 3, H, W]`` in [0, 1], ``y`` ``[N]``; returns the same shape. Cost: at most ``queries`` forward
    passes, no backward.
    """

    Params: ClassVar[type[AttackParams]] = SquareParams
    norm: ClassVar[str] = "linf"
    bounded: ClassVar[bool] = True
    gradient_free: ClassVar[bool] = True
    order: ClassVar[int] = 100
    #: The black-box attack of these threat models for every other attack's masking check.
    masking_reference: ClassVar[tuple[str, ...]] = ("linf", "l2")
    loss: ClassVar[str] = "margin"

    def check(self, params: SquareParams, num_classes: int) -> list[str]:
        return eps_problems(params, num_classes)

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: SquareParams, generator: torch.Generator
    ) -> torch.Tensor:
        import torch

        with torch.no_grad():
            x = x.detach()
            if params.eps == 0.0:
                return x.clone()
            if params.norm == "l2":
                return _square_l2(model, x, y, params, generator)
            n, c, h, w = x.shape
            eps, dev = params.eps, x.device
            p_init = params.initial_fraction()
            best = (x + eps * _signs((n, c, 1, w), generator, dev)).clamp(0.0, 1.0)
            margin = _margin(model(best), y)
            rows = torch.arange(h, device=dev).view(1, 1, h, 1)
            cols = torch.arange(w, device=dev).view(1, 1, 1, w)
            for query in range(1, params.queries):
                active = (margin >= 0).nonzero().squeeze(1)
                if len(active) == 0:
                    break
                m = len(active)
                side = min(max(round(math.sqrt(_fraction(p_init, query, params.queries) * h * w)), 1), h - 1, w - 1)
                side = max(side, 1)
                top = torch.randint(0, h - side + 1, (m,), generator=generator).to(dev).view(-1, 1, 1, 1)
                left = torch.randint(0, w - side + 1, (m,), generator=generator).to(dev).view(-1, 1, 1, 1)
                window = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
                xa, ba = x[active], best[active]
                sign = _signs((m, c, 1, 1), generator, dev)
                for _ in range(10):  # redraw signs that would leave the window as it is (a wasted query)
                    cand = torch.where(window, (xa + eps * sign).clamp(0.0, 1.0), ba)
                    same = ((cand - ba).abs() < 1e-7).flatten(1).all(1)
                    if not bool(same.any()):
                        break
                    sign = torch.where(same.view(-1, 1, 1, 1), _signs((m, c, 1, 1), generator, dev), sign)
                cand = torch.where(window, (xa + eps * sign).clamp(0.0, 1.0), ba)
                new = _margin(model(cand), y[active])
                better = new < margin[active]
                best[active[better]] = cand[better]
                margin[active[better]] = new[better]
            return best


def _pseudo_gaussian(rows: int, cols: int) -> torch.Tensor:
    """The reference's bump: nested rectangles around the centre, weight 1/(k+1)^2 each, unit L2 norm."""
    import torch

    delta = torch.zeros(rows, cols)
    top, left = rows // 2, cols // 2
    for k in range(max(rows // 2 + 1, cols // 2 + 1)):
        delta[max(top, 0) : min(top + 2 * k + 1, rows), max(left, 0) : min(left + 2 * k + 1, cols)] += (
            1.0 / (k + 1) ** 2
        )
        top, left = top - 1, left - 1
    return delta / delta.norm().clamp_min(1e-12)


def _bump(side: int, generator: torch.Generator) -> torch.Tensor:
    """A ``side`` x ``side`` window: a positive bump over a negative one, unit norm, transposed at random."""
    import torch

    delta = torch.zeros(side, side)
    delta[: side // 2] = _pseudo_gaussian(side // 2, side)
    delta[side // 2 :] = -_pseudo_gaussian(side - side // 2, side)
    delta /= delta.norm().clamp_min(1e-12)
    return delta.T.contiguous() if bool(torch.rand(1, generator=generator) > 0.5) else delta


def _per_image(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def _square_l2(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: SquareParams, generator: torch.Generator
) -> torch.Tensor:
    """Square-L2: Algorithm 3 of the paper, following the reference code (``square_attack_l2``).

    One window position per query for the whole batch, as in the reference; every candidate has norm eps
    before clipping to [0, 1] (clipping moves each value towards ``x``, so the norm only shrinks).
    """
    import torch

    n, c, h, w = x.shape
    eps, dev = params.eps, x.device
    p_init = params.initial_fraction()
    side = max(min(h, w) // 5, 2)
    tiles_h, tiles_w = h // side, w // side
    top0, left0 = (h - side * tiles_h) // 2, (w - side * tiles_w) // 2
    delta = torch.zeros_like(x)
    for i in range(tiles_h):
        for j in range(tiles_w):
            bump = _bump(side, generator).to(dev)
            t, le = top0 + i * side, left0 + j * side
            delta[:, :, t : t + side, le : le + side] += bump * _signs((n, c, 1, 1), generator, dev)
    best = (x + delta / _per_image(delta).clamp_min(1e-12) * eps).clamp(0.0, 1.0)
    margin = _margin(model(best), y)
    for query in range(1, params.queries):
        active = (margin >= 0).nonzero().squeeze(1)
        if len(active) == 0:
            break
        m = len(active)
        xa, ba = x[active], best[active]
        cur = ba - xa
        s = max(round(math.sqrt(_fraction(p_init, query, params.queries) * h * w)), 3)
        s = min(s + 1 if s % 2 == 0 else s, h, w)
        t1, t2 = (int(v) for v in torch.randint(0, h - s + 1, (2,), generator=generator))
        l1, l2 = (int(v) for v in torch.randint(0, w - s + 1, (2,), generator=generator))
        window = cur[:, :, t1 : t1 + s, l1 : l1 + s]
        window_norm = window.pow(2).sum((2, 3), keepdim=True).sqrt()
        image_norm = _per_image(cur)
        both = torch.zeros(1, 1, h, w, dtype=torch.bool, device=dev)
        both[..., t1 : t1 + s, l1 : l1 + s] = True
        both[..., t2 : t2 + s, l2 : l2 + s] = True
        windows_norm = (cur * both).pow(2).sum((2, 3), keepdim=True).sqrt()
        new = _bump(s, generator).to(dev) * _signs((m, c, 1, 1), generator, dev)
        new = new + window / (1e-10 + window_norm)
        budget = ((eps**2 - image_norm.pow(2)).clamp_min(0.0) / c + windows_norm.pow(2)).sqrt()
        new = new / new.pow(2).sum((2, 3), keepdim=True).sqrt().clamp_min(1e-12) * budget
        cand = cur.clone()
        cand[:, :, t2 : t2 + s, l2 : l2 + s] = 0.0
        cand[:, :, t1 : t1 + s, l1 : l1 + s] = new
        cand = (xa + cand / _per_image(cand).clamp_min(1e-12) * eps).clamp(0.0, 1.0)
        new_margin = _margin(model(cand), y[active])
        better = new_margin < margin[active]
        best[active[better]] = cand[better]
        margin[active[better]] = new_margin[better]
    return best


# --- AutoAttack ----------------------------------------------------------------------------------------


class AutoAttackParams(AttackParams):
    """``{name: autoattack, eps: 4/255, version: standard, norm: linf, steps: 100}``."""

    eps: UnitEps = Field(description="budget on the [0,1] pixel scale")
    version: Literal["standard", "rand", "fast"] = "standard"
    norm: Literal["linf", "l2"] = "linf"
    steps: Int = Field(100, ge=1, le=100_000, description="APGD and FAB iterations (the reference's 100)")


#: Target classes of APGD-T and FAB-T in the reference implementation.
TARGET_CLASSES = 9


@ATTACKS.register("autoattack")
class AutoAttack:
    """AutoAttack (Croce & Hein 2020), L-inf or L2, from torchattacks' components with the reference settings.

    Arguments: ``eps``, ``version`` (standard | rand | fast), ``norm`` (linf | l2), ``steps`` (100).
    Shapes: ``x`` ``[N, 3, H, W]`` in [0, 1], ``y`` ``[N]``; returns the same shape.
    """

    Params: ClassVar[type[AttackParams]] = AutoAttackParams
    norm: ClassVar[str] = "linf"  # the default; ``params.norm`` says which one a run uses
    bounded: ClassVar[bool] = True
    gradient_free: ClassVar[bool] = False
    order: ClassVar[int] = 100
    loss: ClassVar[str] = "ce"
    #: Distributions besides torch whose version decides the result (enters the evaluation's key).
    libraries: ClassVar[tuple[str, ...]] = ("torchattacks",)

    def check(self, params: AutoAttackParams, num_classes: int) -> list[str]:
        problems = eps_problems(params, num_classes)
        # APGD-T's targeted DLR loss reads the 4th largest logit, APGD-DLR the 3rd.
        need = 3 if params.version == "rand" else 4
        if num_classes < need:
            problems.append(
                f"autoattack version {params.version!r} needs at least {need} classes (DLR loss), the data has {num_classes}"
            )
        return problems

    def _ensemble(self, model: nn.Module, params: AutoAttackParams, n_classes: int, seed: int):
        import torchattacks

        norm = {"linf": "Linf", "l2": "L2"}[params.norm]
        common = {"norm": norm, "eps": params.eps, "seed": seed, "n_restarts": 1}
        targets = min(TARGET_CLASSES, n_classes - 1)
        apgd_ce = torchattacks.APGD(model, steps=params.steps, loss="ce", **common)
        if params.version == "rand":
            attacks = [
                torchattacks.APGD(model, steps=params.steps, loss="ce", eot_iter=20, **common),
                torchattacks.APGD(model, steps=params.steps, loss="dlr", eot_iter=20, **common),
            ]
        else:
            apgd_t = torchattacks.APGDT(model, steps=params.steps, n_classes=n_classes, **common)
            apgd_t.n_target_classes = targets
            attacks = [apgd_ce, apgd_t]
            if params.version == "standard":
                fab_t = torchattacks.FAB(model, steps=params.steps, multi_targeted=True, n_classes=n_classes, **common)
                fab_t.n_target_classes = targets
                square = torchattacks.Square(model, norm=norm, eps=params.eps, n_queries=5000, n_restarts=1, seed=seed)
                attacks += [fab_t, square]
        return torchattacks.MultiAttack(attacks)

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: AutoAttackParams, generator: torch.Generator
    ) -> torch.Tensor:
        import torch

        with torch.no_grad():
            n_classes = int(model(x[:1]).shape[1])
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        cuda = [x.device.index or 0] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # torchattacks seeds and draws from the global RNG
            torch.manual_seed(seed)
            adv = self._ensemble(model, params, n_classes, seed)(x.detach(), y)
        return adv.detach().clamp_(0.0, 1.0)
