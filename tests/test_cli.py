"""The ``robustspec`` command line: validate, schema, cache, --version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robustspec.cli import main, suite_json_schema
from robustspec.expect import EXPECTATIONS
from robustspec.spec.yaml_loader import load_yaml, load_yaml_file
from robustspec.store import Store, content_key

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
suite: good
data: office-synth
source: amazon
train: fast
models: [mini]
expect:
  - source-accuracy: {min: 0.5}
  - target-accuracy: {min: 0.2}
"""

BAD = """\
suite: bad
source: amazn
train: {epochs: ten}
models: [mini]
expect:
  - source-accuracy: {min: 1.5}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with the repository's specs/ and a suites/ directory holding good.yaml and bad.yaml."""
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "good.yaml").write_text(GOOD)
    (suites / "bad.yaml").write_text(BAD)
    return tmp_path


# --------------------------------------------------------------------------- validate


def test_validate_good_suite(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = project / "suites" / "good.yaml"
    assert main(["validate", str(good)]) == 0
    out = capsys.readouterr().out
    # 1 model x baseline x (source-accuracy + target-accuracy on webcam and dslr) = 3 checks
    assert out.splitlines() == [f"ok: {good} (1 model, 3 checks)"]


def test_validate_repository_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "suites" / "quick.yaml")]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {ROOT / 'suites' / 'quick.yaml'} (1 model, ")


def test_validate_bad_suite_reports_every_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = project / "suites" / "bad.yaml"
    assert main(["validate", str(bad)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines == [
        f"{bad}:2:9: source: unknown domain 'amazn'; did you mean 'amazon'? (the dataset has: amazon, webcam, dslr)",
        f"{bad}:3:17: train.epochs: input should be a valid integer (got 'ten')",
        f"{bad}:6:28: expect[0].source-accuracy.min: input should be less than or equal to 1 (got 1.5)",
    ]
    assert "Traceback" not in captured.err


def test_validate_directory_reports_each_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # specs/ inside the directory holds building blocks, not suites: it must not be validated.
    assert main(["validate", str(project)]) == 1
    out = capsys.readouterr().out
    bad, good = project / "suites" / "bad.yaml", project / "suites" / "good.yaml"
    lines = out.splitlines()
    assert lines[0].startswith(f"{bad}:2:9: source: unknown domain 'amazn'")
    assert lines[1].startswith(f"{bad}:3:17: train.epochs: ")
    assert lines[2].startswith(f"{bad}:6:28: expect[0].source-accuracy.min: ")
    assert lines[3] == f"ok: {good} (1 model, 3 checks)"
    assert lines[4] == "1 of 2 suite files valid; 1 with errors"
    assert len(lines) == 5
    assert "specs" not in out.replace(str(project), "")


def test_validate_yml_suffix_and_explicit_specs(
    project: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # no specs/ above it
    suite = elsewhere / "s.yml"
    suite.write_text(GOOD)
    assert main(["validate", str(elsewhere)]) == 1  # `fast` and `mini` are unknown without specs/
    assert "unknown training recipe 'fast'" in capsys.readouterr().out
    assert main(["validate", "--specs", str(project / "specs"), str(elsewhere)]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {suite} (1 model, 3 checks)")


def test_validate_yaml_syntax_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = project / "suites" / "broken.yaml"
    broken.write_text("source: amazon\nmodels: [mini\n")
    assert main(["validate", str(broken)]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{broken}:3:1: models: YAML syntax error: ")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["validate", "no/such/suite.yaml"], "no such file or directory: 'no/such/suite.yaml'"),
        (["validate", "--specs", "no/such/specs", "suites"], "--specs: no such directory"),
        (["validate"], "the following arguments are required: PATH"),
        (["cache", "shred"], "invalid choice: 'shred'"),
        (["cache", "prune"], "give --unused-for, e.g. --unused-for 7d"),
        (["cache", "prune", "--unused-for", "3x"], "expected a duration such as 30m, 12h or 7d, got '3x'"),
        (["cache", "prune", "--unused-for", "12"], "expected a duration such as 30m, 12h or 7d, got '12'"),
        ([], "usage: robustspec"),
    ],
    ids=[
        "missing-path",
        "missing-specs",
        "no-path",
        "bad-cache-action",
        "prune-without-age",
        "bad-duration",
        "duration-without-unit",
        "no-command",
    ],
)
def test_usage_errors_exit_2(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert fragment in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_empty_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    assert "no suite files" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("robustspec ")


def test_console_script(project: Path) -> None:
    exe = shutil.which("robustspec") or str(Path(sys.executable).parent / "robustspec")
    argv = [exe] if Path(exe).exists() else [sys.executable, "-m", "robustspec.cli"]
    proc = subprocess.run([*argv, "validate", "suites"], cwd=project, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "suites/bad.yaml:6:28: expect[0].source-accuracy.min:" in proc.stdout
    assert "ok: suites/good.yaml (1 model, 3 checks)" in proc.stdout
    assert proc.stderr == ""


# --------------------------------------------------------------------------- schema


def test_schema_is_generated_with_every_registered_component(capsys: pytest.CaptureFixture[str]) -> None:
    from robustspec.attacks import ATTACKS
    from robustspec.compress import COMPRESSIONS
    from robustspec.spec.json_schema import SCHEMA_ID

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"suite", "data", "source", "targets", "train", "models", "variants", "expect"}
    defs = schema["$defs"]
    kinds = [
        next(iter(defs[alt["$ref"].rsplit("/", 1)[1]]["properties"]))
        for alt in schema["properties"]["expect"]["items"]["anyOf"]
    ]
    assert kinds == EXPECTATIONS.names()
    steps = [name.removeprefix("Step_").replace("_", "-") for name in defs if name.startswith("Step_")]
    assert sorted(steps) == COMPRESSIONS.names()
    attack_expectation = defs["Expect_attack"]["properties"]["attack"]
    assert sorted(attack_expectation["discriminator"]["mapping"]) == ATTACKS.names()
    assert defs["TrainRecipe"]["additionalProperties"] is False
    assert "epochs" in defs["TrainRecipe"]["properties"]
    # Descriptions come from the pydantic fields.
    assert defs["TrainRecipe"]["properties"]["batch-size"]["title"]
    assert "description" in defs["SourceAccuracyParams"]["properties"]["min"]


def test_schema_to_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "editor" / "suite.schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == suite_json_schema()
    assert capsys.readouterr().out == ""


def _suite_data(text: str) -> dict:
    return load_yaml(text, "suite.yaml").data


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = suite_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_accepts_repository_suites(validator) -> None:
    for path in sorted((ROOT / "suites").glob("*.yaml")):
        data = load_yaml_file(path).data
        assert list(validator.iter_errors(data)) == [], path


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        GOOD.replace("{min: 0.5}", "{min: 4/255, confidence: 90%}"),
        GOOD.replace("models: [mini]", "models: [resnet18, {name: m, arch: resnet10-mini, train: fast}]"),
        GOOD.replace("data: office-synth", "data: {imagefolder: office31, test-fraction: 0.25}"),
        GOOD.replace("train: fast", "train: {epochs: 3, optimizer: {name: sgd, lr: 0.1}}"),
        GOOD.replace(
            "expect:",
            "variants: {a: {coral: webcam}, b: {adabn: dslr}, c: {quantize: ptsq}, d: {distill: mini}}\nexpect:",
        ),
    ],
    ids=["good", "fractions", "inline-models", "imagefolder", "inline-train", "step-shorthands"],
)
def test_schema_accepts_valid_suites(validator, text: str) -> None:
    assert list(validator.iter_errors(_suite_data(text))) == []


@pytest.mark.parametrize(
    "text",
    [
        GOOD + "colour: red\n",
        GOOD.replace("train: fast", "train: {epochs: 3, epoch: 4}"),
        GOOD.replace("{min: 0.5}", "{min: 1.5}"),
        GOOD.replace("{min: 0.5}", "{min: 0.5, confidence: 1}"),
        GOOD.replace("{min: 0.5}", "{min: lots}"),
        GOOD.replace("source-accuracy:", "source-acuracy:"),
        GOOD.replace("models: [mini]", "models: []"),
        GOOD.replace("data: office-synth", "data: {classes: 5, colour: red}"),
        GOOD.replace("source: amazon\n", ""),
    ],
    ids=[
        "unknown-top-key",
        "unknown-train-key",
        "min-above-1",
        "confidence-1",
        "min-not-a-number",
        "unknown-expectation",
        "no-models",
        "unknown-data-key",
        "no-source",
    ],
)
def test_schema_rejects_invalid_suites(validator, text: str) -> None:
    assert list(validator.iter_errors(_suite_data(text))) != []


# --------------------------------------------------------------------------- cache


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store")
    s.get_or_build(content_key("data", {"n": 1}), lambda: torch.zeros(4), describe="zeros")
    s.get_or_build(content_key("model", {"n": 2}), lambda: {"w": torch.ones(8)}, describe="ones")
    return s


def test_cache_list(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "list", "--store", str(store.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["KIND", "KEY", "BYTES", "CREATED", "LAST-USED", "DESCRIBE"]
    entries = store.entries()
    assert len(lines) == 2 + len(entries) == 4
    for line, e in zip(lines[1:], entries):
        cells = line.split()
        assert cells[:3] == [e["kind"], e["key"], str(e["bytes"])]
        assert cells[-1] == e["describe"]
    total = sum(e["bytes"] for e in entries)
    assert lines[-1].startswith(f"total: 2 artifacts, {total} bytes (")


def test_cache_clear(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "clear", "--store", str(store.root)]) == 0
    assert capsys.readouterr().out.strip() == f"removed 2 artifacts from {store.root}"
    assert store.entries() == [] and store.builds() == []
    assert main(["cache", "list", "--store", str(store.root)]) == 0
    assert capsys.readouterr().out.strip() == f"no artifacts in {store.root}"


def test_cache_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROBUSTSPEC_STORE", raising=False)
    assert main(["cache", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / ".robustspec" / "store")
    monkeypatch.setenv("ROBUSTSPEC_STORE", str(tmp_path / "from-env"))
    assert main(["cache", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "from-env")
    assert main(["cache", "path", "--store", "explicit"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "explicit")


def test_cache_list_uses_env_store(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROBUSTSPEC_STORE", str(store.root))
    assert main(["cache", "list"]) == 0
    assert "total: 2 artifacts" in capsys.readouterr().out


def _age(store: Store, key: str, days: float) -> None:
    """Make ``key`` look last used ``days`` ago."""
    t = time.time() - days * 86400
    os.utime(store.path_for(key).with_suffix(".json"), (t, t))


def test_cache_prune(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    old, fresh = content_key("data", {"n": 1}), content_key("model", {"n": 2})
    _age(store, old, 10)
    assert main(["cache", "prune", "--unused-for", "7d", "--dry-run", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"would remove  {old}  ") and out[0].endswith("  zeros")
    assert out[-1].startswith("would remove 1 artifact (") and len(store.entries()) == 2
    assert main(["cache", "prune", "--unused-for", "7d", "--store", str(store.root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("removed 1 artifact (")
    assert [e["key"] for e in store.entries()] == [fresh]
    assert main(["cache", "prune", "--unused-for", "0", "--store", str(store.root)]) == 0  # 0: everything
    assert store.entries() == []


def test_cache_prune_removes_what_killed_builds_left(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    """An hour-old lock and temp file of a key with no artifact (a killed build) go with prune, listed."""
    key = content_key("eval", {"killed": 1})
    folder = store.root / "eval"
    folder.mkdir()
    leftovers = [folder / f"{key}.lock", folder / f"{key}.value.json.tmp-4242-deadbeef"]
    past = time.time() - 2 * 3600
    for p in leftovers:
        p.write_bytes(b"")
        os.utime(p, (past, past))
    assert main(["cache", "prune", "--unused-for", "7d", "--dry-run", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(out[:2]) == sorted(f"would remove  {p}  (left by a killed build)" for p in leftovers)
    assert out[-1] == f"would remove 0 artifacts (0 B) from {store.root}, and 2 lock or temp files of killed builds"
    assert all(p.exists() for p in leftovers)
    assert main(["cache", "prune", "--unused-for", "7d", "--store", str(store.root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("removed 0 artifacts (0 B) from ")
    assert not any(p.exists() for p in leftovers) and len(store.entries()) == 2


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("1.5h", 5400), ("0", 0)]
)
def test_durations(text: str, seconds: float) -> None:
    from robustspec.cli import duration

    assert duration(text) == seconds
