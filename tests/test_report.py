"""The CI gate's pieces without pytest runs: results documents, the comparison rule, ``compare``, ``report``."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustspec.cli import main
from robustspec.outcomes import encode_outcomes
from robustspec.report.compare import (
    allowed_move,
    compare_documents,
    compare_item,
    judge_metric,
)
from robustspec.report.results import (
    ResultsCollector,
    ResultsError,
    load_document,
    make_document,
    write_document,
)

# --- helpers -------------------------------------------------------------------------------------------


def item(
    name: str,
    measured: float | None,
    comparison: str = ">=",
    *,
    model: str = "resnet18",
    variant: str = "baseline",
    status: str = "pass",
    **props: Any,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "robustspec": "1",
        "suite": "office",
        "model": model,
        "variant": variant,
        "check": name.split("[")[0],
        "domain": name[name.index("[") + 1 : -1] if "[" in name else "",
        "comparison": comparison,
        "threshold": 0.5,
        "status": status,
        "artifact_key": f"model-{model}-{variant}",
    }
    if measured is not None:
        properties["measured"] = measured
    properties.update(props)
    return {"id": f"suites/office.yaml::{model}::{variant}::{name}", "status": status, "properties": properties}


def doc(*items: dict[str, Any], commit: str | None = "abc123") -> dict[str, Any]:
    return make_document(list(items), {"python": "3"}, commit)


def table1_doc() -> dict[str, Any]:
    """Two models with variants, three domains, two attacks: what a real Table 1 run records."""
    items = []
    sizes = {"baseline": 11_180_000, "fp-4.51m": 4_500_000, "int8": 11_180_000, "kd-r18": 11_180_000}
    for model, scale in (("resnet18", 1.0), ("resnet34", 0.9)):
        for variant, params in sizes.items():
            if model == "resnet18" and variant == "kd-r18":
                continue
            acc = {
                "amazon": 0.99 * scale,
                "webcam": 0.6 * scale - (0.1 if variant == "fp-4.51m" else 0.0),
                "dslr": 0.62 * scale,
            }
            ctx = {f"accuracy[{d}]": round(v, 4) for d, v in acc.items()}
            ctx.update(
                parameters=params * (2 if model == "resnet34" and variant == "baseline" else 1),
                bytes=params * (1 if variant == "int8" else 4),
                **{f"eval_key[{d}]": f"eval-{model}-{variant}-{d}" for d in acc},
            )
            items.append(item("source-accuracy", acc["amazon"], model=model, variant=variant, **ctx))
            items.append(
                item(
                    "target-accuracy[webcam]",
                    acc["webcam"],
                    model=model,
                    variant=variant,
                    status="warn" if variant == "fp-4.51m" else "pass",
                    ci_low=0.4,
                    ci_high=0.7,
                    **ctx,
                )
            )
            for attack, factor in (("fgsm", 0.5), ("pgd-linf", 0.2)):
                items.append(
                    item(
                        f"attack[{attack}]",
                        round(acc["amazon"] * factor, 4),
                        model=model,
                        variant=variant,
                        check="attack",
                        domain=attack,
                        **ctx,
                    )
                )
            if (model, variant) == ("resnet34", "fp-4.51m"):
                items.append(item("max-params", params, "<=", model=model, variant=variant, status="fail", **ctx))
                items[-1]["message"] = "suites/office.yaml:12: parameters of fp-4.51m: measured 4.5M; > max 4.4M"
    return doc(*items)


# --- the comparison rule -------------------------------------------------------------------------------


def test_direction_follows_the_comparison() -> None:
    assert judge_metric(0.80, 0.77, ">=", 0.02) == "regressed"  # an accuracy dropped by 0.03
    assert judge_metric(0.80, 0.79, ">=", 0.02) == "unchanged"  # within tolerance
    assert judge_metric(0.80, 0.85, ">=", 0.02) == "improved"
    assert judge_metric(0.10, 0.13, "<=", 0.02) == "regressed"  # a drop rose by 0.03
    assert judge_metric(0.10, 0.05, "<=", 0.02) == "improved"
    assert judge_metric(0.80, 0.78, ">=", 0.02) == "unchanged"  # exactly the tolerance is allowed
    assert judge_metric(0.80, math.nan, ">=", 0.5) == "regressed"  # no number is never a pass
    # Beyond [-1, 1] the tolerance is relative: 2 % of 4.51M parameters.
    assert allowed_move(4_510_000, 0.02) == pytest.approx(90_200)
    assert judge_metric(4_510_000, 4_590_000, "<=", 0.02) == "unchanged"
    assert judge_metric(4_510_000, 4_610_000, "<=", 0.02) == "regressed"


def test_per_expectation_tolerance_wins_over_the_default() -> None:
    old = item("source-accuracy", 0.80)
    new = item("source-accuracy", 0.75, regression_max_drop=0.1)
    assert compare_item(old["id"], old, new, tolerance=0.02).status == "unchanged"
    assert compare_item(old["id"], old, item("source-accuracy", 0.75), tolerance=0.02).status == "regressed"


def recipe(ratio: float = 0.2, **model: Any) -> str:
    return json.dumps(
        {
            "data": {"name": "office-synth"},
            "model": {"arch": "resnet18", "train": {"epochs": 10}, "libraries": {"torch": "2.14.1"}, **model},
            "steps": [{"step": "prune", "params": {"ratio": ratio}, "libraries": {"torch-pruning": "1.6"}}],
            "check": {"min": 0.5},
        }
    )


def test_a_changed_recipe_is_compared_and_the_change_named() -> None:
    """The change under review: other keys are not a reason to skip the comparison (it is the point)."""
    old = item("source-accuracy", 0.862, variant="fp-half", recipe=recipe(0.2), **{"eval_key[amazon]": "eval-a"})
    new = item("source-accuracy", 0.204, variant="fp-half", recipe=recipe(0.5), **{"eval_key[amazon]": "eval-b"})
    d = compare_item(old["id"], old, new)
    assert d.status == "regressed" and d.fails
    assert d.changes == ["variant fp-half: prune.ratio 0.2 → 0.5"]
    assert "0.204 vs baseline 0.862" in d.message() and "changed: variant fp-half: prune.ratio 0.2 → 0.5" in d.message()
    comment = compare_documents(doc(old), doc(new)).markdown()
    assert "FAIL: 1 regressed" in comment and "prune.ratio 0.2 → 0.5" in comment


def test_an_unchanged_recipe_records_no_change_and_a_key_change_without_recipes_says_so() -> None:
    same = item("source-accuracy", 0.8, recipe=recipe())
    assert compare_item(same["id"], same, same).changes == []
    old = item("target-accuracy[webcam]", 0.9, **{"eval_key[webcam]": "eval-aaaa"})
    new = item("target-accuracy[webcam]", 0.1, **{"eval_key[webcam]": "eval-bbbb"})
    d = compare_item(old["id"], old, new)
    assert d.status == "regressed" and d.fails  # never skipped, whatever the keys
    assert d.changes == ["artifact keys differ (the baseline records no recipe: it predates recipe records)"]


def test_paired_confidence_decides_whether_a_drop_beyond_tolerance_is_beyond_noise() -> None:
    def outcomes(bits: list[bool]) -> str:
        return encode_outcomes(bits, "data-x")

    base = [True] * 80 + [False] * 20
    few_swaps = [True] * 75 + [False] * 5 + [True] * 2 + [False] * 18  # 0.80 -> 0.77, images swap both ways
    kw = {"regression_max_drop": 0.02, "regression_confidence": 0.95}
    old = item("source-accuracy[amazon]", 0.80, **{"outcomes[amazon]": outcomes(base)})
    noisy = item("source-accuracy[amazon]", 0.77, **kw, **{"outcomes[amazon]": outcomes(few_swaps)})
    d = compare_item(old["id"], old, noisy)
    assert d.status == "unchanged" and d.interval is not None and d.interval[0] < 0 < d.interval[1]
    assert "within noise" in d.reason
    worse = [True] * 60 + [False] * 40  # 0.80 -> 0.60, only losses: beyond noise
    bad = item("source-accuracy[amazon]", 0.60, **kw, **{"outcomes[amazon]": outcomes(worse)})
    d = compare_item(old["id"], old, bad)
    assert d.status == "regressed" and d.interval is not None and d.interval[1] < 0
    assert "paired 95% CI of the move" in d.message()
    # The tolerance rule alone (no confidence) regresses the noisy one too.
    plain = item("source-accuracy[amazon]", 0.77, **{"outcomes[amazon]": outcomes(few_swaps)})
    assert compare_item(old["id"], old, plain).status == "regressed"
    # Without outcomes on both sides, the tolerance decides and the reason says why.
    d = compare_item(old["id"], item("source-accuracy[amazon]", 0.80), noisy)
    assert d.status == "regressed" and "confidence not applied" in d.reason


def test_new_gone_and_could_not_run() -> None:
    a, b = item("source-accuracy", 0.8), item("target-accuracy[webcam]", 0.6)
    broken = item("target-accuracy[webcam]", None, status="error")
    broken["message"] = "could not run target-accuracy[webcam]: no such directory"
    c = compare_documents(doc(a, b), doc(a, broken))
    [d] = c.by_status("regressed")
    assert d.id == b["id"] and "could not run" in d.reason and "no such directory" in d.reason
    c = compare_documents(doc(a), doc(b))
    assert [d.id for d in c.by_status("new")] == [b["id"]] and [d.id for d in c.by_status("gone")] == [a["id"]]
    assert not c.regressions


def test_warn_severity_regression_does_not_fail_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.json"
    new = tmp_path / "new.json"
    write_document(old, doc(item("source-accuracy", 0.9)))
    write_document(new, doc(item("source-accuracy", 0.5, severity="warn", status="warn")))
    assert main(["compare", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "**regressed** (warn)" in out


# --- hypothesis: compare against itself, monotone in tolerance ----------------------------------------

values = st.floats(min_value=-2.0, max_value=2.0, allow_nan=False) | st.integers(0, 50_000_000).map(float) | st.none()


@st.composite
def documents(draw: Any, ids: list[str] | None = None) -> dict[str, Any]:
    names = ids or draw(st.lists(st.sampled_from([f"check{i}" for i in range(12)]), unique=True, max_size=8))
    items = []
    for name in names:
        extra: dict[str, Any] = {}
        if draw(st.booleans()):
            extra["regression_max_drop"] = draw(st.floats(0.0, 1.0))
        if draw(st.integers(0, 5)) == 0:
            extra["artifact_key"] = draw(st.sampled_from(["k1", "k2"]))
        measured = draw(values)
        items.append(
            item(
                name,
                measured,
                draw(st.sampled_from([">=", "<="])),
                status="error" if measured is None else "pass",
                **extra,
            )
        )
    return doc(*items)


@settings(max_examples=150, deadline=None)
@given(documents())
def test_no_regression_against_itself(d: dict[str, Any]) -> None:
    c = compare_documents(d, json.loads(json.dumps(d)), 0.0)
    assert c.regressions == []
    assert not c.by_status("new") and not c.by_status("gone") and not any(d.changes for d in c.deltas)


@settings(max_examples=150, deadline=None)
@given(st.data(), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_larger_tolerance_never_reports_more_regressions(data: Any, t1: float, t2: float) -> None:
    ids = data.draw(st.lists(st.sampled_from([f"check{i}" for i in range(12)]), unique=True, max_size=8))
    old = data.draw(documents(ids))
    new = data.draw(documents(data.draw(st.permutations(ids))))
    small, large = sorted((t1, t2))
    at_small = {d.id for d in compare_documents(old, new, small).regressions}
    at_large = {d.id for d in compare_documents(old, new, large).regressions}
    assert at_large <= at_small


# --- compare on the command line -----------------------------------------------------------------------


def test_compare_markdown_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    write_document(
        old,
        doc(
            item("source-accuracy", 0.90),
            item("target-accuracy[webcam]", 0.60),
            item("drop-vs-source[dslr]", 0.30, "<="),
            item("max-params", 4_510_000, "<="),
            item("target-accuracy[dslr]", 0.5),
        ),
    )
    write_document(
        new,
        doc(
            item("source-accuracy", 0.95),
            item("target-accuracy[webcam]", 0.52),
            item("drop-vs-source[dslr]", 0.31, "<="),
            item("max-params", 4_510_000, "<="),
            item("target-accuracy[amazon]", 0.7),
            commit="def456",
        ),
    )
    assert main(["compare", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("### robustspec compare: FAIL: 1 regressed")
    row = next(line for line in out.splitlines() if "target-accuracy[webcam]" in line)
    assert "**regressed**" in row and "0.600" in row and "0.520" in row and "-0.080" in row
    assert re.search(r"\| improved \|.*source-accuracy.*\| 0\.900 \| 0\.950 \| \+0\.050 \|", out)
    assert re.search(r"\| new \|.*target-accuracy\[amazon\]", out) and re.search(
        r"\| gone \|.*target-accuracy\[dslr\]", out
    )
    assert "<details><summary>2 unchanged</summary>" in out  # drop within tolerance, equal parameter count
    assert "`abc123`" in out and "`def456`" in out
    # A larger tolerance accepts the drop of 0.08; the file option writes the markdown there.
    md = tmp_path / "comment.md"
    assert main(["compare", str(old), str(new), "--tolerance", "0.1", "-o", str(md)]) == 0
    assert "OK" in md.read_text() and "robustspec compare: OK" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "no such file"),
        ("{", "not JSON"),
        ('{"format": "other"}', "not a robustspec results file"),
        ('{"format": "robustspec-results", "version": 1, "items": [{"id": "a"}, {"id": "a"}]}', "appears twice"),
    ],
)
def test_compare_rejects_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, fragment: str
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    good = tmp_path / "good.json"
    write_document(good, doc(item("source-accuracy", 0.9)))
    assert main(["compare", str(bad), str(good)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


# --- the results document ------------------------------------------------------------------------------


def report(
    nodeid: str, when: str, outcome: str, props: list[tuple[str, Any]] | None = None, longrepr: Any = None
) -> Any:
    return SimpleNamespace(
        nodeid=nodeid,
        when=when,
        outcome=outcome,
        passed=outcome == "passed",
        failed=outcome == "failed",
        skipped=outcome == "skipped",
        user_properties=props or [],
        keywords={"robustspec": 1},
        duration=0.5,
        longrepr=longrepr,
        longreprtext=longrepr if isinstance(longrepr, str) else "",
    )


def test_collector_merges_phases_and_never_passes_silently() -> None:
    c = ResultsCollector()
    ok = [("robustspec", "1"), ("suite", "s"), ("measured", 0.8), ("status", "pass"), ("artifact_key", "model-1")]
    for when in ("setup", "call", "teardown"):
        c.add(report("s.yaml::m::baseline::ok", when, "passed", ok if when != "setup" else []))
    c.add(report("s.yaml::m::baseline::broken", "setup", "passed"))
    c.add(report("s.yaml::m::baseline::broken", "call", "failed", longrepr="s.yaml:3: could not run broken: no data"))
    c.add(report("s.yaml::m::baseline::skipped", "setup", "skipped", longrepr=("s.yaml", 3, "Skipped: no GPU")))
    c.add(SimpleNamespace(**{**vars(report("test_x.py::test_other", "call", "passed")), "keywords": {}}))
    records = {r["id"]: r for r in c.records()}
    assert set(records) == {"s.yaml::m::baseline::ok", "s.yaml::m::baseline::broken", "s.yaml::m::baseline::skipped"}
    assert (
        records["s.yaml::m::baseline::ok"]["status"] == "pass" and records["s.yaml::m::baseline::ok"]["duration"] == 1.5
    )
    assert records["s.yaml::m::baseline::broken"]["status"] == "error"
    assert "no data" in records["s.yaml::m::baseline::broken"]["message"]
    assert records["s.yaml::m::baseline::skipped"]["status"] == "skip"
    assert records["s.yaml::m::baseline::skipped"]["message"] == "Skipped: no GPU"
    d = make_document(c.records(), {}, None)
    assert d["summary"] == {"items": 3, "pass": 1, "fail": 0, "warn": 0, "error": 1, "skip": 1}
    assert d["artifacts"] == {"s/None/None": {"artifact_key": "model-1", "eval_keys": {}}}


def test_results_are_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "results.json"
    d = doc(item("source-accuracy", 0.9))
    write_document(path, d)
    assert load_document(path)["items"] == json.loads(json.dumps(d["items"]))
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary file left behind
    with pytest.raises(ResultsError, match="version"):
        path.write_text(json.dumps({**d, "version": 99}))
        load_document(path)


# --- the report ----------------------------------------------------------------------------------------


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[Path, Path]:
    results = tmp_path / "results.json"
    write_document(results, table1_doc())
    out = tmp_path / "out" / "report.html"
    assert main(["report", str(results), "-o", str(out)]) == 0
    return out, out.with_suffix(".md")


def test_report_html_is_self_contained_with_tables_and_images(rendered: tuple[Path, Path]) -> None:
    pytest.importorskip("matplotlib")
    html_path, _ = rendered
    text = html_path.read_text()
    assert text.count("<table>") >= 4  # overview, Table 1, checks, environment
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 3  # pass/fail per suite, accuracy against parameters, degradation per attack
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing outside the file
    header = re.search(r"<thead><tr><th>model</th><th>compression</th><th>params \(M\)</th>.*?</tr>", text)
    assert header and all(
        f"<th>{c} (%)</th>" in header.group(0) for c in ("amazon", "webcam", "dslr", "fgsm", "pgd-linf")
    )
    assert '<tr class="warn">' in text and '<tr class="fail">' in text and ">WARN<" in text


def test_report_markdown_next_to_it(rendered: tuple[Path, Path]) -> None:
    pytest.importorskip("matplotlib")
    html_path, md_path = rendered
    md = md_path.read_text()
    assert (
        "| model | compression | params (M) | size (MB) | amazon (%) | webcam (%) | dslr (%) | fgsm (%) | pgd-linf (%) |"
        in md
    )
    assert re.search(
        r"\| resnet34 \| fp-4\.51m \| 4\.50 \| 18\.0 \| 89\.1 \| 44\.0 \| 55\.8 \| 44\.5 \| 17\.8 \|", md
    ), md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    assert len(links) == 3
    assert all((md_path.parent / link).read_bytes().startswith(b"\x89PNG") for link in links)
    assert "| WARN |" in md and "| FAIL |" in md and "measured 4.5M; > max 4.4M" in md


def test_an_attack_mode_gets_a_row_of_its_own() -> None:
    from robustspec.report.html import table1

    size = {"parameters": 11_180_000, "bytes": 11_300_000}
    t = table1(
        doc(
            item("attack[pgd-linf]", 0.65, variant="int8", robust_accuracy=0.65, clean_accuracy=1.0, **size),
            item("attack[pgd-linf,white-box]", 0.63, variant="int8", robust_accuracy=0.63, clean_accuracy=1.0, **size),
        )
    )[0]
    assert t.attacks == ["pgd-linf"]
    rows = {s.variant: s for s in t.subjects}
    assert set(rows) == {"int8", "int8 (white-box)"}
    assert rows["int8"].attacks == {"pgd-linf": 0.65} and rows["int8 (white-box)"].attacks == {"pgd-linf": 0.63}
    assert rows["int8 (white-box)"].parameters == 11_180_000


def test_report_without_attacks_or_sizes(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = tmp_path / "r.json"
    write_document(results, doc(item("source-accuracy", 0.9, **{"accuracy[amazon]": 0.9})))
    assert main(["report", str(results), "-o", str(tmp_path / "r.html")]) == 0
    text = (tmp_path / "r.html").read_text()
    assert text.count("data:image/png;base64,") == 1  # only pass/fail per suite: no sizes, no attacks
    assert main(["report", str(results), "-o", str(tmp_path / "r.md")]) == 2


def test_report_renders_in_chromium(rendered: tuple[Path, Path], tmp_path: Path, render_report) -> None:
    """Look at the page as a person would: headless Chromium draws it (skipped where there is none)."""
    png = render_report.render(rendered[0], tmp_path / "report.png", width=1100, height=1400)
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (1100, 1400)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, tables and plots, not a blank page


# --- the suite language --------------------------------------------------------------------------------


def test_schema_accepts_regression_and_severity() -> None:
    from pydantic import ValidationError

    from robustspec.expect.accuracy import TargetAccuracyParams

    p = TargetAccuracyParams.model_validate({"min": 0.5, "regression": {"max-drop": "3%"}, "severity": "warn"})
    assert p.regression is not None and p.regression.max_drop == pytest.approx(0.03) and p.severity == "warn"
    assert TargetAccuracyParams.model_validate({"min": 0.5}).regression is None
    assert TargetAccuracyParams.model_validate({"min": 0.5, "regression": {}}).regression.max_drop == 0.02  # type: ignore[union-attr]
    for bad in ({"severity": "info"}, {"regression": {"max-drop": 1.5}}, {"regression": {"max_drop": 0.1, "x": 1}}):
        with pytest.raises(ValidationError):
            TargetAccuracyParams.model_validate({"min": 0.5, **bad})


def test_render_script_usage(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "docs" / "render_report.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "missing.html")], capture_output=True, text=True)
    assert done.returncode == 2 and "no such file" in done.stderr
