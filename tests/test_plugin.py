"""End-to-end tests of the pytest plugin: each test writes a tiny project and runs pytest on it in a subprocess.

A subprocess per run because pytest-xdist and torch need real processes. Everything is tiny (3 classes of
16x16 images, 1 epoch) so a run is dominated by process start-up and importing torch.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from robustspec.store import Store

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 300

SPECS = {
    "specs/datasets.yaml": (
        "tiny: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 8, seed: 0}\n"
    ),
    "specs/training.yaml": "tiny: {epochs: 1, batch-size: 16}\n",
}

#: Expectations that pass whatever a 1-epoch model measures.
ALWAYS_PASS = ("source-accuracy: {min: 0.0}", "target-accuracy: {min: 0.0}", "drop-vs-source: {max: 1.0}")

#: The items of a one-model suite with ALWAYS_PASS, in collection order.
ITEMS = [
    "resnet10-mini::baseline::source-accuracy",
    "resnet10-mini::baseline::target-accuracy[webcam]",
    "resnet10-mini::baseline::target-accuracy[dslr]",
    "resnet10-mini::baseline::drop-vs-source[webcam]",
    "resnet10-mini::baseline::drop-vs-source[dslr]",
]

BAD_SUITE = """\
data: tiny
source: amazon
train: tiny
models: [resnet10-mini]
colour: red
expect:
  - source-accuracy: {min: 1.5}
"""

JUNIT_PROPERTIES = {"measured", "threshold", "n", "ci_low", "ci_high", "status", "model", "variant", "domain"}


def suite_text(*expect: str, models: tuple[str, ...] = ("resnet10-mini",)) -> str:
    lines = ["data: tiny", "source: amazon", "train: tiny", f"models: [{', '.join(models)}]", "expect:"]
    lines += [f"  - {e}" for e in expect]
    return "\n".join(lines) + "\n"


#: Two target-accuracy items fail (a 1-epoch model is not perfect on 24 images), three items pass.
GATED_SUITE = suite_text("source-accuracy: {min: 0.0}", "target-accuracy: {min: 1.0}", "drop-vs-source: {max: 1.0}")


@pytest.fixture
def project(write_project) -> pytest.Pytester:
    """A project with specs/ and an empty suites/; the environment does not leak an outer store or xdist."""
    pytester = write_project(SPECS)
    (pytester.path / "suites").mkdir()
    return pytester


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store shared by tests that do not count builds (the store is content-addressed, so order is irrelevant)."""
    return tmp_path_factory.mktemp("shared-store")


def write_suite(pytester: pytest.Pytester, name: str, text: str) -> None:
    (pytester.path / "suites" / name).write_text(text, encoding="utf-8")


def run(pytester: pytest.Pytester, store: Path | None, *args: str) -> pytest.RunResult:
    # hypothesis's plugin costs ~0.5 s per process (controller and each worker) and plays no part here;
    # test_unrelated_project_is_untouched runs with every installed plugin.
    opts = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    if store is not None:
        opts.append(f"--robustspec-store={store}")
    return pytester.runpytest_subprocess(*opts, *args, timeout=RUN_TIMEOUT)


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def assert_no_traceback(result: pytest.RunResult) -> None:
    text = output(result)
    assert "Traceback" not in text, text
    assert "def runtest" not in text, text


def junit_cases(path: Path) -> dict[str, tuple[dict[str, str], str | None]]:
    """``model::variant::name`` -> (properties, failure message or None) of every testcase."""
    cases = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        failure = tc.find("failure")
        key = f"{props.get('model')}::{props.get('variant')}::{tc.get('name')}"
        assert key not in cases, f"duplicate testcase {key}"
        cases[key] = (props, None if failure is None else failure.get("message", ""))
    return cases


# --- 1. collection ----------------------------------------------------------------------------------


def test_item_ids_are_readable_and_collection_does_not_build(project: pytest.Pytester, tmp_path: Path) -> None:
    write_suite(project, "s.yaml", suite_text(*ALWAYS_PASS))
    store = tmp_path / "store"
    result = run(project, store, "--collect-only", "-q")
    assert result.ret == 0, output(result)
    ids = [line for line in result.stdout.lines if line.startswith("suites/")]
    assert ids == [f"suites/s.yaml::{item}" for item in ITEMS]
    assert not (store / "builds.jsonl").exists()
    assert Store(store).builds() == []


# --- 2, 3. passing and failing gates --------------------------------------------------------------------


