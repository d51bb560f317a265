"""Attacks and their driver: budgets, determinism, cost, real effect, silent failures, transfer, checks."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from robustspec.attacks import ATTACKS
from robustspec.attacks.evaluate import (
    FLAG_UNCHANGED,
    FLAG_ZERO_GRADIENTS,
    AttackCheckError,
    attack_defaults_ok,
    evaluate_attack,
    l2_limit,
)
from robustspec.attacks.gradient import FGSM
from robustspec.attacks.minimum_norm import DeepFool
from robustspec.compress.base import StepContext
from robustspec.compress.quantize import Quantize, QuantizeParams
from robustspec.data.synthetic import OfficeSynth
from robustspec.errors import RobustSpecError
from robustspec.metrics import is_quantized
from robustspec.models import Normalized, build_network
from robustspec.spec.schema import TrainRecipe
from robustspec.train.supervised import train_supervised

CPU = torch.device("cpu")
CLASSES = 4
SIZE = 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> Normalized:
    """Untrained, with BatchNorm statistics from a few train-mode passes; frozen, in eval mode."""
    torch.manual_seed(0)
    model = Normalized(build_network("resnet10-mini", CLASSES))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, SIZE, SIZE, generator=g))
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def data():
    ds = OfficeSynth(classes=CLASSES, image_size=SIZE, train_per_class=60, test_per_class=50)
    return ds.build_domain(ds.domains[0])


@pytest.fixture(scope="module")
def trained(data) -> Normalized:
    """About 80% test accuracy after ~1 s of training: enough for attacks to have something to break."""
    torch.manual_seed(0)
    model = Normalized(build_network("resnet10-mini", CLASSES))
    train_supervised(model, data["train"], TrainRecipe(epochs=20, batch_size=32), device=CPU)
    return model.eval()


def _run(model, name: str, x, y, seed: int = 0, **params):
    attack = ATTACKS.get(name)()
    return attack.run(model, x, y, attack.Params.model_validate(params), torch.Generator().manual_seed(seed))


def _batch(seed: int, n: int = 4, pixels: bool = False):
    g = torch.Generator().manual_seed(seed)
    if pixels:  # uint8 images: many exact 0s and 1s at the box's edges
        x = torch.randint(0, 256, (n, 3, SIZE, SIZE), generator=g).float() / 255
    else:
        x = torch.rand(n, 3, SIZE, SIZE, generator=g)
    return x, torch.randint(0, CLASSES, (n,), generator=g)


# --- budgets -------------------------------------------------------------------------------------------

BOUNDED = {
    "fgsm": {},
    "pgd-linf": {"steps": 3},
    "pgd-l2": {"steps": 3},
    "square": {"queries": 20},
}


@pytest.mark.parametrize("name", list(BOUNDED))
@settings(max_examples=15, deadline=None)
@given(eps=st.floats(0.0, 16 / 255), seed=st.integers(0, 2**16), pixels=st.booleans())
def test_bounded_attacks_stay_in_ball_and_box(tiny, name, eps, seed, pixels):
    x, y = _batch(seed, pixels=pixels)
    adv = _run(tiny, name, x, y, seed=seed, eps=eps, **BOUNDED[name])
    assert adv.shape == x.shape and torch.isfinite(adv).all()
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    delta = (adv - x).flatten(1)
    if ATTACKS.get(name).norm == "linf":
        assert delta.abs().max() <= eps + 1e-6
    else:
        assert delta.norm(dim=1).max() <= l2_limit(eps, delta.shape[1])  # eps plus float32 rounding of x + delta


# --- determinism ---------------------------------------------------------------------------------------

RANDOM = {
    "pgd-linf": {"eps": 8 / 255, "steps": 2, "alpha": 0.5 / 255, "random-start": True},
    "square": {"eps": 8 / 255, "queries": 30},
}


@pytest.mark.parametrize("name", list(RANDOM))
def test_same_seed_same_adversarials_other_seed_others(tiny, name):
    x, y = _batch(3)
    a = _run(tiny, name, x, y, seed=1, **RANDOM[name])
    b = _run(tiny, name, x, y, seed=1, **RANDOM[name])
    c = _run(tiny, name, x, y, seed=2, **RANDOM[name])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_driver_is_deterministic(trained, data):
    test = data["test"]
    runs = [
        evaluate_attack(
            trained, "pgd-linf", {"eps": "4/255", "steps": 3}, test.images, test.labels, n=32, seed=5, device=CPU
        )
        for _ in range(2)
    ]
    a, b = (r.as_dict() for r in runs)
    a.pop("seconds"), b.pop("seconds")
    assert a == b


# --- cost ----------------------------------------------------------------------------------------------


class _Passes:
    """Counts forward calls of a module and backward passes through its output."""

    def __init__(self, model: nn.Module):
        self.forward = self.backward = 0
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.forward += 1
        if output.requires_grad:
            output.register_hook(self._backward)

    def _backward(self, grad):
        self.backward += 1


@pytest.mark.parametrize(
    "name, params, most", [("fgsm", {"eps": 0.03}, 1), ("pgd-linf", {"eps": 0.03, "steps": 10}, 11)]
)
def test_pass_counts(tiny, name, params, most):
    x, y = _batch(0, n=8)
    passes = _Passes(tiny)
    try:
        _run(tiny, name, x, y, **params)
    finally:
        passes.handle.remove()
    assert passes.forward == passes.backward
    assert passes.forward <= most
    if name == "fgsm":
        assert passes.forward == 1


# --- real effect ---------------------------------------------------------------------------------------


def test_fgsm_lowers_accuracy_of_a_trained_model(trained, data):
    test = data["test"]
    r = evaluate_attack(trained, "fgsm", {"eps": "8/255"}, test.images, test.labels, n=64, seed=0, device=CPU)
    assert r.n == 64 and r.attacked == r.clean_correct
    assert r.robust_accuracy < r.clean_accuracy
    assert r.degradation > 0.2
    assert r.mode == "white-box" and r.flags == []
    d = r.as_dict()
    assert d["degradation"] == pytest.approx(r.clean_accuracy - r.robust_accuracy)
    assert 0.0 < d["median_linf"] <= 8 / 255 + 1e-6


@pytest.mark.parametrize("name, params", [("cw-l2", {}), ("deepfool", {}), ("deepfool", {"norm": "linf"})])
def test_minimum_norm_attacks_succeed(trained, data, name, params):
    test = data["test"]
    r = evaluate_attack(trained, name, params, test.images, test.labels, n=64, seed=0, device=CPU)
    assert r.attacked > 20
    assert r.success_rate > 0.8
    assert r.median_l2 > 0 and r.mean_l2 > 0
    x = test.images[:16].float() / 255
    with torch.no_grad():
        y = trained(x).argmax(1)
    adv = _run(trained, name, x, y, **params)
    assert torch.isfinite(adv).all() and adv.min() >= 0 and adv.max() <= 1


def test_minimum_norm_eps_only_scores(trained, data):
    test = data["test"]
    free = evaluate_attack(trained, "deepfool", {}, test.images, test.labels, n=64, seed=0, device=CPU)
    tight = evaluate_attack(trained, "deepfool", {"eps": 1e-5}, test.images, test.labels, n=64, seed=0, device=CPU)
    assert free.successes > 0 and tight.successes == 0
    assert tight.robust_accuracy == tight.clean_accuracy and tight.median_l2 is None


def _textbook_cw(model, x, y, steps: int, c: float, kappa: float, lr: float) -> torch.Tensor:
    """C&W-L2 as written in the paper: autograd through the whole loss, ``torch.optim.Adam``."""
    w = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6)).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    best, best_l2 = x.clone(), torch.full((len(x),), float("inf"))
    for _ in range(steps):
        adv = (torch.tanh(w) + 1) / 2
        l2sq = (adv - x).flatten(1).pow(2).sum(1)
        logits = model(adv)
        true = logits.gather(1, y[:, None]).squeeze(1)
        other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        margin = true - other
        loss = (l2sq + c * margin.clamp(min=-kappa)).sum()
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            better = (margin <= -kappa) & (margin < 0) & (l2sq < best_l2)
            best_l2 = torch.where(better, l2sq, best_l2)
            best[better] = adv[better]
        opt.step()
    return best


@pytest.mark.parametrize("kappa", [0.0, 0.5])
def test_cw_matches_the_textbook_formulation(trained, data, kappa):
    # The attack takes closed-form gradients for the distance and tanh terms and runs Adam in place.
    x = data["test"].images[:12].float() / 255
    with torch.no_grad():
        y = trained(x).argmax(1)
    ours = _run(trained, "cw-l2", x, y, steps=30, c=1.0, kappa=kappa, lr=0.02)
    with torch.enable_grad():
        ref = _textbook_cw(trained, x, y, steps=30, c=1.0, kappa=kappa, lr=0.02)
    assert not torch.equal(ours, x)  # it found something to compare
    assert torch.allclose(ours, ref, atol=1e-5)


class _Linear(nn.Module):
    """Two logits of an affine map: DeepFool's linearisation is exact, so one step lands where it says."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        f = x.flatten(1) @ self.w + self.b  # the class-1 logit minus the class-0 logit
        return torch.stack([torch.zeros_like(f), f], 1)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_deepfool_steps_the_distance_plus_the_reference_margin(norm):
    # The authors' code steps r = (|f|/||w|| + 1e-4) w/||w|| (L-inf: (|f|/||w||_1 + 1e-4) sign(w)).
    # A large ||w|| separates that from adding 1e-4 to |f|, which under-steps and needs a second step.
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3 * 4 * 4, generator=g) * 40
    x = 0.5 + 0.01 * torch.rand(1, 3, 4, 4, generator=g)  # far from the box's faces: no clipping
    model = _Linear(w, -float(x.flatten() @ w) - 0.5)  # class 0 by a margin of 0.5
    adv = _run(model, "deepfool", x, torch.zeros(1, dtype=torch.long), steps=1, overshoot=0.0, norm=norm)
    dual = w.norm() if norm == "l2" else w.abs().sum()
    step = (adv - x).flatten()
    size = step.norm() if norm == "l2" else step.abs().max()
    assert size.item() == pytest.approx(0.5 / dual.item() + 1e-4, rel=1e-4)
    assert model(adv).argmax(1).item() == 1


