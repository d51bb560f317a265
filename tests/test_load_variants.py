"""The team's own exported files as variants: ``load: {file: model.pt2 | .onnx | .pte}``.

The test exports one network three ways itself (torch.export, torch.onnx, ExecuTorch), runs a suite on
the files, and checks that bad files are file:line:col errors when the suite is loaded.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from robustspec.errors import SpecErrors
from robustspec.models import Normalized, build_network
from robustspec.spec.loader import load_suite
from tests.test_plugin import SPECS, assert_no_traceback, junit_cases, run

pytest.importorskip("executorch")
pytest.importorskip("onnxruntime")

REPO_SPECS = Path(__file__).resolve().parents[1] / "specs"
CLASSES, SIZE = 3, 16  # the tiny dataset of test_plugin's SPECS


def export_all(folder: Path, classes: int = CLASSES) -> dict[str, Path]:
    """One untrained network (pixels in [0, 1] in: normalisation inside), as .pt2, .onnx and .pte."""
    from robustspec.runtimes import RUNTIMES

    torch.manual_seed(0)
    model = Normalized(build_network("resnet10-mini", classes, {})).eval()
    x = torch.rand(4, 3, SIZE, SIZE)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"pt2": folder / "model.pt2", "onnx": folder / "model.onnx", "pte": folder / "model.pte"}
    batch = torch.export.Dim("batch", min=1)
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=({0: batch},)), paths["pt2"])
    paths["onnx"].write_bytes(RUNTIMES.get("onnx")().export(model, x, 4))
    paths["pte"].write_bytes(RUNTIMES.get("executorch")().export(model, x, 4))
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return export_all(tmp_path_factory.mktemp("artifacts"))


SUITE = """\
data: tiny
source: amazon
targets: [webcam]
train: tiny
models: [resnet10-mini]
variants:
  shipped-pt2: {{load: {{file: {pt2}, normalize: none}}}}
  shipped-onnx: {{load: {{file: {onnx}, normalize: none}}}}
  shipped-pte: {{load: {{file: {pte}, normalize: none, batch: 4}}}}
expect:
  - source-accuracy: {{min: 0.0}}
  - drop-vs-baseline: {{max: 1.0, domains: [amazon]}}
  - max-size-mb: {{max: 10.0}}
  - attack: {{name: fgsm, eps: 8/255, samples: 8, max-degradation: 1.0, variants: [shipped-pt2, shipped-onnx]}}
"""


@pytest.mark.slow
def test_a_suite_runs_on_the_teams_own_files(write_project, files: dict[str, Path], tmp_path: Path) -> None:
    project = write_project(SPECS)
    (project.path / "suites").mkdir()
    artifacts = project.path / "artifacts"
    artifacts.mkdir()
    for p in files.values():
        shutil.copy(p, artifacts / p.name)
    # Paths are relative to the suite file.
    rel = {k: f"../artifacts/{p.name}" for k, p in files.items()}
    (project.path / "suites" / "shipped.yaml").write_text(SUITE.format(**rel), encoding="utf-8")
    xml = tmp_path / "junit.xml"
    result = run(project, tmp_path / "store", "-p", "no:xdist", f"--junitxml={xml}")
    assert_no_traceback(result)
    assert result.ret == 0, result.stdout.str()
    cases = junit_cases(xml)
    sizes = {}
    for fmt in ("pt2", "onnx", "pte"):
        props, _ = cases[f"resnet10-mini::shipped-{fmt}::max-size-mb"]
        assert props["load.format"] == {"pt2": "pt2", "onnx": "onnx", "pte": "executorch"}[fmt]
        assert float(props["measured"]) == pytest.approx(files[fmt].stat().st_size / 1e6, rel=1e-3)
        sizes[fmt] = props
    assert sizes["onnx"]["load.runtime"] == "onnxruntime" and sizes["pte"]["load.runtime"] == "executorch"
    # The same network three ways: the same accuracy on the same images.
    measured = {fmt: cases[f"resnet10-mini::shipped-{fmt}::source-accuracy"][0]["measured"] for fmt in files}
    assert len(set(measured.values())) == 1, measured
    # A float .pt2 keeps its gradients (white-box); an .onnx is attacked every way that reaches it.
    attacks = {k: v[0] for k, v in cases.items() if "::attack" in k}
    (pt2,) = [v for k, v in attacks.items() if "shipped-pt2" in k]
    (onnx,) = [v for k, v in attacks.items() if "shipped-onnx" in k]
    assert pt2["attack_mode"] == "white-box"
    assert onnx["attack_mode"] == "worst-case" and "transfer" in onnx["worst_case_of"]

    # Moving the files keeps every key: a second run in another folder builds nothing.
    moved = project.path / "elsewhere"
    shutil.move(artifacts, moved)
    rel = {k: f"../elsewhere/{p.name}" for k, p in files.items()}
    (project.path / "suites" / "shipped.yaml").write_text(SUITE.format(**rel), encoding="utf-8")
    log = (tmp_path / "store" / "builds.jsonl").read_bytes()
    again = run(project, tmp_path / "store", "-p", "no:xdist")
    assert again.ret == 0 and (tmp_path / "store" / "builds.jsonl").read_bytes() == log


BAD = """\
data: {{name: office-synth, classes: 3, image-size: 16, train-per-class: 4, test-per-class: 4}}
source: amazon
train: fast
models: [resnet10-mini]
variants:
  shipped: {variant}
