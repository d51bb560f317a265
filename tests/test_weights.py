"""Pretrained weights: local files and torchvision enums, head replacement, and the collection-time checks."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustspec.errors import ModelError, SpecError, SpecErrors, format_path
from robustspec.models.weights import (
    fit_problems,
    is_weights_enum,
    load_local_weights,
    resolve_weights,
    weights_digest,
    weights_fingerprint,
    weights_fit_problems,
)
from robustspec.models.zoo import build_network
from robustspec.spec.loader import load_suite

R18_V1 = "resnet18-f37072fd.pth"  # basename of ResNet18_Weights.IMAGENET1K_V1's url


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TORCH_HOME in tmp_path: the hub cache is ``<it>/hub/checkpoints``, empty."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def save(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def mini_state(classes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_network("resnet10-mini", classes).state_dict()


# --- loading ---------------------------------------------------------------------------------------------


def test_head_of_another_size_is_replaced_and_sized_to_the_data(tmp_path: Path) -> None:
    src = mini_state(31)
    path = save(tmp_path / "w31.pt", src)
    net = build_network("resnet10-mini", 3)
    skipped = load_local_weights(net, path)
    assert skipped == ["fc.weight", "fc.bias"]
    assert net.fc.out_features == 3 and net.fc.weight.shape == (3, 128)
    assert torch.equal(net.conv1.weight, src["conv1.weight"])
    assert torch.equal(net.layer4[0].bn2.running_var, src["layer4.0.bn2.running_var"])


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda s: s, id="plain"),
        pytest.param(lambda s: {f"module.{k}": v for k, v in s.items()}, id="module-prefix"),
        pytest.param(lambda s: {"state_dict": s, "epoch": 3}, id="nested-state_dict"),
        pytest.param(lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}}, id="nested-and-prefixed"),
        pytest.param(lambda s: {"model_state_dict": s}, id="model_state_dict"),
    ],
)
def test_wrapped_checkpoints_load(tmp_path: Path, wrap) -> None:
    src = mini_state(3, seed=1)
    path = save(tmp_path / "w.pt", wrap(src))
    net = build_network("resnet10-mini", 3)
    assert load_local_weights(net, path) == []
    for k, v in src.items():
        assert torch.equal(net.state_dict()[k], v), k
    assert weights_fit_problems(path, "resnet10-mini", {}, 3) == []


def test_mismatched_keys_are_listed(tmp_path: Path) -> None:
    state = mini_state(3)
    del state["layer2.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(2)
    state["conv1.weight"] = torch.zeros(8, 3, 7, 7)
    path = save(tmp_path / "w.pt", state)
    with pytest.raises(ModelError, match="does not fit the architecture") as info:
        load_local_weights(build_network("resnet10-mini", 3), path)
    message = str(info.value)
    assert "missing keys ['layer2.0.conv1.weight']" in message
    assert "unexpected keys ['extra.weight']" in message
    assert "conv1.weight: file (8, 3, 7, 7) vs model (16, 3, 7, 7)" in message


def test_the_collection_check_and_loading_agree(tmp_path: Path) -> None:
    """One comparison serves both: on meta tensors it finds exactly what loading finds."""
    path = save(tmp_path / "r18.pt", build_network("resnet18", 10).state_dict())
    with pytest.raises(ModelError) as info:
        load_local_weights(build_network("resnet10-mini", 10), path)
    (problem,) = weights_fit_problems(path, "resnet10-mini", {}, 10)
    assert (
        problem.split("does not fit resnet10-mini: ")[1] == str(info.value).split("does not fit the architecture: ")[1]
    )
    with torch.device("meta"):
        own = build_network("resnet10-mini", 10).state_dict()
    skipped, problems = fit_problems(torch.load(path, weights_only=True, mmap=True), own, "fc")
    assert skipped == [] and "; ".join(problems) == problem.split("does not fit resnet10-mini: ")[1]


def test_old_checkpoints_without_num_batches_tracked_fit(tmp_path: Path) -> None:
    state = {k: v for k, v in mini_state(3).items() if not k.endswith("num_batches_tracked")}
    path = save(tmp_path / "old.pt", state)
    assert weights_fit_problems(path, "resnet10-mini", {}, 3) == []
    load_local_weights(build_network("resnet10-mini", 3), path)


def test_legacy_serialisation_is_checked_without_mmap(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save(mini_state(3), path, _use_new_zipfile_serialization=False)
    assert weights_fit_problems(path, "resnet10-mini", {}, 3) == []
    assert weights_fit_problems(path, "resnet10-small", {}, 3)


def test_not_a_state_dict(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read weights file"):
        load_local_weights(build_network("resnet10-mini", 3), tmp_path / "junk.pt")
    (problem,) = weights_fit_problems(tmp_path / "junk.pt", "resnet10-mini", {}, 3)
    assert "cannot read weights file" in problem


# --- torchvision enums -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "enum"),
    [
        ("ResNet50_Weights.IMAGENET1K_V2", True),
        ("torchvision:ResNet50_Weights.DEFAULT", True),
        ("ResNet50_QuantizedWeights.DEFAULT", True),
        ("weights/resnet50.pth", False),
        ("ResNet50_Weights.pth", False),
        ("ResNet50_Weights.IMAGENET1K_V2.pth", False),
        ("dir/ResNet50_Weights.IMAGENET1K_V2", False),
    ],
)
def test_what_counts_as_an_enum(ref: str, enum: bool) -> None:
    assert is_weights_enum(ref) is enum


@pytest.mark.parametrize(
    ("ref", "named"),
    [
        ("ResNet50_Weights.IMAGENET1K_V2", "ResNet50_Weights.IMAGENET1K_V2"),
        ("torchvision:ResNet50_Weights.IMAGENET1K_V2", "ResNet50_Weights.IMAGENET1K_V2"),
        ("ResNet50_Weights.DEFAULT", "ResNet50_Weights.DEFAULT (= IMAGENET1K_V2)"),
    ],
)
def test_enum_not_cached_says_where_to_put_it(torch_home: Path, ref: str, named: str) -> None:
    with pytest.raises(ModelError) as info:
        resolve_weights(ref)
    message = str(info.value)
    assert f"torchvision weights {named} are not in the torch hub cache" in message
    assert f"put the file at {torch_home / 'hub' / 'checkpoints' / 'resnet50-11ad3fa6.pth'} " in message
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in message
    assert "robustspec never downloads" in message
    assert not (torch_home / "hub").exists()  # nothing was created, let alone downloaded


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        (
            "ResNet50_Weights.IMAGENET1K_V3",
            "ResNet50_Weights has no member 'IMAGENET1K_V3'; did you mean IMAGENET1K_V2, IMAGENET1K_V1",
        ),
        ("torchvision:ResNet50_Weights.imagenet", "(members: IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT)"),
        (
            "Resnet50_Weights.DEFAULT",
            "unknown torchvision weights enum 'Resnet50_Weights'; did you mean ResNet50_Weights",
        ),
        ("torchvision:resnet50", "torchvision weights are written 'ResNet50_Weights.IMAGENET1K_V2'"),
    ],
)
def test_unknown_enum(torch_home: Path, ref: str, fragment: str) -> None:
    with pytest.raises(ModelError) as info:
        resolve_weights(ref)
    assert fragment in str(info.value)


def test_a_file_named_like_an_enum_is_a_file(tmp_path: Path) -> None:
    path = save(tmp_path / "My_Weights.PTH", mini_state(3))
    assert is_weights_enum("My_Weights.PTH")
    assert resolve_weights("My_Weights.PTH", tmp_path) == path


def test_cached_enum_resolves_and_loads(torch_home: Path) -> None:
    cached = save(torch_home / "hub" / "checkpoints" / R18_V1, build_network("resnet18", 1000).state_dict())
    assert resolve_weights("ResNet18_Weights.IMAGENET1K_V1") == cached
    assert resolve_weights("torchvision:ResNet18_Weights.DEFAULT") == cached
    fp = weights_fingerprint("ResNet18_Weights.IMAGENET1K_V1")
    assert fp == {"path": str(cached), "bytes": cached.stat().st_size, "mtime_ns": cached.stat().st_mtime_ns}
    assert weights_digest("ResNet18_Weights.DEFAULT") == {
        "sha256": hashlib.sha256(cached.read_bytes()).hexdigest(),
        "bytes": cached.stat().st_size,
    }
    net = build_network("resnet18", 5)
    assert load_local_weights(net, "ResNet18_Weights.IMAGENET1K_V1") == ["fc.weight", "fc.bias"]
    assert net.fc.out_features == 5


# --- collection: positioned errors -------------------------------------------------------------------

SUITE = """\
suite: w
data: {{name: office-synth, classes: 3, image-size: 16, train-per-class: 4, test-per-class: 2}}
source: amazon
models:
  - name: m
    arch: {arch}
    weights: {weights}
