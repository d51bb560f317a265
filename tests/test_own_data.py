"""Your own data: image trees with problems are collection errors at file:line, the worked example in
docs/own-data/ is valid, and a suite fine-tunes from a saved checkpoint end to end through the plugin."""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
import torch

from robustspec.errors import SpecErrors, format_path
from robustspec.models.zoo import build_network
from robustspec.spec.loader import load_suite
from robustspec.store import Store

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "own-data"


def _example_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_example", EXAMPLE / "make_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_example = _example_module()


@pytest.fixture(scope="module")
def jpeg_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Office-31-shaped JPEG tree from make_example.py: 3 domains x 3 classes x 4 images of 32 px."""
    return make_example.write_tree(tmp_path_factory.mktemp("tree") / "office31", classes=3, images=4, size=32)


def test_make_example_writes_the_office31_layout(jpeg_tree: Path) -> None:
    for domain in ("amazon", "webcam", "dslr"):
        classes = sorted(p.name for p in (jpeg_tree / domain / "images").iterdir())
        assert classes == ["disc", "square", "triangle"]
        for c in classes:
            files = sorted((jpeg_tree / domain / "images" / c).iterdir())
            assert [f.name for f in files] == [f"frame_{k:04d}.jpg" for k in range(4)]
            assert files[0].read_bytes()[:2] == b"\xff\xd8"  # JPEG


# --- image trees with problems are positioned collection errors --------------------------------------

SUITE = """\
suite: own
data: {{imagefolder: data, image-size: 16{extra}}}
source: amazon
targets: [{targets}]
train: {{epochs: 1, batch-size: 8}}
models: [resnet10-mini]
expect:
  - target-accuracy: {{min: 0.0}}
"""


def _empty_domain(root: Path) -> None:
    shutil.rmtree(root / "webcam")
    (root / "webcam").mkdir()


def _classes_without_images(root: Path) -> None:
    for cls in (root / "webcam" / "images").iterdir():
        for f in cls.iterdir():
            f.unlink()


def _one_image_per_class(root: Path) -> None:
    # the source: it holds out a test split (a target is scored whole, so one image per class is enough)
    for cls in (root / "amazon" / "images").iterdir():
        for f in sorted(cls.iterdir())[1:]:
            f.unlink()


#: (id, change to the tree, extra data keys, targets, (line, col, path), message fragment)
DATA_CASES = [
    pytest.param(
        _empty_domain,
        "",
        "webcam, dslr",
        (2, 7, "data"),
        "domain 'webcam' has no class folders in",
        id="target-domain-empty",
    ),
    pytest.param(
        _classes_without_images,
        "",
        "webcam, dslr",
        (2, 7, "data"),
        "domain 'webcam' has class folders with no images (.jpg .jpeg .png .bmp .webp)",
        id="classes-without-images",
    ),
    pytest.param(
        _one_image_per_class,
        "",
        "webcam, dslr",
        (2, 7, "data"),
        "domain 'amazon' has no test images",
        id="no-test-images",
    ),
    pytest.param(
        None,
        ", domains: [amazon, webcam, dsrl]",
        "webcam",
        (2, 7, "data"),
        "domain 'dsrl' not found in",
        id="requested-domain-absent",
    ),
    pytest.param(
        None,
        ", domains: [amazon, dslr]",
        "webcam",
        (4, 11, "targets[0]"),
        "unknown domain 'webcam'",
        id="target-not-among-domains",
    ),
]


@pytest.mark.parametrize(("change", "extra", "targets", "where", "fragment"), DATA_CASES)
def test_data_problems_are_collection_errors(
    tmp_path: Path, jpeg_tree: Path, change, extra, targets, where, fragment
) -> None:
    root = shutil.copytree(jpeg_tree, tmp_path / "data")
    if change is not None:
        change(root)
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(extra=extra, targets=targets), encoding="utf-8")
    with pytest.raises(SpecErrors) as info:
        load_suite(path, specs_dir=tmp_path / "no-specs")
    found = [(e.line, e.col, format_path(e.path)) for e in info.value.errors if fragment in e.message]
    assert found == [where], "\n".join(map(str, info.value.errors))
    assert all(e.file == str(path) for e in info.value.errors)


# --- the worked example -------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_example_suite_is_valid(tmp_path: Path, jpeg_tree: Path) -> None:
    """docs/own-data/office31.yaml loads against a stand-in tree and stand-in ResNet-50 weights."""
    shutil.copy(EXAMPLE / "office31.yaml", tmp_path / "office31.yaml")
    shutil.copytree(jpeg_tree, tmp_path / "office31")
    weights = make_example.write_standin_weights(tmp_path / "weights" / "resnet50-imagenet.pth")
    loaded = load_suite(tmp_path / "office31.yaml", specs_dir=tmp_path / "no-specs")
    (model,) = loaded.suite.models
    assert model.arch == "resnet50" and model.weights == str(weights)
    assert loaded.suite.data.image_size == 224 and loaded.classes == 3
    assert loaded.suite.source == "amazon" and loaded.suite.targets == ["webcam", "dslr"]
    assert sorted(loaded.variants["resnet50"]) == ["fp-11.19m", "int8"]
    assert model.normalize.mean == (0.485, 0.456, 0.406) and model.normalize.std == (0.229, 0.224, 0.225)


# --- end to end: fine-tuning from a checkpoint through the plugin ------------------------------------

E2E_SUITE = """\
data: {imagefolder: ../office31, image-size: 32}
source: amazon
train: {epochs: 1, batch-size: 8, optimizer: {name: sgd, lr: 0.000001}}
models:
  - name: pre
    arch: resnet10-mini
    weights: ../weights/mini31.pt
expect:
  - source-accuracy: {min: 0.0}
  - target-accuracy: {min: 0.0}
"""


@pytest.mark.slow
def test_plugin_fine_tunes_from_a_checkpoint(
    isolated_pytester: pytest.Pytester, jpeg_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester = isolated_pytester
    shutil.copytree(jpeg_tree, pytester.path / "office31")
    torch.manual_seed(3)
    checkpoint = build_network("resnet10-mini", 31).state_dict()  # a 31-class head, as from Office-31
    (pytester.path / "weights").mkdir()
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in checkpoint.items()}}, pytester.path / "weights" / "mini31.pt"
    )
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "own.yaml").write_text(E2E_SUITE, encoding="utf-8")
    store = tmp_path / "store"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--robustspec-store={store}", "-v", timeout=300
    )
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, text
    result.assert_outcomes(passed=3)  # source-accuracy, target-accuracy[dslr], target-accuracy[webcam]
    builds = Store(store).builds()
    assert Counter(b["kind"] for b in builds)["model"] == 1
    [key] = [b["key"] for b in builds if b["kind"] == "model"]
    state = Store(store).load(key)["state_dict"]
    fc = next(v for k, v in state.items() if k.endswith("fc.weight"))
    conv1 = next(v for k, v in state.items() if k.endswith("conv1.weight") and "layer" not in k)
    assert fc.shape == (3, 128)  # the new head is sized to the data's classes
    # Trained from the checkpoint (at lr 1e-6 it barely moved), not from a fresh initialisation.
    assert torch.allclose(conv1, checkpoint["conv1.weight"], atol=1e-3)
    assert not torch.allclose(conv1, build_network("resnet10-mini", 3).conv1.weight, atol=1e-2)
