"""Int8 post-training static quantization: surgery, accuracy, int8 kernels, store round trip, size, chain rules."""

from __future__ import annotations

import io

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from robustspec.compress.base import ChainPosition, StepContext
from robustspec.compress.quantize import Quantize, QuantizeParams, fuse, to_quantizable
from robustspec.data.base import Split
from robustspec.data.synthetic import OfficeSynth
from robustspec.metrics import stored_bytes
from robustspec.models import Normalized, build_network
from robustspec.spec.schema import TrainRecipe
from robustspec.train.supervised import train_supervised

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _never(*_args, **_kwargs):
    raise AssertionError("quantization must not ask for the baseline or a new network")


def _split(n: int = 16, size: int = 32, classes: int = 5) -> Split:
    g = torch.Generator().manual_seed(1)
    return Split(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % classes)


def _ctx(split: Split, classes: int = 5) -> StepContext:
    return StepContext(
        train=split, num_classes=classes, device=CPU, recipe=TrainRecipe(epochs=0), baseline=_never, new_network=_never
    )


def _net(arch: str = "resnet10-mini", classes: int = 5, size: int = 32, seed: int = 0) -> Normalized:
    """Random init with BatchNorm running statistics from a few train-mode passes (non-trivial BN folding)."""
    torch.manual_seed(seed)
    model = Normalized(build_network(arch, classes))
    model.train()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, size, size, generator=g))
    return model.eval()


def _params(**kw) -> QuantizeParams:
    return QuantizeParams.model_validate(kw)


def _quantized(model: nn.Module, split: Split, **kw) -> nn.Module:
    return Quantize().apply(model, _params(calibration=len(split), **kw), _ctx(split)).model


# --- surgery -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "resnet10-mini"])
def test_float_quantizable_model_computes_the_same_function(arch: str) -> None:
    from torchvision.models.quantization.resnet import QuantizableBottleneck, QuantizableResNet

    model = _net(arch)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
        q = to_quantizable(model.net)
        assert type(q) is QuantizableResNet
        assert (type(q.layer1[0]) is QuantizableBottleneck) == (arch == "resnet50")
        got = Normalized(q, model.mean.flatten().tolist(), model.std.flatten().tolist()).eval()(x)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        fused = fuse(q)  # conv+bn folding changes rounding only
        torch.testing.assert_close(Normalized(fused).eval()(x), expected, rtol=1e-4, atol=1e-4)
    # Transplanted, not copied: the quantizable net holds the original modules.
    assert q.fc is model.net.fc


def test_surgery_allocates_no_weights_of_its_own() -> None:
    model = _net("resnet50")
    q = to_quantizable(model.net)
    assert {id(p) for p in q.parameters()} == {id(p) for p in model.net.parameters()}


def test_apply_leaves_the_parent_alone_and_restores_the_engine() -> None:
    from torchvision.models.resnet import ResNet

    model, split = _net(), _split()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    engine = torch.backends.quantized.engine
    _quantized(model, split, backend="qnnpack")
    assert torch.backends.quantized.engine == engine
    assert type(model.net) is ResNet
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_rejects_what_is_not_a_torchvision_resnet() -> None:
    from robustspec.errors import ModelError

    with pytest.raises(ModelError, match="torchvision ResNets"):
        to_quantizable(nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(ModelError, match="Normalized"):
        Quantize().apply(_net().net, _params(), _ctx(_split()))


# --- the int8 model ------------------------------------------------------------------------------------


def test_runs_int8_kernels() -> None:
    model = _quantized(_net(), _split())
    kinds = {type(m) for m in model.modules()}
    assert torch.ao.nn.quantized.Conv2d in kinds and torch.ao.nn.intrinsic.quantized.ConvReLU2d in kinds
    assert torch.ao.nn.quantized.Linear in kinds
    assert not any(isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) for m in model.modules())
    assert model.net.conv1.weight().dtype == torch.qint8
    assert isinstance(model, Normalized)  # the wrapper stays float and outside


def test_int8_agrees_with_float_on_a_trained_model() -> None:
    data = OfficeSynth(classes=4, image_size=32, train_per_class=30).build_domain("amazon")["train"]
    torch.manual_seed(0)
    model = Normalized(build_network("resnet10-mini", 4))
    train_supervised(model, data, TrainRecipe(epochs=2, batch_size=8), device=CPU, label="quantize test")
    model.eval()
    result = Quantize().apply(model, _params(calibration=len(data)), _ctx(data, classes=4))
    assert result.info == {"backend": "x86", "calibration": len(data)}
    x = data.float_images()
    with torch.no_grad():
        ref, got = model(x), result.model(x)
    agreement = (ref.argmax(1) == got.argmax(1)).float().mean().item()
    error = (ref - got).abs().mean().item()
    assert (ref.argmax(1) == data.labels).float().mean() > 0.4  # a real signal (4 classes)
    assert agreement >= 0.9, agreement
    assert error < 0.15 * ref.std().item(), (error, ref.std().item())


def test_calibration_is_seeded() -> None:
    model, split = _net(), _split(n=32)
    x = split.float_images()
    p = _params(calibration=8, seed=3)
    with torch.no_grad():
        y1 = Quantize().apply(model, p, _ctx(split)).model(x)
        y2 = Quantize().apply(model, p, _ctx(split)).model(x)
        y3 = Quantize().apply(model, _params(calibration=8, seed=4), _ctx(split)).model(x)
    assert torch.equal(y1, y2) and not torch.equal(y1, y3)


def test_calibration_larger_than_the_split_uses_all_of_it() -> None:
    split = _split(n=10)
    result = Quantize().apply(_net(), _params(calibration=256), _ctx(split))
    assert result.info["calibration"] == 10


