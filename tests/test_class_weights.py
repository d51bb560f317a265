"""``class-weights: balanced`` in training recipes: the weights, the model keys, and on an imbalanced image
tree a higher balanced accuracy than the unweighted recipe, through the workspace and the plugin."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from PIL import Image

from robustspec.confusion import Confusion
from robustspec.expect import EXPECTATIONS
from robustspec.spec.loader import load_suite
from robustspec.spec.schema import TrainRecipe
from robustspec.store import Store
from robustspec.train.supervised import class_weights
from robustspec.workspace import SubjectMeasurements, Workspace


def test_balanced_weights_are_inverse_frequencies() -> None:
    labels = torch.tensor([0, 0, 0, 1])
    assert class_weights(labels, TrainRecipe(), 3) is None
    w = class_weights(labels, TrainRecipe(class_weights="balanced"), 3)
    # n / (K n_k) with K = 2 classes present: 4 / (2 * 3), 4 / (2 * 1); class 2 has no image: 1.
    assert w.tolist() == pytest.approx([2 / 3, 2.0, 1.0])
    assert float(w[labels].sum()) == pytest.approx(len(labels))  # the images' weights sum to n


def test_the_default_leaves_model_keys_as_they_were(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "data: {name: office-synth, classes: 2, image-size: 16, train-per-class: 2, test-per-class: 1}\n"
        "source: amazon\n"
        "models:\n"
        "  - {name: plain, arch: resnet10-mini}\n"
        "  - {name: none, arch: resnet10-mini, train: {class-weights: none}}\n"
        "  - {name: weighted, arch: resnet10-mini, train: {class-weights: balanced}}\n"
        "expect:\n"
        "  - source-accuracy: {min: 0.5}\n"
    )
    loaded = load_suite(tmp_path / "s.yaml", tmp_path / "specs")
    ws = Workspace(Store(tmp_path / "store"))
    plain, none, weighted = loaded.suite.models
    # The recipe as keys held it before the field existed: no class_weights at its default.
    fields = ["epochs", "batch_size", "optimizer", "schedule", "augment", "label_smoothing", "seed"]
    assert list(ws.model_recipe(loaded.suite, plain)["train"]) == fields
    assert ws.model_key(loaded.suite, plain) == ws.model_key(loaded.suite, none)
    assert ws.model_recipe(loaded.suite, weighted)["train"]["class_weights"] == "balanced"
    assert ws.model_key(loaded.suite, weighted) != ws.model_key(loaded.suite, plain)
    # Written back, the suite still says it (a dump at the default just leaves it out).
    assert weighted.train.model_dump(by_alias=True)["class-weights"] == "balanced"
    assert TrainRecipe.model_validate(none.train.model_dump(by_alias=True)) == none.train


def test_distillation_weighs_its_label_term() -> None:
    from robustspec.compress.distill import kd_loss

    torch.manual_seed(0)
    student, teacher, labels = torch.randn(6, 3), torch.randn(6, 3), torch.tensor([0, 0, 0, 0, 1, 2])
    weight = class_weights(labels, TrainRecipe(class_weights="balanced"), 3)
    plain = kd_loss(student, teacher, labels, 4.0, 0.0)
    weighted = kd_loss(student, teacher, labels, 4.0, 0.0, weight)
    expected = torch.nn.functional.cross_entropy(student, labels, weight=weight)
    assert float(weighted) == pytest.approx(float(expected)) and float(weighted) != pytest.approx(float(plain))


# --- an imbalanced image tree ---------------------------------------------------------------------------

#: 80 images of "common" and 16 of "rare" (half of each for testing), two colours a little apart under noise.
COUNTS = {"common": 80, "rare": 16}
COLOURS = {"common": (110, 120, 130), "rare": (140, 120, 110)}
RECIPE = "epochs: 4, batch-size: 16, optimizer: {name: adam, lr: 0.01}, augment: {crop-pad: 0, flip: false, jitter: 0}"
SUITE = f"""\
data: {{imagefolder: ../tree, image-size: 16, test-fraction: 0.5}}
source: amazon
train: {{{RECIPE}}}
models:
  - {{name: plain, arch: resnet10-mini}}
  - {{name: weighted, arch: resnet10-mini, train: {{{RECIPE}, class-weights: balanced}}}}
expect:
  - source-accuracy: {{min: 0.0}}
  - balanced-accuracy: {{min: 0.7}}
  - min-class-accuracy: {{min: 0.5}}
