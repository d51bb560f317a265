"""The attack driver: sample, attack what the model gets right, check every batch, score.

Conventions (RobustBench/AutoAttack): ``n`` test images are drawn with a seeded ``randperm``; only the
correctly classified ones are attacked (the others count as failures already); robust accuracy is the
fraction still correct after the attack, over all ``n``.

Every adversarial batch is checked: finite, inside [0, 1] (tolerance 1e-6) and, for bounded attacks,
inside the eps-ball (L-inf: max |delta| <= eps + 1e-6; L2: per-sample norm <= eps * (1 + 1e-5); L0: the
fraction of values changed <= eps + 1e-6). A violation raises :class:`AttackCheckError` (NaN or inf
included: a broken attack is an error, which no ``on-masking`` setting waives). Two silent failures are
reported as flags instead: all-zero input gradients on the first batch (gradient masking, or an input
rounding that kills the gradient), of the loss the attack itself follows (its ``loss``: cross-entropy for
PGD, the margin for C&W and DeepFool, a logit for JSMA; a saturated softmax zeroes the cross-entropy's
gradient but not the margin's), and adversarials identical to their inputs for every attacked sample.
The attack expectation fails an item with a flag unless it says ``on-masking: warn``.

Minimum-norm attacks (``bounded = False``) with ``eps`` set count a success only when the perturbation's
norm, in the attack's norm, is at most eps (L0: the fraction of input values changed). Median L2 and
L-inf norms are over the perturbations that count as successes.

``surrogate``: the attack runs on the surrogate (the float parent of an int8 model, which has no input
gradients) and the adversarials are scored on ``model``: the transfer setting, recorded as ``mode``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import AttackCheckError, RegistryError
from ..evaluate import device_for, predict
from ..metrics import is_quantized
from ..progress import Progress, Timer, duration, report
from . import ATTACKS
from .base import AttackParams, attack_loss

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "FLAG_UNCHANGED",
    "FLAG_ZERO_GRADIENTS",
    "AttackCheckError",
    "AttackResult",
    "attack_defaults_ok",
    "evaluate_attack",
]

FLAG_ZERO_GRADIENTS = "all input gradients are zero (gradient masking or rounding?)"
FLAG_UNCHANGED = "the attack changed no input"

#: Tolerances of the batch checks.
BOX_TOL = 1e-6
LINF_TOL = 1e-6
L2_REL_TOL = 1e-5
#: float32 cannot hold x + delta exactly: each pixel may be off by half an ulp of 1.0 (6e-8), so an L2
#: norm over d pixels may exceed eps by up to 6e-8 * sqrt(d) for a perfectly projected attack.
L2_ROUNDING = 6e-8


def l2_limit(eps: float, dims: int) -> float:
    """The largest L2 norm a correct attack with budget ``eps`` can show in float32 over ``dims`` pixels."""
    return eps * (1.0 + L2_REL_TOL) + L2_ROUNDING * dims**0.5


@dataclass
class AttackResult:
    """One attack evaluation, as plain numbers for the store."""

    n: int
    clean_correct: int
    robust_correct: int
    attacked: int
    successes: int
    median_l2: float | None  # over successful perturbations
    median_linf: float | None
    mean_l2: float | None
    flags: list[str] = field(default_factory=list)
    seconds: float = 0.0
    mode: str = "white-box"  # "transfer" (attacked on a surrogate, scored on the model) or "black-box" (no gradients)
    attack: str = ""
    norm: str = ""
    #: Per sampled image, in sample order: still classified correctly after the attack (a sample the
    #: model got wrong unattacked counts as not robust). The same seed draws the same images for every
    #: model, so two models' outcomes pair image by image.
    robust: list[bool] = field(default_factory=list)

    @property
    def clean_accuracy(self) -> float:
        return self.clean_correct / self.n if self.n else 0.0

    @property
    def robust_accuracy(self) -> float:
        return self.robust_correct / self.n if self.n else 0.0

    @property
    def degradation(self) -> float:
        return self.clean_accuracy - self.robust_accuracy

    @property
    def success_rate(self) -> float:
        return self.successes / self.attacked if self.attacked else 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(
            clean_accuracy=self.clean_accuracy,
            robust_accuracy=self.robust_accuracy,
            degradation=self.degradation,
            success_rate=self.success_rate,
        )
        return out


def _norm_of(attack: Any, params: AttackParams) -> str:
    return getattr(params, "norm", None) or attack.norm


def _validate(attack: Any, params: AttackParams | Mapping[str, Any]) -> AttackParams:
    if isinstance(params, attack.Params):
        return params
    if isinstance(params, AttackParams):
        params = params.model_dump(by_alias=True, exclude_unset=True)
    return attack.Params.model_validate(dict(params))


def attack_defaults_ok(name: str, params: AttackParams | Mapping[str, Any], num_classes: int) -> list[str]:
    """Problems with an attack and its parameters, as messages (empty when fine); nothing runs."""
    try:
        attack = ATTACKS.get(name)()
    except RegistryError as e:
        return [str(e)]
    try:
        params = _validate(attack, params)
    except ValidationError as e:
        return [f"{'.'.join(str(p) for p in err['loc']) or name}: {err['msg']}" for err in e.errors()]
    return list(attack.check(params, num_classes))


def _norms(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    flat = delta.flatten(1)
    return flat.norm(dim=1), flat.abs().amax(1), (flat != 0).float().mean(1)


def _check_batch(adv: torch.Tensor, x: torch.Tensor, eps: float | None, norm: str, bounded: bool, name: str) -> None:
    import torch

    if adv.shape != x.shape:
        raise AttackCheckError(f"{name} returned shape {tuple(adv.shape)} for inputs of shape {tuple(x.shape)}")
    bad = ~torch.isfinite(adv)
    if bool(bad.any()):
        rows = int(bad.flatten(1).any(1).sum())
        raise AttackCheckError(f"{name} returned NaN or inf in {rows} of {len(adv)} adversarial images")
    lo, hi = float(adv.min()), float(adv.max())
    if lo < -BOX_TOL or hi > 1.0 + BOX_TOL:
        raise AttackCheckError(
            f"{name} returned pixels outside [0, 1]: min {lo:.6g}, max {hi:.6g} (tolerance {BOX_TOL:g})"
        )
    if not bounded or eps is None:
        return
    l2, linf, l0 = _norms(adv - x)
    if norm == "linf":
        worst = float(linf.max())
        if worst > eps + LINF_TOL:
            raise AttackCheckError(
                f"{name} left the L-inf ball: max |delta| = {worst:.6g} > eps {eps:.6g} (+{LINF_TOL:g}) "
                f"in {int((linf > eps + LINF_TOL).sum())} of {len(adv)} images"
            )
    elif norm == "l0":
        worst = float(l0.max())
        if worst > eps + LINF_TOL:
            raise AttackCheckError(
                f"{name} changed more input values than its L0 budget: {worst:.6g} > eps {eps:.6g} "
                f"in {int((l0 > eps + LINF_TOL).sum())} of {len(adv)} images"
            )
    elif norm == "l2":
        worst = float(l2.max())
        limit = l2_limit(eps, adv[0].numel())
        if worst > limit:
            raise AttackCheckError(
                f"{name} left the L2 ball: largest norm {worst:.6g} > eps {eps:.6g} (limit {limit:.6g} with float32 "
                f"rounding) in {int((l2 > limit).sum())} of {len(adv)} images"
            )


def _zero_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_kind: str = "ce") -> bool:
    """True when the input gradient of the attack's own loss (:func:`~.base.attack_loss`) is zero everywhere."""
    import torch

    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = attack_loss(loss_kind, model(x), y)
        (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    return grad is None or not bool(grad.ne(0).any())


def _within(norm: str, l2: torch.Tensor, linf: torch.Tensor, l0: torch.Tensor, eps: float) -> torch.Tensor:
    if norm == "l2":
        return l2 <= eps * (1.0 + L2_REL_TOL)
    if norm == "linf":
        return linf <= eps + LINF_TOL
    return l0 <= eps + LINF_TOL


def evaluate_attack(
    model: nn.Module,
    attack_name: str,
    params: AttackParams | Mapping[str, Any],
    images_uint8: torch.Tensor,
    labels: torch.Tensor,
    *,
    n: int,
    seed: int,
    device: torch.device | str,
    surrogate: nn.Module | None = None,
    mode: str | None = None,
    label: str | None = None,
) -> AttackResult:
    """Attack ``n`` seeded test images (the correctly classified ones) and score the result on ``model``.

    Progress (``label``: what the lines name, default ``attack <name>``): one line when the attack starts,
    then at most one every few seconds (:class:`~robustspec.progress.Progress`) with the images attacked,
    those fooled and an ETA, also from inside a batch (a hook counts the attacked model's forward passes:
    one Square batch of 250 queries can run for minutes), and a last line with the totals.
    """
    import torch

    from ..models.programs import input_gradients

    timer = Timer()
    attack = ATTACKS.get(attack_name)()
    params = _validate(attack, params)
    norm = _norm_of(attack, params)
    eps = getattr(params, "eps", None)
    target = surrogate if surrogate is not None else model
    if mode is None:  # the caller's planned mode (robustspec.attacks.planning) names the surrogate exactly
        mode = "transfer" if surrogate is not None else ("black-box" if attack.gradient_free else "white-box")
    if not attack.gradient_free and not input_gradients(target):
        what = "an int8 model" if is_quantized(target) else "a runtime's program"
        raise AttackCheckError(
            f"{attack_name} needs input gradients and {what} has none: pass its float parent as the "
            "surrogate (transfer) or use a gradient-free attack (square)"
        )
    model_dev, target_dev = device_for(model, device), device_for(target, device)

    total = len(labels)
    if images_uint8.dtype != torch.uint8 or images_uint8.ndim != 4:
        raise AttackCheckError(f"expected uint8 images [N,3,H,W], got {images_uint8.dtype} {tuple(images_uint8.shape)}")
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(total, generator=g)[: min(n, total)]
    x_all = images_uint8[index].float().div_(255.0)
    y_all = labels[index].long()
    count = len(index)

    modules = [model] if surrogate is None else [model, surrogate]
    training = [m.training for m in modules]
    grads = [[p.requires_grad for p in m.parameters()] for m in modules]
    flags: list[str] = []
    hook = None
    try:
        for m in modules:
            m.eval()
            m.requires_grad_(False)
        model.to(model_dev)
        if surrogate is not None:
            surrogate.to(target_dev)
        bs = params.batch_size
        clean = predict(model, x_all, device=model_dev, batch_size=bs) == y_all
        todo = clean.nonzero().squeeze(1)
        attacked = len(todo)
        label = label or f"attack {attack_name}"
        report(f"{label} ({mode}): {attacked} of {count} images classified correctly, attacking them")
        progress = Progress(attacked, label, unit="images", final="always")
        batches = -(-attacked // bs)
        batch, passes, batch_started = 0, 0, progress.start
        # Query attacks (Square, Sparse-RS) make at most `queries` forward passes a batch: a bound on the
        # time left before the first batch ends (afterwards Progress's ETA from the images done).
        queries = getattr(params, "queries", None) if attack.gradient_free else None

        def status() -> str:
            text = f"{successes} fooled, batch {batch}/{batches}: {passes} forward passes"
            if queries:
                text += f" of at most {queries}"
                if progress.done == 0 and passes:
                    per_pass = (progress.clock() - batch_started) / passes
                    left = per_pass * (max(queries - passes, 0) + queries * (batches - batch))
                    text += f", at most {duration(left)} left"
            return text

        def count_pass(*_: Any) -> None:
            nonlocal passes
            passes += 1
            progress.tick(status)

        gen = torch.Generator().manual_seed(seed)
        robust = clean.clone()
        successes, changed = 0, 0
        l2s: list[float] = []
        linfs: list[float] = []
        try:
            hook = target.register_forward_pre_hook(count_pass)
        except (AttributeError, RuntimeError):  # a module without hooks: lines per batch only
            hook = None
        for start in range(0, attacked, bs):
            batch, passes, batch_started = batch + 1, 0, progress.clock()
            rows = todo[start : start + bs]
            x, y = x_all[rows].to(target_dev), y_all[rows].to(target_dev)
            if start == 0 and not attack.gradient_free and _zero_gradients(target, x, y, getattr(attack, "loss", "ce")):
                flags.append(FLAG_ZERO_GRADIENTS)
            adv = attack.run(target, x, y, params, gen)
            if not isinstance(adv, torch.Tensor):
                raise AttackCheckError(f"{attack_name} returned {type(adv).__name__}, not a tensor")
            adv = adv.detach().float()
            _check_batch(adv, x, eps, norm, attack.bounded, attack_name)
            delta = (adv - x).cpu()
            changed += int(delta.flatten(1).ne(0).any(1).sum())
            with torch.no_grad():
                fooled = model(adv.to(model_dev)).argmax(1).cpu() != y.cpu()
            l2, linf, l0 = _norms(delta)
            if not attack.bounded and eps is not None:
                fooled &= _within(norm, l2, linf, l0, eps)
            robust[rows[fooled]] = False
            successes += int(fooled.sum())
            l2s += l2[fooled].tolist()
            linfs += linf[fooled].tolist()
            progress.update(len(rows), status)
        progress.close(lambda: f"{successes} fooled")
        if attacked and changed == 0:
            flags.append(FLAG_UNCHANGED)
    finally:
        if hook is not None:
            hook.remove()
        for m, was_training, req in zip(modules, training, grads):
            for p, r in zip(m.parameters(), req):
                p.requires_grad_(r)
            m.train(was_training)

    clean_correct = int(clean.sum())
    return AttackResult(
        n=count,
        clean_correct=clean_correct,
        robust_correct=clean_correct - successes,
        attacked=attacked,
        successes=successes,
        median_l2=statistics.median(l2s) if l2s else None,
        median_linf=statistics.median(linfs) if linfs else None,
        mean_l2=statistics.fmean(l2s) if l2s else None,
        flags=flags,
        seconds=timer.seconds,
        mode=mode,
        attack=attack_name,
        norm=norm,
        robust=robust.tolist(),
    )
