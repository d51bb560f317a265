"""The CI gate end to end: results merged from xdist workers, baselines, severity, JUnit XML.

Each test writes a tiny project (3 classes of 16x16 images, a 1-epoch resnet10-mini) and runs pytest on it
in a subprocess, as tests/test_plugin.py does.
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
SPECS = {
    "specs/datasets.yaml": (
        "tiny: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 8, seed: 0}\n"
    ),
    "specs/training.yaml": "tiny: {epochs: 1, batch-size: 16}\n",
}
ID = "suites/s.yaml::resnet10-mini::baseline::"
#: target-accuracy cannot pass (a 1-epoch model is not perfect) but only warns; the rest passes.
SUITE = """\
data: tiny
source: amazon
train: tiny
models: [resnet10-mini]
expect:
  - source-accuracy: {min: 0.0}
  - target-accuracy: {min: 1.0, severity: warn}
  - drop-vs-source: {max: 1.0, regression: {max-drop: 0.05}}
  - source-accuracy: {min: 0.0}
"""
ITEMS = sorted(
    ID + name
    for name in (
        "source-accuracy",
        "target-accuracy[webcam]",
        "target-accuracy[dslr]",
        "drop-vs-source[webcam]",
        "drop-vs-source[dslr]",
        "source-accuracy#2",
    )
)


@pytest.fixture
def project(write_project) -> pytest.Pytester:
    return write_project({**SPECS, "suites/s.yaml": SUITE})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate-store")


def run(pytester: pytest.Pytester, store: Path, *args: str) -> pytest.RunResult:
    opts = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--robustspec-store={store}", "--robustspec-quiet"]
    return pytester.runpytest_subprocess(*opts, *args, timeout=RUN_TIMEOUT)


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def items_of(path: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads(path.read_text())
    ids = [i["id"] for i in doc["items"]]
    assert len(ids) == len(set(ids)), ids
    return {i["id"]: i for i in doc["items"]}


# --- results merged under xdist; severity warn --------------------------------------------------------


def test_results_merged_from_two_workers_and_warn_severity(project: pytest.Pytester, store: Path) -> None:
    result = run(project, store, "-n", "2", "--robustspec-save-baseline", "baseline/results.json")
    assert result.ret == 0, output(result)
    result.assert_outcomes(passed=6, warnings=2)
    path = project.path / ".robustspec" / "results.json"  # the default place
    doc = json.loads(path.read_text())
    items = items_of(path)
    assert sorted(items) == ITEMS  # every item once, whichever worker ran it
    assert doc["summary"] == {"items": 6, "pass": 4, "fail": 0, "warn": 2, "error": 0, "skip": 0}
    for item_id, it in items.items():
        props = it["properties"]
        assert {"measured", "threshold", "comparison", "artifact_key", "accuracy[amazon]", "parameters"} <= set(props)
        if "target-accuracy" in item_id:
            assert it["status"] == props["status"] == "warn" and props["severity"] == "warn"
            assert "measured" in it["message"] and "min 1.000" in it["message"]
        else:
            assert it["status"] == props["status"] == "pass" and it["message"] is None
    assert items[ID + "drop-vs-source[dslr]"]["properties"]["regression_max_drop"] == 0.05
    env = doc["environment"]
    assert set(env["packages"]) == {"robustspec", "torch", "torchvision", "pytest", "pytest-xdist"}
    assert env["workers"] == 2 and env["torch_threads"] == 1 and env["device"] == "cpu" and env["python"]
    [(subject, keys)] = doc["artifacts"].items()
    assert subject == "s/resnet10-mini/baseline" and keys["artifact_key"].startswith("model-")
    assert sorted(keys["eval_keys"]) == ["amazon", "dslr", "webcam"]
    assert "git_commit" in doc
    # The baseline is the same document.
    assert json.loads((project.path / "baseline" / "results.json").read_text())["items"] == doc["items"]
    # The item passes with a warning, and says WARN in the summary.
    result.stdout.re_match_lines(
        [
            r".*s\.yaml:7: RobustSpecWarning: severity warn: accuracy on target domain 'webcam': measured .* min 1\.000",
            r"s\s+resnet10-mini\s+baseline\s+target-accuracy\s+dslr\s+\d\.\d{3}\s+>= 1\.000\s+WARN$",
            r"robustspec results: \.robustspec/results\.json$",
            r"robustspec baseline saved: baseline/results\.json$",
        ]
    )


# --- baselines -----------------------------------------------------------------------------------------


def doctor(baseline: dict[str, Any]) -> dict[str, Any]:
    """A baseline against which this run regresses, warns, is new, within tolerance, changed and gone."""
    items = {i["id"]: i for i in baseline["items"]}
    props = {k: v["properties"] for k, v in items.items()}
    props[ID + "source-accuracy"]["measured"] += 0.3  # now 0.3 lower: a regression (default tolerance 0.02)
    props[ID + "target-accuracy[webcam]"]["measured"] += 0.5  # regresses too, but severity: warn
    del items[ID + "target-accuracy[dslr]"]  # new
    props[ID + "drop-vs-source[webcam]"]["measured"] -= 0.04  # a drop rose by 0.04: within max-drop 0.05
    props[ID + "drop-vs-source[dslr]"]["measured"] -= 0.1  # rose by 0.1: beyond max-drop 0.05
    props[ID + "source-accuracy#2"]["artifact_key"] = "model-0123456789abcdef"  # another model: compared, named
    props[ID + "source-accuracy#2"]["measured"] += 0.5
    items[ID + "retired-check"] = {"id": ID + "retired-check", "status": "pass", "properties": {"measured": 1.0}}
    return {**baseline, "items": list(items.values())}


def test_baseline_against_itself_then_regressions_new_changed_in_junit(project: pytest.Pytester, store: Path) -> None:
    junitparser = pytest.importorskip("junitparser")
    first = run(project, store, "--robustspec-save-baseline", "base.json")
    assert first.ret == 0, output(first)
    # Against itself: every item is compared and nothing regresses.
    again = run(project, store, "--robustspec-baseline", "base.json", "--robustspec-results", "again.json")
    assert again.ret == 0, output(again)
    again.stdout.fnmatch_lines(
        [
            "*robustspec baseline: base.json*",
            "compared with the baseline: 6 ok, 0 regression, 0 new, 0 in the baseline but not run",
        ]
    )
    assert {i["properties"]["baseline_status"] for i in items_of(project.path / "again.json").values()} == {"ok"}

    base = json.loads((project.path / "base.json").read_text())
    (project.path / "doctored.json").write_text(json.dumps(doctor(base)))
    result = run(
        project,
        store,
        "-n",
        "2",
        "--robustspec-baseline",
        "doctored.json",
        "--junitxml=junit.xml",
        "--robustspec-results",
        "out/results.json",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output(result)
    result.assert_outcomes(passed=3, failed=3, warnings=2)  # two warn items
    assert "Traceback" not in output(result)
    measured = {k: v["properties"]["measured"] for k, v in items_of(project.path / "base.json").items()}

    # The summary says what was compared, and lists what is new, changed and gone ("[" is literal here).
    result.stdout.fnmatch_lines(
        [
            line.replace("[", "[[]")
            for line in [
                "*robustspec baseline: doctored.json*",
                "compared with the baseline: 1 ok, 4 regression, 1 new, 1 in the baseline but not run",
                f"regression: {ID}drop-vs-source[dslr]: measured -0.250 vs baseline -0.350 (+0.100, tolerance 0.05)",
                f"regression: {ID}source-accuracy: measured {measured[ID + 'source-accuracy']:.3f} vs baseline "
                f"{measured[ID + 'source-accuracy'] + 0.3:.3f} (-0.300, tolerance 0.02)",
                f"regression: {ID}source-accuracy#2: * (-0.500, tolerance 0.02) [changed: *]",
                f"regression: {ID}target-accuracy[webcam]: * [warn]",
                f"new: {ID}target-accuracy[dslr]: not in the baseline",
                f"gone: {ID}retired-check: in the baseline, not in this run",
            ]
        ]
    )

    # JUnit XML from -n 2: every number is a property; failures carry measured, threshold, interval, baseline.
    xml = junitparser.JUnitXml.fromfile(str(project.path / "junit.xml"))
    cases = {}
    for suite in xml:
        for case in suite:
            props = {p.name: p.value for p in case.child(junitparser.Properties)}
            failures = [r.message for r in case.result if isinstance(r, junitparser.Failure)]
            cases[f"{props['model']}::{props['variant']}::{case.name}"] = (props, failures)
    assert sorted(cases) == sorted(i.split("::", 1)[1] for i in ITEMS)
    status = {k: p["baseline_status"] for k, (p, _) in cases.items()}
    assert status == {
        "resnet10-mini::baseline::source-accuracy": "regression",
        "resnet10-mini::baseline::target-accuracy[webcam]": "regression",
        "resnet10-mini::baseline::target-accuracy[dslr]": "new",
        "resnet10-mini::baseline::drop-vs-source[webcam]": "ok",
        "resnet10-mini::baseline::drop-vs-source[dslr]": "regression",
        "resnet10-mini::baseline::source-accuracy#2": "regression",
    }
    for key, (props, failures) in cases.items():
        assert {
            "measured",
            "threshold",
            "comparison",
            "n",
            "ci_low",
            "ci_high",
            "status",
            "regression_tolerance",
        } <= set(props)
        assert (props["status"] == "fail") == bool(failures), (key, props, failures)
    for key in ("source-accuracy", "drop-vs-source[dslr]"):
        props, [message] = cases["resnet10-mini::baseline::" + key]
        assert props["status"] == "fail"
        assert f"measured {float(props['measured']):.3f}" in message
        assert re.search(r"(min 0\.000|max 1\.000)", message), message  # the threshold
        assert re.search(r"95% CI \[-?\d\.\d{3}, -?\d\.\d{3}\]", message), message  # the interval
        assert f"baseline {float(props['baseline_measured']):.3f}" in message and "tolerance" in message
    props, failures = cases["resnet10-mini::baseline::target-accuracy[webcam]"]
    assert failures == [] and props["status"] == "warn" and "baseline" in props["warning"]
    props, failures = cases["resnet10-mini::baseline::source-accuracy#2"]
    assert failures and props["status"] == "fail" and props["verdict"] == "fail" and props["baseline_change"]

    # The results file records the baseline; compare on the two files agrees with the gate.
    doc = json.loads((project.path / "out" / "results.json").read_text())
    assert doc["baseline"]["path"].endswith("doctored.json") and doc["summary"]["fail"] == 3
    assert (
        main(
            [
                "compare",
                str(project.path / "doctored.json"),
                str(project.path / "out" / "results.json"),
                "-o",
                str(project.path / "comment.md"),
            ]
        )
        == 1
    )
    comment = (project.path / "comment.md").read_text()
    assert comment.startswith("### robustspec compare: FAIL: 4 regressed, 1 new, 1 gone")
    assert "**regressed** (warn)" in comment


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--robustspec-baseline", "missing.json"], "--robustspec-baseline: */missing.json: no such file"),
        (["--robustspec-baseline", "suites/s.yaml"], "--robustspec-baseline: */s.yaml:1:1: not JSON*"),
        (
            ["--robustspec-regression-tolerance", "-1"],
            "--robustspec-regression-tolerance: expected a finite number >= 0*",
        ),
    ],
)
def test_bad_gate_options_are_usage_errors(
    project: pytest.Pytester, store: Path, args: list[str], fragment: str
) -> None:
    result = run(project, store, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output(result)
    result.stderr.fnmatch_lines([f"ERROR: {fragment}"])
    assert "Traceback" not in output(result)
