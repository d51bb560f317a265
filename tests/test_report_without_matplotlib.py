"""``robustspec report`` after the core install (no matplotlib): tables and a notice, no plots, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from robustspec.cli import main
from robustspec.report.html import NO_PLOTS, has_plots
from robustspec.report.results import make_document, write_document


def item(name: str, variant: str, measured: float, parameters: int) -> dict:
    props = {
        "robustspec": "1",
        "suite": "office",
        "model": "resnet18",
        "variant": variant,
        "check": name,
        "domain": "",
        "measured": measured,
        "threshold": 0.0,
        "comparison": ">=",
        "status": "pass",
        "parameters": parameters,
        "bytes": 4 * parameters,
        "accuracy[amazon]": measured,
        "accuracy[webcam]": measured - 0.1,
    }
    return {"id": f"suites/office.yaml::resnet18::{variant}::{name}", "status": "pass", "properties": props}


def test_report_is_tables_only_with_a_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert not has_plots()
    results = tmp_path / "results.json"
    records = [item("source-accuracy", "baseline", 0.9, 11_000_000), item("source-accuracy", "fp", 0.8, 4_000_000)]
    write_document(results, make_document(records, {"python": "3"}, "abc123"))
    out = tmp_path / "report.html"
    assert main(["report", str(results), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "matplotlib is not installed: tables only" in captured.err
    html = out.read_text()
    assert "<table>" in html and "data:image/png" not in html and "matplotlib is not installed" in html
    md = out.with_suffix(".md").read_text()
    assert NO_PLOTS in md and "resnet18" in md
