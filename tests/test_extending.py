"""Plugins: entry points add components without touching robustspec (docs/extending.md).

The registry tests make a fake installed distribution (a ``*.dist-info`` folder with ``entry_points.txt``
next to its modules) on ``sys.path`` and a registry of their own group, so they run in this process and
touch no real registry. The end-to-end test installs examples/robustspec-example-plugin into a temporary
target, puts it on PYTHONPATH and runs a suite that uses its attack and its expectation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from robustspec.errors import RegistryError
from robustspec.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "robustspec-example-plugin"
SMALL_DATA = "name: office-synth, classes: 2, image-size: 16, train-per-class: 8, test-per-class: 4"


class Builtin:
    """Stands in for a component of robustspec itself (robustspec.* modules are built in)."""


Builtin.__module__ = "robustspec.fake_builtin"


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``install(dist, {entry point name: module source})``: a fake distribution whose entry points are in a
    fresh group; returns the group's registry (with one built-in, ``builtin``) and the module prefix."""
    group = f"robustspec.test-widgets-{uuid.uuid4().hex[:8]}"
    prefix = f"widget_{uuid.uuid4().hex[:8]}"
    registry: Registry = Registry("widget", group=group)
    registry.register("builtin")(Builtin)
    # The plugin modules find the registry here, as real ones import robustspec.attacks and the like.
    holder = tmp_path / f"{prefix}_registry.py"
    holder.write_text("REGISTRY = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.import_module(f"{prefix}_registry").REGISTRY = registry

    def install(dist: str, modules: dict[str, str], names: dict[str, str] | None = None) -> Registry:
        info = tmp_path / f"{dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = [f"[{group}]"]
        for ep_name, source in modules.items():
            module = f"{prefix}_{dist}_{ep_name}".replace("-", "_")
            (tmp_path / f"{module}.py").write_text(f"from {prefix}_registry import REGISTRY\n{source}\n")
            lines.append(f"{ep_name} = {module}")
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        return registry

    yield install
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]


def test_plugins_load_on_first_lookup_and_register_themselves(plugins) -> None:
    registry = plugins("widgetpack", {"blue": "@REGISTRY.register('blue')\nclass Blue:\n    '''A blue widget.'''\n"})
    assert registry._plugins == "unloaded"  # registering built-ins loads nothing
    assert registry.names() == ["blue", "builtin"]
    assert registry.get("blue").__doc__ == "A blue widget."
    assert registry.plugin("blue") == (
        f"plugin widgetpack 1.0 (entry point 'blue = {registry.get('blue').__module__}', group {registry.group})"
    )
    assert registry.builtin("builtin") and not registry.builtin("blue") and registry.plugin("builtin") is None
    assert "blue" in registry and "did you mean 'blue'?" in registry.unknown_message("blu")


def test_a_broken_plugin_is_an_error_naming_its_distribution_and_entry_point(plugins) -> None:
    registry = plugins("brokenpack", {"red": "import no_such_module_anywhere\n"})
    with pytest.raises(RegistryError) as info:
        registry.get("builtin")
    message = str(info.value)
    assert message.startswith("plugin brokenpack 1.0 (entry point 'red = ") and registry.group in message
    assert "cannot be loaded: ModuleNotFoundError: No module named 'no_such_module_anywhere'" in message
    assert "Traceback" not in message
    with pytest.raises(RegistryError, match="brokenpack"):  # every later lookup says so again
        registry.names()


def test_a_plugin_must_register_its_entry_points_name(plugins) -> None:
    registry = plugins("typopack", {"green": "@REGISTRY.register('gren')\nclass Green:\n    pass\n"})
    with pytest.raises(
        RegistryError, match=r"typopack 1\.0 .* registers no widget named 'green' \(it registered 'gren'\)"
    ):
        registry.names()


