"""Packaging: the wheel and the sdist ``python -m build`` makes, checked and installed as another team would.

One build per session (shared by xdist workers through a lock): the working tree is copied to a temporary
folder (a build leaves build/ and *.egg-info beside the sources) and built with ``--no-isolation``, so it
needs no download: the test extras install build, twine and setuptools>=77. The installed-wheel test makes
a fresh venv in a project folder of its own, installs the built wheel into it (not editable, no deps) and
lets the venv see this environment's site-packages for torch and the other dependencies through a ``.pth``
file. Directories a ``.pth`` line adds are not site directories, so their own ``.pth`` files (among them
this checkout's editable install) are not processed: the wheel's copy is the one imported, and the test
checks it.
"""

from __future__ import annotations

import email
import importlib.metadata
import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import filelock
import pytest

import robustspec

ROOT = Path(__file__).resolve().parents[1]
#: What a build of the working tree must not see: outputs, caches, environments, the store.
NOT_SOURCES = (
    ".git",
    ".venv",
    "venv",
    ".robustspec",
    "build",
    "dist",
    "site",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
)
TIMEOUT = 300


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every xdist worker of this session shares (the session's base temp), else this one's."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding the wheel and the sdist of this working tree, built once per session."""
    shared = _shared_dir(tmp_path_factory) / "robustspec-dist"
    shared.mkdir(exist_ok=True)
    out = shared / "dist"
    with filelock.FileLock(str(shared / "build.lock")):
        if not (shared / "built").is_file():
            source = shared / "source"
            shutil.rmtree(source, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
            cmd = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
            (shared / "built").write_text("ok\n")
    return out


def _wheel(dist: Path) -> Path:
    [wheel] = dist.glob("robustspec-*.whl")
    return wheel


def _sdist(dist: Path) -> Path:
    [sdist] = dist.glob("robustspec-*.tar.gz")
    return sdist


def test_the_build_makes_one_wheel_and_one_sdist_of_the_one_version(dist: Path) -> None:
    version = robustspec.__version__
    assert _wheel(dist).name == f"robustspec-{version}-py3-none-any.whl"
    assert _sdist(dist).name == f"robustspec-{version}.tar.gz"
    # The version is written once: robustspec.__version__, which setuptools reads (dynamic).
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    assert 'dynamic = ["version"]' in project and "\nversion =" not in project
    assert 'version = { attr = "robustspec.__version__" }' in text


def test_twine_check_strict_passes(dist: Path) -> None:
    files = [str(_wheel(dist)), str(_sdist(dist))]
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_the_wheel_holds_the_package_its_data_and_entry_points_and_no_tests_or_docs(dist: Path) -> None:
    version = robustspec.__version__
    with zipfile.ZipFile(_wheel(dist)) as zf:
        names = set(zf.namelist())
        info = f"robustspec-{version}.dist-info"
        meta = email.message_from_bytes(zf.read(f"{info}/METADATA"))
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
    assert "robustspec/py.typed" in names
    # Every file of the package the build saw (modules and any data it reads), nothing outside it.
    package = ROOT / "robustspec"
    wanted = {
        p.relative_to(ROOT).as_posix()
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    }
    assert wanted <= names, sorted(wanted - names)
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"robustspec", info}, tops
    assert not [n for n in names if n.startswith(("tests/", "docs/")) or "/tests/" in n or n.endswith("conftest.py")]
    assert f"{info}/licenses/LICENSE" in names
    # pytest finds the plugin by its pytest11 entry point; the console script is the CLI.
    assert "[pytest11]\nrobustspec = robustspec.pytest.plugin" in entry_points
    assert "[console_scripts]\nrobustspec = robustspec.cli:main" in entry_points
    assert meta["Name"] == "robustspec" and meta["Version"] == version
    assert meta["License-Expression"] == "MIT" and meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.10" and meta["Author"] == "robustspec developers"
    assert meta["Summary"] and meta["Keywords"] and meta["Description-Content-Type"] == "text/markdown"
    classifiers = meta.get_all("Classifier")
    for c in ("Framework :: Pytest", "Programming Language :: Python :: 3.11", "Typing :: Typed"):
        assert c in classifiers
    assert any(c.startswith("Topic :: ") for c in classifiers)
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Documentation", "Source", "Changelog"} <= set(urls)
    assert "# robustspec" in meta.get_payload()  # the README is the long description


def test_the_sdist_holds_what_builds_the_wheel_and_no_tests_or_docs(dist: Path) -> None:
    version = robustspec.__version__
    top = f"robustspec-{version}"
    with tarfile.open(_sdist(dist)) as tf:
        names = {m.name.removeprefix(f"{top}/") for m in tf.getmembers() if m.isfile()}
    for required in ("PKG-INFO", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "robustspec/py.typed"):
        assert required in names, required
    assert "robustspec/pytest/plugin.py" in names
    assert not [n for n in names if n.startswith(("tests/", "docs/", "suites/", "examples/", "benchmarks/"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


# --- the wheel, installed in another team's project ---------------------------------------------------

FACTORY = """\
from torch import nn


def build(num_classes: int, width: int = 4) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(width, num_classes),
    )
"""
SUITE = """\
suite: adopted
data: {name: office-synth, classes: 2, image-size: 16, train-per-class: 8, test-per-class: 4, seed: 0}
source: amazon
targets: [webcam]
train: {epochs: 1, batch-size: 8}
models:
  - name: tiny
    arch: teammodels:build
expect:
  - source-accuracy: {min: 0.0}
"""
#: The console script ``pytest`` as pip would write it into the venv (pytest itself comes from this
#: environment): unlike ``python -m pytest``, it does not put the working directory on sys.path.
PYTEST_SCRIPT = "#!{python}\nimport sys\n\nfrom {module} import {attr}\n\nsys.exit({attr}())\n"
WHERE = """\
import importlib.metadata as md, json, sys
import robustspec
dist = md.distribution("robustspec")
print(json.dumps({
    "file": robustspec.__file__,
    "version": dist.version,
    "dist": str(dist.locate_file("")),
    "finders": [repr(f) for f in sys.meta_path],
    "path": sys.path,
}))
"""


def _venv(path: Path) -> Path:
    """A fresh venv at ``path`` that sees this environment's site-packages; its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    [own] = (path / "lib").glob("python3*/site-packages")
    (own / "_robustspec_dev_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    [entry] = importlib.metadata.entry_points(group="console_scripts", name="pytest")
    script = path / "bin" / "pytest"
    script.write_text(PYTEST_SCRIPT.format(python=python, module=entry.module, attr=entry.attr))
    script.chmod(0o755)
    return python


def _env(venv: Path) -> dict[str, str]:
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "ROBUSTSPEC_STORE", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST_XDIST")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.mark.slow
def test_the_installed_wheel_runs_another_teams_suite(dist: Path, tmp_path: Path) -> None:
    project = tmp_path / "team-project"
    project.mkdir()
    (project / "suite.yaml").write_text(SUITE, encoding="utf-8")
    (project / "teammodels.py").write_text(FACTORY, encoding="utf-8")
    venv = tmp_path / "venv"
    python = _venv(venv)
    env = _env(venv)
    install = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--ignore-installed"]
    install.append("--no-compile")  # the run compiles what it imports
    proc = subprocess.run([*install, str(_wheel(dist))], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # The wheel's copy is imported, not this checkout's editable one.
    proc = subprocess.run([str(python), "-c", WHERE], capture_output=True, text=True, env=env, cwd=project)
    assert proc.returncode == 0, proc.stderr
    where = json.loads(proc.stdout)
    own = str(venv.resolve())
    assert Path(where["file"]).resolve().is_relative_to(own), where["file"]
    assert Path(where["dist"]).resolve().is_relative_to(own), where["dist"]
    assert where["version"] == robustspec.__version__
    assert not [f for f in where["finders"] if "editable" in f.lower()], where["finders"]
    assert not [p for p in where["path"] if p and Path(p).resolve() == ROOT], where["path"]  # '' is the project
    (info,) = venv.glob("lib/python3*/site-packages/robustspec-*.dist-info")
    assert '"editable": true' not in (info / "direct_url.json").read_text()

    # The console script the wheel declares.
    proc = subprocess.run(
        [str(venv / "bin" / "robustspec"), "--version"], capture_output=True, text=True, env=env, cwd=project
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"robustspec {robustspec.__version__}", proc

    # The plugin, found by its entry point, runs the team's suite with the team's own factory.
    proc = subprocess.run(
        # hypothesis's plugin is this environment's, not the team's: 1-2 s of imports
        [str(venv / "bin" / "pytest"), "suite.yaml", "-p", "no:hypothesispytest", "--junitxml=junit.xml"],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=TIMEOUT,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 passed" in out, out
    results = json.loads((project / ".robustspec" / "results.json").read_text())
    [item] = results["items"]
    assert item["id"] == "suite.yaml::tiny::baseline::source-accuracy" and item["status"] == "pass", item
    assert results["environment"]["packages"]["robustspec"] == robustspec.__version__
    assert "source-accuracy" in (project / "junit.xml").read_text()
