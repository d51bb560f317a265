"""Compression for any model: prune, distill, lowrank and sparsify on torchvision's MobileNets, EfficientNet,
RegNet, ConvNeXt and a small ViT (a factory), on 32x32 inputs with 5 classes; the networks Torch-Pruning
cannot follow (ShuffleNet's channel shuffle, a ResNet-20 whose shortcuts pad channels in code) fail once,
with the layer named, at collection and at build time."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from robustspec.compress.base import StepContext
from robustspec.compress.distill import Distill, DistillParams
from robustspec.compress.lowrank import LowRank, LowRankParams
from robustspec.compress.prune import Prune, PruneParams, probe_problem
from robustspec.compress.sparsify import Sparsify, SparsifyParams
from robustspec.data.base import Split
from robustspec.errors import ArtifactError, SpecErrors
from robustspec.metrics import parameter_count
from robustspec.models import Normalized, build_network
from robustspec.models.zoo import head_module
from robustspec.spec.loader import load_suite
from robustspec.spec.schema import TrainRecipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = 5
SIZE = 32


# --- the networks ----------------------------------------------------------------------------------------


def small_vit(num_classes: int, image_size: int = 32) -> nn.Module:
    """torchvision's VisionTransformer with small dimensions (75k parameters at 5 classes)."""
    from torchvision.models import VisionTransformer

    return VisionTransformer(
        image_size=image_size,
        patch_size=4,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        mlp_dim=128,
        num_classes=num_classes,
    )