expect:
  - source-accuracy: {{min: 0.5}}
"""


def _bad_cases() -> list:
    return [
        pytest.param("{load: nothing-here.onnx}", "6:19", "model file not found", id="missing"),
        pytest.param("{load: model.tflite}", "6:19", "unknown model file type '.tflite'", id="unknown-suffix"),
        pytest.param("{load: text.onnx}", "6:19", "text.onnx: not an ONNX model", id="text-as-onnx"),
        pytest.param("{load: text.pte}", "6:19", "not an ExecuTorch program", id="text-as-pte"),
        pytest.param("{load: text.pt2}", "6:19", "not a torch.export archive", id="text-as-pt2"),
        pytest.param("{load: empty.onnx}", "6:19", "model file is empty", id="empty"),
        pytest.param("{load: five.onnx}", "6:19", "gives 5 outputs; the dataset has 3 classes", id="class-count"),
        pytest.param("{load: {file: model.onnx, classes: [a, b]}}", "6:19", "classes lists 2 names", id="classes-list"),
        pytest.param("[{prune: {ratio: 0.3}}, {load: model.onnx}]", "6:43", "whole chain", id="not-alone"),
        pytest.param("{load: {file: model.onnx, normalize: zscore}}", "6:49", "'imagenet'", id="bad-normalize"),
    ]


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from robustspec.runtimes import RUNTIMES

    folder = tmp_path_factory.mktemp("bad-files")
    shutil.copytree(REPO_SPECS, folder / "specs")
    for name in ("text.onnx", "text.pte", "text.pt2"):
        (folder / name).write_text("this is not a model\n")
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "model.tflite").write_bytes(b"TFL3")
    model = Normalized(build_network("resnet10-mini", CLASSES, {})).eval()
    (folder / "model.onnx").write_bytes(RUNTIMES.get("onnx")().export(model, torch.rand(2, 3, SIZE, SIZE), 2))
    five = Normalized(build_network("resnet10-mini", 5, {})).eval()
    (folder / "five.onnx").write_bytes(RUNTIMES.get("onnx")().export(five, torch.rand(2, 3, SIZE, SIZE), 2))
    return folder


@pytest.mark.parametrize("variant, where, fragment", _bad_cases())
def test_a_bad_file_is_an_error_at_its_position(bad_folder: Path, variant: str, where: str, fragment: str) -> None:
    path = bad_folder / "suite.yaml"
    path.write_text(BAD.format(variant=variant))
    with pytest.raises(SpecErrors) as info:
        load_suite(path)
    lines = str(info.value).splitlines()
    assert any(f"suite.yaml:{where}:" in line and fragment in line for line in lines), "\n".join(lines)


def test_a_good_file_loads_with_its_absolute_path_and_keys_on_its_content(bad_folder: Path) -> None:
    from robustspec.compress.load import Load

    path = bad_folder / "suite.yaml"
    path.write_text(BAD.format(variant="{load: model.onnx}"))
    (step,) = load_suite(path).variants["resnet10-mini"]["shipped"]
    assert Path(step.params.file) == (bad_folder / "model.onnx").resolve()
    key = Load().key_params(step.params)
    assert key["file"]["format"] == "onnx" and len(key["file"]["sha256"]) == 64
    assert str(bad_folder) not in repr(key), "the key holds the content, not the path"
    # An edited file is another variant: its key changes with one byte.
    edited = bad_folder / "edited.onnx"
    data = bytearray((bad_folder / "model.onnx").read_bytes())
    edited.write_bytes(data)
    same = Load().key_params(step.params.model_copy(update={"file": str(edited)}))
    assert same == key
    data[-1] ^= 1
    edited.write_bytes(data)
    changed = Load().key_params(step.params.model_copy(update={"file": str(edited)}))
    assert changed["file"]["sha256"] != key["file"]["sha256"]


def test_wrong_input_size_is_named_when_built(tmp_path: Path) -> None:
    """An .onnx exported for 32 px images, on a 16 px dataset: the build says so, once, without a traceback."""
    from robustspec.compress.base import StepContext
    from robustspec.compress.load import Load
    from robustspec.data.base import Split
    from robustspec.errors import ModelError
    from robustspec.runtimes import RUNTIMES
    from robustspec.spec.schema import TrainRecipe

    model = Normalized(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, CLASSES))).eval()
    file = tmp_path / "m32.onnx"
    file.write_bytes(RUNTIMES.get("onnx")().export(model, torch.rand(2, 3, 32, 32), 2))
    load = Load()
    params, problems = load.resolve(load.Params.model_validate({"file": file.name}), tmp_path)
    assert problems == []
    ctx = StepContext(
        train=Split(torch.zeros(4, 3, SIZE, SIZE, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)),
        num_classes=CLASSES,
        device=torch.device("cpu"),
        recipe=TrainRecipe(),
        baseline=lambda: model,
        new_network=lambda arch, params: model,
        class_names=lambda: ["a", "b", "c"],
    )
    with pytest.raises(
        ModelError, match=textwrap.dedent(r"m32\.onnx cannot run on the dataset's images \(\(3, 16, 16\)\)")
    ):
        load.apply(model, params, ctx)