def test_passing_run_prints_summary(project: pytest.Pytester, shared_store: Path) -> None:
    write_suite(project, "s.yaml", suite_text(*ALWAYS_PASS))
    result = run(project, shared_store)
    assert result.ret == 0, output(result)
    result.assert_outcomes(passed=5)
    num = r"-?\d\.\d{3}"
    result.stdout.re_match_lines(
        [
            r"=+ robustspec summary =+$",
            r"suite\s+model\s+variant\s+check\s+domain\s+measured\s+threshold\s+status$",
            rf"s\s+resnet10-mini\s+baseline\s+drop-vs-source\s+dslr\s+{num}\s+<= 1\.000\s+PASS$",
            rf"s\s+resnet10-mini\s+baseline\s+drop-vs-source\s+webcam\s+{num}\s+<= 1\.000\s+PASS$",
            rf"s\s+resnet10-mini\s+baseline\s+source-accuracy\s+-\s+{num}\s+>= 0\.000\s+PASS$",
            rf"s\s+resnet10-mini\s+baseline\s+target-accuracy\s+dslr\s+{num}\s+>= 0\.000\s+PASS$",
            rf"s\s+resnet10-mini\s+baseline\s+target-accuracy\s+webcam\s+{num}\s+>= 0\.000\s+PASS$",
        ],
        consecutive=True,
    )


