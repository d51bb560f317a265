"""Adversarial attacks: one interface, eps on the [0, 1] pixel scale, models that normalise inside.

Each attack is one module that registers itself in ``ATTACKS``.
"""

from ..registry import Registry

__all__ = ["ATTACKS"]

#: Attacks by their YAML name (``fgsm``, ``pgd-linf``, ``pgd-l2``, ``cw-l2``, ``deepfool``, ``ddn``, ``jsma``, ...).
ATTACKS: Registry = Registry("attack")
from . import ddn  # noqa: E402,F401
from . import jsma  # noqa: E402,F401