def test_a_revised_attack_keys_its_results_apart():
    from robustspec.expect.attack import AttackGate, attack_settings

    assert (
        attack_settings(AttackGate.model_validate({"name": "deepfool", "min-accuracy": 0}))["version"]
        == DeepFool.version
        >= 2
    )
    assert "version" not in attack_settings(AttackGate.model_validate({"name": "pgd-linf", "min-accuracy": 0}))


def test_unsuccessful_samples_are_returned_unchanged(trained, data):
    x = data["test"].images[:8].float() / 255
    with torch.no_grad():
        y = trained(x).argmax(1)
    adv = _run(trained, "cw-l2", x, y, steps=1, lr=1e-6)  # one tiny step fools nothing
    assert torch.equal(adv, x)


# --- silent failures are reported ----------------------------------------------------------------------


class _Rounding(nn.Module):
    """Rounds its input to 8 bits: the gradient with respect to the input is zero everywhere."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 255) / 255)


class _Saturated(nn.Module):
    """Logits times 1e6: the softmax saturates, so cross-entropy has exactly zero input gradients; the margin does not."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) * 1e6


def test_the_zero_gradient_check_uses_the_attacks_own_loss(trained, data):
    test = data["test"]
    pgd = evaluate_attack(
        _Saturated(trained),
        "pgd-linf",
        {"eps": "8/255", "steps": 2},
        test.images,
        test.labels,
        n=16,
        seed=0,
        device=CPU,
    )
    cw = evaluate_attack(
        _Saturated(trained), "cw-l2", {"eps": 1.0, "steps": 2}, test.images, test.labels, n=16, seed=0, device=CPU
    )
    assert FLAG_ZERO_GRADIENTS in pgd.flags  # PGD follows cross-entropy, which is flat here
    assert FLAG_ZERO_GRADIENTS not in cw.flags  # C&W follows the margin, which is not
    assert {ATTACKS.get(n).loss for n in ("fgsm", "pgd-linf", "pgd-l2", "ddn")} == {"ce"}
    assert {ATTACKS.get(n).loss for n in ("cw-l2", "deepfool")} == {"margin"} and ATTACKS.get("jsma").loss


