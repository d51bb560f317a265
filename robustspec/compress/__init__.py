"""Compression steps (pruning, distillation, quantization, ...): a variant is a chain of them.

The registry is the extension point; each step is one module that registers itself here.
"""

from ..registry import Registry

__all__ = ["COMPRESSIONS"]

#: Compression steps by their YAML key (``prune``, ``distill``, ``quantize``, ``lowrank``, ``sparsify``, ``coral``,
#: ``adabn``).
COMPRESSIONS: Registry = Registry("compression")

from . import adabn, coral, distill, lowrank, prune, quantize, sparsify  # noqa: E402,F401  (each registers itself)
