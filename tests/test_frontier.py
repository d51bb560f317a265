"""``robustspec search SUITE --model M --variant V``: the frontier along a variant's budget axis, gated by the
suite's own expectations on validation images, and the smallest passing point as a variant to paste."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import robustspec
from robustspec.cli import main
from robustspec.frontier import budget_axis, default_points, variant_yaml
from robustspec.spec.loader import load_suite
from robustspec.store import Store

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SUITE = """\
suite: frontier
data: {name: office-synth, classes: 3, image-size: 16, train-per-class: 20, test-per-class: 12}
source: amazon
targets: [webcam]
train: {epochs: 3, batch-size: 16}
models: [resnet10-mini]
variants:
  fp: {prune: {params: 150k, finetune: 1}}
  fp-int8: [{prune: {ratio: 0.3}}, {quantize: ptsq}]
expect:
  - max-params: {variants: [fp], max: 120k}
  - source-accuracy: {variants: [fp], min: 0.2}
  - target-accuracy: {variants: [fp], min: 0.0}
"""


def test_axis_points_and_yaml(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    loaded = load_suite(path)
    chains = loaded.variants["resnet10-mini"]
    assert budget_axis(chains["fp"]) == (0, "params")
    assert budget_axis(chains["fp-int8"]) == (0, "ratio")
    assert default_points("params", 4_510_000) == [6_010_000, 4_510_000, 3_380_000, 2_540_000, 1_900_000, 1_430_000]
    assert default_points("ratio", 0.3) == [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert variant_yaml("x", chains["fp"]) == "x: {prune: {params: 150.0k, finetune: 1}}"
    assert variant_yaml("y", chains["fp-int8"]) == "y: [{prune: {ratio: 0.3}}, {quantize: {}}]"


@pytest.mark.slow  # trains a tiny model and runs the suite
def test_frontier_names_a_variant_that_passes_as_a_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ROBUSTSPEC_STORE", raising=False)
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    store = tmp_path / "store"
    out = tmp_path / "frontier.json"
    args = ["search", str(path), "--model", "resnet10-mini", "--variant", "fp", "--store", str(store)]
    assert main([*args, "--device", "cpu", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    points = doc["points"]
    assert len(points) >= 5 and all(p["error"] is None for p in points)
    assert [p["label"] for p in points] == ["200.0k", "150.0k", "112.5k", "84.4k", "63.3k", "47.5k"]
    assert not points[0]["passed"] and not points[1]["passed"]  # max-params 120k
    assert all(g["name"] in {"max-params", "source-accuracy", "target-accuracy[webcam]"} for g in points[0]["gates"])
    assert doc["validation"] == {"amazon": 12, "webcam": 60}  # 20 % of amazon's train split; webcam's train split
    smallest = doc["smallest_passing"]
    assert smallest is not None and f"smallest passing: {smallest}" in text
    assert doc["variant_yaml"] == f"fp-{smallest.lower()}: {{prune: {{params: {smallest}, finetune: 1}}}}"
    assert doc["pareto"]["max-params"]  # every gate has a frontier
    # No test split was evaluated: every evaluation is of a validation split.
    evals = [e for e in Store(store).entries() if e["kind"] == "eval"]
    assert evals and all(e["meta"].get("split") == "validation" for e in evals)

    # The report's section: the table of every point, a plot per gate where matplotlib is installed.
    from robustspec.report.frontier import frontier_section
    from robustspec.report.html import has_plots

    section = frontier_section(doc)
    header, rows, statuses = section.tables[0]
    assert header[-1] == "status" and len(rows) == len(points) and statuses[:2] == ["fail", "fail"]
    assert len(section.images) == (3 if has_plots() else 0)

    # A second run builds nothing.
    builds = len(Store(store).builds())
    assert main([*args, "--device", "cpu"]) == 0
    assert len(Store(store).builds()) == builds

    # The reported variant, pasted into the suite, passes when the suite runs (on the test splits).
    name = doc["variant_yaml"].split(":")[0]
    pasted = SUITE.replace("variants:\n", f"variants:\n  {doc['variant_yaml']}\n").replace("[fp]", f"[fp, {name}]")
    path.write_text(pasted)
    result = robustspec.run(path, store=store, device="cpu", select=f"*::{name}::*")
    assert result.checks and all(c.passed for c in result.checks), result.summary()


def test_unknown_variant_and_no_axis_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.replace("  fp-int8: [{prune: {ratio: 0.3}}, {quantize: ptsq}]\n", "  q: {quantize: ptsq}\n"))
    base = ["search", str(path), "--model", "resnet10-mini", "--store", str(tmp_path / "store")]
    assert main([*base, "--variant", "nope"]) == 2
    assert "no variant 'nope'" in capsys.readouterr().err
    assert main([*base, "--variant", "q"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"s\.yaml:9:\d+: the variant's chain \(quantize\) has no budget to move along", err), err
    assert main([*base, "--variant", "fp", "--points", "100k,0.5"]) == 2
    assert "point 0.5 is no prune budget: params: Value error, a parameter count must be a whole number" in (
        capsys.readouterr().err
    )
    assert main([*base, "--variant", "fp", "--points", "500k"]) == 2
    assert "point 500.0k: budget 500.0k is not below the model's 309.8k parameters" in capsys.readouterr().err


TREE_SUITE = """\
suite: tree
data: {{imagefolder: ../office, image-size: 16{splits}}}
source: amazon
targets: [webcam]
train: {{epochs: 1, batch-size: 8}}
models: [resnet10-mini]
variants:
  fp: {{prune: {{params: 150k}}}}
