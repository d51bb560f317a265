"""Unstructured magnitude pruning: exact sparsity, honest counts, masks kept while fine-tuning, round trip."""

from __future__ import annotations

import io

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from robustspec.compress.base import ChainPosition, StepContext
from robustspec.compress.sparsify import Sparsify, SparsifyParams
from robustspec.data.base import Split
from robustspec.metrics import parameter_count
from robustspec.models import Normalized, build_network
from robustspec.spec.schema import TrainRecipe

CPU = torch.device("cpu")


def _net(classes: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Normalized(build_network("resnet10-mini", classes)).eval()


def _ctx(classes: int = 5, n: int = 8, size: int = 16, epochs: int = 0) -> StepContext:
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % classes)
    return StepContext(
        train=split,
        num_classes=classes,
        device=CPU,
        recipe=TrainRecipe(epochs=epochs, batch_size=4),
        baseline=lambda: _net(classes),
        new_network=lambda arch, p: Normalized(build_network(arch, classes, p)),
    )


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("sparsity", [0.3, 0.9])
def test_sparsity_is_exact_and_parameters_are_not_removed(scope: str, sparsity: float) -> None:
    parent = _net()
    result = Sparsify().apply(parent, SparsifyParams(sparsity=sparsity, scope=scope), _ctx())
    ws = _weights(result.model)
    measured = sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)
    assert abs(measured - sparsity) < 0.005 and result.info["sparsity"] == pytest.approx(measured)
    assert parameter_count(result.model) == parameter_count(parent)  # honest: nothing is removed
    assert result.info["nonzero_parameters"] == sum(int((p != 0).sum()) for p in result.model.parameters())
    assert not any(k.endswith(("_orig", "_mask")) for k in result.state["state_dict"])
    with torch.no_grad():
        assert torch.isfinite(result.model(torch.rand(2, 3, 16, 16))).all()
    if scope == "layer":
        for w in ws:
            assert abs(float((w == 0).float().mean()) - sparsity) <= 1.0 / w.numel() + 1e-9


def test_finetune_keeps_zeros_zero() -> None:
    parent = _net()
    plain = Sparsify().apply(parent, SparsifyParams(sparsity=0.7), _ctx())
    tuned = Sparsify().apply(parent, SparsifyParams(sparsity=0.7, finetune=1), _ctx(epochs=1))
    for a, b in zip(_weights(plain.model), _weights(tuned.model)):
        assert torch.equal(a == 0, b == 0)  # the same mask, no zero revived (nor new one made)
    assert any(not torch.equal(a, b) for a, b in zip(_weights(plain.model), _weights(tuned.model)))  # it did train


def test_restore_round_trip_is_exact_and_parent_unchanged() -> None:
    parent = _net()
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    step, params, ctx = Sparsify(), SparsifyParams(sparsity=0.5), _ctx()
    result = step.apply(parent, params, ctx)
    buf = io.BytesIO()
    torch.save(result.state, buf)
    buf.seek(0)
    restored = step.restore(parent, params, torch.load(buf, weights_only=True), ctx)
    x = torch.rand(3, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(restored(x), result.model(x))
    after = parent.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_check_messages_and_validation() -> None:
    step, p = Sparsify(), SparsifyParams(sparsity=0.5)
    assert step.check(p, ChainPosition(0, (), ()), "resnet18", 11_192_415) == []
    assert step.check(p, ChainPosition(1, ("quantize",), ()), "resnet18", 11_192_415) == [
        "a quantized model cannot be sparsified: put sparsify before quantize"
    ]
    assert SparsifyParams.model_validate({"sparsity": "90%"}).sparsity == pytest.approx(0.9)
    for bad in (
        {},
        {"sparsity": 0},
        {"sparsity": 1},
        {"sparsity": True},
        {"sparsity": 0.5, "scope": "channel"},
        {"sparsity": 0.5, "method": "random"},
        {"sparsity": 0.5, "amount": 0.5},
    ):
        with pytest.raises(ValidationError):
            SparsifyParams.model_validate(bad)