"""


def write_tree(root: Path) -> None:
    g = torch.Generator().manual_seed(0)
    for cls, n in COUNTS.items():
        folder = root / "amazon" / cls
        folder.mkdir(parents=True)
        for i in range(n):
            # Per-pixel noise and a per-image shift of the whole colour: the classes overlap a little.
            noise = torch.randn((16, 16, 3), generator=g) * 15 + torch.randn((1, 1, 3), generator=g) * 15
            img = (torch.tensor(COLOURS[cls]) + noise).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(img).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, one_torch_thread):
    """Both models trained and evaluated, in a store of their own. Module-scoped, so built before any
    ``pytester`` (which drops the modules imported while it is set up, torch's among them)."""
    root = tmp_path_factory.mktemp("imbalanced")
    write_tree(root / "tree")
    (root / "suites").mkdir()
    (root / "suites" / "imbalanced.yaml").write_text(SUITE)
    loaded = load_suite(root / "suites" / "imbalanced.yaml", root / "specs")
    ws = Workspace(Store(root / "store"))
    accuracies = {m.name: ws.accuracy(loaded, m, "baseline", "amazon") for m in loaded.suite.models}
    return root, loaded, ws, accuracies


@pytest.mark.slow
def test_balanced_class_weights_raise_balanced_accuracy(trained) -> None:
    _, loaded, ws, accuracies = trained
    a, b = accuracies["plain"].classes, accuracies["weighted"].classes
    assert isinstance(a, Confusion) and a.names == ("common", "rare")
    assert [n for _, n in a.counts] == [40, 8]
    # Unweighted, the rare class is given up for the common one's 40 images; weighted, it is learnt.
    assert a.class_accuracy()["rare"] <= 0.25 and a.balanced_accuracy <= 0.65
    assert b.balanced_accuracy >= a.balanced_accuracy + 0.2
    assert b.class_accuracy()["rare"] >= 0.5
    exp = EXPECTATIONS.get("balanced-accuracy")()
    params = exp.Params.model_validate({"min": 0.7})
    [target] = exp.expand(params, "amazon", [], "baseline")
    verdicts = {
        m.name: exp.judge(params, target, SubjectMeasurements(ws, loaded, m, "baseline")).passed
        for m in loaded.suite.models
    }
    assert verdicts == {"plain": False, "weighted": True}


@pytest.mark.slow
def test_the_plugin_records_and_reports_the_per_class_numbers(trained, write_project) -> None:
    """The same suite through the plugin, warm (the store above): the items, their numbers, the report."""
    root, _, _, accuracies = trained
    kinds = ("data", "model", "eval")
    builds = [b for b in Store(root / "store").builds() if b["kind"] in kinds]
    project = write_project({"suites/imbalanced.yaml": SUITE})
    (project.path / "tree").symlink_to(root / "tree", target_is_directory=True)
    result = project.runpytest_subprocess(
        "suites", f"--robustspec-store={root / 'store'}", "--junitxml=out.xml", "-p", "no:randomly", timeout=300
    )
    result.assert_outcomes(passed=4, failed=2)  # plain fails balanced-accuracy and min-class-accuracy
    assert [b for b in Store(root / "store").builds() if b["kind"] in kinds] == builds  # none again
    doc = json.loads((project.path / ".robustspec" / "results.json").read_text())
    items = {i["id"].split("::", 1)[1]: i for i in doc["items"]}
    src = items["plain::baseline::source-accuracy"]["properties"]
    plain = accuracies["plain"].classes
    assert src["balanced_accuracy[amazon]"] == pytest.approx(plain.balanced_accuracy, abs=1e-6)
    assert src["class_accuracy[amazon][rare]"] == pytest.approx(plain.class_accuracy()["rare"], abs=1e-6)
    assert Confusion.from_json(src["confusion[amazon]"]) == plain
    worst = items["plain::baseline::min-class-accuracy[amazon]"]
    assert worst["status"] == "fail" and "rare" in worst["message"]
    assert items["weighted::baseline::balanced-accuracy[amazon]"]["status"] == "pass"
    xml = ET.parse(project.path / "out.xml")
    names = {p.get("name") for p in xml.iter("property")}
    assert {"balanced_accuracy[amazon]", "class_accuracy[amazon][common]", "confusion[amazon]"} <= names

    from robustspec.report.html import write_report

    _, md_path = write_report(doc, project.path / "report.html")
    md = md_path.read_text()
    assert "## Per class: imbalanced" in md and "| rare | 8 |" in md and "rare → common" in md