class QkvAttention(nn.Module):
    """Attention written like timm's: one qkv Linear, reshaped by ``num_heads`` and ``head_dim``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))


class QkvViT(nn.Module):
    def __init__(self, num_classes: int, dim: int = 48, heads: int = 4, depth: int = 2) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, 8)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "norm1": nn.LayerNorm(dim),
                    "attn": QkvAttention(dim, heads),
                    "norm2": nn.LayerNorm(dim),
                    "mlp": nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)),
                }
            )
            for _ in range(depth)
        )
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = x + block["attn"](block["norm1"](x))
            x = x + block["mlp"](block["norm2"](x))
        return self.head(x.mean(1))


def qkv_vit(num_classes: int) -> nn.Module:
    return QkvViT(num_classes)


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _Block(nn.Module):
    """The CIFAR ResNet's basic block with option A shortcuts: subsample and zero-pad the channels."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        pad = (cout - cin) // 2
        self.shortcut = (
            _Lambda(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad))) if stride != 1 else nn.Sequential()
        )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class LambdaResNet20(nn.Module):
    """He et al.'s CIFAR ResNet-20 as it circulates (a lambda pads the shortcut's channels)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        widths = [(16, 16, 1), (16, 32, 2), (32, 64, 2)]
        self.layer1, self.layer2, self.layer3 = (
            nn.Sequential(_Block(cin, cout, s), _Block(cout, cout, 1), _Block(cout, cout, 1)) for cin, cout, s in widths
        )
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def lambda_resnet20(num_classes: int) -> nn.Module:
    return LambdaResNet20(num_classes)


VIT = f"{__name__}:small_vit"
R20 = f"{__name__}:lambda_resnet20"

#: arch -> (its classifier's name, a parameter budget as a fraction of the model that pruning reaches
#: within 1 %, a low-rank budget (pointwise) likewise). ConvNeXt-T is the smallest ConvNeXt (28 M).
ARCHS = {
    "mobilenet_v2": ("classifier.1", 0.6, 0.7),
    "mobilenet_v3_small": ("classifier.3", 0.6, 0.7),
    "efficientnet_b0": ("classifier.1", 0.6, 0.7),
    "regnet_x_400mf": ("fc", 0.6, 0.7),
    "convnext_tiny": ("classifier.2", 0.6, 0.7),
    VIT: ("heads.head", 0.6, 0.7),
}
#: Too slow for the default run (a ConvNeXt-T build, prune or SVD takes seconds on one CPU thread).
SLOW = {"convnext_tiny"}


def arch_params(slow: set[str] = SLOW) -> list:
    return [pytest.param(a, marks=pytest.mark.slow, id=a) if a in slow else pytest.param(a, id=a) for a in ARCHS]


_PARENTS: dict[str, Normalized] = {}


def parent_of(arch: str) -> Normalized:
    """The (untrained) network of ``arch``, built once per test module; steps never modify their parent."""
    if arch not in _PARENTS:
        torch.manual_seed(0)
        _PARENTS[arch] = Normalized(build_network(arch, CLASSES)).eval()
    return _PARENTS[arch]


def make_ctx(n: int = 8, epochs: int = 1) -> StepContext:
    g = torch.Generator().manual_seed(0)
    return StepContext(
        train=Split(
            torch.randint(0, 256, (n, 3, SIZE, SIZE), dtype=torch.uint8, generator=g),
            torch.randint(0, CLASSES, (n,), generator=g),
        ),
        num_classes=CLASSES,
        device=torch.device("cpu"),
        recipe=TrainRecipe(epochs=epochs, batch_size=4),
        baseline=lambda: pytest.fail("no step here needs the baseline"),
        new_network=lambda arch, params: Normalized(build_network(arch, CLASSES, params)),
        label="test",
    )


def roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


X = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def assert_restores(step, parent: nn.Module, params, result) -> None:
    """The stored state (through torch.save and weights_only) rebuilds the same network."""
    restored = step.restore(parent, params, roundtrip(result.state), make_ctx())
    with torch.no_grad():
        out = result.model(X)
        assert out.shape == (2, CLASSES) and torch.isfinite(out).all()
        assert torch.allclose(restored(X), out, atol=1e-5)


def widths(model: nn.Module) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] + [
        m.out_features for m in model.modules() if isinstance(m, nn.Linear)
    ]


# --- build and head --------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", arch_params())
def test_builds_runs_on_tiny_inputs_and_finds_the_head(arch: str) -> None:
    net = parent_of(arch)
    with torch.no_grad():
        assert net(X).shape == (2, CLASSES)
    name, head = head_module(net.net)
    assert name == ARCHS[arch][0] and head.out_features == CLASSES


def test_shufflenet_head_is_its_fc() -> None:
    name, head = head_module(build_network("shufflenet_v2_x0_5", CLASSES))
    assert name == "fc" and head.out_features == CLASSES


# --- prune -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", arch_params())
def test_prune_ratio_removes_channels_and_restores(arch: str) -> None:
    parent = parent_of(arch)
    p = PruneParams(ratio=0.3)
    result = Prune().apply(parent, p, make_ctx())
    assert parameter_count(result.model) < parameter_count(parent)
    assert sum(widths(result.model)) < sum(widths(parent))
    assert head_module(result.model.net)[1].out_features == CLASSES  # the classifier keeps its classes
    assert_restores(Prune(), parent, p, result)


@pytest.mark.parametrize("arch", arch_params(SLOW | {"regnet_x_400mf"}))
def test_prune_to_a_budget_within_one_percent(arch: str) -> None:
    parent = parent_of(arch)
    target = int(ARCHS[arch][1] * parameter_count(parent))
    result = Prune().apply(parent, PruneParams(params=target), make_ctx())
    n = parameter_count(result.model)
    assert abs(n - target) <= 0.01 * target, (n, target)
    assert n == result.info["parameters"]
    with torch.no_grad():
        assert result.model(X).shape == (2, CLASSES)


@pytest.mark.slow
def test_regnet_budget_between_two_ratios_splits_the_groups() -> None:
    # At 30 % of RegNet-X-400MF no single ratio is within 1 % (its grouped convolutions all drop a channel
    # per 16-channel group at once: 1.62 M at ratio 0.4375, 1.41 M at 0.4376); some groups take the higher
    # ratio, the rest the lower.
    parent = parent_of("regnet_x_400mf")
    target = int(0.3 * parameter_count(parent))
    p = PruneParams(params=target)
    result = Prune().apply(parent, p, make_ctx())
    assert abs(result.info["parameters"] - target) <= 0.01 * target
    assert_restores(Prune(), parent, p, result)


def test_vit_heads_are_pruned_consistently() -> None:
    parent = parent_of(VIT)
    p = PruneParams(ratio=0.5)
    result = Prune().apply(parent, p, make_ctx())
    attention = [m for m in result.model.modules() if isinstance(m, nn.MultiheadAttention)]
    assert len(attention) == 2
    for m in attention:  # the embedding (64) lost half its width, each of the 4 heads half of its 16
        assert (m.num_heads, m.embed_dim, m.head_dim) == (4, 32, 8)
        assert tuple(m.in_proj_weight.shape) == (96, 32) and (m.out_proj.in_features, m.out_proj.out_features) == (
            32,
            32,
        )
    assert result.model.net.hidden_dim == result.model.net.conv_proj.out_channels == 32
    # The same offsets went from every head's slice of the embedding.
    ((name, _, removed),) = [h for h in result.state["history"] if h[0].endswith("encoder_layer_1.mlp.3")]
    by_head = [sorted(i - 16 * h for i in removed if 16 * h <= i < 16 * (h + 1)) for h in range(4)]
    assert all(offsets == by_head[0] for offsets in by_head) and len(by_head[0]) == 8, by_head
    mlp = [m.out_features for n, m in result.model.named_modules() if n.endswith("mlp.0")]
    assert mlp == [64, 64]  # the MLPs lost half their hidden units
    assert_restores(Prune(), parent, p, result)


def test_qkv_attention_heads_are_pruned_consistently() -> None:
    # timm's way of writing attention: Torch-Pruning's num_heads takes the qkv Linear; head_dim follows.
    torch.manual_seed(0)
    parent = Normalized(qkv_vit(CLASSES)).eval()
    p = PruneParams(ratio=0.5)
    result = Prune().apply(parent, p, make_ctx())
    for block in result.model.net.blocks:
        attn = block["attn"]
        assert attn.num_heads == 4 and attn.head_dim < 12
        assert attn.qkv.out_features == 3 * attn.num_heads * attn.head_dim
    assert_restores(Prune(), parent, p, result)


_COUNTS: dict[float, int] = {}


def _count_at(ratio: float) -> int:
    if ratio not in _COUNTS:
        result = Prune().apply(parent_of("mobilenet_v3_small"), PruneParams(ratio=ratio), make_ctx(n=2))
        with torch.no_grad():
            out = result.model(X)
        assert out.shape == (2, CLASSES) and torch.isfinite(out).all()
        _COUNTS[ratio] = result.info["parameters"]
    return _COUNTS[ratio]


@settings(max_examples=8, deadline=None)
@given(a=st.integers(1, 8), b=st.integers(1, 8))
def test_mobilenet_parameters_are_monotone_in_the_ratio(a: int, b: int) -> None:
    # On a 0.1 grid up to 0.8 (its narrowest layers have 16 channels); each pruned copy runs.
    lo, hi = sorted((a / 10, b / 10))
    assert _count_at(hi) <= _count_at(lo) < parameter_count(parent_of("mobilenet_v3_small"))


# --- what Torch-Pruning cannot follow: named once ----------------------------------------------------------


def _fails_once(parent: nn.Module, monkeypatch: pytest.MonkeyPatch, *expected: str) -> str:
    from robustspec.compress import prune as prune_module

    calls = []
    real = prune_module._prune_copy
    monkeypatch.setattr(prune_module, "_prune_copy", lambda *a, **k: calls.append(1) or real(*a, **k))
    prune, p, ctx = Prune(), PruneParams(ratio=0.3), make_ctx(n=2)
    with pytest.raises(ArtifactError) as first:
        prune.apply(parent, p, ctx)
    message = str(first.value)
    for text in expected:
        assert text in message, message
    with pytest.raises(ArtifactError, match="not retried") as again:
        prune.apply(parent, p, ctx)
    assert len(calls) == 1  # remembered, not traced again
    assert message.split(": ", 1)[1] in str(again.value)
    return message


def test_shufflenet_channel_shuffle_is_named_once(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    parent = Normalized(build_network("shufflenet_v2_x0_5", CLASSES)).eval()
    _fails_once(parent, monkeypatch, "channel shuffle", "block 'stage", "(InvertedResidual)", "Torch-Pruning")


def test_lambda_padded_resnet20_is_named_once(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    parent = Normalized(lambda_resnet20(CLASSES)).eval()
    message = _fails_once(parent, monkeypatch, "layer 'linear' (Linear) expects", "'layer2.0.shortcut'", "_Lambda")
    assert "mat1 and mat2" not in message


def test_collection_names_the_layer_at_the_prune_step(tmp_path: Path) -> None:
    # The factory module lies next to the suite, where the loader finds it (no PYTHONPATH).
    (tmp_path / "akares.py").write_text(_R20_SOURCE, encoding="utf-8")
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "data: {name: office-synth, classes: 3, image-size: 32}\nsource: amazon\n"
        "models:\n  - {name: r20-cifar, arch: 'akares:resnet20'}\n  - {name: shuffle, arch: shufflenet_v2_x0_5}\n"
        "  - {name: mobile, arch: mobilenet_v3_small}\n"
        "variants:\n  fp-half: {prune: {ratio: 0.5}}\nexpect:\n  - source-accuracy: {min: 0.0}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecErrors) as info:
        load_suite(suite)
    errors = [str(e) for e in info.value.errors]
    assert len(errors) == 2, errors  # the MobileNet prunes
    r20, shuffle = errors
    assert r20.startswith(f"{suite}:8:13: variants.fp-half.prune: model 'r20-cifar' cannot be pruned: ")
    assert "layer 'linear' (Linear) expects" in r20 and "shortcut" in r20 and "trial prune" in r20
    assert shuffle.startswith(f"{suite}:8:13: variants.fp-half.prune: model 'shuffle' cannot be pruned: ")
    assert "channel shuffle" in shuffle


_R20_SOURCE = """
import torch.nn.functional as F
from torch import nn


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1:
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, cout // 4, cout // 4)))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def resnet20(num_classes):
    return ResNet20(num_classes)
