"""Bring your own model: factory modules found from the suite's directory up to the rootdir, every model's
``params:`` checked against its builder at collection (file:line:col), torchvision names and ``timm:``."""

from __future__ import annotations

import importlib.machinery
import json
import subprocess
import sys
import types
import uuid
from pathlib import Path

import pytest

from robustspec.errors import ModelError, RegistryError, SpecErrors
from robustspec.models.factories import import_factory, search_dirs
from robustspec.models.zoo import arch_params_problems, build_network, resolve_arch
from robustspec.spec.loader import load_suite

FACTORY = """
from torch import nn


def tiny(num_classes: int, width: int = 4, depth: int = 1) -> nn.Module:
    layers = [nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


def needs(num_classes: int, width: int) -> nn.Module:
    return tiny(num_classes, width)


def no_classes(width: int = 4) -> nn.Module:
    return tiny(3, width)


def anything(num_classes: int, **kwargs) -> nn.Module:
    return tiny(num_classes, **kwargs)
"""

DATA = "data: {name: office-synth, classes: 3, image-size: 16, train-per-class: 4, test-per-class: 4}\n"
EXPECT = "expect:\n  - source-accuracy: {min: 0.0}\n"


def unique(prefix: str = "byom") -> str:
    """A module name no other test imports (sys.modules is per process)."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def suite(path: Path, models: str, extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DATA + "source: amazon\nmodels:\n" + models + extra + EXPECT, encoding="utf-8")
    return path


def errors(path: Path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_suite(path)
    return [str(e) for e in info.value.errors]


# --- where factory modules are found ----------------------------------------------------------------------


def test_search_walks_up_to_the_configuration_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "project" / "suites" / "deep").mkdir(parents=True)
    (tmp_path / "project" / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    root = (tmp_path / "project").resolve()
    assert search_dirs(root / "suites" / "deep" / "s.yaml") == [root / "suites" / "deep", root / "suites", root]


def test_without_configuration_the_walk_stops_at_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    base = tmp_path.resolve()
    monkeypatch.chdir(base / "a")
    assert search_dirs(base / "a" / "b" / "s.yaml") == [base / "a" / "b", base / "a"]
    monkeypatch.chdir(base / "a" / "b")
    assert search_dirs(base / "a" / "b" / "s.yaml") == [base / "a" / "b"]
    # Two files (a block in specs/ and the suite): both walks, nearest first, each directory once.
    assert search_dirs(base / "a" / "b" / "s.yaml", base / "a" / "b" / "t.yaml") == [base / "a" / "b"]


def test_a_module_next_to_the_suite_imports_without_pythonpath(tmp_path: Path) -> None:
    from robustspec.fingerprint import source_fingerprint

    name = unique()
    (tmp_path / f"{name}.py").write_text(FACTORY, encoding="utf-8")
    assert str(tmp_path) not in sys.path
    fn = import_factory(f"{name}:tiny", [tmp_path])
    assert fn(num_classes=3)[-1].out_features == 3
    # Its directory is now on sys.path: a build by name and the content key's fingerprint find the same file.
    assert import_factory(f"{name}:tiny") is fn
    assert list(source_fingerprint(name)["files"]) == [f"{name}.py"]


def test_a_package_in_a_parent_directory(tmp_path: Path) -> None:
    pkg = unique("pkg")
    (tmp_path / pkg / "nets").mkdir(parents=True)
    (tmp_path / pkg / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / pkg / "nets" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / pkg / "nets" / "small.py").write_text(FACTORY, encoding="utf-8")
    (tmp_path / "suites").mkdir()
    fn = import_factory(f"{pkg}.nets.small:tiny", [tmp_path / "suites", tmp_path])
    assert fn(num_classes=2, width=3)[0].out_channels == 3


def test_a_missing_module_says_where_it_looked(tmp_path: Path) -> None:
    name = unique()
    with pytest.raises(ModelError) as info:
        import_factory(f"{name}:tiny", [tmp_path / "suites", tmp_path])
    text = str(info.value)
    assert f"no {name}.py or {name}/__init__.py in {tmp_path / 'suites'}, {tmp_path}" in text
    assert "sys.path" in text


def test_an_import_error_inside_the_module_is_its_own(tmp_path: Path) -> None:
    name = unique()
    (tmp_path / f"{name}.py").write_text("import no_such_dependency_xyz\n", encoding="utf-8")
    with pytest.raises(ModelError, match="No module named 'no_such_dependency_xyz'"):
        import_factory(f"{name}:tiny", [tmp_path])


def test_two_modules_of_one_name_are_an_error(tmp_path: Path) -> None:
    name = unique()
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / f"{name}.py").write_text(FACTORY, encoding="utf-8")
    import_factory(f"{name}:tiny", [tmp_path / "a"])
    with pytest.raises(ModelError, match=f"module '{name}' is already imported from .*a/{name}.py"):
        import_factory(f"{name}:tiny", [tmp_path / "b"])


def test_the_suite_finds_its_factory_and_its_students(tmp_path: Path) -> None:
    model, student = unique(), unique()
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / f"{model}.py").write_text(FACTORY, encoding="utf-8")
    (tmp_path / f"{student}.py").write_text(FACTORY, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    path = suite(
        tmp_path / "suites" / "s.yaml",
        f"  - {{name: m, arch: '{model}:tiny', params: {{width: 8}}}}\n",
        f"variants:\n  kd: {{distill: {{student: '{student}:tiny', student-params: {{width: 2}}}}}}\n",
    )
    loaded = load_suite(path)
    assert loaded.suite.models[0].arch == f"{model}:tiny"
    assert callable(import_factory(f"{student}:tiny"))


# --- params checked at collection, for every model ---------------------------------------------------------


@pytest.mark.parametrize(
    "model, expected",
    [
        (
            "{name: m, arch: resnet10-mini, params: {widths: [999999, 1, 1, 1], bogus: 1}}",
            [
                ("widths", "params.widths: unknown param 'widths' of resnet10-mini (it takes no params)"),
                ("bogus", "params.bogus: unknown param 'bogus' of resnet10-mini"),
            ],
        ),
        (
            "{name: m, arch: resnet18, params: {width_per_grop: 32, zero_init_residual: 1}}",
            [
                ("width_per_grop", "unknown param 'width_per_grop' of resnet18; did you mean 'width_per_group'?"),
                ("1}", "param 'zero_init_residual' of resnet18 expects a boolean (true or false), got 1"),
            ],
        ),
        (
            "{name: m, arch: mobilenet_v2, params: {width_mult: big, num_classes: 3}}",
            [
                ("big", "param 'width_mult' of mobilenet_v2 expects a number, got 'big'"),
                ("num_classes", "'num_classes' is not a param of mobilenet_v2: num_classes is set from the data's"),
            ],
        ),
        (
            "{name: m, arch: vit_b_16, params: {image_size: 32, patch_size: 4}}",
            [("patch_size", "vit_b_16 sets 'patch_size' itself: it cannot be a param")],
        ),
        (
            "{name: m, arch: efficientnet_b0, params: {norm_layer: 3}}",
            [("3}", "param 'norm_layer' of efficientnet_b0 takes a callable, which a suite cannot give")],
        ),
        (
            "{name: m, arch: regnet_x_400mf, params: {stem_width: 16.5}}",
            [("16.5", "param 'stem_width' of regnet_x_400mf expects a whole number, got 16.5")],
        ),
    ],
    ids=["resnet10-mini", "resnet18", "mobilenet_v2", "vit-fixed", "efficientnet-callable", "regnet"],
)
def test_params_problems_are_positioned(tmp_path: Path, model: str, expected: list) -> None:
    # Each problem at the key (unknown, reserved, fixed names) or the value (wrong types) it is about.
    path = suite(tmp_path / "s.yaml", f"  - {model}\n")
    found = errors(path)
    assert len(found) == len(expected), found
    line = f"  - {model}"
    for text, (needle, message) in zip(found, expected):
        assert text.startswith(f"{path}:4:{line.index(needle) + 1}: models[0].params."), text
        assert message in text, text


def test_params_of_factories_are_checked_against_their_signature(tmp_path: Path) -> None:
    name = unique()
    (tmp_path / f"{name}.py").write_text(FACTORY, encoding="utf-8")
    path = suite(
        tmp_path / "s.yaml",
        f"  - {{name: a, arch: '{name}:tiny', params: {{width: 4.5, dpth: 2}}}}\n"
        f"  - {{name: b, arch: '{name}:needs'}}\n"
        f"  - {{name: c, arch: '{name}:no_classes'}}\n"
        f"  - {{name: d, arch: '{name}:anything', params: {{width: 2, colour: 1}}}}\n",
    )
    found = errors(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    at = [(4, "4.5"), (4, "dpth"), (5, "{"), (6, "{"), (7, "colour")]
    assert [e.split(": ", 1)[0] for e in found] == [f"{path}:{n}:{lines[n - 1].index(t) + 1}" for n, t in at], found
    assert "param 'width' of factory" in found[0] and "expects a whole number, got 4.5" in found[0]
    assert "unknown param 'dpth'" in found[1] and "did you mean 'depth'?" in found[1]
    assert f"factory {name}:needs needs params width" in found[2]
    assert f"factory {name}:no_classes must take num_classes" in found[3]
    assert "colour" in found[4]  # **kwargs: the trial build on the meta device tells


def test_validating_params_of_builtin_models_imports_no_torch(tmp_path: Path) -> None:
    path = suite(tmp_path / "s.yaml", "  - {name: m, arch: resnet18, params: {bogus: 1}}\n")
    code = (
        "import json, sys\nfrom robustspec.spec.loader import load_suite\nfrom robustspec.errors import SpecErrors\n"
        f"try:\n    load_suite({str(path)!r})\nexcept SpecErrors as e:\n    print(json.dumps([str(x) for x in e.errors]))\n"
        "print(json.dumps(sorted(m for m in ('torch', 'torchvision') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    found, heavy = (json.loads(line) for line in out.stdout.strip().splitlines()[-2:])
    assert len(found) == 1 and "unknown param 'bogus' of resnet18" in found[0]
    assert heavy == []


def test_torchvision_models_validate_and_budgets_are_checked(tmp_path: Path) -> None:
    path = suite(
        tmp_path / "s.yaml",
        "  - {name: m, arch: mobilenet_v2, params: {width_mult: 0.5}}\n  - torchvision:regnet_x_400mf\n",
        "variants:\n  fp: {prune: {params: 100M}}\n",
    )
    found = errors(path)
    assert len(found) == 2, found
    assert any("budget 100.00M is not below the model's 691.5k parameters (model 'm'" in e for e in found)
    assert any("budget 100.00M is not below the model's 5.10M parameters (model 'regnet_x_400mf'" in e for e in found)


def test_an_unknown_name_suggests_torchvision_names(tmp_path: Path) -> None:
    path = suite(tmp_path / "s.yaml", "  - {name: m, arch: mobilenet_v9}\n")
    (found,) = errors(path)
    assert found.startswith(f"{path}:4:21: models[0].arch: unknown model 'mobilenet_v9'; did you mean 'mobilenet_v2'")
    with pytest.raises(RegistryError, match="torchvision has no classification model 'fasterrcnn_resnet50_fpn'"):
        resolve_arch("torchvision:fasterrcnn_resnet50_fpn")


def test_every_builtin_and_torchvision_builder_rejects_unknown_params() -> None:
    import torchvision.models as tvm

    for name in ["resnet10-mini", "resnet18", *tvm.list_models(module=tvm)]:
        problems = arch_params_problems(resolve_arch(name), {"no_such_param": 1})
        assert [(p.name, p.at_key) for p in problems] == [("no_such_param", True)], (name, problems)


# --- timm -------------------------------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_timm_missing_is_a_clear_error(tmp_path: Path) -> None:
    path = suite(tmp_path / "s.yaml", "  - {name: m, arch: 'timm:resnet18d'}\n")
    (found,) = errors(path)
    assert found.startswith(f"{path}:4:21: models[0].arch: arch 'timm:resnet18d' needs the package timm")
    assert "pip install timm" in found


@pytest.fixture
def fake_timm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in for timm with one model, ``tiny`` (what create_model passes on, the model's init takes)."""
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self, num_classes: int = 1000, width: int = 4) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(width, num_classes)

        def forward(self, x):
            return self.head(self.body(x))

    timm = types.ModuleType("timm")
    timm.__spec__ = importlib.machinery.ModuleSpec("timm", None)
    timm.is_model = lambda name: name == "tiny"
    timm.list_models = lambda: ["tiny", "tinier"]

    def create_model(name: str, pretrained: bool = False, **kwargs):
        assert name == "tiny" and pretrained is False
        return Tiny(**kwargs)

    timm.create_model = create_model
    monkeypatch.setitem(sys.modules, "timm", timm)
    return timm


