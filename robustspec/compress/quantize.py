"""Post-training static int8 quantization (PTSQ): torch's eager flow for ResNets, pt2e for any network.

Backends ``xnnpack`` and ``onnxruntime`` go through torchao's pt2e flow (:mod:`.pt2e`) and work on any
network ``torch.export`` can trace; ``export: executorch | onnx`` then makes the deployable file. The
backends ``x86`` (also spelled ``x86-eager``), ``fbgemm``, ``qnnpack`` and ``onednn`` are the eager flow
described here, which stays for ResNets (real int8 kernels in PyTorch itself, no runtime needed).

The path is PyTorch's eager-mode ``torch.ao.quantization`` flow on torchvision's ``Quantizable`` ResNet
classes: fuse conv+bn(+relu), attach a qconfig (``get_default_qconfig(backend)``, ``x86`` by default:
per-channel int8 weights, histogram-calibrated uint8 activations), ``prepare`` (observers), calibrate on
source-domain training images, ``convert``. The result runs int8 convolutions (``torch.ao.nn.quantized``
``Conv2d``/``ConvReLU2d``) that are 4-7x faster than fp32 on CPU at batch 32 (see FACTS.md) and a
quarter of the size.

Why the eager flow stays for ResNets: its int8 kernels run in PyTorch itself, while pt2e's converted
graph is slower than fp32 in eager (reference quantize/dequantize ops) and becomes fast only once a
runtime runs it (``export``), at tens of seconds of lowering per network (benchmarks/runtimes.py).

The eager flow needs modules that quantize their inputs and add residuals through ``FloatFunctional``;
torchvision ships those (``QuantizableResNet``, ``QuantizableBasicBlock``, ``QuantizableBottleneck``) but
builds them only at standard widths. :func:`to_quantizable` therefore converts any plain torchvision
``ResNet`` by module surgery: new Quantizable shells (no weights allocated) receive the existing
convolutions, BatchNorms, shortcuts and classifier, so structurally pruned ResNets (other channel counts)
and low-rank factorized ones (a convolution replaced by a ``Sequential`` of two) convert as well.

The ``Normalized`` wrapper stays float and outside: the result is ``Normalized(int8_net, mean, std)``;
the net's ``QuantStub``/``DeQuantStub`` quantize the normalised input and dequantize the logits.

Limits: an int8 model runs on CPU only, and no gradient flows through it (``backward`` raises); attacks
deal with that elsewhere (:meth:`Quantize.white_box_surrogate`). Quantization is the last step of a
chain, but for an ``export`` of it.

Storage: the quantized wrapper's ``state_dict`` (quantized tensors, scales, zero points), which loads with
``torch.load(weights_only=True)``. ``restore`` rebuilds the same skeleton (surgery, fusion, prepare,
convert, without calibration) and loads it, so the restored model computes exactly what ``apply``'s did.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..errors import ModelError
from ..metrics import stored_bytes
from ..progress import Timer, report
from ..spec.schema import MAX_SEED, Int, Strict
from . import COMPRESSIONS
from .base import ChainPosition, StepContext, StepResult

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "QuantizeParams",
    "Quantize",
    "to_quantizable",
    "fuse",
    "quantize_net",
    "calibration_sample",
    "fake_quant_surrogate",
]

#: Calibration batch size.
CALIBRATION_BATCH = 64


#: Backends of torch's eager int8 flow (torchvision ResNets); the others go through pt2e (any network).
EAGER_BACKENDS = ("x86", "fbgemm", "qnnpack", "onednn")


class QuantizeParams(Strict):
    """``quantize: ptsq`` or ``quantize: {method: ptsq, backend: xnnpack, calibration: 256, seed: 0}``."""

    method: Literal["ptsq"] = "ptsq"
    backend: Literal["x86", "fbgemm", "qnnpack", "onednn", "xnnpack", "onnxruntime"] = Field(
        "x86",
        description="x86, fbgemm, qnnpack, onednn (or x86-eager): torch's eager int8 kernels, ResNets only; "
        "xnnpack (for export: executorch) or onnxruntime (for export: onnx): pt2e, any exportable network",
    )
    calibration: Int = Field(256, ge=1, le=100_000, description="source training images used to calibrate activations")
    seed: Int = Field(0, ge=0, le=MAX_SEED, description="seed of the calibration sample")


# --- module surgery ------------------------------------------------------------------------------------


def _shell(cls: type[nn.Module]) -> Any:
    """An instance of ``cls`` with only ``nn.Module``'s state (its own ``__init__`` would allocate weights)."""
    from torch import nn

    obj = object.__new__(cls)
    nn.Module.__init__(obj)
    return obj


