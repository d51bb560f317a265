"""AdaBN (robustspec.compress.adabn): BatchNorm statistics re-estimated on an unlabeled target domain."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from test_coral import (  # the CORAL tests' tiny model, data and suite
    SUITE,
    make_ctx,
    make_model,
    split,
    write,
)

from robustspec.compress import COMPRESSIONS
from robustspec.compress.adabn import AdaBN, AdaBNParams, reestimate_batchnorm
from robustspec.errors import SpecErrors
from robustspec.expect.adaptation import unadapted_name
from robustspec.plan import plan_suite
from robustspec.spec.loader import load_suite
from robustspec.store import Store
from robustspec.workspace import Workspace

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registered_as_an_adaptation_step() -> None:
    assert COMPRESSIONS.get("adabn") is AdaBN and AdaBN.adapts
    assert AdaBN().parse("webcam") == {"target": "webcam"}
    p = AdaBNParams.model_validate({"target": "dslr", "batch-size": 64, "images": 100})
    assert (p.batch_size, p.images, p.seed) == (64, 100, 0)


def test_one_batch_gives_the_target_features_exact_statistics() -> None:
    model = make_model()
    images = split(40, 3, shift=60).images
    reestimate_batchnorm(model, images, batch_size=64, device=torch.device("cpu"))
    net = model.net
    with torch.no_grad():
        feats = net.conv1((images.float() / 255 - model.mean) / model.std)
    bn = net.bn1
    assert torch.allclose(bn.running_mean, feats.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, feats.transpose(0, 1).flatten(1).var(dim=1), rtol=1e-4, atol=1e-6)
    assert not bn.training and bn.momentum == 0.1  # back in eval mode, momentum restored


def test_apply_changes_only_batchnorm_statistics_and_leaves_the_parent_alone() -> None:
    parent = make_model()
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    result = AdaBN().apply(parent, AdaBNParams(target="webcam"), make_ctx())
    assert all(torch.equal(v, before[k]) for k, v in parent.state_dict().items())
    changed = {k for k, v in result.state["state_dict"].items() if not torch.equal(v, before[k])}
    assert changed and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed)
    assert result.info == {
        "target": "webcam",
        "images": 12,
        "layers": len([m for m in parent.modules() if isinstance(m, torch.nn.BatchNorm2d)]),
    }
    x = make_ctx().train.float_images()
    restored = AdaBN().restore(parent, AdaBNParams(target="webcam"), result.state, make_ctx())
    with torch.no_grad():
        assert torch.equal(restored(x), result.model(x)) and not torch.equal(restored(x), parent(x))


def test_images_draws_a_seeded_subset() -> None:
    ctx = dataclasses.replace(make_ctx(), domain_train={"webcam": split(30, 4, shift=40)}.__getitem__)
    a = AdaBN().apply(make_model(), AdaBNParams(target="webcam", images=10), ctx)
    b = AdaBN().apply(make_model(), AdaBNParams(target="webcam", images=10), ctx)
    c = AdaBN().apply(make_model(), AdaBNParams(target="webcam", images=10, seed=1), ctx)
    assert a.info["images"] == 10
    assert all(torch.equal(v, b.state["state_dict"][k]) for k, v in a.state["state_dict"].items())
    assert any(not torch.equal(v, c.state["state_dict"][k]) for k, v in a.state["state_dict"].items())


def test_a_chain_with_adabn_gets_adaptation_gain_items_and_shares_prefixes(tmp_path: Path) -> None:
    text = SUITE.replace(
        "  coral: {coral: {target: webcam, epochs: 1}}\n",
        "  coral: {coral: {target: webcam, epochs: 1}}\n  prune-adabn: [{prune: {ratio: 0.4}}, {adabn: webcam}]\n",
    )
    loaded = load_suite(write(tmp_path, text), tmp_path / "specs")
    names = [c.name for c in plan_suite(loaded) if c.kind == "adaptation-gain" and c.variant == "prune-adabn"]
    assert names == ["adaptation-gain[webcam]"]
    ws = Workspace(Store(tmp_path / "store"))
    model = loaded.suite.models[0]
    keys = ws.step_keys(loaded, model, "prune-adabn")
    assert keys[1] == ws.variant_key(loaded, model, "fp")  # the pruned model is shared
    assert ws.variant_key(loaded, model, unadapted_name("prune-adabn")) == ws.variant_key(loaded, model, "fp")


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        (
            "{adabn: {target: amazon}}",
            r"adapt\.yaml:6:\d+: variants\.v\.adabn\.target: adabn target 'amazon' is the source domain",
        ),
        ("{adabn: webcm}", r"variants\.v\.adabn\.target: unknown domain 'webcm'; did you mean 'webcam'\?"),
        ("[{quantize: ptsq}, {adabn: webcam}]", r"variants\.v\[1\]\.adabn: adabn cannot follow quantize"),
        (
            "{adabn: {target: webcam, images: 1}}",
            r"variants\.v\.adabn\.images: input should be greater than or equal to 2",
        ),
    ],
    ids=["target-is-source", "unknown-target", "after-quantize", "one-image"],
)
def test_invalid_adabn_steps_are_positioned_errors(tmp_path: Path, variant: str, expected: str) -> None:
    text = SUITE.split("variants:")[0] + f"variants:\n  v: {variant}\nexpect:\n  - target-accuracy: {{min: 0.0}}\n"
    with pytest.raises(SpecErrors) as info:
        load_suite(write(tmp_path, text), tmp_path / "specs")
    assert re.search(expected, str(info.value)), str(info.value)
