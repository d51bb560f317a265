"""Deep CORAL (robustspec.train.coral, robustspec.compress.coral) and the adaptation-gain expectation."""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from robustspec.compress import COMPRESSIONS
from robustspec.compress.base import StepContext
from robustspec.compress.coral import Coral, CoralParams
from robustspec.data.base import Split
from robustspec.errors import SpecErrors
from robustspec.expect import EXPECTATIONS, Accuracy, CheckTarget
from robustspec.expect.adaptation import unadapted_name
from robustspec.models import Normalized, build_network
from robustspec.plan import plan_suite
from robustspec.spec.loader import load_suite
from robustspec.spec.schema import TrainRecipe
from robustspec.store import Store
from robustspec.train.coral import coral_loss
from robustspec.workspace import Workspace

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = 3


# --------------------------------------------------------------------------- the loss


def test_loss_matches_a_hand_computation() -> None:
    # Source: the corners of a square; unbiased covariance diag(4/3, 4/3).
    source = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    # Target: three points on the diagonal; covariance [[1, 1], [1, 1]].
    target = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    # C_s - C_t = [[1/3, -1], [-1, 1/3]]: squared Frobenius norm 2/9 + 2 = 20/9; divided by 4 d^2 = 16.
    assert coral_loss(source, target).item() == pytest.approx(20 / 9 / 16)


def test_loss_is_zero_for_identical_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    f = torch.randn(32, 5, generator=g)
    assert coral_loss(f, f).item() == 0.0
    # Second-order statistics only: a shifted, reordered copy has the same covariance.
    assert coral_loss(f, f[torch.randperm(32, generator=g)] + 3.0).item() == pytest.approx(0.0, abs=1e-5)
    assert coral_loss(f, 2.0 * f).item() > 0.0


def test_loss_rejects_what_has_no_covariance() -> None:
    with pytest.raises(ValueError, match="equal d"):
        coral_loss(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="2 samples"):
        coral_loss(torch.zeros(1, 2), torch.zeros(4, 2))


# --------------------------------------------------------------------------- the step