# --- store ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet10-mini", "resnet50"])
def test_store_round_trip_is_exact(arch: str) -> None:
    model, split = _net(arch), _split(n=8)
    params = _params(calibration=8)
    result = Quantize().apply(model, params, _ctx(split))
    buffer = io.BytesIO()
    torch.save(result.state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    restored = Quantize().restore(model, params, state, _ctx(split))
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(restored(x), result.model(x))


def test_int8_is_about_a_quarter_of_the_float_size() -> None:
    model = _net("resnet18", classes=31)
    int8 = _quantized(model, _split(n=8))
    ratio = stored_bytes(int8) / stored_bytes(model)
    assert 0.2 < ratio < 0.35, ratio


# --- other chains --------------------------------------------------------------------------------------


def test_quantizes_a_channel_pruned_resnet() -> None:
    import torch_pruning as tp

    model = _net("resnet18", classes=7)
    net = model.net
    example = torch.rand(1, 3, 32, 32)
    pruner = tp.pruner.BasePruner(
        net, example, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.3, ignored_layers=[net.fc]
    )
    pruner.step()
    assert net.layer4[1].conv1.out_channels < 512
    int8 = _quantized(model, _split(n=8, classes=7))
    with torch.no_grad():
        y = int8(torch.rand(3, 3, 32, 32))
    assert y.shape == (3, 7) and torch.isfinite(y).all()
    assert int8.net.layer4[1].conv1.out_channels == net.layer4[1].conv1.out_channels


def test_quantizes_a_low_rank_factorized_resnet() -> None:
    from robustspec.compress.lowrank import factorize, plan_ranks

    model = _net()
    factorize(model, plan_ranks(model, 0.5)[0])
    assert isinstance(model.net.layer2[0].conv1, nn.Sequential) and isinstance(model.net.fc, nn.Sequential)
    split = _split(n=16)
    int8 = _quantized(model, split)
    assert isinstance(int8.net.layer2[0].conv1[1], torch.ao.nn.intrinsic.quantized.ConvReLU2d)
    x = split.float_images()
    with torch.no_grad():
        ref, y = model(x), int8(x)
    assert torch.isfinite(y).all() and (ref - y).abs().mean() < 0.5 * ref.abs().mean()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_every_zoo_resnet_converts(arch: str) -> None:
    model = _net(arch, classes=31)
    int8 = _quantized(model, _split(n=16, classes=31))
    with torch.no_grad():
        y = int8(torch.rand(2, 3, 32, 32))
    assert y.shape == (2, 31) and torch.isfinite(y).all()


# --- parameters and chain rules ------------------------------------------------------------------------


def test_parse_and_params() -> None:
    q = Quantize()
    assert q.parse("ptsq") == {"method": "ptsq"}
    assert q.parse({"backend": "fbgemm"}) == {"backend": "fbgemm"}
    assert q.parse("int4") == {"method": "int4"}  # then validation names the allowed methods
    assert _params(**q.parse("ptsq")) == QuantizeParams()
    assert QuantizeParams() == _params(method="ptsq", backend="x86", calibration=256, seed=0)
    for bad in (
        {"method": "int4"},
        {"backend": "tensorrt"},
        {"calibration": 0},
        {"calibration": "256"},
        {"calibration": True},
        {"calibration": 100_001},
        {"seed": 1.5},
        {"bits": 8},
    ):
        with pytest.raises(ValidationError):
            _params(**bad)


def _check(position: ChainPosition, arch: str = "resnet18", **kw) -> list[str]:
    return Quantize().check(_params(**kw), position, arch, 11_192_415)


def test_check_messages() -> None:
    last = ChainPosition(index=1, previous=("prune",), following=())
    assert _check(ChainPosition(0, (), ())) == []
    assert _check(last) == []
    assert _check(last, "resnet10-small") == []
    assert _check(ChainPosition(0, (), ("prune",))) == [
        "quantize must be the last step (export may follow): an int8 model is not compressed further"
    ]
    twice = _check(ChainPosition(1, ("quantize",), ()))
    assert len(twice) == 1 and "twice" in twice[0]
    (eager_only,) = _check(last, "pkg.mod:fn")
    assert eager_only.startswith("backend x86 (torch's eager int8 flow) supports torchvision ResNets")
    assert "use backend xnnpack (ExecuTorch) or onnxruntime" in eager_only
    # pt2e backends take any network, and an export after them.
    assert _check(last, "pkg.mod:fn", backend="xnnpack") == []
    assert _check(ChainPosition(0, (), ("export",)), "mobilenet_v2", backend="onnxruntime") == []
    (no_export,) = _check(ChainPosition(0, (), ("export",)))
    assert "which no runtime exports" in no_export


def test_x86_eager_is_the_x86_backend_under_one_key() -> None:
    q = Quantize()
    long, short = (Quantize.Params.model_validate(q.parse({"backend": b})) for b in ("x86-eager", "x86"))
    assert long == short and long.model_dump() == short.model_dump()


def test_an_unavailable_backend_fails_the_build_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from robustspec.compress.quantize import _engine, engine_problem
    from robustspec.errors import ModelError

    monkeypatch.setattr(torch._C, "_supported_qengines", lambda: [0, 2])  # none, qnnpack
    assert torch.backends.quantized.supported_engines == ["none", "qnnpack"]
    assert _check(ChainPosition(0, (), ()), backend="x86") == []  # not asked at collection: that needs torch
    message = engine_problem("x86")
    assert message is not None and "'x86'" in message and "qnnpack" in message
    with pytest.raises(ModelError, match="'x86' is not available"):
        with _engine("x86"):
            pass