"""


def test_a_network_that_prunes_has_no_collection_problem() -> None:
    assert probe_problem(f"test:{VIT}", lambda: small_vit(CLASSES)) is None


# --- distill, lowrank, sparsify --------------------------------------------------------------------------


@pytest.mark.parametrize("arch", arch_params())
def test_distill_into_the_architecture(arch: str) -> None:
    # The teacher is a resnet10-mini; the student is the architecture under test, trained for one epoch.
    torch.manual_seed(0)
    teacher = Normalized(build_network("resnet10-mini", CLASSES)).eval()
    p = DistillParams(student=arch, epochs=1)
    assert Distill().check(p, _first(), "resnet10-mini", 0) == []
    result = Distill().apply(teacher, p, make_ctx())
    assert parameter_count(result.model) == parameter_count(parent_of(arch))
    assert_restores(Distill(), teacher, p, result)


def _first():
    from robustspec.compress.base import ChainPosition

    return ChainPosition(0, (), ())


@pytest.mark.parametrize("arch", arch_params())
def test_lowrank_factorizes_and_restores(arch: str) -> None:
    parent = parent_of(arch)
    p = LowRankParams(rank_ratio=0.5, pointwise=True)
    result = LowRank().apply(parent, p, make_ctx())
    assert parameter_count(result.model) < 0.95 * parameter_count(parent) or arch == "regnet_x_400mf"
    assert parameter_count(result.model) < parameter_count(parent)
    assert_restores(LowRank(), parent, p, result)


@pytest.mark.parametrize("arch", arch_params())
def test_lowrank_to_a_budget(arch: str) -> None:
    parent = parent_of(arch)
    target = int(ARCHS[arch][2] * parameter_count(parent))
    result = LowRank().apply(parent, LowRankParams(params=target, pointwise=True), make_ctx())
    assert abs(parameter_count(result.model) - target) <= 0.01 * target
    with torch.no_grad():
        assert result.model(X).shape == (2, CLASSES)


@pytest.mark.parametrize("arch", [VIT, "mobilenet_v3_small"])
def test_sparsify_with_finetuning(arch: str) -> None:
    parent = parent_of(arch)
    p = SparsifyParams(sparsity=0.5, finetune=1)
    result = Sparsify().apply(parent, p, make_ctx())
    assert abs(result.info["sparsity"] - 0.5) < 0.01
    for m in result.model.modules():
        if isinstance(m, nn.MultiheadAttention):  # attention's own projections are masked, and stay plain
            assert 0.2 < float((m.in_proj_weight == 0).float().mean()) < 0.8
            assert 0.2 < float((m.out_proj.weight == 0).float().mean()) < 0.8
            assert set(dict(m.named_parameters())) == {
                "in_proj_weight",
                "in_proj_bias",
                "out_proj.weight",
                "out_proj.bias",
            }
    assert_restores(Sparsify(), parent, p, result)