def split(n: int, seed: int, shift: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    images = (torch.randint(0, 200, (n, 3, 16, 16), generator=g) + shift).clamp(0, 255).to(torch.uint8)
    return Split(images, torch.randint(0, CLASSES, (n,), generator=g))


def make_ctx() -> StepContext:
    domains = {"webcam": split(12, 1, shift=50)}

    def never(*_a, **_k):
        raise AssertionError("coral must not ask for the baseline or a new network")

    return StepContext(
        train=split(12, 0),
        num_classes=CLASSES,
        device=torch.device("cpu"),
        recipe=TrainRecipe(epochs=1, batch_size=6),
        baseline=never,
        new_network=never,
        label="test",
        domain_train=domains.__getitem__,
    )


def make_model() -> Normalized:
    torch.manual_seed(0)
    return Normalized(build_network("resnet10-mini", CLASSES)).eval()


def params(**kw) -> CoralParams:
    return CoralParams.model_validate({"target": "webcam", "epochs": 1, **kw})


def test_coral_is_registered_and_parses_a_bare_target() -> None:
    assert COMPRESSIONS.get("coral") is Coral
    assert Coral().parse("webcam") == {"target": "webcam"}
    p = CoralParams.model_validate({"target": "dslr", "batch-size": 8, "layers": ["layer4"]})
    assert p.weight == 1.0 and p.batch_size == 8 and p.layers == ["layer4"]


def test_apply_is_deterministic_and_leaves_the_parent_alone() -> None:
    parent = make_model()
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    a = Coral().apply(parent, params(layers=["layer3", "classifier-input"]), make_ctx())
    b = Coral().apply(parent, params(layers=["layer3", "classifier-input"]), make_ctx())
    for k, v in parent.state_dict().items():
        assert torch.equal(v, before[k]), k
    changed = False
    for k, v in a.state["state_dict"].items():
        assert torch.equal(v, b.state["state_dict"][k]), k
        changed |= not torch.equal(v, before[k])
    assert changed and a.info["target"] == "webcam" and a.info["final_coral"] >= 0.0
    c = Coral().apply(parent, params(seed=1), make_ctx())
    assert any(not torch.equal(v, c.state["state_dict"][k]) for k, v in a.state["state_dict"].items())


def _adapted_with_target(target: Split, **kw) -> dict[str, torch.Tensor]:
    ctx = dataclasses.replace(make_ctx(), domain_train={"webcam": target}.__getitem__)
    return Coral().apply(make_model(), params(**kw), ctx).state["state_dict"]


@pytest.mark.parametrize("batchnorm", ["joint", "source"])
def test_batchnorm_mode_decides_whether_target_images_reach_the_statistics(batchnorm: str) -> None:
    # Weight 0: the loss never looks at target features, so the only way target images can change the
    # adapted model is through BatchNorm. Under "source" they must not; under "joint" they must.
    a = _adapted_with_target(split(12, 1, shift=50), weight=0, batchnorm=batchnorm)
    b = _adapted_with_target(split(12, 2, shift=-80), weight=0, batchnorm=batchnorm)
    running = [k for k in a if k.endswith(("running_mean", "running_var"))]
    same = all(torch.equal(a[k], b[k]) for k in a)
    assert running and same == (batchnorm == "source")


def test_source_batchnorm_still_aligns_the_target_with_a_coral_weight() -> None:
    source_only = _adapted_with_target(split(12, 1, shift=50), weight=0, batchnorm="source")
    aligned = _adapted_with_target(split(12, 1, shift=50), weight=100, batchnorm="source")
    assert any(not torch.equal(v, aligned[k]) for k, v in source_only.items())


def test_restore_round_trips_through_weights_only() -> None:
    parent, ctx = make_model(), make_ctx()
    result = Coral().apply(parent, params(), ctx)
    buf = io.BytesIO()
    torch.save(result.state, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    restored = Coral().restore(parent, params(), state, ctx)
    x = ctx.train.float_images()
    with torch.no_grad():
        assert torch.equal(restored(x), result.model(x))
        assert not torch.equal(restored(x), parent(x))


def test_after_low_rank_the_default_layer_is_still_the_pooled_features() -> None:
    from robustspec.compress.lowrank import LowRank, LowRankParams
    from robustspec.train.coral import CLASSIFIER_INPUT, capture

    ctx = make_ctx()
    factored = LowRank().apply(make_model(), LowRankParams.model_validate({"rank-ratio": 0.5}), ctx).model
    assert isinstance(factored.net.fc, torch.nn.Sequential)  # the head became two Linear layers
    with capture(factored.net, [CLASSIFIER_INPUT]) as feats, torch.no_grad():
        factored(ctx.train.float_images())
    assert feats[CLASSIFIER_INPUT].shape == (12, 128)  # resnet10-mini's pooled width, not the rank
    assert Coral().apply(factored, params(), ctx).model is not factored


def test_an_unknown_layer_is_an_artifact_error_at_build() -> None:
    from robustspec.errors import ArtifactError

    with pytest.raises(ArtifactError, match="layer9"):
        Coral().apply(make_model(), params(layers=["layer9"]), make_ctx())


# --------------------------------------------------------------------------- suites: keys, errors, planning

SUITE = """\
data: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 6}
source: amazon
train: {epochs: 1, batch-size: 12}
models: [resnet10-mini]
variants:
  fp: {prune: {ratio: 0.4}}
  coral: {coral: {target: webcam, epochs: 1}}
  adapt-then-prune: [{coral: {target: webcam, epochs: 1}}, {prune: {ratio: 0.4}}]
  prune-then-adapt: [{prune: {ratio: 0.4}}, {coral: {target: dslr, epochs: 1}}]
expect:
  - target-accuracy: {min: 0.0}
  - adaptation-gain: {min: -1.0}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "suites").mkdir(exist_ok=True)
    p = tmp_path / "suites" / "adapt.yaml"
    p.write_text(text)
    return p


def test_chain_order_gives_different_keys_and_derived_chains_share_declared_ones(tmp_path: Path) -> None:
    loaded = load_suite(write(tmp_path, SUITE), tmp_path / "specs")
    model = loaded.suite.models[0]
    ws = Workspace(Store(tmp_path / "store"))
    atp, pta = (ws.step_keys(loaded, model, v) for v in ("adapt-then-prune", "prune-then-adapt"))
    assert atp[-1] != pta[-1]
    assert atp[1] == ws.variant_key(loaded, model, "coral")  # the shared prefix
    assert pta[1] == ws.variant_key(loaded, model, "fp")
    # Without adaptation: [prune] is the declared fp variant, [coral] alone leaves the trained model.
    assert ws.variant_key(loaded, model, unadapted_name("prune-then-adapt")) == ws.variant_key(loaded, model, "fp")
    assert ws.variant_key(loaded, model, unadapted_name("adapt-then-prune")) == ws.variant_key(loaded, model, "fp")
    assert ws.variant_key(loaded, model, unadapted_name("coral")) == ws.variant_key(loaded, model, "baseline")


def test_adaptation_gain_applies_only_to_adapted_variants(tmp_path: Path) -> None:
    loaded = load_suite(write(tmp_path, SUITE), tmp_path / "specs")
    gains = [(c.variant, c.name) for c in plan_suite(loaded) if c.kind == "adaptation-gain"]
    assert gains == [
        ("coral", "adaptation-gain[webcam]"),
        ("adapt-then-prune", "adaptation-gain[webcam]"),
        ("prune-then-adapt", "adaptation-gain[dslr]"),  # the default domain is the step's target
    ]
    explicit = load_suite(
        write(tmp_path, SUITE.replace("{min: -1.0}", "{min: 0.0, domains: [webcam, dslr]}")), tmp_path / "specs"
    )
    names = [c.name for c in plan_suite(explicit) if c.kind == "adaptation-gain" and c.variant == "coral"]
    assert names == ["adaptation-gain[webcam]", "adaptation-gain[dslr]"]


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        (
            "{coral: {target: amazon}}",
            r"adapt\.yaml:6:23: variants\.v\.coral\.target: coral target 'amazon' is the source domain",
        ),
        (
            "{coral: {target: webcm}}",
            r"adapt\.yaml:6:23: variants\.v\.coral\.target: unknown domain 'webcm'; did you mean 'webcam'\?",
        ),
        (
            "[{quantize: ptsq}, {coral: webcam}]",
            r"adapt\.yaml:6:\d+: variants\.v\[1\]\.coral: coral cannot follow quantize",
        ),
        (
            "{coral: {target: webcam, layers: [layer9]}}",
            r"variants\.v\.coral: layer 'layer9' is not a module of resnet10-mini",
        ),
        (
            "{coral: {target: webcam, weight: -1}}",
            r"variants\.v\.coral\.weight: input should be greater than or equal to 0",
        ),
        ("{coral: {}}", r"variants\.v\.coral: missing required key 'target'"),
        ("{coral: {target: amazn+gaussian_noise@3}}", r"variants\.v\.coral\.target: unknown base domain 'amazn'"),
        (
            "{coral: {target: webcam, batchnorm: both}}",
            r"adapt\.yaml:6:\d+: variants\.v\.coral\.batchnorm: input should be 'joint' or 'source'",
        ),
    ],
    ids=[
        "target-is-source",
        "unknown-target",
        "after-quantize",
        "unknown-layer",
        "negative-weight",
        "no-target",
        "unknown-derived-base",
        "unknown-batchnorm-mode",
    ],
)
def test_invalid_coral_steps_are_positioned_errors(tmp_path: Path, variant: str, expected: str) -> None:
    text = SUITE.split("variants:")[0] + f"variants:\n  v: {variant}\nexpect:\n  - target-accuracy: {{min: 0.0}}\n"
    with pytest.raises(SpecErrors) as info:
        load_suite(write(tmp_path, text), tmp_path / "specs")
    assert len(info.value.errors) >= 1
    import re

    assert re.search(expected, str(info.value)), str(info.value)


def test_a_corrupted_copy_of_the_source_is_a_valid_target(tmp_path: Path) -> None:
    text = SUITE.replace(
        "{coral: {target: webcam, epochs: 1}}\n", "{coral: {target: amazon+gaussian_noise@3, epochs: 1}}\n", 1
    )
    loaded = load_suite(write(tmp_path, text), tmp_path / "specs")
    assert loaded.variants["resnet10-mini"]["coral"][0].params.target == "amazon+gaussian_noise@3"


# --------------------------------------------------------------------------- judging


@dataclass
class FakeMeasurements:
    acc: dict  # (variant, domain) -> Accuracy
    variant: str = "adapt-then-prune"
    source: str = "amazon"

    def accuracy(self, domain, variant=None):
        return self.acc[(variant or self.variant, domain)]

    def metrics(self, variant=None):
        raise AssertionError("adaptation-gain needs no metrics")


def judge(p: dict, adapted: Accuracy, plain: Accuracy):
    exp = EXPECTATIONS.get("adaptation-gain")()
    m = FakeMeasurements(
        {("adapt-then-prune", "webcam"): adapted, (unadapted_name("adapt-then-prune"), "webcam"): plain}
    )
    return exp.judge(exp.Params.model_validate(p), CheckTarget("webcam", ("webcam",)), m)


def test_gain_is_adapted_minus_unadapted() -> None:
    out = judge({"min": 0.05}, Accuracy(340, 500), Accuracy(300, 500))
    assert out.passed and out.measured == pytest.approx(0.08)
    assert out.extra == {"adapted_accuracy": 0.68, "unadapted_accuracy": 0.6, "versus": "the chain without adaptation"}
    assert "measured +0.080" in out.message and "min +0.050" in out.message
    assert not judge({"min": 0.1}, Accuracy(340, 500), Accuracy(300, 500)).passed
    assert not judge({"min": 0.0}, Accuracy(290, 500), Accuracy(300, 500)).passed


def test_versus_compares_with_the_named_variant() -> None:
    exp = EXPECTATIONS.get("adaptation-gain")()
    m = FakeMeasurements(
        {
            ("adapt-then-prune", "webcam"): Accuracy(340, 500),
            ("control", "webcam"): Accuracy(330, 500),
            (unadapted_name("adapt-then-prune"), "webcam"): Accuracy(100, 500),
        }
    )
    out = exp.judge(
        exp.Params.model_validate({"min": 0.03, "versus": "control"}), CheckTarget("webcam", ("webcam",)), m
    )
    assert out.measured == pytest.approx(0.02) and not out.passed
    assert "against control 0.660" in out.message and out.extra["versus"] == "control"


def test_versus_is_its_own_item_with_a_readable_id(tmp_path: Path) -> None:
    text = SUITE.replace(
        "  - adaptation-gain: {min: -1.0}\n",
        "  - adaptation-gain: {min: -1.0}\n  - adaptation-gain: {variants: [coral], versus: fp, min: 0.0}\n",
    )
    names = [
        c.name
        for c in plan_suite(load_suite(write(tmp_path, text), tmp_path / "specs"))
        if c.variant == "coral" and c.kind == "adaptation-gain"
    ]
    assert names == ["adaptation-gain[webcam]", "adaptation-gain[webcam,vs-fp]"]


def test_versus_must_name_a_variant(tmp_path: Path) -> None:
    text = SUITE.replace("{min: -1.0}", "{min: 0.0, versus: contrl}")
    with pytest.raises(
        SpecErrors, match=r"adapt\.yaml:12:\d+: expect\[1\]\.adaptation-gain\.versus: unknown variant 'contrl'"
    ):
        load_suite(write(tmp_path, text), tmp_path / "specs")


def test_confidence_gates_on_the_lower_bound_of_the_difference() -> None:
    # +0.08 at n=500 each: Newcombe's 95% interval is about [+0.02, +0.14].
    out = judge({"min": 0.05, "confidence": 0.95}, Accuracy(340, 500), Accuracy(300, 500))
    assert not out.passed and 0.0 < out.ci_low < 0.05 < out.measured < out.ci_high
    assert judge({"min": 0.0, "confidence": 0.95}, Accuracy(340, 500), Accuracy(300, 500)).passed


# --------------------------------------------------------------------------- end to end (tiny data, under a second)


def test_unadapted_accuracy_reuses_the_declared_variant(tmp_path: Path) -> None:
    loaded = load_suite(write(tmp_path, SUITE), tmp_path / "specs")
    model = loaded.suite.models[0]
    store = Store(tmp_path / "store")
    ws = Workspace(store)
    from robustspec.workspace import SubjectMeasurements

    m = SubjectMeasurements(ws, loaded, model, "prune-then-adapt")
    exp = EXPECTATIONS.get("adaptation-gain")()
    out = exp.judge(exp.Params.model_validate({"min": -1.0}), CheckTarget("dslr", ("dslr",)), m)
    assert out.passed and out.extra["unadapted_accuracy"] == pytest.approx(
        ws.accuracy(loaded, model, "fp", "dslr").value, abs=1e-6
    )
    steps = [b for b in store.builds() if b["kind"] == "variant"]
    assert len(steps) == 2  # prune once (shared with fp), coral once
    evals = [b for b in store.builds() if b["kind"] == "eval"]
    assert len(evals) == 2  # prune-then-adapt and fp on dslr: the derived name built nothing of its own
