"""``robustspec.run``: a suite from Python, with typed results, sharing the store and the plan with pytest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import robustspec
from robustspec.api import CheckResult, RunResult
from robustspec.errors import SpecErrors
from robustspec.store import Store

SUITE = {
    "suite": "api",
    "data": {"name": "office-synth", "classes": 3, "image-size": 16, "train-per-class": 12, "test-per-class": 8},
    "source": "amazon",
    "targets": ["webcam"],
    "train": {"epochs": 1, "batch-size": 16},
    "models": [{"name": "mini", "arch": "resnet10-mini"}],
    "variants": {"int8": {"quantize": "ptsq"}},
    "expect": [
        {"source-accuracy": {"min": 0.0}},
        {"target-accuracy": {"min": 1.0, "severity": "warn"}},
        {"drop-vs-baseline": {"variants": ["int8"], "max": 1.0}},
    ],
}


@pytest.fixture
def ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread) -> tuple[RunResult, Path]:
    monkeypatch.delenv("ROBUSTSPEC_STORE", raising=False)
    (tmp_path / "suites").mkdir()
    suite = tmp_path / "suites" / "api.yaml"
    import yaml

    suite.write_text(yaml.safe_dump(SUITE, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    return robustspec.run("suites/api.yaml", device="cpu"), tmp_path


def test_results_are_typed_and_named_as_pytest_names_them(ran: tuple[RunResult, Path]) -> None:
    result, _ = ran
    assert isinstance(result, RunResult) and all(isinstance(c, CheckResult) for c in result)
    ids = [c.id for c in result]
    assert "suites/api.yaml::mini::baseline::source-accuracy" in ids
    assert "suites/api.yaml::mini::int8::drop-vs-baseline[webcam]" in ids
    source = result["suites/api.yaml::mini::baseline::source-accuracy"]
    assert source.status == "pass" and source.comparison == ">=" and 0.0 <= source.measured <= 1.0
    assert source.ci is not None and source.ci[0] <= source.measured <= source.ci[1]
    assert source.properties["n_test[amazon]"] == 24 and source.properties["split[amazon]"] == "generated"
    target = result["suites/api.yaml::mini::baseline::target-accuracy[webcam]"]
    assert target.status == "warn" and target.passed and "webcam" in target.message
    assert result.passed and result.counts()["warn"] >= 1
    assert result.summary().startswith(f"{len(result)} checks: ")


def test_pytest_reads_back_the_same_numbers_and_builds_nothing(ran: tuple[RunResult, Path], isolated_pytester) -> None:
    result, project = ran
    store = project / ".robustspec" / "store"
    artifacts = lambda: {
        p.relative_to(store)
        for p in store.rglob("*.json")
        if not any(x.startswith(".") for x in p.relative_to(store).parts)
    }  # noqa: E731
    before = artifacts()
    out = project / "results.json"
    isolated_pytester.chdir()
    res = isolated_pytester.runpytest_subprocess(
        str(project / "suites" / "api.yaml"),
        "-p",
        "no:cacheprovider",
        f"--robustspec-store={store}",
        f"--robustspec-results={out}",
        "--rootdir",
        str(project),
        "-q",
    )
    assert res.ret == 0, res.stdout.str()
    assert artifacts() == before and before  # the same keys: every artifact read back, none built
    items = {i["id"]: i for i in json.loads(out.read_text())["items"]}
    for check in result:
        assert items[check.id]["properties"]["measured"] == check.properties["measured"]
        assert items[check.id]["properties"]["artifact_key"] == check.properties["artifact_key"]


def test_select_and_write(ran: tuple[RunResult, Path], tmp_path: Path) -> None:
    _, project = ran
    only = robustspec.run(
        project / "suites" / "api.yaml", select="*::int8::*", store=Store(project / ".robustspec" / "store")
    )
    assert [c.variant for c in only] == ["int8"] * len(only) and len(only) >= 1
    path = only.write(tmp_path / "out" / "results.json")
    doc = json.loads(path.read_text())
    assert [i["id"] for i in doc["items"]] == [c.id for c in only]


def test_a_mapping_is_validated_with_positions(tmp_path: Path) -> None:
    bad = {**SUITE, "expect": [{"source-accuracy": {"min": 1.5}}]}
    with pytest.raises(SpecErrors) as info:
        robustspec.run(bad, base_dir=tmp_path)
    (error,) = info.value.errors
    assert error.line > 0 and "expect[0].source-accuracy.min" in str(error)
    assert not list(tmp_path.glob("*.yaml"))  # the file written to validate it is gone


def test_the_public_surface_is_declared() -> None:
    assert {"run", "RunResult", "CheckResult"} <= set(robustspec.__all__)
    for name in robustspec.__all__:
        assert getattr(robustspec, name) is not None


def test_the_docs_complete_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, one_torch_thread
) -> None:
    import re

    text = (Path(__file__).parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    complete = [b for b in blocks if "suite = {" in b]
    assert len(complete) == 1
    monkeypatch.delenv("ROBUSTSPEC_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    exec(compile(complete[0], "docs/api.md", "exec"), {})  # noqa: S102 - the documentation's own example
    assert re.search(r"^\d+ checks: ", capsys.readouterr().out, flags=re.M)