class _Measured:
    """The attack expectation's measurements for one float model, through the driver (no store, memoised)."""

    source = "amazon"
    variant = "baseline"

    def __init__(self, model: nn.Module, split) -> None:
        self.model, self.split, self.memo = model, split, {}

    def metrics(self, variant=None) -> dict:
        return {"quantized": 0}

    def attack(self, params, variant=None, transfer_from=None) -> dict:
        from robustspec.outcomes import encode_outcomes

        key = params.model_dump_json()
        if key not in self.memo:
            r = evaluate_attack(
                self.model, params.name, params, self.split.images, self.split.labels, n=params.samples,
                seed=params.seed, device=CPU,
            )  # fmt: skip
            self.memo[key] = r.as_dict() | {"robust": encode_outcomes(r.robust, f"test.seed{params.seed}")}
        return self.memo[key]


#: One L-inf, two L2 and the L0 attack; gates that always pass, so only the masking checks decide.
MASKED = {
    "pgd-linf": ({"eps": "8/255", "steps": 5}, "square-linf"),
    "pgd-l2": ({"eps": 1.0, "steps": 5}, "square-l2"),
    "ddn": ({"eps": 1.0, "steps": 20}, "square-l2"),
    "jsma": ({"gamma": 0.1, "target": "least-likely"}, "not available: the L0 black-box attack (sparse-rs) is"),
}


