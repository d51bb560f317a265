"""pytest's own conventions on robustspec items: --lf, --ff, --sw, one item by its id, -q/-qq, progress lines.

Item ids end in ``name[label]`` (``target-accuracy[webcam]``), which pytest parses as a name and its
parametrization wherever it reads an id back (its caches, the command line); the items' ids must parse the
same way, or ``--lf`` finds "known failures not in selected tests". Tiny projects as in tests/test_plugin.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 300
SPECS = {
    "specs/datasets.yaml": (
        "tiny: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 8, seed: 0}\n"
    ),
    "specs/training.yaml": "tiny: {epochs: 1, batch-size: 16}\n",
}
#: Items in collection order; the two target-accuracy items fail (a 1-epoch model is not perfect).
SUITE = """\
data: tiny
source: amazon
train: tiny
models: [resnet10-mini]
expect:
  - source-accuracy: {min: 0.0}
  - target-accuracy: {min: 1.0}
  - drop-vs-source: {max: 1.0}
"""
ID = "suites/s.yaml::resnet10-mini::baseline::"
FAILING = [ID + "target-accuracy[webcam]", ID + "target-accuracy[dslr]"]
PASSING = [ID + "source-accuracy", ID + "drop-vs-source[webcam]", ID + "drop-vs-source[dslr]"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conventions-store")


@pytest.fixture
def project(write_project) -> pytest.Pytester:
    return write_project({**SPECS, "suites/s.yaml": SUITE})


def run(pytester: pytest.Pytester, store: Path, *args: str) -> pytest.RunResult:
    # The cache provider stays on: --lf, --ff and --sw live in it.
    return pytester.runpytest_subprocess(
        "-p", "no:hypothesispytest", f"--robustspec-store={store}", *args, timeout=RUN_TIMEOUT
    )


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def ran(result: pytest.RunResult) -> list[str]:
    """Item ids in the order -v reported their outcomes (on a cold store, -v also shows an item's id before
    its progress lines, then again with its outcome)."""
    outcomes = (" PASSED", " FAILED", " ERROR", " SKIPPED", " XFAIL", " XPASS")
    return [
        line.split(" ")[0] for line in result.stdout.lines if line.startswith(ID) and any(o in line for o in outcomes)
    ]


def test_last_failed_reruns_exactly_the_failures(project: pytest.Pytester, tmp_path: Path) -> None:
    # A cold store under xdist: progress lines are tailed from the workers while dots are printed.
    first = run(project, tmp_path / "store", "-n", "2")
    assert first.ret == pytest.ExitCode.TESTS_FAILED, output(first)
    first.assert_outcomes(passed=3, failed=2)
    progress = [line for line in first.stdout.lines if "[robustspec]" in line]
    assert progress, output(first)
    assert all(line.startswith("[robustspec] ") for line in progress), progress  # never after the dots
    again = run(project, tmp_path / "store", "--lf", "-v")
    assert again.ret == pytest.ExitCode.TESTS_FAILED, output(again)
    again.assert_outcomes(failed=2, deselected=3)
    again.stdout.fnmatch_lines(["run-last-failure: rerun previous 2 failures"])
    assert "not in selected tests" not in output(again)
    assert sorted(ran(again)) == sorted(FAILING)


def test_failed_first_runs_the_failures_first(project: pytest.Pytester, store: Path) -> None:
    run(project, store)
    again = run(project, store, "--ff", "-v")
    again.assert_outcomes(passed=3, failed=2)
    again.stdout.fnmatch_lines(["run-last-failure: rerun previous 2 failures first"])
    order = ran(again)
    assert sorted(order[:2]) == sorted(FAILING) and sorted(order[2:]) == sorted(PASSING)


def test_stepwise_stops_at_a_failure_and_resumes_there(project: pytest.Pytester, store: Path) -> None:
    first = run(project, store, "--sw", "-v")
    first.assert_outcomes(passed=1, failed=1)
    assert ran(first) == [ID + "source-accuracy", FAILING[0]]
    second = run(project, store, "--sw", "-v")
    second.stdout.fnmatch_lines(["stepwise: skipping 1 already passed items*"])
    assert ran(second)[0] == FAILING[0]
    second.assert_outcomes(failed=1, deselected=1)


def test_one_item_by_its_id_and_a_check_by_its_name(project: pytest.Pytester, store: Path) -> None:
    one = run(project, store, "-v", FAILING[1])
    one.assert_outcomes(failed=1)
    assert ran(one) == [FAILING[1]]
    # The id without its [label] names every target of the check, as for a parametrized test.
    both = run(project, store, "-v", ID + "drop-vs-source")
    both.assert_outcomes(passed=2)
    assert ran(both) == [ID + "drop-vs-source[webcam]", ID + "drop-vs-source[dslr]"]
    # -k and --deselect see the same ids.
    rest = run(project, store, "-v", "-k", "target", f"--deselect={FAILING[0]}")
    assert ran(rest) == [FAILING[1]]


def test_quiet_prints_failures_and_counts_and_very_quiet_nothing(project: pytest.Pytester, store: Path) -> None:
    default = run(project, store)
    default.stdout.fnmatch_lines(["*robustspec summary*", "*accuracy (%) by domain*", "robustspec results: *"])
    quiet = run(project, store, "-q")
    text = quiet.stdout.str()
    assert "robustspec summary" not in text and "accuracy (%)" not in text and "robustspec results" not in text
    quiet.stdout.fnmatch_lines(["robustspec: 5 checks: 3 PASS, 2 FAIL"])
    assert sorted(line.split(" ", 1)[1] for line in quiet.stdout.lines if line.startswith("FAIL ")) == sorted(FAILING)
    very = run(project, store, "-qq")
    assert very.ret == pytest.ExitCode.TESTS_FAILED
    assert [line for line in very.stdout.lines if "robustspec" in line.split("::")[0]] == [], very.stdout.str()


def test_a_progress_line_starts_a_line_of_its_own(pytester: pytest.Pytester) -> None:
    """Whatever pytest left on the current line (xdist's dots are written without a file path)."""
    pytester.makepyfile(
        test_line="""
        from robustspec.pytest.progress import write_progress_line

        def test_write(request):
            tr = request.config.pluginmanager.get_plugin("terminalreporter")
            capman = request.config.pluginmanager.get_plugin("capturemanager")
            with capman.global_and_fixture_disabled():
                tr.write("...")
                write_progress_line(tr, "mid-line")
                write_progress_line(tr, "at the start")
                tr.write("..")  # as xdist writes its dots: pytest does not note the open line
                write_progress_line(tr, "after dots")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", timeout=RUN_TIMEOUT)
    assert result.ret == 0, output(result)
    lines = result.stdout.lines
    i = lines.index("[robustspec] mid-line")
    assert lines[i - 1].endswith("...") and lines[i + 1] == "[robustspec] at the start"
    assert lines[i + 2] == ".." and lines[i + 3] == "[robustspec] after dots"


def test_ini_store_is_used_by_pytest_and_by_robustspec_cache(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    project.makepyprojecttoml('[tool.pytest.ini_options]\nrobustspec_store = "x/store"\n')
    result = project.runpytest_subprocess("-p", "no:hypothesispytest", "-p", "no:cacheprovider", timeout=RUN_TIMEOUT)
    result.assert_outcomes(passed=3, failed=2)
    store = project.path / "x" / "store"
    assert (store / "builds.jsonl").is_file()
    # From a subdirectory, as pytest would find the rootdir from there.
    listed = subprocess.run(
        [sys.executable, "-m", "robustspec.cli", "cache", "list"],
        cwd=project.path / "suites",
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip().endswith(f"in {store.resolve()}"), listed.stdout
    assert "model" in listed.stdout