def _quantizable_block(block: nn.Module) -> nn.Module:
    import torch
    from torch import nn
    from torchvision.models import resnet as tv
    from torchvision.models.quantization import resnet as qtv

    if type(block) is tv.BasicBlock:
        q = _shell(qtv.QuantizableBasicBlock)
        q.conv1, q.bn1, q.conv2, q.bn2 = block.conv1, block.bn1, block.conv2, block.bn2
        q.relu = nn.ReLU(inplace=False)  # used once, after bn1; the residual ReLU is in add_relu
        q.downsample = block.downsample
        q.stride = block.stride
        q.add_relu = torch.ao.nn.quantized.FloatFunctional()
    elif type(block) is tv.Bottleneck:
        q = _shell(qtv.QuantizableBottleneck)
        q.conv1, q.bn1, q.conv2, q.bn2, q.conv3, q.bn3 = (
            block.conv1,
            block.bn1,
            block.conv2,
            block.bn2,
            block.conv3,
            block.bn3,
        )
        q.relu = nn.ReLU(inplace=False)  # unused by the quantizable forward; kept as torchvision has it
        q.downsample = block.downsample
        q.stride = block.stride
        q.skip_add_relu = torch.ao.nn.quantized.FloatFunctional()
        q.relu1 = nn.ReLU(inplace=False)
        q.relu2 = nn.ReLU(inplace=False)
    else:
        raise ModelError(
            f"int8 quantization supports torchvision ResNet blocks (BasicBlock, Bottleneck), not {type(block).__name__}"
        )
    q.train(block.training)
    return q


def to_quantizable(net: nn.Module) -> nn.Module:
    """A torchvision ``QuantizableResNet`` made of ``net``'s own modules (shared, not copied: pass a copy).

    Works at any channel counts (pruned networks) and with convolutions factorized into a ``Sequential``.
    The result, still float, computes the same function as ``net``.
    """
    import torch
    from torch import nn
    from torchvision.models import resnet as tv
    from torchvision.models.quantization import resnet as qtv

    if type(net) is not tv.ResNet:
        raise ModelError(f"int8 quantization supports torchvision ResNets, not {type(net).__name__}")
    q = _shell(qtv.QuantizableResNet)
    # Construction-time attributes (only _make_layer reads them), for a faithful object.
    for attr in ("_norm_layer", "inplanes", "dilation", "groups", "base_width"):
        if attr in net.__dict__:
            setattr(q, attr, net.__dict__[attr])
    q.conv1, q.bn1 = net.conv1, net.bn1
    q.relu = nn.ReLU(inplace=False)
    q.maxpool = net.maxpool
    for name in ("layer1", "layer2", "layer3", "layer4"):
        setattr(q, name, nn.Sequential(*(_quantizable_block(b) for b in getattr(net, name))))
    q.avgpool, q.fc = net.avgpool, net.fc
    q.quant = torch.ao.quantization.QuantStub()
    q.dequant = torch.ao.quantization.DeQuantStub()
    q.train(net.training)
    return q


def _conv(module: nn.Module, name: str) -> str:
    """The name of the convolution that feeds the next BatchNorm: the last of a factorized ``Sequential``."""
    from torch import nn

    m = module.get_submodule(name)
    if isinstance(m, nn.Sequential) and len(m) and isinstance(m[-1], nn.Conv2d):
        return f"{name}.{len(m) - 1}"
    if not isinstance(m, nn.Conv2d):
        raise ModelError(f"int8 quantization expects a convolution at {name!r}, found {type(m).__name__}")
    return name


