"""Modules that run a fixed program instead of eager layers: an exported (pt2e) graph, or a runtime's file.

Both are ``nn.Module``s, so every evaluation, corruption and attack of robustspec runs them unchanged;
what sets them apart is said by two attributes the rest of the code asks (never by class):

- ``quantized``: the program computes in int8 (a pt2e-converted graph, an int8 ``.pte``/``.onnx``);
- ``input_gradients``: whether a gradient flows back to the input (False for a runtime's file, and for
  a converted graph, whose quantize ops return integer tensors).

Both run on the CPU. Importing this module imports torch; it is imported when such a model is built or
restored, never when a suite is validated.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["ExportedGraph", "RuntimeProgram", "input_gradients", "reorder_outputs"]


def input_gradients(model: nn.Module) -> bool:
    """Whether gradients reach ``model``'s input: not through int8 kernels, converted graphs or runtimes."""
    from ..metrics import is_quantized

    return not is_quantized(model) and all(getattr(m, "input_gradients", True) for m in model.modules())


class ExportedGraph(nn.Module):
    """A ``torch.export`` graph (``ExportedProgram.module()``, or pt2e's prepared/converted graph) as a module.

    Exported graphs refuse ``train()``/``eval()`` (they were traced in one mode), which every consumer
    calls; this wrapper keeps its own ``training`` flag and never passes the call on. The graph is
    held, not registered as a submodule, for the same reason (``model.modules()`` would reach it).
    """

    def __init__(
        self, graph: nn.Module, *, quantized: bool, input_gradients: bool, file_bytes: int | None = None
    ) -> None:
        super().__init__()
        self.__dict__["graph"] = graph
        self.quantized = quantized
        self.input_gradients = input_gradients
        self.file_bytes = file_bytes  # the stored graph's size (None: a working copy, not what ships)
        self.parameters_count: int | None = None  # weights the file holds, when known (a loaded file)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)

    def train(self, mode: bool = True) -> ExportedGraph:
        self.training = mode
        return self

    def extra_repr(self) -> str:
        return f"quantized={self.quantized}, input_gradients={self.input_gradients}"


class RuntimeProgram(nn.Module):
    """A deployable file run by its runtime (ExecuTorch, ONNX Runtime): float tensors in, logits out.

    ``run`` takes one contiguous float32 CPU batch and returns its logits. A program planned for at most
    ``max_batch`` images (ExecuTorch plans memory for the exported example's size) gets larger inputs in
    chunks; with ``fixed_batch`` it was exported for exactly that size, and a short chunk is padded.
    Any batch size therefore works. No gradient flows through it.
    """

    input_gradients = False

    def __init__(
        self,
        run: Callable[[torch.Tensor], torch.Tensor],
        *,
        runtime: str,
        version: str,
        file_bytes: int,
        quantized: bool,
        max_batch: int | None = None,
        fixed_batch: bool = False,
    ) -> None:
        super().__init__()
        self._run = run
        self.runtime = runtime
        self.version = version
        self.file_bytes = file_bytes
        self.quantized = quantized
        self.max_batch = max_batch
        self.fixed_batch = fixed_batch
        self.parameters_count: int | None = None  # weights the file holds, when known (a loaded file)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float32).contiguous()
        if self.max_batch is None or x.shape[0] <= self.max_batch and not self.fixed_batch:
            return self._run(x)
        out = []
        for start in range(0, x.shape[0], self.max_batch):
            chunk = x[start : start + self.max_batch]
            n = chunk.shape[0]
            if self.fixed_batch and n < self.max_batch:
                pad = chunk[-1:].expand(self.max_batch - n, *chunk.shape[1:])
                chunk = torch.cat([chunk, pad]).contiguous()
            out.append(self._run(chunk)[:n])
        return torch.cat(out)

    def extra_repr(self) -> str:
        return f"runtime={self.runtime} {self.version}, {self.file_bytes / 1e6:.2f} MB, quantized={self.quantized}"


class _Reordered(nn.Module):
    """A program whose outputs are put in the dataset's class order (``index[c]``: the file's output of class c)."""

    def __init__(self, net: nn.Module, index: list[int]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("index", torch.tensor(index, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).index_select(1, self.index)


def reorder_outputs(net: nn.Module, index: list[int]) -> nn.Module:
    """``net`` with its logits reordered so that column ``c`` is the file's output ``index[c]``."""
    return _Reordered(net, index)
