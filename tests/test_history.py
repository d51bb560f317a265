"""Kept runs by commit (robustspec.report.history)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from robustspec.errors import ResultsError
from robustspec.report.history import keep_run, kept_runs, resolve_run, series
from robustspec.report.results import load_document, make_document

NOON = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


def run_doc(commit: str | None, **measured: float | None) -> dict[str, Any]:
    items = []
    for name, value in measured.items():
        props: dict[str, Any] = {"robustspec": "1", "check": name}
        if value is not None:
            props["measured"] = value
        items.append({"id": f"suites/s.yaml::m::baseline::{name}", "status": "pass", "properties": props})
    return make_document(items, {"python": "3"}, commit)


def test_runs_are_numbered_named_by_commit_and_never_overwritten(tmp_path: Path) -> None:
    first = keep_run(tmp_path, run_doc("a1b2c3d4e5f60718", acc=0.8), now=NOON)
    second = keep_run(tmp_path, run_doc("a1b2c3d4e5f60718", acc=0.7), now=NOON)  # same commit, same second
    third = keep_run(tmp_path, run_doc(None, acc=0.6), now=NOON)
    assert [p.name for p in (first, second, third)] == [
        "0001_a1b2c3d4e5f6_20261201T120000Z.json",
        "0002_a1b2c3d4e5f6_20261201T120000Z.json",
        "0003_nocommit_20261201T120000Z.json",
    ]
    assert load_document(first)["items"][0]["properties"]["measured"] == 0.8
    (tmp_path / "notes.txt").write_text("not a run")
    assert [r.number for r in kept_runs(tmp_path)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("1", 1), ("0002", 2), ("-1", 3), ("-3", 1), ("latest", 3), ("a1b2", 2), ("ffff0000", 3)],
    ids=["number", "padded-number", "newest", "oldest-by-index", "latest", "commit-prefix-newest", "other-commit"],
)
def test_a_kept_run_is_found_by_number_index_or_commit(tmp_path: Path, name: str, expected: int) -> None:
    keep_run(tmp_path, run_doc("a1b2c3d4e5f6", acc=0.8), now=NOON)
    keep_run(tmp_path, run_doc("a1b2c3d4e5f6", acc=0.7), now=NOON)
    keep_run(tmp_path, run_doc("ffff00001111", acc=0.6), now=NOON)
    assert resolve_run(tmp_path, name).name.startswith(f"{expected:04d}_")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("-4", "only 3 kept runs"), ("9", "no kept run '9'"), ("beef", "no kept run 'beef'"), ("x", "newest: 0001")],
    ids=["index-too-far", "unknown-number", "unknown-commit", "not-a-name"],
)
def test_an_unknown_run_says_what_there_is(tmp_path: Path, name: str, fragment: str) -> None:
    for _ in range(3):
        keep_run(tmp_path, run_doc("a1b2c3d4e5f6", acc=0.8), now=NOON)
    with pytest.raises(ResultsError, match=fragment):
        resolve_run(tmp_path, name)


def test_an_empty_history_says_how_to_fill_it(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="--robustspec-history"):
        resolve_run(tmp_path / "none", "latest")


def test_series_follow_each_item_over_runs(tmp_path: Path) -> None:
    keep_run(tmp_path, run_doc("a1b2c3d4e5f6", acc=0.8, size=4.5e6), now=NOON)
    keep_run(tmp_path, run_doc("b1b2c3d4e5f6", acc=0.7), now=NOON)
    keep_run(tmp_path, run_doc("c1b2c3d4e5f6", acc=None, size=4.4e6), now=NOON)
    labels, values = series(kept_runs(tmp_path))
    assert labels == ["0001 a1b2c3d4", "0002 b1b2c3d4", "0003 c1b2c3d4"]
    assert values == {
        "suites/s.yaml::m::baseline::acc": [0.8, 0.7, None],
        "suites/s.yaml::m::baseline::size": [4.5e6, None, 4.4e6],
    }


def test_the_trends_section_has_every_value_and_a_plot_per_suite(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from robustspec.report.trends import trends_section

    keep_run(tmp_path, run_doc("a1b2c3d4e5f6", acc=0.8), now=NOON)
    keep_run(tmp_path, run_doc("b1b2c3d4e5f6", acc=0.7), now=NOON)
    sec = trends_section(kept_runs(tmp_path))
    header, rows, _ = sec.tables[0]
    assert header == ["item", "0001 a1b2c3d4", "0002 b1b2c3d4"]
    assert rows == [["suites/s.yaml::m::baseline::acc", "0.800", "0.700"]]
    [(name, png, _)] = sec.images
    assert name == "trends-suites-s-yaml" and png.startswith(b"\x89PNG")


def test_the_trends_section_degrades_to_the_table_without_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from robustspec.report.trends import trends_section

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    keep_run(tmp_path, run_doc("a1b2c3d4e5f6", acc=0.8), now=NOON)
    keep_run(tmp_path, run_doc("b1b2c3d4e5f6", acc=0.7), now=NOON)
    sec = trends_section(kept_runs(tmp_path))
    assert not sec.images and any("matplotlib is not installed" in n for n in sec.notes)
    assert sec.tables[0][1] == [["suites/s.yaml::m::baseline::acc", "0.800", "0.700"]]
