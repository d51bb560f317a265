"""ExecuTorch with the XNNPACK delegate: ``.pte`` files, run by ``executorch.runtime``.

Export is ``torch.export`` at a fixed batch size -> ``to_edge_transform_and_lower`` with the
``XnnpackPartitioner`` -> ``to_executorch()``; a pt2e-converted graph (XNNPACK quantizer) is lowered to
XNNPACK's int8 kernels. The batch is fixed, as most shipped ``.pte`` files are: with a dynamic batch,
executorch 1.5.1's XNNPACK int8 kernels crash (SIGSEGV) when the batch changes between calls, and
lowering takes 1.6x longer (mobilenet_v3_small: 89 s against 55 s on 2 cores).
:class:`~robustspec.models.programs.RuntimeProgram` feeds other batch sizes in chunks, padding the
last. Lowering takes tens of seconds per network.
"""

from __future__ import annotations

import warnings
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ModelError, StructuralError
from . import RUNTIMES
from .base import quiet_import, quiet_stderr, traced

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..models.programs import RuntimeProgram

__all__ = ["ExecuTorch"]


def _missing(e: ImportError) -> ModelError:
    return ModelError(f"export to ExecuTorch needs the executorch package ({e}); pip install executorch")


def _one_thread() -> None:
    """XNNPACK's thread pool to one thread: results then do not depend on the machine's cores (as the
    workspace's one build thread), and latency is measured on one thread, as for the other runtimes."""
    try:
        from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count, _unsafe_reset_threadpool
    except ImportError:  # another build of the runtime: its own default
        return
    if _threadpool_get_thread_count() != 1:
        _unsafe_reset_threadpool(1)


@RUNTIMES.register("executorch")
class ExecuTorch:
    """``export: executorch``: an XNNPACK-delegated ``.pte``, run by ExecuTorch's Python runtime."""

    suffix: ClassVar[str] = ".pte"
    libraries: ClassVar[tuple[str, ...]] = ("executorch",)

    def export(self, net: nn.Module, example: torch.Tensor, batch: int) -> bytes:
        import torch

        try:
            quiet_import("executorch.exir", "executorch.backends.xnnpack.partition.xnnpack_partitioner")
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower
        except ImportError as e:
            raise _missing(e) from None
        full = example[torch.arange(batch) % example.shape[0]].contiguous()
        program = traced(net, full, dynamic=False)
        try:
            with quiet_stderr(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # executorch's own deprecation and "experimental" notes
                lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
                return bytes(lowered.to_executorch().buffer)
        except Exception as e:
            raise StructuralError(f"ExecuTorch cannot lower {type(net).__name__}: {type(e).__name__}: {e}") from None

    def load(self, data: bytes, *, quantized: bool, batch: int) -> RuntimeProgram:
        try:
            quiet_import("executorch.runtime")
            from executorch.runtime import Runtime
        except ImportError as e:
            raise _missing(e) from None
        from ..models.programs import RuntimeProgram

        with quiet_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _one_thread()
            try:
                method = Runtime.get().load_program(data).load_method("forward")
            except Exception as e:
                raise ModelError(f"not an ExecuTorch program with a 'forward' method: {e}") from None

        def run(x: torch.Tensor, _data: bytes = data) -> torch.Tensor:
            # ``_data``: the program reads the buffer it was loaded from, which must outlive it (a freed
            # buffer is a SIGSEGV on the next call).
            outputs: Any = method.execute([x])
            return outputs[0].clone()

        return RuntimeProgram(
            run,
            runtime="executorch",
            version=version("executorch"),
            file_bytes=len(data),
            quantized=quantized,
            max_batch=batch,
            fixed_batch=True,
        )
