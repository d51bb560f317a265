"""The artifact graph end to end on a small JPEG tree: ImageFolder data -> trained model -> evaluations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from robustspec.errors import SpecErrors
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
    assert acc.n == 9  # 3 classes x 6 images x 0.5
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
def test_an_evaluation_stored_as_a_tensor_is_read_and_kept_as_json(tmp_path: Path) -> None:
    """Evaluations are JSON (outcomes encoded); one stored before as ``{"correct": <bool tensor>, "n"}``
    gives the same accuracy, is rewritten as JSON under its key, and nothing is rebuilt."""
    import hashlib
    import io
    import json

    from robustspec.outcomes import encode_outcomes

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
    acc = Workspace(store).accuracy(loaded, model, "baseline", "amazon")
    items = Workspace(store).data_key(loaded.suite, "amazon")
    assert acc.items == items and acc.n == 18 and isinstance(acc.outcomes, tuple)
    assert all(type(v) is bool for v in acc.outcomes) and sum(acc.outcomes) == acc.correct
    key = Workspace(store).eval_key(loaded, model, "baseline", "amazon")
    assert store.load(key) == {"n": 18, "correct": acc.correct, "outcomes": encode_outcomes(acc.outcomes, items)}
    assert store.data_path(key).name == f"{key}.value.json"
    builds = store.builds()

    # The same evaluation as the store held it before: a bool tensor in a .pt, a sidecar without format.
    sidecar = json.loads(store.path_for(key).with_suffix(".json").read_text())
    store.remove(key)
    buf = io.BytesIO()
    torch.save({"correct": torch.tensor(acc.outcomes), "n": acc.n}, buf)
    store.path_for(key).write_bytes(buf.getvalue())
    legacy = {k: v for k, v in sidecar.items() if k != "format"}
    legacy.update(bytes=len(buf.getvalue()), sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    store.path_for(key).with_suffix(".json").write_text(json.dumps(legacy))

    again = Workspace(Store(tmp_path / "store")).accuracy(loaded, model, "baseline", "amazon")
    assert again == acc and again.outcomes == acc.outcomes and again.items == items
    assert store.data_path(key).name == f"{key}.value.json" and not store.path_for(key).exists()
    assert store.load(key)["outcomes"] == encode_outcomes(acc.outcomes, items)
    assert store.builds() == builds


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
