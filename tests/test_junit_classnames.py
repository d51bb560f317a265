"""JUnit XML classnames of robustspec items (robustspec.pytest.junit): suite file, model, variant.

The end-to-end run uses stand-in items (a conftest collects ``*.yaml`` files outside ``suites/`` into items
with robustspec's node ids and marker) so nothing is trained; tests/test_plugin.py checks the same on real
items under ``-n 2``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from robustspec.pytest.junit import classname

CONFTEST = """
import pytest


class Check(pytest.Item):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.add_marker("robustspec")

    def runtest(self):
        self.user_properties.append(("robustspec", "1"))
        assert "fail" not in self.name

    def reportinfo(self):
        return self.path, 0, self.name


class Variant(pytest.Collector):
    def collect(self):
        for check in ("source-accuracy", "target-accuracy[web.cam]", "fail-me"):
            yield Check.from_parent(self, name=check)


class Model(pytest.Collector):
    def collect(self):
        for variant in ("baseline", "fp-0.2"):
            yield Variant.from_parent(self, name=variant)


class Suite(pytest.File):
    def collect(self):
        yield Model.from_parent(self, name="mini")


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".yaml" and file_path.parent.name != "suites":
        return Suite.from_parent(parent, path=file_path)
"""


def test_classname_keeps_suite_model_and_variant_as_three_segments() -> None:
    assert classname("suites/ux/gate.yaml::mini::fp-0.2::check") == "suites/ux/gate_yaml.mini.fp-0_2"
    assert classname("gate.suite.yml::resnet18::int8::attack[pgd-linf,white-box]") == "gate_suite_yml.resnet18.int8"
    assert classname("s.yaml::m.v2::kd-r18::source-accuracy", prefix="ci") == "ci.s_yaml.m_v2.kd-r18"
    for other in ("tests/test_x.py::test_y", "tests/test_x.py::TestA::test_b::c", "s.yaml::m::check", "s.yaml::::v::c"):
        assert classname(other) is None


@pytest.mark.slow
def test_junit_xml_under_xdist_groups_by_suite_model_and_variant(write_project, tmp_path: Path) -> None:
    """Under xdist (one worker: the controller path is the same for any -n), where junitxml runs only on the
    controller; tests/test_plugin.py checks real items without xdist and with -n 2."""
    pytester = write_project(
        {"conftest.py": CONFTEST, "fake/ux/gate.yaml": "", "test_plain.py": "def test_plain():\n    pass\n"}
    )
    xml = tmp_path / "junit.xml"
    args = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--junitxml={xml}", "--junit-prefix=ci"]
    args += ["-n", "1"]
    result = pytester.runpytest_subprocess(*args, timeout=120)
    result.assert_outcomes(passed=5, failed=2)
    cases = {(tc.get("classname"), tc.get("name")) for tc in ET.parse(xml).getroot().iter("testcase")}
    expected = {
        (f"ci.fake/ux/gate_yaml.mini.{variant}", check)
        for variant in ("baseline", "fp-0_2")
        for check in ("source-accuracy", "target-accuracy[web.cam]", "fail-me")
    }
    assert cases == expected | {("ci.test_plain", "test_plain")}  # other tests keep pytest's classnames
