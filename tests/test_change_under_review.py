"""The change under review is compared: a baseline, then a prune-ratio change or a factory edit, then the gate.

End to end, as a team's CI runs it: pytest saves a baseline, the suite or the model code changes, pytest
runs against the baseline, and ``robustspec compare`` exits 1 naming what regressed, both numbers and what
changed. The model is a small CNN from the project's own factory module (``arch: mymodels:build``), 3
classes of 32x32 images, 10 epochs: about 5 s per cold run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from robustspec.cli import main

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 300
FACTORY = """\
from torch import nn


def build(num_classes: int, width: int = {width}) -> nn.Module:
    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(3, width), *block(width, 2 * width), *block(2 * width, 4 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes),
    )
"""
SUITE = """\
data: {{name: office-synth, classes: 3, image-size: 32, train-per-class: 60, test-per-class: 30, seed: 0}}
source: amazon
targets: [webcam]
train: {{epochs: 10, batch-size: 16}}
models:
  - name: net
    arch: mymodels:build
    variants:
      fp-half: {{prune: {{ratio: {ratio}}}}}
  - name: other
    arch: resnet10-mini
    train: {{epochs: 1, batch-size: 16}}
expect:
  - source-accuracy: {{min: 0.0, models: [net]}}
  - source-accuracy: {{min: 0.0, models: [other]}}
"""
NET = "suites/s.yaml::net::"


@pytest.fixture
def project(isolated_pytester: pytest.Pytester) -> pytest.Pytester:
    write(isolated_pytester, ratio=0.2, width=16)
    return isolated_pytester


def write(pytester: pytest.Pytester, *, ratio: float, width: int) -> None:
    (pytester.path / "suites").mkdir(exist_ok=True)
    (pytester.path / "suites" / "s.yaml").write_text(SUITE.format(ratio=ratio), encoding="utf-8")
    (pytester.path / "mymodels.py").write_text(FACTORY.format(width=width), encoding="utf-8")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    store = pytester.path / "store"
    opts = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--robustspec-store={store}", "--robustspec-quiet"]
    # The factory module is found the way the README says: importable from where pytest runs (rootdir).
    return pytester.runpytest_subprocess(*opts, "--rootdir", str(pytester.path), *args, timeout=RUN_TIMEOUT)


def builds(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    lines = (pytester.path / "store" / "builds.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def items(path: Path) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in json.loads(path.read_text())["items"]}


def compare(pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()  # pytester echoed the runs' output
    code = main(["compare", str(pytester.path / "baseline.json"), str(pytester.path / ".robustspec" / "results.json")])
    return code, capsys.readouterr().out


def test_a_prune_ratio_change_is_compared_and_fails_the_gate(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(project, "--robustspec-save-baseline", "baseline.json", "-n", "2", "--robustspec-history", "hist")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["robustspec run kept: hist/0001_*.json"])
    before = items(project.path / "baseline.json")[NET + "fp-half::source-accuracy"]["properties"]["measured"]

    write(project, ratio=0.8, width=16)
    result = run(project, "--robustspec-baseline", "baseline.json", "-n", "2", "--robustspec-history", "hist")
    assert result.ret == 1, result.stdout.str()
    now = items(project.path / ".robustspec" / "results.json")
    pruned = now[NET + "fp-half::source-accuracy"]
    props = pruned["properties"]
    assert pruned["status"] == "fail" and props["baseline_status"] == "regression"
    assert props["baseline_change"] == "variant fp-half: prune.ratio 0.2 → 0.8"
    assert props["measured"] < before - 0.02
    # The baseline model and the other model did not change: compared, nothing named.
    assert now[NET + "baseline::source-accuracy"]["properties"]["baseline_status"] == "ok"
    assert "baseline_change" not in now[NET + "baseline::source-accuracy"]["properties"]
    result.stdout.fnmatch_lines(
        [
            f"*regression: {NET}fp-half::source-accuracy: measured * vs baseline * [[]changed: variant fp-half: "
            "prune.ratio 0.2 → 0.8]*"
        ]
    )

    code, out = compare(project, capsys)
    assert code == 1
    assert "robustspec compare: FAIL: 1 regressed" in out
    [row] = [line for line in out.splitlines() if "fp-half::source-accuracy" in line]
    assert "**regressed**" in row and f"{before:.3f}" in row and f"{props['measured']:.3f}" in row
    assert "variant fp-half: prune.ratio 0.2 → 0.8" in row

    # The same comparison from the kept runs, by index; and the report draws both runs.
    capsys.readouterr()
    hist = str(project.path / "hist")
    assert main(["compare", "--history", hist, "-2", "latest"]) == 1
    assert "prune.ratio 0.2 → 0.8" in capsys.readouterr().out
    report = project.path / "report.html"
    assert (
        main(["report", str(project.path / ".robustspec" / "results.json"), "--history", hist, "-o", str(report)]) == 0
    )
    text = report.with_suffix(".md").read_text()
    assert (
        "## Over kept runs" in text
        and f"{NET}fp-half::source-accuracy | {before:.3f} | {props['measured']:.3f}" in text
    )


def test_a_factory_edit_rebuilds_that_model_only_and_is_compared(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(project, "--robustspec-save-baseline", "baseline.json")
    assert result.ret == 0, result.stdout.str()
    first = builds(project)
    assert sum(b["key"].startswith("model-") for b in first) == 2  # net and other, once each

    write(project, ratio=0.2, width=2)  # a narrower network: the team's edit under review
    result = run(project, "--robustspec-baseline", "baseline.json")
    assert result.ret == 1, result.stdout.str()
    rebuilt = builds(project)[len(first) :]
    described = [b.get("describe", "") for b in rebuilt]
    # net's model, its variant and their evaluations and metrics again; nothing of `other`, no data.
    assert any(d == "model net" for d in described), described
    assert not any("other" in d or d.startswith("data") for d in described), described
    assert sum(b["key"].startswith("model-") for b in rebuilt) == 1

    now = items(project.path / ".robustspec" / "results.json")
    for variant in ("baseline", "fp-half"):
        props = now[f"{NET}{variant}::source-accuracy"]["properties"]
        assert props["baseline_change"] == "model net: factory source changed (mymodels.py)"
    assert "baseline_change" not in now["suites/s.yaml::other::baseline::source-accuracy"]["properties"]

    code, out = compare(project, capsys)
    assert code == 1, out
    regressed = [line for line in out.splitlines() if "**regressed**" in line]
    assert regressed and all("model net: factory source changed (mymodels.py)" in line for line in regressed)
    assert re.search(r"\d\.\d{3} \| \d\.\d{3} \| -\d\.\d{3}", regressed[0])
