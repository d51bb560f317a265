"""Size and cost of a model: parameters, stored bytes, multiply-accumulates."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__all__ = ["parameter_count", "stored_bytes", "macs", "is_quantized", "is_program", "nonzero_parameters"]


#: Where torch keeps int8 modules: plain (Conv2d, Linear) and fused (ConvReLU2d, ...).
_INT8_MODULES = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")


def _int8(module: nn.Module) -> bool:
    # FloatFunctional sits in the quantized namespace but adds floats (quantizable, not quantized, models).
    return type(module).__module__.startswith(_INT8_MODULES) and type(module).__name__ != "FloatFunctional"


def is_quantized(model: nn.Module) -> bool:
    """True when the model computes in int8: it holds int8 modules, a pt2e-converted graph or an int8
    runtime file (all run on the CPU only and have no input gradients)."""
    return any(_int8(m) or getattr(m, "quantized", False) is True for m in model.modules())


def is_program(model: nn.Module) -> bool:
    """True when the model runs a fixed program (an exported graph or a runtime's file), not eager layers:
    its parameters and MACs are those of the float network it was made from, its size that of its file."""
    return any(getattr(m, "file_bytes", None) is not None for m in model.modules())


def parameter_count(model: nn.Module) -> int:
    """Parameters; for int8 modules (whose weights are packed, not parameters) the weight and bias elements."""
    n = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if _int8(m) and hasattr(m, "weight") and callable(m.weight):
            w = m.weight()
            n += w.numel()
            b = m.bias() if callable(getattr(m, "bias", None)) else None
            n += b.numel() if b is not None else 0
    return n


def nonzero_parameters(model: nn.Module) -> int:
    """Parameters that are not exactly zero (what unstructured pruning really reduces)."""
    return sum(int((p != 0).sum()) for p in model.parameters())


def stored_bytes(model: nn.Module) -> int:
    """The size a deployment ships: the file of a program (``.pte``, ``.onnx``, ``.pt2``), else the bytes of
    ``torch.save(model.state_dict())``."""
    import torch

    files = [m.file_bytes for m in model.modules() if getattr(m, "file_bytes", None) is not None]
    if files:
        return int(sum(files))

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def macs(model: nn.Module, image_size: int) -> int:
    """Multiply-accumulates for one image (FlopCounterMode's FLOPs / 2); 0 when the ops are not counted (int8)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad():
        was_training = model.training
        model.eval()
        try:
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
            x = torch.zeros(1, 3, image_size, image_size, device=device)
            counter = FlopCounterMode(display=False)
            with counter:
                model(x)
            return int(counter.get_total_flops() // 2)
        finally:
            model.train(was_training)