def fuse(qnet: nn.Module) -> nn.Module:
    """Fuse conv+bn(+relu) in place for post-training quantization (eval mode).

    The groups are those of ``QuantizableResNet.fuse_model(is_qat=False)``; the only difference is that a
    factorized convolution (``Sequential(conv k x k, conv 1 x 1)``, from low-rank) fuses its last part.
    """
    import torch
    from torchvision.models.quantization import resnet as qtv

    fuse_modules = torch.ao.quantization.fuse_modules
    fuse_modules(qnet, [[_conv(qnet, "conv1"), "bn1", "relu"]], inplace=True)
    for block in qnet.modules():
        if type(block) is qtv.QuantizableBasicBlock:
            groups = [[_conv(block, "conv1"), "bn1", "relu"], [_conv(block, "conv2"), "bn2"]]
        elif type(block) is qtv.QuantizableBottleneck:
            groups = [
                [_conv(block, "conv1"), "bn1", "relu1"],
                [_conv(block, "conv2"), "bn2", "relu2"],
                [_conv(block, "conv3"), "bn3"],
            ]
        else:
            continue
        if block.downsample is not None:
            groups.append([_conv(block, "downsample.0"), "downsample.1"])
        fuse_modules(block, groups, inplace=True)
    return qnet


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch.ao.quantization's known deprecation and calibration warnings, here only."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, UserWarning):
            # torch.ao.quantization and torch.ao.nn.quantized (the modules convert creates).
            warnings.filterwarnings("ignore", category=category, module=r"torch\.ao\.(quantization|nn\.quantized)")
            warnings.filterwarnings("ignore", category=category, message=r".*torch\.ao\.quantization.*")
        # Raised from C++ when convert quantizes weights (quantized dtypes are deprecated upstream).
        warnings.filterwarnings(
            "ignore", category=UserWarning, message=r".*quantized tensor creation functions.*deprecated.*"
        )
        warnings.filterwarnings("ignore", message=r".*must run observer before calling calculate_qparams.*")
        yield


def engine_problem(backend: str) -> str | None:
    """Why this torch build cannot run ``backend``, or None (asked when building: it needs torch)."""
    import torch

    engines = torch.backends.quantized.supported_engines
    if backend in engines:
        return None
    available = ", ".join(e for e in engines if e != "none")
    return f"quantization backend {backend!r} is not available in this torch build (available: {available})"


@contextlib.contextmanager
def _engine(backend: str) -> Iterator[None]:
    import torch

    problem = engine_problem(backend)
    if problem is not None:
        raise ModelError(problem)
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = backend
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def quantize_net(net: nn.Module, backend: str, calibrate: Any = None) -> nn.Module:
    """Surgery, fusion, prepare, ``calibrate(prepared)`` (if given), convert; ``net`` is consumed (pass a copy).

    Call inside the backend's engine (weights are packed for the current engine).
    """
    import torch

    q = to_quantizable(net.cpu().eval()).eval()
    fuse(q)
    q.qconfig = torch.ao.quantization.get_default_qconfig(backend)
    torch.ao.quantization.prepare(q, inplace=True)
    if calibrate is not None:
        calibrate(q)
    torch.ao.quantization.convert(q, inplace=True)
    return q.eval()


def _parts(parent: nn.Module) -> tuple[nn.Module, list[float], list[float]]:
    from ..models.wrapper import Normalized

    if not isinstance(parent, Normalized):
        raise ModelError(f"int8 quantization expects a Normalized ResNet, got {type(parent).__name__}")
    return parent.net, *parent.stats()


def calibration_sample(params: QuantizeParams, ctx: StepContext) -> Any:
    """Indices of the source training images that calibrate activations: ``params.calibration`` of them,
    drawn with ``params.seed``. The int8 step and its fake-quant surrogate both use this one sample, so the
    surrogate's scales are the int8 model's."""
    import torch

    n = min(params.calibration, len(ctx.train))
    if n == 0:
        raise ModelError("int8 calibration needs source training images, and the train split is empty")
    g = torch.Generator().manual_seed(params.seed)
    return torch.randperm(len(ctx.train), generator=g)[:n]


# --- the step ------------------------------------------------------------------------------------------


