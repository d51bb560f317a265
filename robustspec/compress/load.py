"""``load: {file: model.onnx}``: a variant that is the team's own exported file, tested as shipped.

The file is what the team's pipeline produced: a ``.pt2`` (``torch.export.save``), an ``.onnx`` or an
ExecuTorch ``.pte``. It is the whole chain of its variant; the suite model it belongs to is its float
parent (``drop-vs-baseline``, ``retained``, transfer attacks compare against that model's baseline).

Input spec: the file takes images of the dataset's size; ``normalize`` says what it expects (``imagenet``,
the default, or ``{mean: [...], std: [...]}``: robustspec normalises before calling it; ``none``: the
file takes pixels in [0, 1], normalising inside); ``classes`` lists the dataset's class names in the
order of the file's outputs when it differs from the dataset's.

The key holds the file's SHA-256 and size, not its path: a moved file keeps its results, an edited one
is tested again. The bytes are stored with the artifact. Checked when the suite is loaded: the file
exists, its suffix is a known format and its first bytes are one (a ``.pte``'s flatbuffer identifier,
a ``.pt2``'s zip header, an ``.onnx`` that parses), and an ``.onnx`` file's input is an image batch and
its output count the dataset's class count. When built, a batch of source images runs through it and
its output must have one logit per class. A ``.pt2`` of a float network keeps its input gradients
(white-box attacks run on it); an ``.onnx`` or ``.pte`` is attacked as any runtime's file.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..errors import ModelError
from ..progress import report
from ..spec.schema import Flag, Int, Real, Strict
from . import COMPRESSIONS
from .base import ChainPosition, StepContext, StepResult

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Load", "LoadParams"]

#: File suffix -> format.
FORMATS = {".pt2": "pt2", ".onnx": "onnx", ".pte": "executorch"}


class Normalization(Strict):
    mean: list[Real] = Field(min_length=1, max_length=4)
    std: list[Real] = Field(min_length=1, max_length=4)


class LoadParams(Strict):
    """``load: model.onnx`` or ``load: {file: model.pte, normalize: none, classes: [...], batch: 1}``."""

    file: str = Field(min_length=1, description="the exported model, relative to the suite file: .pt2, .onnx or .pte")
    normalize: Literal["imagenet", "none"] | Normalization = Field(
        "imagenet", description="what the file expects: ImageNet normalisation, [0, 1] pixels (none), or {mean, std}"
    )
    classes: list[str] | None = Field(
        None, description="the dataset's class names in the order of the file's outputs (default: the dataset's order)"
    )
    batch: Int = Field(1, ge=1, le=1024, description="the batch size a .pte file was exported for (fixed in the file)")
    quantized: Flag | None = Field(
        None, description="whether the file computes in int8 (default: read from .onnx and .pt2 files; false for .pte)"
    )


def _format(path: str) -> str | None:
    return FORMATS.get(Path(path).suffix.lower())


def _onnx_facts(source: str | bytes) -> tuple[str | None, list[Any], int | None, bool, int]:
    """(problem, input shape, output count, QDQ, weight elements) of an ONNX file (a path) or its bytes,
    read with onnx (no torch)."""
    try:
        import onnx
    except ImportError:
        return None, [], None, False, 0
    try:
        if isinstance(source, bytes):
            model = onnx.load_model_from_string(source)
        else:
            model = onnx.load_model(source, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and others
        return f"not an ONNX model: {' '.join(str(e).split())[:200]}", [], None, False, 0
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        outputs = len(model.graph.output)
        problem = f"an image classifier has one input and one output; this file has {len(inputs)} and {outputs}"
        return problem, [], None, False, 0
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in inputs[0].type.tensor_type.shape.dim]
    out = [d.dim_value if d.HasField("dim_value") else None for d in model.graph.output[0].type.tensor_type.shape.dim]
    qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv") for n in model.graph.node)
    weights = sum(math.prod(int(d) for d in t.dims) for t in model.graph.initializer)
    return None, dims, out[-1] if len(out) == 2 else None, qdq, weights


@functools.lru_cache(maxsize=64)
def _onnx_file_facts(path: str, size: int, mtime_ns: int) -> tuple[str | None, list[Any], int | None, bool, int]:
    """:func:`_onnx_facts` of a file, read once per process per (path, size, mtime): validation and the
    step's check both ask."""
    return _onnx_facts(path)


def _header_problem(path: Path, fmt: str) -> str | None:
    with open(path, "rb") as f:
        head = f.read(8)
    if fmt == "executorch" and head[4:6] != b"ET":
        return "not an ExecuTorch program (no 'ET' flatbuffer identifier at byte 4)"
    if fmt == "pt2" and head[:4] != b"PK\x03\x04":
        return "not a torch.export archive (.pt2 files are zip archives)"
    return None


