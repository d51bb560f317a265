"""The artifact graph end to end on a small JPEG tree: ImageFolder data -> trained model -> evaluations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from robustspec.errors import ArtifactError, SpecErrors
from robustspec.spec.loader import load_suite
from robustspec.store import Store
from robustspec.workspace import Workspace

CLASSES = ["mug", "pen", "ruler"]
COLOURS = {"mug": (200, 30, 30), "pen": (30, 200, 30), "ruler": (30, 30, 200)}


def write_tree(root: Path, domains=("amazon", "webcam"), classes=CLASSES, office_layout=True) -> None:
    g = torch.Generator().manual_seed(0)
    for d_i, domain in enumerate(domains):
        for cls in classes:
            folder = root / domain / ("images" if office_layout else "") / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(6):
                noise = torch.randint(0, 40 + 40 * d_i, (20, 24, 3), generator=g)
                base = torch.tensor(COLOURS.get(cls, (128, 128, 128)))
                img = (base + noise).clamp(0, 255).to(torch.uint8).numpy()
                Image.fromarray(img).save(folder / f"{i}.jpg", quality=90)


def write_suite(dir: Path, data_line: str) -> Path:
    (dir / "suites").mkdir(exist_ok=True)
    p = dir / "suites" / "real.yaml"
    p.write_text(
        f"data: {data_line}\n"
        "source: amazon\n"
        "train: {epochs: 2, batch-size: 8, optimizer: {name: adam, lr: 0.01}}\n"
        "models: [resnet10-mini]\n"
        "expect:\n"
        "  - target-accuracy: {domains: [webcam], min: 0.0}\n"
    )
    return p


def test_imagefolder_suite_builds_once_and_evaluates(tmp_path: Path) -> None:
    write_tree(tmp_path / "office")
    loaded = load_suite(
        write_suite(tmp_path, "{imagefolder: ../office, image-size: 32, test-fraction: 0.5}"), tmp_path / "specs"
    )
    model = loaded.suite.models[0]
    store = Store(tmp_path / "store")
    ws = Workspace(store)
    acc = ws.accuracy(loaded, model, "baseline", "webcam")
    assert acc.n == 18  # 3 classes x 6 images: a target is scored on all its images
    assert 0 <= acc.correct <= acc.n
    kinds = sorted(b["kind"] for b in store.builds())
    assert kinds == ["data", "data", "eval", "model"]
    # A second process (a new workspace) reuses everything.
    again = Workspace(Store(tmp_path / "store")).accuracy(loaded, model, "baseline", "webcam")
    assert again == acc and len(store.builds()) == 4


def test_mismatched_classes_are_a_positioned_error(tmp_path: Path) -> None:
    write_tree(tmp_path / "office", domains=("amazon",))
    write_tree(tmp_path / "office", domains=("webcam",), classes=["mug", "pen"], office_layout=False)
    with pytest.raises(SpecErrors) as info:
        load_suite(write_suite(tmp_path, "{imagefolder: ../office}"), tmp_path / "specs")
    text = str(info.value)
    assert "real.yaml:1:7: data:" in text and "ruler" in text


def test_missing_root_is_a_positioned_error(tmp_path: Path) -> None:
    with pytest.raises(SpecErrors, match=r"real.yaml:1:7: data: .*nowhere"):
        load_suite(write_suite(tmp_path, "{imagefolder: ../nowhere}"), tmp_path / "specs")


def test_chains_share_their_prefix_and_restore_from_the_store(tmp_path: Path) -> None:
    (tmp_path / "suites").mkdir()
    path = tmp_path / "suites" / "chain.yaml"
    path.write_text(
        "data: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 6}\n"
        "source: amazon\n"
        "train: {epochs: 1, batch-size: 12}\n"
        "models: [resnet10-mini]\n"
        "variants:\n"
        "  fp: {prune: {ratio: 0.4}}\n"
        "  fp-int8: [{prune: {ratio: 0.4}}, {quantize: {method: ptsq, calibration: 16}}]\n"
        "expect:\n"
        "  - drop-vs-baseline: {max: 1.0}\n"
    )
    loaded = load_suite(path, tmp_path / "specs")
    model = loaded.suite.models[0]
    store = Store(tmp_path / "store")
    ws = Workspace(store)
    results = {v: ws.accuracy(loaded, model, v, "webcam") for v in ("baseline", "fp", "fp-int8")}
    steps = [b for b in store.builds() if b["kind"] == "variant"]
    assert len(steps) == 2  # the prune step once, shared by fp and fp-int8; the quantize step once
    assert ws.step_keys(loaded, model, "fp-int8")[1] == ws.variant_key(loaded, model, "fp")
    # A fresh process restores every step from the store (no rebuild) and gets the same numbers.
    fresh = Workspace(Store(tmp_path / "store"))
    assert {v: fresh.accuracy(loaded, model, v, "webcam") for v in results} == results
    m = fresh.metrics(loaded, model, "fp-int8")
    assert m["quantized"] == 1 and m["bytes"] < fresh.metrics(loaded, model, "fp")["bytes"] / 2
    assert len([b for b in store.builds() if b["kind"] == "variant"]) == 2


@pytest.mark.slow
def test_an_evaluation_stores_true_and_predicted_classes_as_json(tmp_path: Path) -> None:
    """Evaluations are JSON: outcomes, and each image's true and predicted class, from which the per-class
    numbers are read. Version 1 of the evaluation kept correctness only: its keys are not this version's,
    so its evaluations are rebuilt (from the stored model: nothing is trained again), never read; a value
    without classes under a current key is a broken artifact, named with its key."""
    from robustspec.confusion import Confusion
    from robustspec.outcomes import decode_classes, encode_outcomes
    from robustspec.store import content_key
    from robustspec.workspace import BUILDER_VERSIONS

    (tmp_path / "suites").mkdir()
    path = tmp_path / "suites" / "s.yaml"
    path.write_text(
        "data: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 6}\n"
        "source: amazon\n"
        "train: {epochs: 1, batch-size: 12}\n"
        "models: [resnet10-mini]\n"
        "expect:\n"
        "  - source-accuracy: {min: 0.0}\n"
    )
    loaded = load_suite(path, tmp_path / "specs")
    model = loaded.suite.models[0]
    store = Store(tmp_path / "store")
    ws = Workspace(store)
    acc = ws.accuracy(loaded, model, "baseline", "amazon")
    items = ws.data_key(loaded.suite, "amazon")
    assert acc.items == items and acc.n == 18 and isinstance(acc.outcomes, tuple)
    assert all(type(v) is bool for v in acc.outcomes) and sum(acc.outcomes) == acc.correct
    key = ws.eval_key(loaded, model, "baseline", "amazon")
    stored = store.load(key)
    assert store.data_path(key).name == f"{key}.value.json"
    assert set(stored) == {"n", "correct", "outcomes", "classes", "labels", "predicted"}
    assert stored["outcomes"] == encode_outcomes(acc.outcomes, items) and stored["classes"] == 3
    labels, predicted = decode_classes(stored["labels"], 18, 3), decode_classes(stored["predicted"], 18, 3)
    assert labels == ws.splits(loaded.suite, "amazon")["test"].labels.tolist()
    assert [t == p for t, p in zip(labels, predicted)] == list(acc.outcomes)
    assert acc.classes == Confusion.of(labels, predicted, ws.dataset(loaded.suite).classes)
    assert acc.classes.correct == acc.correct and [n for _, n in acc.classes.counts] == [6, 6, 6]

    # The key of version 1 is another key: an evaluation stored by older code is not read as this one.
    parents = ws.eval_parents(loaded, model, "baseline", "amazon")
    assert BUILDER_VERSIONS["eval"] == "2"
    assert key == content_key("eval", {"split": "test", "domain": "amazon"}, parents, "2")
    assert key != content_key("eval", {"split": "test", "domain": "amazon"}, parents, "1")

    # Rebuilt without them: only the evaluation is built again, from the stored model.
    builds = store.builds()
    store.remove(key)
    again = Workspace(Store(tmp_path / "store")).accuracy(loaded, model, "baseline", "amazon")
    assert again == acc and again.classes == acc.classes
    assert [b["kind"] for b in store.builds()[len(builds) :]] == ["eval"]

    # A value in the old layout under the current key: an error that says which artifact, never a guess.
    old = {k: v for k, v in store.load(key).items() if k not in ("labels", "predicted", "classes")}
    store.remove(key)
    store.get_or_build(key, lambda: old, meta={}, describe="an evaluation of version 1")
    with pytest.raises(ArtifactError, match="eval resnet10-mini/baseline/amazon .*not an evaluation with predicted"):
        Workspace(Store(tmp_path / "store")).accuracy(loaded, model, "baseline", "amazon")


def test_a_structural_failure_is_stored_and_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that fails for reasons its key decides fails once across processes: the failure is stored."""
    from robustspec.compress.prune import Prune
    from robustspec.errors import StructuralError

    (tmp_path / "suites").mkdir()
    path = tmp_path / "suites" / "fails.yaml"
    path.write_text(
        "data: {name: office-synth, classes: 3, image-size: 16, train-per-class: 6, test-per-class: 4}\n"
        "source: amazon\n"
        "train: {epochs: 1, batch-size: 12}\n"
        "models: [resnet10-mini]\n"
        "variants:\n"
        "  fp: {prune: {ratio: 0.4}}\n"
        "expect:\n"
        "  - drop-vs-baseline: {max: 1.0}\n"
    )
    loaded = load_suite(path, tmp_path / "specs")
    model = loaded.suite.models[0]
    calls = []

    def refuse(self, parent, params, ctx):
        calls.append(1)
        raise StructuralError("cannot prune resnet10-mini/fp: layer 'x' cannot be followed")

    monkeypatch.setattr(Prune, "apply", refuse)
    for _ in range(2):  # a fresh workspace each time: another process, or a later run
        with pytest.raises(StructuralError, match="layer 'x' cannot be followed.*not retried"):
            Workspace(Store(tmp_path / "store")).accuracy(loaded, model, "fp", "amazon")
    assert len(calls) == 1