def test_gate_fails_with_numbers_and_no_traceback(project: pytest.Pytester, shared_store: Path) -> None:
    write_suite(
        project,
        "s.yaml",
        suite_text(
            "source-accuracy: {min: 0.0}",
            "target-accuracy: {min: 1.0}",
            "drop-vs-source: {max: 0.0}",
            "drop-vs-source: {max: 0.0, confidence: 0.99}",
        ),
    )
    result = run(project, shared_store, "--junitxml=out.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output(result)
    assert_no_traceback(result)
    cases = junit_cases(project.path / "out.xml")
    confident = [f"resnet10-mini::baseline::drop-vs-source#2[{d}]" for d in ("webcam", "dslr")]
    assert set(cases) == {*ITEMS, *confident}
    classnames = {tc.get("classname") for tc in ET.parse(project.path / "out.xml").getroot().iter("testcase")}
    assert classnames == {"suites/s_yaml.resnet10-mini.baseline"}  # suite file, model, variant (no xdist)
    # A 1-epoch model cannot be perfect on 24 images of a target domain.
    for domain in ("webcam", "dslr"):
        props, failure = cases[f"resnet10-mini::baseline::target-accuracy[{domain}]"]
        assert float(props["measured"]) < 1.0
        assert failure is not None and props["status"] == "fail"
        assert f"measured {float(props['measured']):.3f}" in failure
        assert "min 1.000" in failure
        assert re.search(r"95% CI \[\d\.\d{3}, \d\.\d{3}\]", failure), failure
        # Per image right or wrong, for paired comparisons: as many right as the accuracy says.
        from robustspec.outcomes import decode_outcomes

        items, outcomes = decode_outcomes(props[f"outcomes[{domain}]"])
        assert items.startswith("data-") and sum(outcomes) == round(float(props["measured"]) * len(outcomes))
        # The same text on the terminal, with the suite file and line.
        result.stdout.fnmatch_lines([f"*s.yaml:7: accuracy on target domain '{domain}': measured * min 1.000"])
    # A drop can be negative (target easier than source): max 0.0 fails exactly the positive drops, and
    # with confidence exactly those whose upper bound is positive, which a 99% bound on 24 images always is
    # unless the target is far easier than the source.
    for domain in ("webcam", "dslr"):
        props, failure = cases[f"resnet10-mini::baseline::drop-vs-source[{domain}]"]
        assert (failure is not None) == (float(props["measured"]) > 0.0), (props, failure)
        props, failure = cases[f"resnet10-mini::baseline::drop-vs-source#2[{domain}]"]
        assert (failure is not None) == (float(props["ci_high"]) > 0.0), (props, failure)
    assert any(cases[key][1] is not None for key in confident)
    for key, (props, failure) in cases.items():
        if failure is not None and "drop-vs-source" in key:
            assert f"measured {float(props['measured']):.3f}" in failure and "max 0.000" in failure, failure
            assert re.search(r"\d+% CI \[-?\d\.\d{3}, -?\d\.\d{3}\]", failure), failure
    assert cases["resnet10-mini::baseline::source-accuracy"][1] is None
    n_failed = sum(f is not None for _, f in cases.values())
    result.assert_outcomes(passed=len(cases) - n_failed, failed=n_failed)
    result.stdout.fnmatch_lines(["*robustspec summary*", "*target-accuracy*webcam*>= 1.000*FAIL"])


# --- 4, 5. the store builds what is needed, once -----------------------------------------------------


def test_changing_a_threshold_rebuilds_nothing(
    project: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    write_suite(project, "s.yaml", suite_text(*ALWAYS_PASS))
    first = run(project, store)
    assert first.ret == 0, output(first)
    builds = Store(store).builds()
    assert Counter(b["kind"] for b in builds) == {"data": 3, "model": 1, "eval": 3, "metrics": 1}
    log = (store / "builds.jsonl").read_bytes()

    write_suite(
        project,
        "s.yaml",
        suite_text("source-accuracy: {min: 0.01}", "target-accuracy: {min: 0.02}", "drop-vs-source: {max: 0.99}"),
    )
    # Also: the option wins over the environment (nothing may be built in the empty environment store).
    monkeypatch.setenv("ROBUSTSPEC_STORE", str(tmp_path / "env-store"))
    second = run(project, store)
    assert second.ret == 0, output(second)
    assert not (tmp_path / "env-store").exists()
    second.stdout.fnmatch_lines(["*source-accuracy*>= 0.010*PASS", "*target-accuracy*>= 0.020*PASS"])
    assert Store(store).builds() == builds
    assert (store / "builds.jsonl").read_bytes() == log


def test_each_artifact_is_built_once_across_workers(project: pytest.Pytester, tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_suite(
        project,
        "s.yaml",
        suite_text(
            *ALWAYS_PASS,
            "target-accuracy: {domains: [dslr], min: 0.0, confidence: 0.9}",
            models=("resnet10-mini", "resnet10-small"),
        ),
    )
    result = run(project, store, "-n", "4")
    assert result.ret == 0, output(result)
    result.assert_outcomes(passed=2 * 6)
    builds = Store(store).builds()
    per_key = Counter(b["key"] for b in builds)
    assert all(n == 1 for n in per_key.values()), per_key
    assert Counter(b["kind"] for b in builds) == {"data": 3, "model": 2, "eval": 2 * 3, "metrics": 2}
    assert {b["describe"] for b in builds if b["kind"] == "model"} == {"model resnet10-mini", "model resnet10-small"}
    assert all(str(b["worker"]).startswith("gw") for b in builds), builds


# --- 6, 7. invalid suites ---------------------------------------------------------------------------


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_bad_suite_is_a_collection_error_of_that_file_only(
    project: pytest.Pytester, shared_store: Path, xdist: list[str]
) -> None:
    write_suite(project, "good.yaml", suite_text(*ALWAYS_PASS))
    write_suite(project, "bad.yaml", BAD_SUITE)
    result = run(project, shared_store, *xdist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output(result)
    result.assert_outcomes(passed=5, errors=1)
    result.stdout.re_match_lines(
        [r"^suites/bad\.yaml:5:1: .*unknown key 'colour'", r"^suites/bad\.yaml:7:28: .*min.*less than or equal to 1"]
    )
    assert "Interrupted" not in output(result)
    assert_no_traceback(result)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_strict_mode_runs_nothing_when_a_suite_is_bad(
    project: pytest.Pytester, tmp_path: Path, xdist: list[str]
) -> None:
    store = tmp_path / "store"
    write_suite(project, "good.yaml", suite_text(*ALWAYS_PASS))
    write_suite(project, "bad.yaml", BAD_SUITE)
    result = run(project, store, "--robustspec-strict", *xdist)
    assert result.ret not in (0, pytest.ExitCode.NO_TESTS_COLLECTED), output(result)
    assert result.parseoutcomes().get("passed", 0) == 0
    result.stdout.re_match_lines([r"^suites/bad\.yaml:5:1: "])
    assert_no_traceback(result)
    assert not (store / "builds.jsonl").exists()


# --- 8, 9. JUnit XML under xdist ---------------------------------------------------------------------


def run_for_junit(
    pytester: pytest.Pytester, store: Path, workers: str, xml: Path
) -> dict[str, tuple[dict[str, str], str | None]]:
    """Run GATED_SUITE with a fresh store (so the model is trained in this mode) and return the testcases."""
    write_suite(pytester, "s.yaml", GATED_SUITE)
    result = run(pytester, store, "-n", workers, f"--junitxml={xml}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output(result)
    result.assert_outcomes(passed=3, failed=2)
    assert_no_traceback(result)
    return junit_cases(xml)


def numbers(cases: dict[str, tuple[dict[str, str], str | None]]) -> dict[str, tuple[str, ...]]:
    return {
        key: tuple(props[k] for k in ("measured", "n", "ci_low", "ci_high", "status"))
        for key, (props, _) in cases.items()
    }


def trained_weights(store: Path) -> dict[str, Any]:
    """The state dict of the one model built in ``store``."""
    [key] = [b["key"] for b in Store(store).builds() if b["kind"] == "model"]
    return Store(store).load(key)["state_dict"]


@pytest.fixture(scope="module")
def two_worker_run() -> dict[str, Any]:
    """The -n 2 run of the JUnit test (numbers and store), reused by the -n 1 comparison (which reruns if absent)."""
    return {}


def test_junit_xml_under_xdist_has_the_numbers(
    project: pytest.Pytester, tmp_path: Path, two_worker_run: dict[str, Any]
) -> None:
    cases = run_for_junit(project, tmp_path / "store", "2", tmp_path / "out.xml")
    assert set(cases) == set(ITEMS)
    for key, (props, failure) in cases.items():
        assert JUNIT_PROPERTIES <= set(props), (key, props)
        assert props["status"] == ("fail" if failure is not None else "pass"), (key, props)
        assert (props["model"], props["variant"]) == ("resnet10-mini", "baseline")
    for domain in ("webcam", "dslr"):
        props, failure = cases[f"resnet10-mini::baseline::target-accuracy[{domain}]"]
        assert props["domain"] == domain and float(props["threshold"]) == 1.0
        assert failure is not None
        assert f"measured {float(props['measured']):.3f}" in failure and "min 1.000" in failure
        assert re.search(r"95% CI \[\d\.\d{3}, \d\.\d{3}\]", failure), failure
        # Per image right or wrong, for paired comparisons: as many right as the accuracy says.
        from robustspec.outcomes import decode_outcomes

        items, outcomes = decode_outcomes(props[f"outcomes[{domain}]"])
        assert items.startswith("data-") and sum(outcomes) == round(float(props["measured"]) * len(outcomes))
    assert cases["resnet10-mini::baseline::source-accuracy"][0]["domain"] == ""
    # Viewers split the classname at dots: suite file, model, variant (robustspec.pytest.junit), not
    # pytest's "suites.s.yaml.resnet10-mini.baseline".
    classnames = {tc.get("classname") for tc in ET.parse(tmp_path / "out.xml").getroot().iter("testcase")}
    assert classnames == {"suites/s_yaml.resnet10-mini.baseline"}
    two_worker_run.update(numbers=numbers(cases), store=tmp_path / "store")


def test_one_and_two_workers_measure_the_same(
    project: pytest.Pytester, tmp_path: Path, two_worker_run: dict[str, Any]
) -> None:
    # -n 1 caps torch at all cores, -n 2 at one each; builds pin their own thread count (default 1), so the
    # trained weights must be bitwise equal. (With --robustspec-build-threads=auto they differ by ~1e-6.)
    one = numbers(run_for_junit(project, tmp_path / "store-n1", "1", tmp_path / "n1.xml"))
    if "numbers" not in two_worker_run:
        two = numbers(run_for_junit(project, tmp_path / "store-n2", "2", tmp_path / "n2.xml"))
        two_worker_run.update(numbers=two, store=tmp_path / "store-n2")
    assert set(one) == set(ITEMS)
    assert one == two_worker_run["numbers"]
    w1, w2 = trained_weights(tmp_path / "store-n1"), trained_weights(two_worker_run["store"])
    assert w1.keys() == w2.keys()
    assert [k for k in w1 if not torch.equal(w1[k], w2[k])] == []


def test_bad_build_threads_is_a_usage_error(project: pytest.Pytester, tmp_path: Path) -> None:
    write_suite(project, "s.yaml", suite_text(*ALWAYS_PASS))
    result = run(project, tmp_path / "store", "--robustspec-build-threads=abc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output(result)
    result.stderr.fnmatch_lines(["ERROR: --robustspec-build-threads: expected a positive number or auto, got 'abc'"])
    assert_no_traceback(result)


# --- 10, 11. no side effects; where the store is ---------------------------------------------------


def test_unrelated_project_is_untouched(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROBUSTSPEC_STORE", raising=False)
    pytester.makefile(".yaml", config="suite: x\nmodels: [resnet10-mini]\n")
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "other.yaml").write_text("b: [1\n", encoding="utf-8")  # not even valid YAML
    pytester.makepyfile(
        test_x="""
        import sys

        def test_plugin_loaded_without_torch():
            assert "robustspec.pytest.plugin" in sys.modules
            heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
            assert not heavy, heavy
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", timeout=RUN_TIMEOUT)
    assert result.ret == 0, output(result)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["plugins:*robustspec*", "test_x.py::test_plugin_loaded_without_torch PASSED*"])
    assert "yaml" not in "\n".join(line for line in result.stdout.lines if "::" in line or "ERROR" in line)
    assert not (pytester.path / ".robustspec").exists()


def test_store_from_environment(project: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_store = tmp_path / "env-store"
    write_suite(project, "s.yaml", suite_text(*ALWAYS_PASS))
    monkeypatch.setenv("ROBUSTSPEC_STORE", str(env_store))
    result = run(project, None)
    assert result.ret == 0, output(result)
    builds = Store(env_store).builds()
    assert Counter(b["kind"] for b in builds) == {"data": 3, "model": 1, "eval": 3, "metrics": 1}
    assert not (project.path / ".robustspec" / "store").exists()  # .robustspec/results.json is written there