def test_a_plugin_cannot_replace_a_built_in(plugins) -> None:
    registry = plugins(
        "clashpack",
        {
            "builtin": "class Other:\n    pass\n",
            "mine": "@REGISTRY.register('mine')\n@REGISTRY.register('builtin')\nclass Other:\n    pass\n",
        },
    )
    with pytest.raises(RegistryError) as info:
        registry.names()
    first, second = str(info.value).splitlines()
    # The entry point named like a built-in is refused before its module is imported; the module that
    # registers a built-in's name fails where it does.
    assert first.startswith("widget 'builtin' is built in (module robustspec.fake_builtin) and registered again by ")
    assert "plugin clashpack 1.0 (entry point 'builtin = " in first and "give it another name" in first
    assert "entry point 'mine = " in second and "is built in" in second


def test_two_plugins_with_one_name_clash(plugins) -> None:
    plugins("onepack", {"shared": "@REGISTRY.register('shared')\nclass One:\n    pass\n"})
    registry = plugins("twopack", {"shared": "@REGISTRY.register('shared')\nclass Two:\n    pass\n"})
    with pytest.raises(RegistryError, match=r"widget 'shared' is registered twice: by plugin onepack 1\.0 .* twopack"):
        registry.names()


def test_a_broken_plugin_fails_validate_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "brokenpack-1.0.dist-info").mkdir()
    (tmp_path / "brokenpack-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: brokenpack\nVersion: 1.0\n"
    )
    (tmp_path / "brokenpack-1.0.dist-info" / "entry_points.txt").write_text(
        "[robustspec.expectations]\nbroken = brokenpack_mod\n"
    )
    (tmp_path / "brokenpack_mod.py").write_text("raise RuntimeError('this plugin is broken')\n")
    suite = tmp_path / "suites" / "s.yaml"
    suite.parent.mkdir()
    suite.write_text(
        f"data: {{{SMALL_DATA}}}\nsource: amazon\nmodels: [resnet10-mini]\nexpect:\n  - source-accuracy: {{min: 0}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "robustspec", "validate", str(suite)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "plugin brokenpack 1.0 (entry point 'broken = brokenpack_mod', group robustspec.expectations)" in out
    assert "RuntimeError: this plugin is broken" in out and "Traceback" not in out


# --- the example plugin, installed ----------------------------------------------------------------------

SUITE = (EXAMPLE / "suites" / "plugin.yaml").read_text(encoding="utf-8")


def _env(*paths: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ROBUSTSPEC_STORE", "PYTEST_XDIST_WORKER")}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/robustspec-example-plugin installed (without dependencies) into a folder of its own."""
    base = tmp_path_factory.mktemp("example-plugin")
    source = base / "source"  # built from a copy: a build leaves build/ and *.egg-info next to the sources
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = base / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    proc = subprocess.run([*cmd, "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


@pytest.mark.slow
def test_the_example_plugin_adds_an_attack_and_an_expectation_a_suite_uses(
    example_plugin: Path, write_project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(example_plugin)
    # The schema lists them, generated from the registries like every built-in.
    proc = subprocess.run(
        [sys.executable, "-m", "robustspec", "schema"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    defs = json.loads(proc.stdout)["$defs"]
    assert "gaussian-noise" in defs["Expect_attack"]["properties"]["attack"]["discriminator"]["mapping"]
    assert "min-clean-accuracy-margin" in defs["Expect_min_clean_accuracy_margin"]["properties"]

    project = write_project({"suites/plugin.yaml": SUITE})
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    result = project.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--robustspec-store={tmp_path / 'store'}", "-v",
        timeout=300,
    )  # fmt: skip
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, text
    result.assert_outcomes(passed=3)
    for item in ("attack[gaussian-noise]", "min-clean-accuracy-margin[webcam]", "min-clean-accuracy-margin[dslr]"):
        assert f"suites/plugin.yaml::resnet10-mini::baseline::{item} PASSED" in text, text
    results = json.loads((project.path / ".robustspec" / "results.json").read_text())
    [attack] = [i for i in results["items"] if i["check"] == "attack"]
    assert attack["properties"]["masking_check"] == "not available: gaussian-noise is itself a black-box attack"