@COMPRESSIONS.register("quantize")
class Quantize:
    """``quantize: ptsq``: int8 post-training static quantization; only ``export`` may follow it."""

    Params = QuantizeParams

    def libraries_for(self, params: QuantizeParams) -> tuple[str, ...]:
        """Distributions besides torch whose versions decide the result (they enter the step's key)."""
        return () if params.backend in EAGER_BACKENDS else ("torchao", "executorch")

    def parse(self, value: Any) -> Any:
        if isinstance(value, str):  # `quantize: ptsq`; another word is then reported as an unknown method
            return {"method": value}
        if isinstance(value, dict) and value.get("backend") == "x86-eager":
            return {**value, "backend": "x86"}  # the eager x86 path's long name; one key for both spellings
        return value

    def check(self, params: QuantizeParams, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        # The engine is checked when building (engine_problem): asking torch here would import it at collection.
        problems = []
        if any(step != "export" for step in position.following):
            problems.append(
                "quantize must be the last step (export may follow): an int8 model is not compressed further"
            )
        if "quantize" in position.previous:
            problems.append("quantize appears twice: a model is quantized once")
        eager = params.backend in EAGER_BACKENDS
        if eager and not arch.startswith("resnet"):
            problems.append(
                f"backend {params.backend} (torch's eager int8 flow) supports torchvision ResNets (resnet18 ... "
                f"resnet152, resnet10-*), not {arch!r}: use backend xnnpack (ExecuTorch) or onnxruntime, "
                "which quantize any network torch.export can trace"
            )
        if eager and "export" in position.following:
            problems.append(
                f"backend {params.backend} makes eager int8 modules, which no runtime exports: "
                "quantize with backend xnnpack (export: executorch) or onnxruntime (export: onnx)"
            )
        return problems

    def apply(self, parent: nn.Module, params: QuantizeParams, ctx: StepContext) -> StepResult:
        if params.backend not in EAGER_BACKENDS:
            return self._apply_pt2e(parent, params, ctx)
        import torch

        from ..models.wrapper import Normalized

        timer = Timer()
        net, mean, std = _parts(parent)
        net = copy.deepcopy(net).cpu().eval()
        images = ctx.train.images
        index = calibration_sample(params, ctx)
        n = len(index)
        report(f"int8 {ctx.label}: calibrating on {n} images ({params.backend})")

        def calibrate(q: nn.Module) -> None:
            norm = Normalized(q, mean, std).eval()
            with torch.inference_mode():
                for start in range(0, n, CALIBRATION_BATCH):
                    batch = images[index[start : start + CALIBRATION_BATCH]].float().div_(255.0)
                    norm(batch)

        with _quiet(), _engine(params.backend):
            q = quantize_net(net, params.backend, calibrate)
        model = Normalized(q, mean, std).eval()
        state_dict = model.state_dict()
        report(f"int8 {ctx.label}: done in {timer.seconds:.1f} s, {stored_bytes(model) / 1e6:.1f} MB")
        return StepResult(model, {"state_dict": state_dict}, info={"backend": params.backend, "calibration": n})

    def _prepared(self, parent: nn.Module, params: QuantizeParams, ctx: StepContext) -> tuple[nn.Module, Any, Any]:
        """The parent's network exported, prepared and calibrated by pt2e; with a normalised example batch."""
        from . import pt2e

        net, mean, std = _parts(parent)
        index = calibration_sample(params, ctx)
        example = parent.normalize(ctx.train.images[index[:4]].float().div_(255.0))
        batches = pt2e.batches_of(ctx.train.images, index, CALIBRATION_BATCH, parent.normalize)
        prepared = pt2e.prepare(copy.deepcopy(net).cpu().eval(), example, params.backend, batches)
        return prepared, example, (mean, std)

    def _apply_pt2e(self, parent: nn.Module, params: QuantizeParams, ctx: StepContext) -> StepResult:
        import torch

        from . import pt2e

        timer = Timer()
        n = len(calibration_sample(params, ctx))
        report(f"int8 {ctx.label}: pt2e, calibrating on {n} images ({params.backend})")
        prepared, example, (mean, std) = self._prepared(parent, params, ctx)
        data = pt2e.save_graph(pt2e.convert(prepared), example)
        model = _graph_model(data, mean, std)  # what restore() gives, so a first run and a later one agree
        report(f"int8 {ctx.label}: done in {timer.seconds:.1f} s, {len(data) / 1e6:.1f} MB graph")
        state = {"graph": torch.frombuffer(bytearray(data), dtype=torch.uint8), "mean": mean, "std": std}
        return StepResult(model, state, info={"backend": params.backend, "calibration": n})

    def restore(self, parent: nn.Module, params: QuantizeParams, state: dict[str, Any], ctx: StepContext) -> nn.Module:
        from ..models.wrapper import Normalized

        if params.backend not in EAGER_BACKENDS:
            return _graph_model(state["graph"].numpy().tobytes(), state["mean"], state["std"])
        net, mean, std = _parts(parent)
        with _quiet(), _engine(params.backend):
            q = quantize_net(copy.deepcopy(net), params.backend)
            model = Normalized(q, mean, std)
            model.load_state_dict(state["state_dict"])
        return model.eval()

    def white_box_surrogate(self, parent: nn.Module, params: QuantizeParams, ctx: StepContext) -> nn.Module:
        """A float copy of the int8 model with input gradients (fake quantization), for white-box attacks."""
        if params.backend in EAGER_BACKENDS:
            return fake_quant_surrogate(parent, params, ctx)
        from ..models.programs import ExportedGraph
        from ..models.wrapper import Normalized
        from . import pt2e

        prepared, _, (mean, std) = self._prepared(parent, params, ctx)
        graph = ExportedGraph(pt2e.fake_quant_graph(prepared), quantized=False, input_gradients=True)
        model = Normalized(graph, mean, std).eval()
        model.requires_grad_(False)
        return model


def _graph_model(data: bytes, mean: list[float], std: list[float]) -> nn.Module:
    """``Normalized`` around the int8 graph stored as ``data`` (pt2e's converted graph, torch.export bytes)."""
    from ..models.programs import ExportedGraph
    from ..models.wrapper import Normalized
    from . import pt2e

    graph = ExportedGraph(pt2e.load_graph(data), quantized=True, input_gradients=False, file_bytes=len(data))
    return Normalized(graph, mean, std).eval()


# --- a straight-through float copy of the int8 model, for white-box attacks ---------------------------


@functools.cache
def _int8_fake_quantize() -> type:
    """:class:`_Int8FakeQuantize`, defined on first use (its base class is torch's: importing this module
    must not import torch)."""
    import torch

    class _Int8FakeQuantize(torch.ao.quantization.FakeQuantize):
        """``FakeQuantize`` that clamps to the full integer range of its dtype, as int8 tensors do.

        With ``reduce_range=True`` (the x86 and fbgemm activation qconfigs) the observer computes the scale
        and zero point for 7 bits (0..127), but the converted model stores ``quint8`` tensors, and its
        quantize, convolution and add kernels clamp to 0..255: values beyond the calibrated range survive up
        to twice as far. Stock ``FakeQuantize`` clamps to the observer's 0..127 and would cut them off, which
        on out-of-distribution inputs (noise, large perturbations) changes the logits. So: qparams from the
        observer, unchanged; clamp bounds from ``torch.iinfo(dtype)``. For weights (qint8, -128..127, no
        reduced range) the two bounds coincide.
        """

        def forward(self, X: torch.Tensor) -> torch.Tensor:
            if self.observer_enabled[0] == 1:
                self.activation_post_process(X.detach())
                scale, zero_point = self.calculate_qparams()
                self.scale.resize_(scale.shape).copy_(scale)
                self.zero_point.resize_(zero_point.shape).copy_(zero_point)
            if self.fake_quant_enabled[0] == 1:
                info = torch.iinfo(self.dtype)
                if self.is_per_channel:
                    return torch.fake_quantize_per_channel_affine(
                        X, self.scale, self.zero_point, self.ch_axis, info.min, info.max
                    )
                return torch.fake_quantize_per_tensor_affine(X, self.scale, self.zero_point, info.min, info.max)
            return X

    return _Int8FakeQuantize


def _fake_quant_qconfig(backend: str) -> Any:
    """``get_default_qconfig(backend)``'s own observers, each wrapped in an :class:`_Int8FakeQuantize`.

    Not ``get_default_qat_qconfig(backend)``: its observers are moving-average min/max ones
    (``MovingAverageMinMaxObserver``, ``MovingAveragePerChannelMinMaxObserver``), while PTSQ calibrates
    activations with ``HistogramObserver`` (an L2-optimal clipping range, narrower than min/max) and
    weights with ``PerChannelMinMaxObserver`` (x86, fbgemm, onednn; ``MinMaxObserver`` for qnnpack);
    other observers give other scales, and the copy would simulate a different int8 model. The observer
    partials carry the dtype, qscheme and reduce_range, so scales and zero points match too.
    """
    import torch

    fake_quantize = _int8_fake_quantize()
    ptsq = torch.ao.quantization.get_default_qconfig(backend)
    return torch.ao.quantization.QConfig(
        activation=fake_quantize.with_args(observer=ptsq.activation),
        weight=fake_quantize.with_args(observer=ptsq.weight),
    )


def fake_quant_surrogate(parent: nn.Module, params: QuantizeParams, ctx: StepContext) -> nn.Module:
    """A float model that computes what ``Quantize().apply(parent, params, ctx).model`` computes, with gradients.

    The int8 model has no input gradients; this copy replaces each quantize/dequantize by a fake
    quantization (round and clamp on the int8 grid, straight-through gradient), so white-box attacks can
    run on it; their adversarial inputs are then scored on the real int8 model.

    Built as PTSQ builds the int8 model: a CPU copy of the parent in eval mode, :func:`to_quantizable`,
    the same eval-mode :func:`fuse` (BatchNorm folded into the convolutions, so nothing is left that
    train mode would change), then ``prepare_qat`` with :func:`_fake_quant_qconfig` (the PTSQ observers
    in fake-quant modules that clamp as int8 tensors do; see there why not the default QAT qconfig, and
    :class:`_Int8FakeQuantize` why not the stock ``FakeQuantize``). ``prepare_qat`` insists on
    train mode, so the net is in train mode for that call only. Calibration uses the same images in the
    same order (seed, count, batches) with fake quantization off and observers on, so every observer
    sees the float activations PTSQ's observers see and ends with the same histogram, hence the same
    scales and zero points; weight scales come from the same folded weights. Then observers are disabled
    (``FakeQuantize`` modules otherwise keep updating their statistics in eval mode on every forward) and
    fake quantization enabled: the result is fixed and deterministic.

    Remaining differences from the int8 kernels are rounding details (int8 average pooling rounds its
    output to the input's grid, the int8 kernels requantize in their own arithmetic): on a trained
    resnet10-mini the logits differ by about 1e-4 on average (spread 0.6) and argmax agrees on 100% of
    calibration and held-out images and 99% of uniform noise images. Parameters are frozen
    (``requires_grad=False``): only input gradients are meant to be taken. Returns
    ``Normalized(fake_quant_net, mean, std)`` in eval mode.
    """
    import torch
    from torch import nn

    from ..models.wrapper import Normalized

    net, mean, std = _parts(parent)
    q = to_quantizable(copy.deepcopy(net).cpu().eval()).eval()
    fuse(q)
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in q.modules()):
        raise ModelError("fake-quant surrogate: a BatchNorm survived fusion; train mode would change it")
    images = ctx.train.images
    index = calibration_sample(params, ctx)  # the sample Quantize.apply draws
    n = len(index)
    ao = torch.ao.quantization
    with _quiet():
        q.qconfig = _fake_quant_qconfig(params.backend)
        q.train()
        ao.prepare_qat(q, inplace=True)
        q.eval()
        q.apply(ao.disable_fake_quant)
        q.apply(ao.enable_observer)
        norm = Normalized(q, mean, std).eval()
        with torch.no_grad():  # not inference_mode: the observed scales are used later under autograd
            for start in range(0, n, CALIBRATION_BATCH):
                norm(images[index[start : start + CALIBRATION_BATCH]].float().div_(255.0))
        q.apply(ao.disable_observer)
        q.apply(ao.enable_fake_quant)
    norm.requires_grad_(False)
    return norm.eval()
