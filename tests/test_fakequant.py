"""The fake-quant surrogate of an int8 model: agreement with int8, gradients, frozen observers, attacks."""

from __future__ import annotations

import pytest
import torch

from robustspec.attacks import ATTACKS
from robustspec.compress.base import StepContext
from robustspec.compress.quantize import Quantize, QuantizeParams, fake_quant_surrogate
from robustspec.data.synthetic import OfficeSynth
from robustspec.models import Normalized, build_network
from robustspec.spec.schema import TrainRecipe
from robustspec.train import train_supervised

CPU = torch.device("cpu")
CLASSES = 4


def _never(*_args, **_kwargs):
    raise AssertionError("the surrogate must not ask for the baseline or a new network")


@pytest.fixture(scope="module")
def setup():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # small models on a shared 2-core machine
    domain = OfficeSynth(classes=CLASSES, image_size=16, train_per_class=40).build_domain("amazon")
    train = domain["train"]
    torch.manual_seed(0)
    model = Normalized(build_network("resnet10-mini", CLASSES))
    train_supervised(model, train, TrainRecipe(epochs=10, batch_size=32), device=CPU, label="fake-quant test")
    model.eval()
    ctx = StepContext(
        train=train, num_classes=CLASSES, device=CPU, recipe=TrainRecipe(epochs=0), baseline=_never, new_network=_never
    )
    params = QuantizeParams(calibration=96, seed=1)  # a seeded subset: the sample must be apply's
    int8 = Quantize().apply(model, params, ctx).model
    surrogate = fake_quant_surrogate(model, params, ctx)
    yield model, train, domain["test"], ctx, params, int8, surrogate
    torch.set_num_threads(old)


def _calibration_images(train, params: QuantizeParams) -> torch.Tensor:
    g = torch.Generator().manual_seed(params.seed)
    index = torch.randperm(len(train), generator=g)[: params.calibration]
    return train.images[index].float().div(255.0)


def _noise(n: int = 64, seed: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_is_a_float_model_with_frozen_parameters(setup) -> None:
    model, *_, surrogate = setup
    assert isinstance(surrogate, Normalized) and not surrogate.training
    assert not any(m.training for m in surrogate.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in surrogate.modules())  # folded, as in int8
    assert not any(p.requires_grad for p in surrogate.parameters())
    fq = [m for m in surrogate.modules() if isinstance(m, torch.ao.quantization.FakeQuantizeBase)]
    assert fq and all(m.fake_quant_enabled.item() == 1 and m.observer_enabled.item() == 0 for m in fq)
    assert torch.equal(surrogate.mean, model.mean) and torch.equal(surrogate.std, model.std)
    assert type(model.net).__name__ == "ResNet"  # the parent is left alone


def test_scales_are_the_int8_models(setup) -> None:
    *_, int8, surrogate = setup
    q = surrogate.net
    assert float(int8.net.quant.scale) == pytest.approx(q.quant.activation_post_process.scale.item(), rel=1e-6)
    assert int(int8.net.quant.zero_point) == q.quant.activation_post_process.zero_point.item()
    compared = 0
    for name, m in int8.net.named_modules():
        if isinstance(
            m, (torch.ao.nn.quantized.Conv2d, torch.ao.nn.quantized.Linear, torch.ao.nn.quantized.QFunctional)
        ):
            fq = q.get_submodule(name).activation_post_process
            assert m.scale == pytest.approx(fq.scale.item(), rel=1e-6), name
            assert m.zero_point == fq.zero_point.item(), name
            compared += 1
    assert compared >= 10


@pytest.mark.parametrize("which", ["calibration", "test", "noise"])
def test_agrees_with_the_int8_model(setup, which: str) -> None:
    _, train, test, _, params, int8, surrogate = setup
    x = {"calibration": _calibration_images(train, params), "test": test.float_images(), "noise": _noise()}[which]
    with torch.no_grad():
        ref, got = int8(x), surrogate(x)
    agreement = (ref.argmax(1) == got.argmax(1)).float().mean().item()
    error = (ref - got).abs().mean().item()
    assert agreement >= 0.95, agreement
    assert error < 0.02 * ref.std().item(), (error, ref.std().item())


def test_input_gradients_are_real(setup) -> None:
    _, _, test, *_, surrogate = setup
    x = test.float_images()[:32].requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(surrogate(x), test.labels[:32])
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all()
    assert (grad.flatten(1).abs().sum(1) > 0).all()  # every sample gets a gradient


def test_observers_stay_frozen(setup) -> None:
    _, _, test, *_, surrogate = setup
    x = test.float_images()[:32]
    state = {k: v.clone() for k, v in surrogate.state_dict().items()}
    with torch.no_grad():
        before = surrogate(x)
        surrogate(_noise(seed=7) * 3.0 - 1.0)  # out-of-range data that would move any live observer
        surrogate(torch.ones(4, 3, 16, 16))
        after = surrogate(x)
    assert torch.equal(before, after)
    assert all(torch.equal(state[k], v) for k, v in surrogate.state_dict().items())


def test_deterministic(setup) -> None:
    model, _, test, ctx, params, _, surrogate = setup
    again = fake_quant_surrogate(model, params, ctx)
    x = test.float_images()
    with torch.no_grad():
        assert torch.equal(surrogate(x), again(x))
        assert torch.equal(surrogate(x), surrogate(x))
    other = fake_quant_surrogate(model, params.model_copy(update={"seed": 2}), ctx)
    with torch.no_grad():
        assert not torch.equal(surrogate(x), other(x))  # the calibration sample matters


def test_pgd_on_the_surrogate_transfers_to_int8(setup) -> None:
    _, _, test, *_, int8, surrogate = setup
    x, y = test.float_images()[:64], test.labels[:64]
    with torch.no_grad():
        correct = int8(x).argmax(1) == y
    x, y = x[correct], y[correct]
    assert len(x) >= 20
    pgd = ATTACKS.get("pgd-linf")()
    params = pgd.Params.model_validate({"eps": 8 / 255, "steps": 10})
    adv = pgd.run(surrogate, x, y, params, torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6
    with torch.no_grad():
        accuracy = (int8(adv).argmax(1) == y).float().mean().item()
    assert accuracy < 0.5, accuracy  # from 1.0 on these samples