def test_timm_models_build_and_their_params_are_checked(fake_timm, tmp_path: Path) -> None:
    net = build_network("timm:tiny", 7, {"width": 5})
    assert net.head.out_features == 7 and net.head.in_features == 5
    with pytest.raises(ModelError, match="timm has no model 'tiyn'; did you mean 'timm:tiny'"):
        resolve_arch("timm:tiyn")
    path = suite(tmp_path / "s.yaml", "  - {name: m, arch: 'timm:tiny', params: {width: 3, depth: 2}}\n")
    (found,) = errors(path)
    assert found.startswith(f"{path}:4:53: models[0].params.depth: unknown param 'depth' of timm:tiny")


# --- a factory next to the suite, through pytest, with and without xdist -------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_a_factory_next_to_the_suite_runs_under_pytest(
    write_project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, xdist: list[str]
) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    name = unique("nets")
    project = write_project(
        {
            "pytest.ini": "[pytest]\n",
            f"checks/{name}.py": FACTORY,  # a directory above the suite, below the rootdir
            "checks/deep/tiny.suite.yaml": DATA
            + "source: amazon\ntrain: {epochs: 1, batch-size: 8}\n"
            + f"models:\n  - {{name: tiny, arch: '{name}:tiny', params: {{width: 8, depth: 2}}}}\n"
            + "variants:\n  fp: {prune: {ratio: 0.5}}\n"
            + EXPECT,
        }
    )
    result = project.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--robustspec-store={tmp_path / 'store'}", "checks", *xdist, timeout=300
    )
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, text
    result.assert_outcomes(passed=2)
