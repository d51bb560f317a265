"""int8 post-training static quantization of any exportable network, through torchao's pt2e flow.

``torch.export`` (dynamic batch) -> ``prepare_pt2e(graph, quantizer)`` -> calibrate on source-domain
images -> ``convert_pt2e``. The quantizer is the one made for the runtime that will run the model:

- ``xnnpack``: ExecuTorch's ``XNNPACKQuantizer`` (symmetric per-channel int8 weights, int8 activations),
  whose converted graph ``export: executorch`` lowers to XNNPACK's int8 kernels;
- ``onnxruntime``: the same quantizer, whose converted graph ``export: onnx`` writes as QDQ (S8S8: int8
  activations and weights). torchao's ``X86InductorQuantizer`` (uint8 activations, the U8S8 form ONNX
  Runtime's x86 kernels are fastest at: MobileNetV2 at 64 px, batch 8, one thread, 8.3 ms against 12.1 ms
  for S8S8 and 10.8 ms in fp32) would be the better choice, but in torchao 0.18 it fails on every
  torchvision ResNet ("Input partition has more than one output node").

The converted graph itself computes with reference quantize/dequantize ops in PyTorch: it is the
"PyTorch graph" a runtime's file is compared against (``runtime_agreement``), and a variant that ends
at ``quantize`` is evaluated on it. It is stored as ``torch.export.save``'s bytes.

White-box attacks need input gradients, which the converted graph (integer tensors) has none of:
:func:`fake_quant_graph` turns the calibrated, prepared graph into one whose observers are replaced by
fixed fake quantizations with the same scales (straight-through gradients), the copy that computes what
the converted graph computes.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ModelError, StructuralError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "PT2E_BACKENDS",
    "quantizer_for",
    "prepare",
    "convert",
    "fake_quant_graph",
    "save_graph",
    "load_graph",
    "batches_of",
]

#: The quantize backends that go through pt2e, and the runtime each is made for.
PT2E_BACKENDS = {"xnnpack": "executorch", "onnxruntime": "onnx"}


def quantizer_for(backend: str) -> Any:
    """The pt2e quantizer of ``backend`` (see the module's docstring)."""
    if backend in PT2E_BACKENDS:
        try:
            from ..runtimes.base import quiet_import

            quiet_import(
                "torchao.quantization.pt2e.quantize_pt2e", "executorch.backends.xnnpack.quantizer.xnnpack_quantizer"
            )
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
        except ImportError as e:
            raise ModelError(f"quantize backend {backend} needs the executorch package ({e})") from None
        return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    raise ModelError(f"no pt2e quantizer for backend {backend!r} (pt2e backends: {', '.join(PT2E_BACKENDS)})")


def prepare(net: nn.Module, example: torch.Tensor, backend: str, batches: Iterator[torch.Tensor]) -> nn.Module:
    """``net`` (eval mode, normalised input) exported, prepared with ``backend``'s quantizer and calibrated
    on ``batches``; the prepared graph (observers holding their statistics)."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from ..runtimes.base import traced

    graph = traced(net.eval(), example, max_batch=None).module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prepared = prepare_pt2e(graph, quantizer_for(backend))
        except ModelError:
            raise
        except Exception as e:
            raise StructuralError(
                f"pt2e cannot prepare {type(net).__name__} for {backend}: {type(e).__name__}: {e}"
            ) from None
        with torch.no_grad():
            for batch in batches:
                prepared(batch)
    return prepared


def convert(prepared: nn.Module) -> nn.Module:
    """The int8 graph of a calibrated prepared graph (pt2e's reference quantize/dequantize ops)."""
    import copy

    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = convert_pt2e(copy.deepcopy(prepared))
    _drop_unused_tensors(converted)
    return converted


def _drop_unused_tensors(graph: nn.Module) -> None:
    """Delete the float weights the converted graph no longer reads (it reads their int8 copies): kept, they
    would be stored and counted with it, and an int8 graph would weigh more than the float one."""
    used = {node.target for node in graph.graph.nodes if node.op == "get_attr"}
    for name, _ in list(graph.named_parameters()) + list(graph.named_buffers()):
        if name not in used and not any(u.startswith(f"{name}.") for u in used):
            owner, _, attr = name.rpartition(".")
            module = graph.get_submodule(owner) if owner else graph
            delattr(module, attr)


def fake_quant_graph(prepared: nn.Module) -> nn.Module:
    """A copy of the calibrated prepared graph in which each observer is a fixed fake quantization.

    The scales and zero points are the observers' own ``calculate_qparams()``, the ones ``convert_pt2e``
    bakes into the converted graph; the bounds are the observers' ``quant_min``/``quant_max``. So the copy
    computes ``dequantize(quantize(x))`` wherever the converted graph does, with straight-through gradients.
    """
    import copy

    import torch
    from torch import nn
    from torchao.quantization.pt2e.observer import ObserverBase

    class FixedFakeQuantize(nn.Module):
        def __init__(self, observer: Any) -> None:
            super().__init__()
            scale, zero_point = observer.calculate_qparams()
            self.register_buffer("scale", scale.detach().float().reshape(-1))
            self.register_buffer("zero_point", zero_point.detach().to(torch.int32).reshape(-1))
            self.per_channel = observer.qscheme in (torch.per_channel_symmetric, torch.per_channel_affine)
            self.axis = int(getattr(observer, "ch_axis", 0))
            self.quant_min, self.quant_max = int(observer.quant_min), int(observer.quant_max)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.per_channel:
                return torch.fake_quantize_per_channel_affine(
                    x, self.scale, self.zero_point, self.axis, self.quant_min, self.quant_max
                )
            return torch.fake_quantize_per_tensor_affine(
                x, self.scale[0], self.zero_point[0], self.quant_min, self.quant_max
            )

    graph = copy.deepcopy(prepared)
    replaced: dict[int, nn.Module] = {}
    for node in graph.graph.nodes:
        if node.op != "call_module":
            continue
        module = graph.get_submodule(node.target)
        if isinstance(module, ObserverBase):
            if id(module) not in replaced:
                replaced[id(module)] = FixedFakeQuantize(module)
            setattr(graph, node.target, replaced[id(module)])
    if not replaced:
        raise ModelError("fake-quant copy: the prepared graph holds no observers (nothing was quantized)")
    graph.recompile()
    return graph


def save_graph(graph: nn.Module, example: torch.Tensor) -> bytes:
    """``torch.export.save`` bytes of a (converted) graph, re-exported with a dynamic batch."""
    import torch

    from ..runtimes.base import traced

    buffer = io.BytesIO()
    torch.export.save(traced(graph, example, max_batch=None), buffer)
    return buffer.getvalue()


def load_graph(data: bytes) -> nn.Module:
    """The graph module of ``save_graph``'s bytes."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.load(io.BytesIO(data)).module()


def batches_of(images: torch.Tensor, index: torch.Tensor, batch: int, transform: Callable[[Any], Any]) -> Iterator[Any]:
    """``transform`` of the float [0, 1] images at ``index``, ``batch`` at a time (the calibration order)."""
    for start in range(0, len(index), batch):
        yield transform(images[index[start : start + batch]].float().div_(255.0))