@COMPRESSIONS.register("load")
class Load:
    """``load: {file: ...}``: the variant is a model file the team exported (.pt2, .onnx, .pte)."""

    Params = LoadParams

    def parse(self, value: Any) -> Any:
        return {"file": value} if isinstance(value, str) else value

    def libraries_for(self, params: LoadParams) -> tuple[str, ...]:
        return {"onnx": ("onnxruntime",), "executorch": ("executorch",)}.get(_format(params.file) or "", ())

    def resolve(self, params: LoadParams, base: Path) -> tuple[LoadParams, list[tuple[str, str]]]:
        """The file's absolute path next to the suite file, and what is wrong with it (field, message)."""
        path = (base / os.path.expanduser(params.file)).resolve()
        fmt = _format(params.file)
        if fmt is None:
            return params, [("file", f"unknown model file type {Path(params.file).suffix!r}: use .pt2, .onnx or .pte")]
        if not path.is_file():
            return params, [("file", f"model file not found: {path}")]
        if path.stat().st_size == 0:
            return params, [("file", f"model file is empty: {path}")]
        problem = _header_problem(path, fmt)
        if fmt == "onnx" and problem is None:
            stat = path.stat()
            problem, dims, _, _, _ = _onnx_file_facts(str(path), stat.st_size, stat.st_mtime_ns)
            if problem is None and dims and (len(dims) != 4 or dims[1] not in (3, "3")):
                problem = f"the file's input has shape {dims}; an image classifier takes [batch, 3, height, width]"
        if problem is not None:
            return params, [("file", f"{path.name}: {problem}")]
        return params.model_copy(update={"file": str(path)}), []

    def key_params(self, params: LoadParams) -> dict[str, Any]:
        from ..models.weights import weights_digest

        dumped = params.model_dump(mode="json")
        dumped["file"] = {"format": _format(params.file), **weights_digest(params.file)}
        return dumped

    def check(self, params: LoadParams, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        problems = []
        if position.previous or position.following:
            problems.append("load is the whole chain of its variant: the file is tested as it was shipped")
        if position.num_classes and params.classes is not None and len(params.classes) != position.num_classes:
            problems.append(f"classes lists {len(params.classes)} names; the dataset has {position.num_classes}")
        if position.num_classes and _format(params.file) == "onnx" and os.path.isfile(params.file):
            stat = os.stat(params.file)
            _, _, outputs, _, _ = _onnx_file_facts(params.file, stat.st_size, stat.st_mtime_ns)
            if outputs and outputs != position.num_classes:
                problems.append(
                    f"{Path(params.file).name} gives {outputs} outputs; the dataset has {position.num_classes} classes"
                )
        return problems

    # -- building -------------------------------------------------------------------------------------------

    def _model(self, data: bytes, params: LoadParams, ctx: StepContext) -> nn.Module:
        import torch

        from ..models.programs import ExportedGraph
        from ..models.wrapper import IMAGENET_MEAN, IMAGENET_STD, Normalized
        from ..runtimes import RUNTIMES

        fmt = _format(params.file)
        if fmt == "pt2":
            from .pt2e import load_graph

            try:
                graph = load_graph(data)
            except Exception as e:
                raise ModelError(f"{Path(params.file).name}: not a torch.export program: {e}") from None
            ops = {str(n.target) for n in graph.graph.nodes if n.op == "call_function"}
            quantized = params.quantized if params.quantized is not None else any("quantize" in o for o in ops)
            net: nn.Module = ExportedGraph(
                graph, quantized=quantized, input_gradients=not quantized, file_bytes=len(data)
            )
            net.parameters_count = sum(v.numel() for v in graph.state_dict().values())
        else:
            quantized, weights = bool(params.quantized), None
            if fmt == "onnx":
                facts = _onnx_facts(data)
                quantized = facts[3] if params.quantized is None else quantized
                weights = facts[4] or None
            net = RUNTIMES.get({"onnx": "onnx", "executorch": "executorch"}[fmt])().load(
                data, quantized=quantized, batch=params.batch
            )
            net.parameters_count = weights
        if params.classes is not None:
            from ..models.programs import reorder_outputs

            names = ctx.class_names() if ctx.class_names else None
            if names is None:
                raise ModelError("load: classes given, but the dataset's class names are not known here")
            unknown = sorted(set(params.classes) - set(names))
            if unknown:
                raise ModelError(f"load: classes {unknown} are not the dataset's ({', '.join(names)})")
            net = reorder_outputs(net, [params.classes.index(name) for name in names])
        if params.normalize == "none":
            mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
        elif params.normalize == "imagenet":
            mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        else:
            mean, std = params.normalize.mean, params.normalize.std
        model = Normalized(net, mean, std).eval()
        probe = ctx.train.images[:2].float().div_(255.0)
        name = Path(params.file).name
        try:
            with torch.inference_mode():
                out = model(probe)
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(
                f"{name} cannot run on the dataset's images ({tuple(probe.shape[1:])}): {' '.join(str(e).split())[:300]}"
            ) from None
        if out.ndim != 2 or out.shape[1] != ctx.num_classes:
            raise ModelError(
                f"{name} gives outputs of shape {tuple(out.shape)} for {probe.shape[0]} images; "
                f"the dataset has {ctx.num_classes} classes"
            )
        return model

    def apply(self, parent: nn.Module, params: LoadParams, ctx: StepContext) -> StepResult:
        import torch

        from ..metrics import is_quantized
        from .export import latency_info

        data = Path(params.file).read_bytes()
        model = self._model(data, params, ctx)
        info: dict[str, Any] = {"format": _format(params.file), "file_mb": round(len(data) / 1e6, 4)}
        runtime = getattr(model.net, "runtime", None)
        if runtime is not None:
            info.update(runtime=runtime, runtime_version=model.net.version)
        info.update(latency_info(model, ctx))
        report(f"load {ctx.label}: {Path(params.file).name}, {len(data) / 1e6:.2f} MB, int8: {is_quantized(model)}")
        return StepResult(model, {"file": torch.frombuffer(bytearray(data), dtype=torch.uint8)}, info=info)

    def restore(self, parent: nn.Module, params: LoadParams, state: dict[str, Any], ctx: StepContext) -> nn.Module:
        return self._model(state["file"].numpy().tobytes(), params, ctx)
