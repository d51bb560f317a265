"""Edge runtimes that run a deployable file (``.pte``, ``.onnx``): export a graph to one, and load one back.

A runtime is one module that registers itself in ``RUNTIMES`` under the ``export: {format: ...}`` name
it serves (``executorch``, ``onnx``); installed packages add runtimes through the ``robustspec.runtimes``
entry points. Each turns a float or pt2e-quantized graph into the file's bytes (:meth:`Runtime.export`)
and those bytes into a :class:`~robustspec.runtimes.program.RuntimeProgram` (:meth:`Runtime.load`), an
``nn.Module`` whose forward runs the runtime itself, so every evaluation, corruption and black-box attack
of robustspec runs on what ships.
"""

from ..registry import Registry, import_modules

__all__ = ["RUNTIMES"]

#: Runtimes by the ``export: {format: ...}`` name they serve (``RUNTIMES.names()``).
RUNTIMES: Registry = Registry("runtime")

import_modules(__name__)
