"""docs/reference.md, the suite language reference, is what docs/make_reference.py generates from the suite
JSON Schema now: regenerated in memory and compared (``python docs/make_reference.py`` rewrites it).

Building the schema imports no torch (tests/test_import_cost.py holds the registries to that), so neither
does this test. An installed robustspec plugin would add its components to the schema, and the page is
written without plugins: with one installed, the comparison is skipped.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
GROUPS = [
    f"robustspec.{kind}s"
    for kind in ("model", "compression", "attack", "expectation", "dataset", "corruption", "runtime")
]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_reference", ROOT / "docs" / "make_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_is_up_to_date() -> None:
    plugins = [e.name for group in GROUPS for e in entry_points(group=group)]
    if plugins:
        pytest.skip(f"robustspec plugins installed ({', '.join(plugins)}): the page is written without them")
    from robustspec.spec.json_schema import suite_json_schema

    page = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert page == _generator().render(suite_json_schema()), "run: python docs/make_reference.py"


def test_the_reference_lists_every_registered_component() -> None:
    from robustspec.attacks import ATTACKS
    from robustspec.compress import COMPRESSIONS
    from robustspec.expect import EXPECTATIONS

    page = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    headings = {line[4:].strip("`") for line in page.splitlines() if line.startswith("### ")}
    for registry in (COMPRESSIONS, EXPECTATIONS, ATTACKS):
        assert set(registry.names()) <= headings
    assert {"name: office-synth", "imagefolder"} <= headings
    for section in ("## Top-level keys", "## Training recipes (`train:`)", "## Models (`models:`)"):
        assert section in page
