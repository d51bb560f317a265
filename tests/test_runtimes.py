"""int8 through pt2e for any exportable network, run on ExecuTorch (XNNPACK) and ONNX Runtime.

Each network is trained for a few steps on images whose class is their colour (so its argmax has
margins to keep), quantized once with pt2e, exported to both runtimes and checked: the runtime's argmax
agrees with the converted graph on held-out images, the file is about a quarter of the float weights,
the stored state restores a program that computes the same logits, and any batch size works.
Lowering to ExecuTorch takes tens of seconds per network: these are slow tests.
"""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from robustspec.compress import COMPRESSIONS
from robustspec.compress.base import StepContext
from robustspec.data.base import Split
from robustspec.errors import ModelError
from robustspec.metrics import is_program, is_quantized, parameter_count, stored_bytes
from robustspec.models import Normalized, build_network
from robustspec.models.programs import input_gradients
from robustspec.spec.schema import TrainRecipe

pytestmark = pytest.mark.slow

pytest.importorskip("executorch")
pytest.importorskip("onnxruntime")

CLASSES = 4
SIZE = 32


def coloured(n: int, seed: int) -> Split:
    """Images whose class is their dominant colour, with noise: easy to learn, so logits have margins."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    palette = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9], [0.9, 0.9, 0.1]])
    base = palette[labels].view(n, 3, 1, 1).expand(n, 3, SIZE, SIZE)
    images = (base + 0.25 * torch.randn(n, 3, SIZE, SIZE, generator=g)).clamp(0, 1)
    return Split((images * 255).round().to(torch.uint8), labels)


TRAIN, HELD_OUT = coloured(96, 0), coloured(256, 1)


def trained(net: nn.Module) -> Normalized:
    model = Normalized(net)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    x, y = TRAIN.images.float() / 255, TRAIN.labels
    for _ in range(3):
        for i in range(0, len(y), 32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32]).backward()
            opt.step()
    return model.eval()


def context(baseline: nn.Module) -> StepContext:
    return StepContext(
        train=TRAIN,
        num_classes=CLASSES,
        device=torch.device("cpu"),
        recipe=TrainRecipe(epochs=1, batch_size=16),
        baseline=lambda: baseline,
        new_network=lambda arch, params: pytest.fail("no step here builds a network"),
        label="test",
        held_out=lambda: HELD_OUT,
    )


def roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def pruned_resnet18() -> nn.Module:
    net = build_network("resnet18", CLASSES, {})
    prune = COMPRESSIONS.get("prune")()
    parent = Normalized(net).eval()
    result = prune.apply(parent, prune.Params.model_validate({"ratio": 0.5}), context(parent))
    return result.model.net


NETWORKS = {
    "mobilenet_v2": lambda: build_network("mobilenet_v2", CLASSES, {}),
    "efficientnet_b0": lambda: build_network("efficientnet_b0", CLASSES, {}),
    "resnet18-pruned": pruned_resnet18,
}


def argmax(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x).argmax(1)


#: (network, runtime) pairs. Lowering to ExecuTorch takes a minute (MobileNetV2) to several minutes
#: (EfficientNet-B0, whose squeeze-excitation blocks make a long graph that every XNNPACK pass re-runs) on
#: 2 cores, and EfficientNet-B0's pt2e quantization alone two minutes: those are ``heavy``, run with
#: ``pytest -m heavy tests/test_runtimes.py``. CI runs MobileNetV2 on ONNX Runtime and the pruned ResNet-18 on
#: both (and tests/test_runtime_variants.py, tests/test_load_variants.py a small ResNet), within its 15 minutes.
HEAVY = {("efficientnet_b0", "executorch"), ("efficientnet_b0", "onnx"), ("mobilenet_v2", "executorch")}
PAIRS = [
    pytest.param(
        name,
        fmt,
        id=f"{name}-{fmt}",
        marks=[pytest.mark.heavy] if (name, fmt) in HEAVY else [],
    )
    for name in NETWORKS
    for fmt in ("executorch", "onnx")
]

_QUANTIZED: dict[str, tuple] = {}


def quantized(name: str) -> tuple:
    """(float model, context, int8 graph) of a network, made once per process."""
    if name not in _QUANTIZED:
        # Seeded here: the initial weights must not depend on which tests ran before in this process.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            float_model = trained(NETWORKS[name]())
        ctx = context(float_model)
        quantize = COMPRESSIONS.get("quantize")()
        q = quantize.apply(float_model, quantize.Params.model_validate({"backend": "xnnpack", "calibration": 64}), ctx)
        _QUANTIZED[name] = (float_model, ctx, q.model)
    return _QUANTIZED[name]


@pytest.mark.parametrize("name, fmt", PAIRS)
def test_pt2e_int8_runs_on_the_runtime(name: str, fmt: str) -> None:
    float_model, ctx, graph = quantized(name)
    assert is_quantized(graph) and not input_gradients(graph)
    x = HELD_OUT.images.float() / 255
    graph_argmax = argmax(graph, x)
    # The int8 graph is the float model's, a little off: most argmax stay.
    assert (graph_argmax == argmax(float_model, x)).float().mean() >= 0.9

    export = COMPRESSIONS.get("export")()
    eparams = export.Params.model_validate({"format": fmt, "repeats": 2, "warmup": 1})
    e = export.apply(graph, eparams, ctx)
    program = e.model
    assert is_program(program) and is_quantized(program) and not input_gradients(program)
    assert e.info["runtime"] == {"executorch": "executorch", "onnx": "onnxruntime"}[fmt]
    assert e.info["runtime_agreement"] >= 0.99, e.info
    agreement = (argmax(program, x) == graph_argmax).float().mean().item()
    assert agreement >= 0.99, f"{fmt}: {agreement}"
    # int8 weights: about a quarter of the float state (the graph and scales add a little).
    size, float_bytes = stored_bytes(program), stored_bytes(float_model)
    assert abs(size - e.info["file_mb"] * 1e6) < 100
    assert 0.15 * float_bytes < size < 0.4 * float_bytes, (fmt, size, float_bytes)
    assert e.info["latency_ms"] > 0 and e.info["eager_fp32_ms"] > 0
    # Through the store's serialisation: the same program, the same logits, at any batch size.
    restored = export.restore(graph, eparams, roundtrip(e.state), ctx)
    for batch in (1, 5, 17, 40):
        with torch.inference_mode():
            assert torch.equal(restored(x[:batch]), program(x[:batch])), (fmt, batch)
    assert parameter_count(float_model) > 0


def test_the_fake_quant_copy_computes_the_int8_graph_with_gradients() -> None:
    float_model = trained(build_network("resnet10-mini", CLASSES, {}))
    ctx = context(float_model)
    quantize = COMPRESSIONS.get("quantize")()
    params = quantize.Params.model_validate({"backend": "xnnpack", "calibration": 64})
    q = quantize.apply(float_model, params, ctx).model
    copy = quantize.white_box_surrogate(float_model, params, ctx)
    assert input_gradients(copy) and not is_quantized(copy)
    x = HELD_OUT.images[:64].float() / 255
    with torch.inference_mode():
        assert torch.allclose(copy(x), q(x), atol=1e-4)
    x = x.clone().requires_grad_(True)
    copy(x).logsumexp(1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_float_export_keeps_the_float_logits() -> None:
    float_model = trained(build_network("resnet10-mini", CLASSES, {}))
    ctx = context(float_model)
    export = COMPRESSIONS.get("export")()
    e = export.apply(float_model, export.Params.model_validate({"format": "onnx", "repeats": 1}), ctx)
    assert is_program(e.model) and not is_quantized(e.model) and not input_gradients(e.model)
    x = HELD_OUT.images[:32].float() / 255
    with torch.inference_mode():
        assert torch.allclose(e.model(x), float_model(x), atol=1e-4)
    assert e.info["runtime_agreement"] == 1.0


def test_a_network_torch_export_cannot_trace_is_named() -> None:
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, CLASSES, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x).mean((2, 3))
            if y.sum() > 0:  # control flow on data: torch.export refuses it
                return y
            return -y

    model = Normalized(DataDependent()).eval()
    quantize = COMPRESSIONS.get("quantize")()
    with pytest.raises(ModelError, match=r"torch\.export cannot trace DataDependent"):
        quantize.apply(model, quantize.Params.model_validate({"backend": "xnnpack"}), context(model))
