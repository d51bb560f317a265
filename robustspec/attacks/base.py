"""What an attack is: parameters, the norm it works in, and one batched ``run``.

Conventions every attack follows:

- inputs ``x`` are float pixels in [0, 1], ``[N, 3, H, W]``; the model normalises inside
  (:class:`robustspec.models.Normalized`), so eps is on the pixel scale (``4/255`` or ``0.0157``);
- ``y`` are the true labels; the driver passes only samples the model classifies correctly;
- the model is in eval mode with parameters frozen; attacks take input gradients only;
- every random draw comes from the ``generator`` argument, so a seed fixes the result;
- ``run`` returns adversarial images of the same shape, in [0, 1]; for bounded attacks inside the eps-ball.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import Field

from ..spec.schema import Fraction, Int, Strict

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Attack", "AttackParams", "Loss", "Norm", "attack_loss", "run_in_batches"]

Norm = Literal["linf", "l2", "l0"]
#: The loss whose input gradient an attack follows: ``ce`` (cross-entropy: FGSM, PGD, DDN, APGD-CE),
#: ``margin`` (true logit minus the largest other: C&W, DeepFool, Square) or ``target-logit`` (one other
#: class's logit: JSMA's saliency; the most likely other class stands in for the attack's target).
Loss = Literal["ce", "margin", "target-logit"]


def attack_loss(kind: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The summed loss ``kind`` of a batch (summed: a sample's gradient does not depend on the batch size).

    Used by the driver's zero-gradient check, so that an attack is judged by the gradient it follows: a
    saturated softmax has an exactly zero cross-entropy gradient where the margin's is not zero.
    """
    import torch

    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    if kind == "ce":
        return torch.nn.functional.cross_entropy(logits, y, reduction="sum")
    if kind == "margin":
        return (true - other).sum()
    if kind == "target-logit":
        return other.sum()
    raise ValueError(f"unknown attack loss {kind!r} (known: ce, margin, target-logit)")


def run_in_batches(
    step: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Any, generator: torch.Generator
) -> torch.Tensor:
    """Apply ``step(model, xb, yb, params, generator)`` to batches of ``params.batch_size``, with autograd on.

    The driver may hold inference mode for its clean pass; attacks need gradients of the input.
    """
    import torch

    bs = params.batch_size
    with torch.inference_mode(False), torch.enable_grad():
        chunks = [
            step(model, x[s : s + bs].clone(), y[s : s + bs].clone(), params, generator)
            for s in range(0, x.shape[0], bs)
        ]
    return torch.cat(chunks) if chunks else x.clone()


class AttackParams(Strict):
    """Fields shared by every attack's parameters (each attack subclasses this)."""

    eps: Fraction | None = Field(None, description="budget on the [0,1] pixel scale: 4/255, 0.0157, ...")
    batch_size: Int = Field(128, ge=1, le=100_000)


class Attack(Protocol):
    """One attack, registered under its YAML name in ``ATTACKS``."""

    Params: ClassVar[type[AttackParams]]
    norm: ClassVar[Norm]
    #: True when the result is guaranteed inside the eps-ball (FGSM, PGD, Square); False for
    #: minimum-norm attacks (DeepFool, C&W, DDN, JSMA) whose eps, if any, only scores the result.
    bounded: ClassVar[bool]
    #: True for attacks that need no gradients (Square): they run on int8 models directly.
    gradient_free: ClassVar[bool]
    #: The loss the attack takes gradients of (:data:`Loss`); the zero-gradient check uses it. Optional:
    #: an attack without one is checked with cross-entropy.
    # loss: ClassVar[Loss]
    #: Optional: the algorithm's revision, raised when a change alters results. An attack without one is
    #: revision 1; from 2 on it is part of the evaluation's artifact key, so stored results of the earlier
    #: revision are not reused (and those of other attacks are kept).
    # version: ClassVar[int]
    #: Optional: distributions besides torch and torchvision whose version decides the result
    #: (``("torchattacks",)`` for AutoAttack); their versions enter the evaluation's artifact key.
    # libraries: ClassVar[tuple[str, ...]]
    #: Optional: where reports put the attack's column, lowest first (the research's order: DeepFool 10,
    #: PGD 20-30, FGSM 40, C&W 50, DDN 60, JSMA 70); default 100, ties by name.
    # order: ClassVar[int]
    #: Optional, gradient-free attacks only: the norms for which this is *the* black-box attack of the
    #: threat model, that every other attack's masking check and the int8 worst case run (Square:
    #: ``("linf", "l2")``). It must take ``eps``, ``queries`` (set to ``masking-queries``) and, when it
    #: claims several norms, ``norm``. At most one attack claims a norm.
    # masking_reference: ClassVar[tuple[Norm, ...]]
    #: Optional, gradient-free attacks only: why the attack is *not* its norm's masking reference (the
    #: item reports it; Sparse-RS for L0).
    # not_a_masking_reference: ClassVar[str]

    def check(self, params: Any, num_classes: int) -> list[str]:
        """Problems knowable at collection (eps outside [0, 1], a norm the attack lacks, ...)."""

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Any, generator: torch.Generator
    ) -> torch.Tensor:
        """Adversarial examples for one batch."""
