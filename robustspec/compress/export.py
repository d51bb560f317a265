"""``export: executorch | onnx``: the deployable file of a variant, stored and evaluated in its runtime.

The step exports its parent (a float network, or the int8 graph of ``quantize`` with a pt2e backend)
through the runtime's exporter (:mod:`robustspec.runtimes`), stores the file's bytes, and gives back a
module that runs the file in the runtime: every evaluation, corruption and black-box attack of the
variant runs on what ships. ``max-size-mb`` measures the file.

Recorded with the artifact (the variant's ``export.*`` properties):

- ``runtime``, ``runtime_version``;
- ``runtime_agreement``: the share of held-out images (the source test split, up to ``agreement``) on
  which the runtime's argmax is the parent graph's, with ``agreement_images``;
- ``latency_ms``, ``eager_fp32_ms`` and ``latency_ratio``: the file's latency in its runtime against
  the uncompressed float model in PyTorch eager, measured in the same process, at ``latency_batch``
  images, one thread, after ``warmup`` runs (median of ``repeats``). Build-time measurements on a shared
  machine are noisy: ``max-latency-ratio`` should gate with ``severity: warn``.
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field

from ..errors import ModelError
from ..evaluate import predict
from ..progress import Timer, report
from ..spec.refs import Choices
from ..spec.schema import Int, Strict
from . import COMPRESSIONS
from .base import ChainPosition, StepContext, StepResult

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Export", "ExportParams", "latency_info"]


def _runtime_names() -> list[str]:
    from ..runtimes import RUNTIMES

    return RUNTIMES.names()


def _known_runtime(name: str) -> str:
    from ..runtimes import RUNTIMES

    if name not in RUNTIMES:
        raise ValueError(RUNTIMES.unknown_message(name))
    return name


class ExportParams(Strict):
    """``export: executorch`` or ``export: {format: onnx, agreement: 512}``."""

    format: Annotated[str, AfterValidator(_known_runtime), Choices(_runtime_names)] = Field(
        description="the runtime that runs the file: executorch (.pte, XNNPACK) or onnx (.onnx, ONNX Runtime)"
    )
    agreement: Int = Field(
        512, ge=1, le=100_000, description="held-out source images on which runtime and graph argmax are compared"
    )
    batch: Int = Field(
        16,
        ge=1,
        le=1024,
        description="images per call the file is exported for (ExecuTorch fixes it; ONNX files take any batch)",
    )
    latency_batch: Int = Field(8, ge=1, le=1024, description="images per call when latency is measured")
    warmup: Int = Field(3, ge=0, le=1000, description="calls before latency is timed")
    repeats: Int = Field(10, ge=1, le=10_000, description="timed calls (the median is recorded)")


def _median_ms(fn: Any, x: Any, warmup: int, repeats: int) -> float:
    import torch

    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def latency_info(
    model: nn.Module, ctx: StepContext, batch: int = 8, warmup: int = 3, repeats: int = 10
) -> dict[str, Any]:
    """``model``'s latency against the uncompressed baseline in fp32 eager: same process, same ``batch``
    source images, one thread, the median of ``repeats`` calls after ``warmup``."""
    import torch

    x = ctx.train.images[:batch].float().div_(255.0)
    if x.shape[0] < batch:
        x = x[torch.arange(batch) % max(1, x.shape[0])]
    baseline = ctx.baseline()
    if next((p.device.type for p in baseline.parameters()), "cpu") != "cpu":
        baseline = copy.deepcopy(baseline).cpu()  # the workspace's copy stays where it is
    baseline.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ms = _median_ms(model, x, warmup, repeats)
        eager = _median_ms(baseline, x, warmup, repeats)
    finally:
        torch.set_num_threads(threads)
    return {
        "latency_ms": round(ms, 3),
        "eager_fp32_ms": round(eager, 3),
        "latency_ratio": round(ms / eager, 4) if eager > 0 else 0.0,
        "latency_batch": batch,
        "latency_threads": 1,
    }


@COMPRESSIONS.register("export")
class Export:
    """``export: executorch | onnx``: store the deployable file, evaluate the variant in its runtime."""

    Params = ExportParams

    def parse(self, value: Any) -> Any:
        return {"format": value} if isinstance(value, str) else value

    def libraries_for(self, params: ExportParams) -> tuple[str, ...]:
        from ..runtimes import RUNTIMES

        return RUNTIMES.get(params.format).libraries

    def check(self, params: ExportParams, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        problems = []
        if position.following:
            problems.append("export must be the last step: a runtime's file is not compressed further")
        if "export" in position.previous:
            problems.append("export appears twice: a variant ships one file")
        return problems

    @staticmethod
    def _parts(parent: nn.Module) -> tuple[nn.Module, list[float], list[float], bool]:
        from ..metrics import _int8, is_quantized
        from ..models.programs import ExportedGraph
        from ..models.wrapper import Normalized

        if not isinstance(parent, Normalized):
            raise ModelError(f"export expects a Normalized network, got {type(parent).__name__}")
        if any(_int8(m) for m in parent.modules()):
            raise ModelError(
                "export: an eager int8 model (quantize backend x86, fbgemm, qnnpack or onednn) cannot be exported; "
                "quantize with backend xnnpack or onnxruntime"
            )
        net = parent.net
        if isinstance(net, ExportedGraph):
            net = net.graph
        else:
            net = copy.deepcopy(net).cpu().eval()
        return net, *parent.stats(), is_quantized(parent)

    def apply(self, parent: nn.Module, params: ExportParams, ctx: StepContext) -> StepResult:
        import torch

        from ..models.wrapper import Normalized
        from ..runtimes import RUNTIMES

        timer = Timer()
        net, mean, std, quantized = self._parts(parent)
        runtime = RUNTIMES.get(params.format)()
        example = parent.normalize(ctx.train.images[:4].float().div_(255.0)).cpu()
        report(f"export {ctx.label}: {params.format} ({'int8' if quantized else 'fp32'}), lowering")
        data = runtime.export(net, example, params.batch)
        model = Normalized(runtime.load(data, quantized=quantized, batch=params.batch), mean, std).eval()
        info: dict[str, Any] = {
            "runtime": model.net.runtime,
            "runtime_version": model.net.version,
            "file_mb": round(len(data) / 1e6, 4),
        }
        info.update(self._agreement(parent, model, params, ctx))
        info.update(latency_info(model, ctx, params.latency_batch, params.warmup, params.repeats))
        report(
            f"export {ctx.label}: {len(data) / 1e6:.2f} MB {runtime.suffix}, agreement "
            f"{info['runtime_agreement']:.3f}, {info['latency_ms']:.1f} ms ({timer.seconds:.0f}s)"
        )
        state = {
            "file": torch.frombuffer(bytearray(data), dtype=torch.uint8),
            "quantized": quantized,
            "mean": mean,
            "std": std,
        }
        return StepResult(model, state, info=info)

    def _agreement(self, parent: nn.Module, model: nn.Module, params: ExportParams, ctx: StepContext) -> dict[str, Any]:
        held_out = ctx.held_out()
        n = min(params.agreement, len(held_out))
        if n == 0:
            return {"runtime_agreement": 1.0, "agreement_images": 0}
        x = held_out.images[:n]
        same = (predict(parent, x, device=ctx.device) == predict(model, x, device=ctx.device)).float().mean().item()
        return {"runtime_agreement": round(same, 6), "agreement_images": n}

    def restore(self, parent: nn.Module, params: ExportParams, state: dict[str, Any], ctx: StepContext) -> nn.Module:
        from ..models.wrapper import Normalized
        from ..runtimes import RUNTIMES

        data = state["file"].numpy().tobytes()
        program = RUNTIMES.get(params.format)().load(data, quantized=bool(state["quantized"]), batch=params.batch)
        return Normalized(program, state["mean"], state["std"]).eval()
