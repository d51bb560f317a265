"""Adversarial attacks: one interface, eps on the [0, 1] pixel scale, models that normalise inside.

Each attack is one module that registers itself in ``ATTACKS``.
"""

from ..registry import Registry

__all__ = ["ATTACKS"]

#: Attacks by their YAML name (``fgsm``, ``pgd-linf``, ``pgd-l2``, ``cw-l2``, ``deepfool``, ``ddn``, ``jsma``, ``square``, ``sparse-rs``, ...).
ATTACKS: Registry = Registry("attack")

# Each attack module registers itself; one import per module.
from . import (  # noqa: E402
    blackbox,  # noqa: F401
    ddn,  # noqa: F401
    gradient,  # noqa: F401
    jsma,  # noqa: F401
    minimum_norm,  # noqa: F401
    sparse_rs,  # noqa: F401
)