expect:
  - source-accuracy: {{variants: [fp], min: 0.0}}
  - target-accuracy: {{variants: [fp], min: 0.0}}
"""


def _tree(root: Path) -> None:
    from PIL import Image

    for domain in ("amazon", "webcam"):
        for cls in ("mug", "pen"):
            folder = root / domain / cls
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (12, 12), (60 * i, 100 if cls == "pen" else 20, 30)).save(folder / f"{i}.png")


@pytest.mark.parametrize(
    "splits, refused",
    [
        pytest.param("", True, id="whole-target-is-refused"),
        pytest.param(", splits: {webcam: held-out}", False, id="held-out-target"),
    ],
)
def test_a_target_scored_on_all_its_images_cannot_be_searched_on(tmp_path: Path, splits: str, refused: bool) -> None:
    """A target's train split is its test images when it is scored whole: searching on it would choose by the
    test, so the search refuses and names the held-out split that makes it possible."""
    from robustspec.errors import UsageError
    from robustspec.frontier import _whole_domains, frontier
    from robustspec.plan import plan_suite
    from robustspec.workspace import Workspace

    _tree(tmp_path / "office")
    (tmp_path / "suites").mkdir()
    path = tmp_path / "suites" / "tree.yaml"
    path.write_text(TREE_SUITE.format(splits=splits))
    loaded = load_suite(path, tmp_path / "specs")
    ws = Workspace(Store(tmp_path / "store"))
    checks = [c for c in plan_suite(loaded) if c.variant == "fp"]
    assert _whole_domains(ws, loaded, checks) == (["webcam"] if refused else [])
    if refused:
        with pytest.raises(
            UsageError, match=r"'webcam' on every image \(splits: whole\).*splits: \{webcam: held-out\}"
        ):
            frontier(ws, loaded, "resnet10-mini", "fp")
        assert not (tmp_path / "store").exists()  # refused before anything is built


def test_a_variant_no_expectation_selects_is_an_error_at_the_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)  # every expectation selects variants: [fp]
    args = ["search", str(path), "--model", "resnet10-mini", "--variant", "fp-int8", "--store", str(tmp_path / "st")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(
        r"s\.yaml:9:\d+: no expectation of s\.yaml applies to resnet10-mini/fp-int8: nothing to gate on", err
    ), err
    assert not (tmp_path / "st").exists()