@pytest.mark.parametrize("name", list(MASKED))
def test_an_input_rounding_model_fails_by_default_and_its_honest_twin_passes(trained, data, name):
    from robustspec.expect import EXPECTATIONS, CheckTarget
    from robustspec.expect.attack import attack_params_model

    entry, blackbox = MASKED[name]
    expectation = EXPECTATIONS.get("attack")()

    def judge(model, **more):
        values = {"name": name, "samples": 32, "max-degradation": 1.0, **entry, **more}
        p = attack_params_model(values).model_validate(values)
        out = expectation.judge(p, CheckTarget(name, ("amazon",)), _Measured(model, data["test"]))
        return out, dict(out.properties())

    out, props = judge(_Rounding(trained))
    assert not out.passed and out.message.startswith("FLAGGED: ") and props["flagged"] == "1"
    assert FLAG_ZERO_GRADIENTS in props["attack_flags"] and props["masking_check"].startswith(blackbox)
    if not blackbox.startswith("not available"):  # the black-box attack of the threat model is not fooled
        assert props["robust_accuracy[black-box]"] < props["robust_accuracy"]
    out, props = judge(_Rounding(trained), **{"on-masking": "warn"})
    assert out.passed and "WARNING: " in out.message and FLAG_ZERO_GRADIENTS in props["attack_flags"]
    out, props = judge(trained)
    assert out.passed and "attack_flags" not in props and "flagged" not in props, out.message
    assert props["masking_check"].startswith(blackbox)
    if not blackbox.startswith("not available"):
        assert props["masking_gap_low[black-box]"] <= 0


@pytest.mark.parametrize("name", ["fgsm", "pgd-linf", "deepfool"])
def test_zero_gradients_are_flagged(trained, data, name):
    test = data["test"]
    params = {"eps": "8/255", "random-start": False} if name == "pgd-linf" else {"eps": "8/255"}
    r = evaluate_attack(_Rounding(trained), name, params, test.images, test.labels, n=32, seed=0, device=CPU)
    assert r.clean_correct > 0
    assert FLAG_ZERO_GRADIENTS in r.flags and FLAG_UNCHANGED in r.flags
    assert r.robust_accuracy == r.clean_accuracy


def _out_of_ball(self, model, x, y, params, generator):
    return (x + 2 * params.eps * torch.sign(x - 0.5)).clamp(0, 1)


def _out_of_box(self, model, x, y, params, generator):
    return x * 2 - 0.5


def _nan(self, model, x, y, params, generator):
    out = x.clone()
    out[0, 0, 0, 0] = float("nan")
    return out


@pytest.mark.parametrize(
    "cls, run, message",
    [(FGSM, _out_of_ball, "left the L-inf ball"), (DeepFool, _out_of_box, "outside [0, 1]"), (FGSM, _nan, "NaN")],
    ids=["ball", "box", "nan"],
)
def test_broken_attacks_raise(trained, data, monkeypatch, cls, run, message):
    monkeypatch.setattr(cls, "run", run)
    name = "fgsm" if cls is FGSM else "deepfool"
    trained.train()  # the driver must restore this, and the parameters' requires_grad, even on failure
    try:
        with pytest.raises(AttackCheckError, match=re.escape(message)) as info:
            evaluate_attack(
                trained, name, {"eps": "4/255"}, data["test"].images, data["test"].labels, n=16, seed=0, device=CPU
            )
        assert isinstance(info.value, RobustSpecError)
        assert trained.training and all(p.requires_grad for p in trained.parameters())
    finally:
        trained.eval()


# --- int8: transfer from a surrogate, or gradient-free ------------------------------------------------


@pytest.fixture(scope="module")
def int8(trained, data):
    def never(*_a, **_k):
        raise AssertionError("not needed")

    ctx = StepContext(
        train=data["train"],
        num_classes=CLASSES,
        device=CPU,
        recipe=TrainRecipe(epochs=0),
        baseline=never,
        new_network=never,
    )
    model = Quantize().apply(trained, QuantizeParams(calibration=64), ctx).model
    assert is_quantized(model)
    return model


