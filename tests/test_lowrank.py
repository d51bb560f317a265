"""Low-rank SVD factorization: structure, parameter counts, budget search, reconstruction, round trip."""

from __future__ import annotations

import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from torch import nn

from robustspec.compress.base import ChainPosition, StepContext
from robustspec.compress.lowrank import LowRank, LowRankParams, factorize_conv, factorize_linear, plan_ranks
from robustspec.data.base import Split
from robustspec.errors import ArtifactError
from robustspec.metrics import parameter_count
from robustspec.models import Normalized, build_network
from robustspec.spec.schema import TrainRecipe

CPU = torch.device("cpu")
R18_31 = 11_192_415


def _net(arch: str = "resnet10-mini", classes: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Normalized(build_network(arch, classes)).eval()


def _ctx(classes: int = 5, n: int = 8, size: int = 16, epochs: int = 0) -> StepContext:
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % classes)
    return StepContext(
        train=split,
        num_classes=classes,
        device=CPU,
        recipe=TrainRecipe(epochs=epochs, batch_size=4),
        baseline=lambda: _net(classes=classes),
        new_network=lambda arch, p: Normalized(build_network(arch, classes, p)),
    )


def _params(**kw) -> LowRankParams:
    return LowRankParams.model_validate(kw)


@settings(max_examples=10, deadline=None)
@given(ratio=st.floats(0.1, 0.9), batch=st.integers(1, 3), size=st.integers(16, 48), classes=st.integers(2, 12))
def test_forward_and_shape_on_random_shapes(ratio: float, batch: int, size: int, classes: int) -> None:
    parent = _net(classes=classes)
    result = LowRank().apply(parent, _params(**{"rank-ratio": ratio}), _ctx(classes))
    with torch.no_grad():
        y = result.model(torch.rand(batch, 3, size, size))
    assert y.shape == (batch, classes) and torch.isfinite(y).all()
    assert result.info["parameters"] == parameter_count(result.model) < parameter_count(parent)
    assert set(result.state["ranks"]) and "net.conv1" not in result.state["ranks"]
    assert isinstance(result.model.net.conv1, nn.Conv2d)  # the stem is left alone


def test_parameters_are_monotone_in_the_rank_ratio() -> None:
    net = _net("resnet18", 31)
    counts = [plan_ranks(net, r / 20)[1] for r in range(1, 20)]
    assert counts == sorted(counts) and counts[0] < counts[-1] <= R18_31


def test_resnet18_rank_ratio_half_matches_the_research() -> None:
    net = _net("resnet18", 31)
    assert parameter_count(net) == R18_31
    ranks, n = plan_ranks(net, 0.5)
    assert abs(n - 6_390_000) / 6_390_000 < 0.03
    assert ranks["net.layer1.0.conv1"] == 32 and ranks["net.layer4.1.conv2"] == 256 and ranks["net.fc"] == 16
    assert not any("downsample" in k for k in ranks)  # 1x1 convolutions are left alone


def test_budget_is_hit_within_tolerance_on_resnet18() -> None:
    parent = _net("resnet18", 31)
    result = LowRank().apply(parent, _params(params="6.0M"), _ctx(31))
    n = parameter_count(result.model)
    assert n == result.info["parameters"] and abs(n - 6_000_000) / 6_000_000 <= 0.01
    assert 0 < result.info["rank_ratio"] < 0.5


def test_unreachable_budget_is_an_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="cannot reach"):
        LowRank().apply(_net(), _params(params=1000), _ctx())


@torch.no_grad()
def test_full_rank_factorization_reconstructs_the_layer() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(6, 10, 3, stride=2, padding=2, dilation=2, bias=True)
    full = min(10, 6 * 9)
    rank = max(1, round(0.99 * full))
    assert rank == full
    x = torch.randn(2, 6, 13, 13)
    ref, got = conv(x), factorize_conv(conv, rank)(x)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-4 * ref.abs().max().item(), rtol=0)
    lin = nn.Linear(20, 7)
    z = torch.randn(3, 20)
    assert torch.allclose(factorize_linear(lin, 7)(z), lin(z), atol=1e-5, rtol=0)
    # truncation is the best approximation: error shrinks as the rank grows
    errs = [(factorize_conv(conv, r)(x) - ref).norm().item() for r in (2, 5, 8)]
    assert errs[0] > errs[1] > errs[2]


def test_restore_round_trip_is_exact_and_parent_unchanged() -> None:
    parent = _net()
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    step, params, ctx = LowRank(), _params(**{"rank-ratio": 0.4}), _ctx()
    result = step.apply(parent, params, ctx)
    buf = io.BytesIO()
    torch.save(result.state, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    restored = step.restore(parent, params, state, ctx)
    x = torch.rand(3, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(restored(x), result.model(x))
    after = parent.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(parent.net.fc, nn.Linear) and isinstance(parent.net.layer1[0].conv1, nn.Conv2d)


def test_finetune_runs() -> None:
    ctx = _ctx(epochs=1)
    result = LowRank().apply(_net(), _params(**{"rank-ratio": 0.5, "finetune": 1}), ctx)
    with torch.no_grad():
        assert torch.isfinite(result.model(torch.rand(2, 3, 16, 16))).all()


def test_check_messages() -> None:
    step = LowRank()
    fine = ChainPosition(0, (), ())
    assert step.check(_params(**{"rank-ratio": 0.5}), fine, "resnet18", R18_31) == []
    assert step.check(_params(params="6.39M"), fine, "resnet18", R18_31) == []
    msgs = step.check(_params(**{"rank-ratio": 0.5}), ChainPosition(1, ("quantize",), ()), "resnet18", R18_31)
    assert msgs == ["a quantized model cannot be factorized: put lowrank before quantize"]
    (msg,) = step.check(_params(params="12M"), fine, "resnet18", R18_31)
    assert "not below the baseline" in msg
    (msg,) = step.check(_params(params="500k"), fine, "resnet18", R18_31)
    assert "unreachable" in msg


def test_parameter_validation() -> None:
    assert _params(params="6.39M").params == 6_390_000
    assert _params(params="11.19M").params == 11_190_000
    assert _params(params="500k").params == 500_000
    assert _params(params=6390000).params == 6_390_000
    assert _params(**{"rank-ratio": "50%"}).rank_ratio == 0.5
    with pytest.raises(ValidationError, match="exactly one of rank-ratio"):
        _params()
    with pytest.raises(ValidationError, match="exactly one of rank-ratio"):
        _params(**{"rank-ratio": 0.5, "params": "6M"})
    for bad in (
        {"rank-ratio": 1.0},
        {"rank-ratio": 0},
        {"rank-ratio": True},
        {"params": "6.39X"},
        {"params": "2**20"},
        {"params": True},
        {"params": -5},
        {"rank-ratio": 0.5, "method": "tucker"},
        {"rank-ratio": 0.5, "ranks": 3},
    ):
        with pytest.raises(ValidationError):
            _params(**bad)
