"""The shape of the package: the library never imports pytest, every exception lives in errors.py, one
store-root resolution for the plugin and the command line (robustspec.config)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import robustspec
from robustspec import errors
from robustspec.config import STORE_ENV, find_rootdir, store_root

PACKAGE = Path(robustspec.__file__).parent
LIBRARY = sorted(p for p in PACKAGE.rglob("*.py") if "pytest" not in p.relative_to(PACKAGE).parts[:1])


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_library_never_imports_pytest() -> None:
    assert len(LIBRARY) > 30
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(m for m in imported_modules(p) if m.split(".")[0] in ("pytest", "_pytest"))
        for p in LIBRARY
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_pytest_hook_modules_import_no_torch_at_module_level() -> None:
    for p in sorted((PACKAGE / "pytest").glob("*.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {a.name for n in top for a in n.names} | {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] in ("torch", "torchvision")}, p.name


#: Exceptions used as private control flow inside one function, never raised to a caller.
PRIVATE_SIGNALS = {"robustspec/spec/yaml_loader.py": {"_Fatal"}}


def test_every_exception_class_lives_in_errors() -> None:
    found: dict[str, set[str]] = {}
    for p in PACKAGE.rglob("*.py"):
        rel = str(p.relative_to(PACKAGE.parent))
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                if any(re.search(r"(Exception|Error|Failed|Regression|Flagged)$", b) for b in bases):
                    found.setdefault(rel, set()).add(node.name)
    found.pop("robustspec/errors.py")
    assert found == PRIVATE_SIGNALS


def test_the_error_tree_is_drawn_and_rooted() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, Warning):
            assert issubclass(cls, errors.RobustSpecError), name
            assert re.search(rf"\b{name}\b", doc), f"{name} is not in the tree of robustspec/errors.py"
            assert cls.__doc__, name
    assert issubclass(errors.BaselineRegression, errors.CheckFailed)
    assert issubclass(errors.CheckFlagged, errors.CheckFailed)


# --- the store root ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "env", "ini", "expected"),
    [
        pytest.param("opt", "env", "ini/store", "cwd/opt", id="option-wins"),
        pytest.param(None, "env", "ini/store", "cwd/env", id="then-environment"),
        pytest.param(None, "", "ini/store", "root/ini/store", id="then-ini-under-rootdir"),
        pytest.param(None, None, "", "root/.robustspec/store", id="default-under-rootdir"),
    ],
)
def test_store_root_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str | None, env: str | None, ini: str, expected: str
) -> None:
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    environ = {} if env is None else {STORE_ENV: env}
    assert store_root(option, environ, ini, tmp_path / "root") == (tmp_path / expected).resolve()


@pytest.mark.parametrize(
    ("files", "root", "options"),
    [
        pytest.param(
            {"pyproject.toml": "[tool.pytest.ini_options]\nrobustspec_store = 'x/store'\n"},
            ".",
            {"robustspec_store": "x/store"},
            id="pyproject-ini-options",
        ),
        pytest.param(
            {"pyproject.toml": "[tool.pytest]\nrobustspec_store = 'x/store'\n"},
            ".",
            {"robustspec_store": "x/store"},
            id="pyproject-native",
        ),
        pytest.param(
            {"pytest.ini": "[pytest]\nrobustspec_store = x/store\n"},
            ".",
            {"robustspec_store": "x/store"},
            id="pytest-ini",
        ),
        pytest.param({"pytest.ini": ""}, ".", {}, id="empty-pytest-ini-still-counts"),
        pytest.param({"tox.ini": "[pytest]\nrobustspec_store = t\n"}, ".", {"robustspec_store": "t"}, id="tox-ini"),
        pytest.param(
            {"tox.ini": "[tox]\n", "a/setup.cfg": "[tool:pytest]\nrobustspec_store = s\n"},
            "a",
            {"robustspec_store": "s"},
            id="setup-cfg-nearer",
        ),
        pytest.param({"pyproject.toml": "[project]\nname = 'x'\n"}, ".", {}, id="pyproject-without-pytest"),
        pytest.param(
            {"pyproject.toml": "[project]\n", "a/tox.ini": "[pytest]\n"}, "a", {}, id="ini-above-beats-bare-pyproject"
        ),
        pytest.param({"setup.py": ""}, ".", {}, id="setup-py"),
    ],
)
def test_find_rootdir_like_pytest(tmp_path: Path, files: dict[str, str], root: str, options: dict) -> None:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    start = tmp_path / "a" / "b"
    start.mkdir(parents=True)
    found = find_rootdir(start)
    assert found.path == (tmp_path / root).resolve()
    assert found.options == options


def test_cache_path_honours_the_ini_and_the_rootdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from robustspec.cli import main

    monkeypatch.delenv(STORE_ENV, raising=False)
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\nrobustspec_store = "x/store"\n')
    (tmp_path / "suites").mkdir()
    monkeypatch.chdir(tmp_path / "suites")
    assert main(["cache", "path"]) == 0
    assert capsys.readouterr().out.strip() == str((tmp_path / "x" / "store").resolve())
    assert main(["cache", "path", "--store", "elsewhere"]) == 0
    assert capsys.readouterr().out.strip() == str((tmp_path / "suites" / "elsewhere").resolve())
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "env"))
    assert main(["cache", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "env")
