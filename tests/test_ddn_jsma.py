"""DDN (minimum L2) and JSMA (targeted L0): contracts, budgets, pass counts, success on a trained tiny model."""

from __future__ import annotations

import time

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from robustspec.attacks import ATTACKS
from robustspec.attacks.jsma import pick_targets
from robustspec.data.synthetic import OfficeSynth
from robustspec.models import Normalized, build_network
from robustspec.spec.schema import OptimizerSpec, TrainRecipe
from robustspec.train import train_supervised

CLASSES = 4


@pytest.fixture(scope="module")
def trained():
    """resnet10-mini on 16 px office-synth, 4 classes; the correctly classified test images.

    3 epochs on 30 images per class leave this model at chance (25%); 30 epochs on 60 per class reach
    ~87% in about 2 s, which is what the success rates below need to mean anything.
    """
    torch.manual_seed(0)
    model = Normalized(build_network("resnet10-mini", CLASSES))
    domain = OfficeSynth(classes=CLASSES, image_size=16, train_per_class=60, test_per_class=30).build_domain("amazon")
    recipe = TrainRecipe(epochs=30, batch_size=32, optimizer=OptimizerSpec(lr=0.005))
    train_supervised(model, domain["train"], recipe, device=torch.device("cpu"))
    model.eval().requires_grad_(False).zero_grad(set_to_none=True)
    x, y = domain["test"].float_images(), domain["test"].labels
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    assert ok.float().mean() > 0.6, "the fixture model did not train"
    return model, x[ok][:64], y[ok][:64]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


class _Counter:
    def __init__(self, model: nn.Module) -> None:
        self.forwards = 0
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        self.forwards += 1


