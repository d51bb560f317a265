"""Adversarial attacks: one interface, eps on the [0, 1] pixel scale, models that normalise inside.

Each attack is one module that registers itself in ``ATTACKS`` (every module of this package is imported
here); installed packages add attacks through the ``robustspec.attacks`` entry points (docs/extending.md).
What the rest of robustspec needs to know about an attack (its norm, whether it needs gradients, its
place in reports, whether it is the masking check's black-box attack) are class variables of the attack
(:class:`robustspec.attacks.base.Attack`), never a list of names.
"""

from ..registry import Registry, import_modules

__all__ = ["ATTACKS"]

#: Attacks by their YAML name (``fgsm``, ``pgd-linf``, ``square``, ...: ``ATTACKS.names()``).
ATTACKS: Registry = Registry("attack")

import_modules(__name__)