expect:
  - source-accuracy: {{min: 0.0}}
"""
WEIGHTS_LINE, WEIGHTS_COL = 7, 14


def suite_errors(directory: Path, weights: str, arch: str = "resnet10-mini") -> list[SpecError]:
    path = directory / "suite.yaml"
    path.write_text(SUITE.format(arch=arch, weights=weights), encoding="utf-8")
    with pytest.raises(SpecErrors) as info:
        load_suite(path, specs_dir=directory / "no-specs")
    return info.value.errors


def the_weights_error(errors: list[SpecError], directory: Path) -> str:
    assert len(errors) == 1, "\n".join(map(str, errors))
    (e,) = errors
    assert (e.file, e.line, e.col, format_path(e.path)) == (
        str(directory / "suite.yaml"),
        WEIGHTS_LINE,
        WEIGHTS_COL,
        "models[0].weights",
    )
    return e.message


def test_collection_file_missing(tmp_path: Path) -> None:
    message = the_weights_error(suite_errors(tmp_path, "weights/nope.pt"), tmp_path)
    assert message == f"weights file not found: {tmp_path / 'weights' / 'nope.pt'}"


def test_collection_enum_not_cached(tmp_path: Path, torch_home: Path) -> None:
    message = the_weights_error(suite_errors(tmp_path, "ResNet18_Weights.IMAGENET1K_V1", "resnet18"), tmp_path)
    assert str(torch_home / "hub" / "checkpoints" / R18_V1) in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message


def test_collection_enum_unknown(tmp_path: Path, torch_home: Path) -> None:
    message = the_weights_error(suite_errors(tmp_path, "ResNet18_Weights.IMAGENET1K_V2", "resnet18"), tmp_path)
    assert "ResNet18_Weights has no member 'IMAGENET1K_V2'; did you mean IMAGENET1K_V1" in message


def test_collection_weights_do_not_fit(tmp_path: Path) -> None:
    save(tmp_path / "r18.pt", build_network("resnet18", 3).state_dict())
    message = the_weights_error(suite_errors(tmp_path, "r18.pt"), tmp_path)
    assert message.startswith(f"weights file {tmp_path / 'r18.pt'} does not fit resnet10-mini: ")
    assert "unexpected keys" in message or "shape mismatches" in message


def test_collection_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 10)
    assert "cannot read weights file" in the_weights_error(suite_errors(tmp_path, "junk.pt"), tmp_path)


def test_collection_accepts_another_head_and_a_cached_enum(tmp_path: Path, torch_home: Path) -> None:
    save(tmp_path / "w31.pt", {"state_dict": {f"module.{k}": v for k, v in mini_state(31).items()}})
    cached = save(torch_home / "hub" / "checkpoints" / R18_V1, build_network("resnet18", 1000).state_dict())
    path = tmp_path / "suite.yaml"
    path.write_text(
        SUITE.format(arch="resnet10-mini", weights="w31.pt").replace(
            "expect:", "  - {name: r18, arch: resnet18, weights: 'torchvision:ResNet18_Weights.DEFAULT'}\nexpect:"
        ),
        encoding="utf-8",
    )
    loaded = load_suite(path, specs_dir=tmp_path / "no-specs")
    assert [m.weights for m in loaded.suite.models] == [str(tmp_path / "w31.pt"), str(cached)]


def test_weights_error_in_a_named_model_points_into_models_yaml(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "models.yaml").write_text("pre:\n  arch: resnet10-mini\n  weights: ../w.pt\n", encoding="utf-8")
    save(tmp_path / "w.pt", build_network("resnet10-small", 3).state_dict())
    path = tmp_path / "suite.yaml"
    path.write_text(
        SUITE.format(arch="", weights="").split("models:")[0]
        + "models: [pre]\nexpect:\n  - source-accuracy: {min: 0.0}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecErrors) as info:
        load_suite(path)
    (e,) = info.value.errors
    assert (e.file, e.line, format_path(e.path)) == (str(specs / "models.yaml"), 3, "pre.weights")
    assert "does not fit resnet10-mini" in e.message


def test_collection_without_enums_does_not_import_torchvision(tmp_path: Path) -> None:
    save(tmp_path / "w.pt", {"conv.weight": torch.zeros(2, 3, 1, 1)})
    (tmp_path / "factory.py").write_text(
        "from torch import nn\n\ndef tiny(num_classes):\n"
        "    return nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, num_classes))\n",
        encoding="utf-8",
    )
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(arch="factory:tiny", weights="w.pt"), encoding="utf-8")
    code = (
        "import sys\nfrom robustspec.spec.loader import load_suite\n"
        f"try:\n    load_suite({str(path)!r}, specs_dir={str(tmp_path / 'no-specs')!r})\nexcept Exception as e:\n    print(e)\n"
        "print('torchvision' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    ).stdout
    assert out.strip().splitlines()[-1] == "False", out
    assert "0.bias" in out  # the check ran: the file lacks the factory's keys


# --- content keys ------------------------------------------------------------------------------------


def test_model_key_follows_the_resolved_file(tmp_path: Path, torch_home: Path) -> None:
    from robustspec.spec.schema import ModelSpec, Suite, SynthData
    from robustspec.store import Store
    from robustspec.workspace import Workspace

    cached = save(torch_home / "hub" / "checkpoints" / R18_V1, build_network("resnet18", 1000).state_dict())
    data = SynthData(classes=3, image_size=16, train_per_class=4, test_per_class=2)

    def key(weights: str | None) -> str:
        model = ModelSpec(name="m", arch="resnet18", weights=weights)
        suite = Suite(suite="k", data=data, source="amazon", models=[model], expect=[{"source-accuracy": {}}])
        return Workspace(Store(tmp_path / "store")).model_key(suite, model)

    by_enum = key("ResNet18_Weights.IMAGENET1K_V1")
    assert key(None) != by_enum
    assert key("torchvision:ResNet18_Weights.DEFAULT") == by_enum == key(str(cached))  # keyed by the file
    os.utime(cached, ns=(cached.stat().st_atime_ns, cached.stat().st_mtime_ns + 10**9))
    assert key("ResNet18_Weights.IMAGENET1K_V1") == by_enum  # a fresh clone's mtimes keep the key
    copy = tmp_path / "elsewhere" / "r18.pth"
    copy.parent.mkdir()
    copy.write_bytes(cached.read_bytes())
    assert key(str(copy)) == by_enum  # keyed by the bytes, not where they lie
    state = build_network("resnet18", 1000).state_dict()
    state["fc.bias"] = state["fc.bias"] + 1.0
    save(cached, state)
    assert key("ResNet18_Weights.IMAGENET1K_V1") != by_enum  # the file changed: a new key


def test_a_weights_error_is_the_only_error(tmp_path: Path) -> None:
    """The model is kept after a weights error, so expectations naming its variants raise nothing more."""
    text = SUITE.format(arch="resnet10-mini", weights="nope.pt").replace(
        "expect:\n  - source-accuracy: {min: 0.0}",
        "    variants: {half: {prune: {ratio: 0.5}}}\nexpect:\n  - source-accuracy: {variants: [half], min: 0.0}",
    )
    (tmp_path / "suite.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(SpecErrors) as info:
        load_suite(tmp_path / "suite.yaml", specs_dir=tmp_path / "no-specs")
    the_weights_error(info.value.errors, tmp_path)


# --- any architecture: its head is found and replaced ---------------------------------------------------


@pytest.mark.parametrize(
    "arch, head",
    [
        ("mobilenet_v3_small", "classifier.3"),
        ("efficientnet_b0", "classifier.1"),
        ("regnet_x_400mf", "fc"),
        ("squeezenet1_1", "classifier.1"),  # a 1x1 convolution
        ("shufflenet_v2_x0_5", "fc"),
    ],
)
def test_the_head_of_any_architecture_is_replaced(tmp_path: Path, arch: str, head: str) -> None:
    # A checkpoint of 1000 classes, saved by DataParallel (module. prefixes) inside {"state_dict": ...}.
    torch.manual_seed(0)
    src = build_network(arch, 1000).state_dict()
    path = save(tmp_path / "w.pt", {"state_dict": {f"module.{k}": v for k, v in src.items()}})
    assert weights_fit_problems(path, arch, {}, 5) == []  # the collection check, on the meta device
    net = build_network(arch, 5)
    skipped = load_local_weights(net, path)
    assert skipped == [f"{head}.weight", f"{head}.bias"]
    own = net.state_dict()
    assert all(torch.equal(own[k], v) for k, v in src.items() if not k.startswith(head + "."))
    assert own[f"{head}.weight"].shape[0] == 5