def test_transfer_from_float_surrogate(int8, trained, data):
    test = data["test"]
    r = evaluate_attack(
        int8,
        "pgd-linf",
        {"eps": "8/255", "steps": 5},
        test.images,
        test.labels,
        n=64,
        seed=0,
        device=CPU,
        surrogate=trained,
    )
    assert r.mode == "transfer" and r.as_dict()["mode"] == "transfer"
    assert r.clean_correct > 20 and r.successes > 0
    with pytest.raises(AttackCheckError, match="surrogate"):
        evaluate_attack(int8, "pgd-linf", {"eps": "8/255"}, test.images, test.labels, n=8, seed=0, device=CPU)


def test_square_runs_on_int8_directly(int8, data):
    test = data["test"]
    r = evaluate_attack(
        int8, "square", {"eps": "8/255", "queries": 50}, test.images, test.labels, n=32, seed=0, device=CPU
    )
    assert r.mode == "black-box" and r.successes > 0 and r.flags == []


def test_autoattack_fast_is_seeded_and_leaves_the_global_rng_alone(tiny):
    x, y = _batch(4)
    with torch.no_grad():
        y = tiny(x).argmax(1)
    state = torch.random.get_rng_state()
    a = _run(tiny, "autoattack", x, y, seed=3, eps=8 / 255, version="fast", steps=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = _run(tiny, "autoattack", x, y, seed=3, eps=8 / 255, version="fast", steps=3)
    assert torch.equal(a, b)
    assert (a - x).abs().max() <= 8 / 255 + 1e-6 and a.min() >= 0 and a.max() <= 1


# --- checks at collection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, params, classes, message",
    [
        ("fgsm", {"eps": 1.5}, 10, "eps must be in [0, 1]"),
        ("pgd-linf", {"eps": "-4/255"}, 10, "expected a number"),
        ("pgd-l2", {"eps": 0.5, "steps": -3}, 10, "steps: Input should be greater than or equal to 1"),
        ("deepfool", {"norm": "l1"}, 10, "norm: Input should be 'l2' or 'linf'"),
        ("pgd-linf", {"eps": 0.1, "norm": "l2"}, 10, "norm: Extra inputs are not permitted"),
        ("square", {}, 10, "eps: Field required"),
        ("cw-l2", {"eps": 2}, 10, "eps must be in [0, 1]"),
        ("autoattack", {"eps": 0.03}, 3, "needs at least 4 classes"),
        ("fgsm", {"eps": 0.03}, 1, "at least 2 classes"),
        ("pgd", {"eps": 0.03}, 10, "did you mean"),
    ],
    ids=lambda v: v if isinstance(v, str) and " " not in v else None,
)
def test_check_messages(name, params, classes, message):
    problems = attack_defaults_ok(name, params, classes)
    assert any(message in p for p in problems), problems


@settings(max_examples=15, deadline=None)
@given(eps=st.floats(0.0, 1.0), seed=st.integers(0, 2**16), pixels=st.booleans())
def test_square_l2_stays_in_its_ball_and_the_box(tiny, eps, seed, pixels):
    x, y = _batch(seed, pixels=pixels)
    adv = _run(tiny, "square", x, y, seed=seed, eps=eps, norm="l2", queries=20)
    assert adv.min() >= 0.0 and adv.max() <= 1.0 and torch.isfinite(adv).all()
    delta = (adv - x).flatten(1)
    assert delta.norm(dim=1).max() <= l2_limit(eps, delta.shape[1])


@settings(max_examples=15, deadline=None)
@given(eps=st.floats(0.0, 0.2), seed=st.integers(0, 2**16), pixels=st.booleans())
def test_sparse_rs_changes_at_most_its_budget(tiny, eps, seed, pixels):
    x, y = _batch(seed, pixels=pixels)
    adv = _run(tiny, "sparse-rs", x, y, seed=seed, eps=eps, queries=20)
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    changed = (adv != x).flatten(1).sum(1)
    assert int(changed.max()) <= int(eps * x[0].numel() + 1e-9)


@pytest.mark.parametrize(
    "name, params", [("square", {"eps": 1.0, "norm": "l2", "queries": 300}), ("sparse-rs", {"eps": 0.05})]
)
def test_black_box_attacks_fool_a_trained_model_deterministically(trained, data, name, params):
    test = data["test"]
    runs = [evaluate_attack(trained, name, params, test.images, test.labels, n=24, seed=0, device=CPU) for _ in "ab"]
    assert runs[0].successes > runs[0].clean_correct // 2 and runs[0].flags == []
    assert runs[0].robust == runs[1].robust and runs[0].norm == ("l2" if name == "square" else "l0")
