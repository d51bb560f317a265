"""JUnit XML ``classname`` of robustspec items: suite file, model and variant, one dot-separated segment each.

pytest's junitxml derives ``classname`` from the node id, turning ``/`` and ``::`` into dots, so the item
``suites/ux/gate.yaml::mini::fp-0.2::target-accuracy[webcam]`` gets ``suites.ux.gate.yaml.mini.fp-0.2``
and viewers that split at dots (Jenkins, GitLab, dorny/test-reporter) see seven levels where there are
three. Here a robustspec item's classname is

    <suite file>.<model>.<variant>       e.g.  suites/ux/gate_yaml.mini.fp-0_2

with every dot *inside* a segment replaced by ``_`` (the suite file keeps its ``/``), so a viewer that
splits at dots sees exactly suite file / model / variant; the testcase ``name`` stays the check
(``target-accuracy[webcam]``). ``--junit-prefix`` is kept in front, as pytest does.

The classname is set on the controller, where junitxml writes the file (under xdist the reports of every
worker arrive there): before junitxml handles a report (``tryfirst``), its testcase's node reporter gets
the attribute, and junitxml keeps attributes set before it fills in its own.
"""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["classname"]

_SUITE_SUFFIXES = (".yaml", ".yml")


def _segment(text: str) -> str:
    return text.replace(".", "_")


def classname(nodeid: str, prefix: str | None = None) -> str | None:
    """The classname of a robustspec item's node id ``<suite file>::<model>::<variant>::<check>``; None
    for any other node id."""
    parts = nodeid.split("::")
    if len(parts) < 4 or not parts[0].endswith(_SUITE_SUFFIXES) or not all(parts[:3]):
        return None
    segments = [_segment(p) for p in parts[:3]]
    if prefix:
        segments.insert(0, prefix)
    return ".".join(segments)


class JunitClassnames:
    """Registered on the process that writes the JUnit XML (never on an xdist worker)."""

    def __init__(self, xml: Any) -> None:
        self.xml = xml

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "robustspec" not in (getattr(report, "keywords", None) or {}):
            return
        name = classname(report.nodeid, getattr(self.xml, "prefix", None))
        if name is None:
            return
        try:
            self.xml.node_reporter(report).add_attribute("classname", name)
        except Exception:  # noqa: BLE001 - another pytest's junitxml: keep its classname, never break the run
            pass


_PLUGIN = "robustspec-junit-classnames"


@pytest.hookimpl(trylast=True)  # after junitxml's own pytest_configure has created its LogXML
def pytest_configure(config: pytest.Config) -> None:
    if getattr(config, "workerinput", None) is not None:
        return
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - a pytest without it: its default classnames
        return
    xml = config.stash.get(xml_key, None)
    if xml is not None and hasattr(xml, "node_reporter"):
        config.pluginmanager.register(JunitClassnames(xml), _PLUGIN)


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin(_PLUGIN)
    if plugin is not None:
        config.pluginmanager.unregister(plugin)