class _Constant(nn.Module):
    """Logits that ignore the input (zero input gradient) and always favour class 0."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.linspace(5.0, 0.0, classes), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1) + 0.0 * x.flatten(1)[:, :1]


# --- DDN -------------------------------------------------------------------------------------------------


def test_ddn_registration_and_params():
    ddn = ATTACKS.get("ddn")()
    assert (ddn.norm, ddn.bounded, ddn.gradient_free) == ("l2", False, False)
    p = ddn.Params.model_validate({"init-epsilon": 0.5, "levels": None, "eps": 0.24})
    assert (p.steps, p.init_epsilon, p.gamma, p.levels, p.eps) == (100, 0.5, 0.05, None, 0.24)
    assert ddn.Params().levels == 256
    for bad in ({"steps": 0}, {"gamma": 0}, {"gamma": 1.0}, {"init-epsilon": 0}, {"steps": True}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            ddn.Params.model_validate(bad)
    assert ddn.check(ddn.Params(), CLASSES) == []
    assert ddn.check(ddn.Params(eps=-0.1), CLASSES)


def test_ddn_succeeds_with_small_quantised_perturbations(trained):
    model, x, y = trained
    ddn = ATTACKS.get("ddn")()
    adv = ddn.run(model, x, y, ddn.Params(), _gen())
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    fooled = _predict(model, adv) != y
    assert fooled.float().mean() > 0.8
    l2 = (adv - x).flatten(1).norm(dim=1)
    assert (l2[fooled] > 0).all()
    assert torch.equal(adv[~fooled], x[~fooled])
    # 8-bit levels, as in the paper: every returned image is a valid 8-bit image.
    assert ((adv * 255).round() / 255 - adv).abs().max() <= 1e-6
    assert all(p.grad is None for p in model.parameters())


def test_ddn_is_deterministic_and_works_under_inference_mode(trained):
    model, x, y = trained
    ddn = ATTACKS.get("ddn")()
    params = ddn.Params(steps=20, levels=None, batch_size=16)
    a = ddn.run(model, x[:24], y[:24], params, _gen(3))
    with torch.inference_mode():
        b = ddn.run(model, x[:24], y[:24], params, _gen(3))
    assert torch.equal(a, b)


def test_ddn_costs_one_forward_and_backward_per_step(trained):
    model, x, y = trained
    ddn = ATTACKS.get("ddn")()
    steps = 30
    counter = _Counter(model)
    grads = []
    hook = model.register_full_backward_hook(lambda m, gi, go: grads.append(1))
    try:
        ddn.run(model, x[:8], y[:8], ddn.Params(steps=steps), _gen())
    finally:
        counter.handle.remove()
        hook.remove()
    assert counter.forwards <= 1.1 * steps + 2
    assert len(grads) <= 1.1 * steps + 2


def test_ddn_returns_inputs_it_cannot_fool_and_survives_zero_gradients():
    model = _Constant().eval()
    x = torch.rand(5, 3, 8, 8, generator=_gen(1))
    y = torch.zeros(5, dtype=torch.long)
    ddn = ATTACKS.get("ddn")()
    adv = ddn.run(model, x, y, ddn.Params(steps=10), _gen())
    assert torch.equal(adv, x)


def _reference_ddn(library: str, model, x, y, levels):
    """DDN from a peer library: foolbox's, or adv-lib's (the DDN authors' own code)."""
    if library == "foolbox":
        fb = pytest.importorskip("foolbox")
        assert levels is None  # foolbox has no quantisation of the iterates
        adv, _, _ = fb.attacks.DDNAttack(init_epsilon=1.0, steps=100, gamma=0.05)(
            fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=None
        )
        return adv
    advlib = pytest.importorskip("adv_lib.attacks")
    return advlib.ddn(model, x, y, steps=100, init_norm=1.0, levels=levels, γ=0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("library", "levels"),
    [("foolbox", None), ("adv-lib", None), ("adv-lib", 256)],
    ids=["foolbox", "adv-lib", "adv-lib-256-levels"],
)
def test_ddn_matches_a_reference(trained, library, levels):
    model, x, y = trained
    ddn = ATTACKS.get("ddn")()
    ours = ddn.run(model, x, y, ddn.Params(levels=levels), _gen())
    ref = _reference_ddn(library, model, x, y, levels)
    stats = {}
    for name, adv in (("ours", ours), (library, ref)):
        fooled = _predict(model, adv) != y
        l2 = (adv - x).flatten(1).norm(dim=1)
        stats[name] = {
            "median": l2[fooled].median().item(),
            **{eps: 1 - (fooled & (l2 <= eps)).float().mean().item() for eps in (1.0, 0.2, 0.1)},
        }
    for eps in (1.0, 0.2, 0.1):  # robust accuracy at the paper's budget and at two tighter ones
        assert abs(stats["ours"][eps] - stats[library][eps]) <= 0.05, stats
    assert abs(stats["ours"]["median"] / stats[library]["median"] - 1) <= 0.2, stats


# --- JSMA ------------------------------------------------------------------------------------------------


def test_jsma_registration_and_params():
    jsma = ATTACKS.get("jsma")()
    assert (jsma.norm, jsma.bounded, jsma.gradient_free) == ("l0", False, False)
    p = jsma.Params.model_validate({"batch-size": 8, "target": "least-likely"})
    assert (p.theta, p.gamma, p.target, p.batch_size) == (1.0, 0.1, "least-likely", 8)
    assert jsma.Params().batch_size == 32
    for bad in ({"gamma": 0}, {"gamma": 1.5}, {"theta": 0}, {"theta": 2}, {"target": "first"}):
        with pytest.raises(ValidationError):
            jsma.Params.model_validate(bad)
    assert jsma.check(jsma.Params(), CLASSES) == []
    assert jsma.check(jsma.Params(eps=1.5), CLASSES)


def test_targets_respect_the_number_of_classes():
    y = torch.arange(CLASSES).repeat(50)
    logits = torch.zeros(len(y), CLASSES)
    # torchattacks' pitfall is (y + 1) % 10: class 3 of a 4-class model would get the target 4.
    assert pick_targets("next", torch.tensor([0, 1, 2, 3]), logits[:4], _gen()).tolist() == [1, 2, 3, 0]
    random = pick_targets("random", y, logits, _gen())
    assert random.max() < CLASSES and (random != y).all()
    assert set(random.tolist()) == set(range(CLASSES))
    logits = torch.tensor([[3.0, -1.0, 0.0, -2.0], [-9.0, 1.0, 0.0, 2.0]])  # never the label, even at the bottom
    assert pick_targets("least-likely", torch.tensor([0, 0]), logits, _gen()).tolist() == [3, 2]


def test_jsma_budget_range_and_success(trained):
    model, x, y = trained
    jsma = ATTACKS.get("jsma")()
    gamma = 0.1
    adv = jsma.run(model, x, y, jsma.Params(gamma=gamma), _gen())
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    changed = (adv != x).flatten(1).sum(1)
    features = x[0].numel()
    assert (changed <= gamma * features + 2).all()
    assert (adv >= x).all()  # theta > 0 only raises values
    assert (_predict(model, adv) != y).float().mean() > 0.5


def test_jsma_next_target_on_four_classes(trained):
    model, x, y = trained
    jsma = ATTACKS.get("jsma")()
    adv = jsma.run(model, x[:32], y[:32], jsma.Params(target="next", gamma=0.2), _gen())
    pred = _predict(model, adv)
    assert pred.max() < CLASSES
    assert (pred == (y[:32] + 1) % CLASSES).float().mean() > 0.5
    assert (pred[y[:32] == 3] == 0).any()


def test_jsma_is_deterministic_for_the_generator(trained):
    model, x, y = trained
    jsma = ATTACKS.get("jsma")()
    params = jsma.Params(gamma=0.05, batch_size=8)
    a = jsma.run(model, x[:16], y[:16], params, _gen(5))
    b = jsma.run(model, x[:16], y[:16], params, _gen(5))
    assert torch.equal(a, b)


def test_jsma_negative_theta_lowers_values(trained):
    model, x, y = trained
    jsma = ATTACKS.get("jsma")()
    gamma = 0.05
    with torch.inference_mode():
        adv = jsma.run(model, x[:16], y[:16], jsma.Params(theta=-0.5, gamma=gamma, target="least-likely"), _gen())
    assert (adv <= x[:16]).all() and adv.min() >= 0
    assert ((adv != x[:16]).flatten(1).sum(1) <= gamma * x[0].numel() + 2).all()


def test_jsma_costs_one_forward_per_iteration(trained):
    model, x, y = trained
    jsma = ATTACKS.get("jsma")()
    gamma = 0.05
    counter = _Counter(model)
    try:
        jsma.run(model, x[:16], y[:16], jsma.Params(gamma=gamma), _gen())
    finally:
        counter.handle.remove()
    # At most budget/2 + 2 iterations per batch, each one batched forward pass.
    assert counter.forwards <= gamma * x[0].numel() / 2 + 2


@pytest.mark.slow
def test_jsma_versus_ibm_art(trained, record_property):
    pytest.importorskip("art")
    from art.attacks.evasion import SaliencyMapMethod
    from art.estimators.classification import PyTorchClassifier

    model, x, y = trained
    x, y = x[:16], y[:16]
    target = (y + 1) % CLASSES
    classifier = PyTorchClassifier(
        model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=CLASSES, clip_values=(0.0, 1.0)
    )
    jsma = ATTACKS.get("jsma")()
    rates, seconds = {}, {}
    for gamma in (0.02, 0.1):
        art = SaliencyMapMethod(classifier, theta=1.0, gamma=gamma, batch_size=16, verbose=False)
        start = time.perf_counter()
        theirs = torch.from_numpy(art.generate(x.numpy(), y=nn.functional.one_hot(target, CLASSES).numpy()))
        seconds["art", gamma] = time.perf_counter() - start
        start = time.perf_counter()
        ours = jsma.run(model, x, y, jsma.Params(theta=1.0, gamma=gamma, target="next", batch_size=16), _gen())
        seconds["ours", gamma] = time.perf_counter() - start
        for name, adv in (("art", theirs), ("ours", ours)):
            rates[name, gamma] = (_predict(model, adv) == target).float().mean().item()
            record_property(
                f"jsma-{name}-gamma{gamma}", f"success {rates[name, gamma]:.3f} in {seconds[name, gamma]:.3f} s"
            )
        assert rates["ours", gamma] >= rates["art", gamma], rates
