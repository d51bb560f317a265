"""Compression steps (pruning, distillation, quantization, ...): a variant is a chain of them.

The registry is the extension point; each step is one module that registers itself here (every module of
this package is imported here), and installed packages add steps through the ``robustspec.compressions``
entry points (docs/extending.md).
"""

from ..registry import Registry, import_modules

__all__ = ["COMPRESSIONS"]

#: Compression steps by their YAML key (``prune``, ``quantize``, ...: ``COMPRESSIONS.names()``).
COMPRESSIONS: Registry = Registry("compression")

import_modules(__name__)
