"""The model zoo, the normalising wrapper and local weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustspec.errors import ModelError, RegistryError
from robustspec.metrics import parameter_count
from robustspec.models import MODELS, Normalized, build_network
from robustspec.models.weights import load_local_weights

# The research's parameter counts at 31 classes (Office-31), in millions, to two decimals.
RESEARCH_PARAMS_M = {"resnet18": 11.19, "resnet34": 21.30, "resnet50": 23.57, "resnet101": 42.56, "resnet152": 58.21}


@pytest.mark.parametrize("arch", sorted(RESEARCH_PARAMS_M))
def test_resnet_parameter_counts_match_the_research(arch: str) -> None:
    params = parameter_count(build_network(arch, 31))
    assert round(params / 1e6, 2) == RESEARCH_PARAMS_M[arch]


@pytest.mark.parametrize("arch", MODELS.names())
def test_every_registered_model_builds_and_runs_on_small_images(arch: str) -> None:
    if arch in ("resnet101", "resnet152"):
        pytest.skip("covered by the parameter-count test; slow to run forward on CPU")
    net = Normalized(build_network(arch, 7)).eval()
    with torch.inference_mode():
        out = net(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 7)


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(RegistryError, match="resnet18"):
        build_network("resnet81", 10)


def tiny_factory(num_classes: int, width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


def test_user_factory_by_import_path() -> None:
    net = build_network(f"{__name__}:tiny_factory", 5, {"width": 6})
    assert net[-1].out_features == 5 and net[0].out_channels == 6


@pytest.mark.parametrize(
    "ref, message",
    [
        ("no_such_module_xyz:f", "cannot import"),
        (f"{__name__}:missing", "no callable"),
        ("bad ref:x", "package.module:function"),
    ],
    ids=["missing-module", "missing-function", "malformed"],
)
def test_bad_factories_are_clear_errors(ref: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        build_network(ref, 3)


def test_wrapper_normalises_inside() -> None:
    seen = {}

    class Spy(nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x.mean(dim=(2, 3))

    net = Normalized(Spy(), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    net(torch.full((1, 3, 2, 2), 0.75))
    assert torch.allclose(seen["x"], torch.ones(1, 3, 2, 2))


def test_weights_with_prefix_nesting_and_another_head(tmp_path) -> None:
    src = build_network("resnet10-mini", 1000)
    state = {"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}
    path = tmp_path / "w.pt"
    torch.save(state, path)
    dst = build_network("resnet10-mini", 10)
    skipped = load_local_weights(dst, path)
    assert skipped == ["fc.weight", "fc.bias"]
    assert torch.equal(dst.conv1.weight, src.conv1.weight)


def test_weights_that_do_not_fit_list_the_keys(tmp_path) -> None:
    torch.save(build_network("resnet18", 10).state_dict(), tmp_path / "r18.pt")
    with pytest.raises(ModelError, match="does not fit") as info:
        load_local_weights(build_network("resnet10-mini", 10), tmp_path / "r18.pt")
    assert "shape mismatches" in str(info.value) or "unexpected keys" in str(info.value)


def test_weights_file_that_is_not_a_state_dict(tmp_path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read weights file"):
        load_local_weights(build_network("resnet10-mini", 10), tmp_path / "junk.pt")


@pytest.mark.parametrize("arch", MODELS.names())
@pytest.mark.parametrize("classes", [3, 31])
def test_the_parameter_table_matches_real_builds(arch: str, classes: int) -> None:
    from robustspec.models.zoo import zoo_parameters

    with torch.device("meta"):
        net = build_network(arch, classes)
    assert zoo_parameters(arch, classes) == sum(p.numel() for p in net.parameters())


# --- every model by name, and what its params may be -------------------------------------------------------


def test_the_static_resnet_builders_take_what_torchvision_resnet_takes() -> None:
    # Their params are spelled out so that checking them needs no torchvision; they must stay its own.
    import inspect

    from torchvision.models.resnet import ResNet

    from robustspec.models.signature import accepts_of

    real = set(inspect.signature(ResNet.__init__).parameters) - {"self", "block", "layers", "num_classes", "norm_layer"}
    for depth in (18, 34, 50, 101, 152):
        assert set(accepts_of(MODELS.get(f"resnet{depth}"), "r").params) == real


def test_the_narrow_resnets_take_no_params_and_the_factory_takes_widths() -> None:
    with pytest.raises(ModelError, match="does not accept these parameters"):
        build_network("resnet10-mini", 3, {"widths": [8, 8, 8, 8]})
    net = build_network("robustspec.models.zoo:narrow_resnet", 3, {"widths": [8, 8, 16, 16], "layers": [1, 1, 1, 1]})
    assert net.fc.in_features == 16


def test_resnet_params_reach_torchvision() -> None:
    net = build_network("resnet18", 3, {"zero_init_residual": True})
    assert torch.count_nonzero(net.layer1[0].bn2.weight) == 0


#: A few of torchvision's other families, built and run on 32 px inputs (the others: the slow test below).
TORCHVISION_QUICK = ["mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1", "mnasnet0_5", "regnet_y_400mf"]


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("arch", TORCHVISION_QUICK)
def test_torchvision_models_by_name_build_and_run(arch: str) -> None:
    from robustspec.models.zoo import head_module

    net = Normalized(build_network(arch, 7)).eval()
    with torch.inference_mode():
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    name, head = head_module(net.net)
    assert (head.out_features if isinstance(head, nn.Linear) else head.out_channels) == 7, name


def _torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return tvm.list_models(module=tvm)


@pytest.mark.slow
@pytest.mark.parametrize("arch", _torchvision_names())
def test_every_torchvision_classifier_builds_on_meta_with_a_head_for_the_classes(arch: str) -> None:
    # Meta tensors: no memory, no initialisation (RegNets need the empty-only fallback); then the weights
    # file check, budgets and params all work for it at collection.
    from robustspec.models.zoo import head_module, meta_network

    net = meta_network(arch, 7)
    name, head = head_module(net)
    assert (head.out_features if isinstance(head, nn.Linear) else head.out_channels) == 7, name
    assert name in {"fc", "classifier", "head", "heads.head"} or name.startswith("classifier."), name
