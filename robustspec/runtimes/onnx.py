"""ONNX Runtime: ``.onnx`` files exported by ``torch.onnx`` (dynamo), run by an ``InferenceSession``.

The file takes any batch size (``batch`` is not used). A pt2e-converted graph exports as QDQ (``QuantizeLinear``/``DequantizeLinear`` around each quantized
operator), which ONNX Runtime's CPU provider fuses into int8 kernels. The batch dimension is dynamic.
Sessions use one intra-op and one inter-op thread, so results do not depend on the machine's cores.
"""

from __future__ import annotations

import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import ModelError, StructuralError
from . import RUNTIMES
from .base import export_problem, quiet_stderr, traced

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..models.programs import RuntimeProgram

__all__ = ["OnnxRuntime"]


def _missing(e: ImportError) -> ModelError:
    return ModelError(
        f"export to ONNX needs onnxruntime, onnx and onnxscript ({e}); pip install onnxruntime onnxscript"
    )


@RUNTIMES.register("onnx")
class OnnxRuntime:
    """``export: onnx``: an ``.onnx`` file (opset of torch's exporter), run by ONNX Runtime on the CPU."""

    suffix: ClassVar[str] = ".onnx"
    libraries: ClassVar[tuple[str, ...]] = ("onnxruntime", "onnx", "onnxscript")

    def export(self, net: nn.Module, example: torch.Tensor, batch: int) -> bytes:
        try:
            import onnxscript  # noqa: F401  (torch's dynamo exporter needs it)
            import torch
        except ImportError as e:
            raise _missing(e) from None
        program = traced(net, example, max_batch=None)
        with tempfile.TemporaryDirectory(prefix="robustspec-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            try:
                with warnings.catch_warnings(), quiet_stderr():
                    warnings.simplefilter("ignore")
                    exported = torch.onnx.export(program, (example,), dynamo=True, verbose=False)
                    exported.save(str(path), external_data=False)
            except Exception as e:
                raise StructuralError(f"torch.onnx cannot export {type(net).__name__}: {export_problem(e)}") from None
            return path.read_bytes()

    def load(self, data: bytes, *, quantized: bool, batch: int) -> RuntimeProgram:
        try:
            import onnxruntime as ort
            import torch
        except ImportError as e:
            raise _missing(e) from None
        from ..models.programs import RuntimeProgram

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelError(f"not an ONNX model ONNX Runtime can run: {' '.join(str(e).split())[:300]}") from None
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"an image classifier takes one input; this ONNX model takes {len(inputs)}")
        name = inputs[0].name

        def run(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

        return RuntimeProgram(
            run, runtime="onnxruntime", version=version("onnxruntime"), file_bytes=len(data), quantized=quantized
        )
