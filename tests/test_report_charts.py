"""The report's charts and what a reader sees (robustspec.report.html, .trends): intervals as error bars,
clean accuracy beside the degradation, no clipped values, no overlapping labels, bars for a suite without
variants, no machine paths, the trends over kept runs; all from documents written by hand (no training).
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Any

import pytest

from robustspec.cli import main
from robustspec.confusion import Confusion
from robustspec.outcomes import encode_outcomes
from robustspec.report.history import keep_run, kept_runs, series_with_intervals
from robustspec.report.html import build_report, relative_paths, table1
from robustspec.report.results import make_document, write_document
from robustspec.stats import wilson_interval

N = 100  # images per domain and attack


def accuracy_item(
    suite: str, model: str, variant: str, check: str, domain: str, acc: dict[str, float], **extra: Any
) -> dict[str, Any]:
    """An accuracy item as the plugin records it: its domain's interval, every domain's accuracy, sizes."""
    value = acc[domain]
    lo, hi = wilson_interval(round(value * N), N)
    props: dict[str, Any] = {
        "robustspec": "1",
        "suite": suite,
        "model": model,
        "variant": variant,
        "check": check,
        "domain": "" if check == "source-accuracy" else domain,
        "measured": value,
        "threshold": 0.3,
        "comparison": ">=",
        "status": "pass",
        "n": N,
        "ci_low": round(lo, 6),
        "ci_high": round(hi, 6),
        "parameters": 4_500_000 if variant.startswith("fp") else 11_180_000,
        "bytes": 11_180_000 if variant == "int8" else 44_720_000,
        **{f"accuracy[{d}]": a for d, a in acc.items()},
        **{f"n_test[{d}]": N for d in acc},
        **extra,
    }
    name = check if check == "source-accuracy" else f"{check}[{domain}]"
    return {"id": f"suites/{suite}.yaml::{model}::{variant}::{name}", "status": "pass", "properties": props}


def attack_item(model: str, variant: str, clean: float, robust: float, acc: dict[str, float]) -> dict[str, Any]:
    lo, hi = wilson_interval(round(robust * N), N)
    props = {
        "robustspec": "1",
        "suite": "office",
        "model": model,
        "variant": variant,
        "check": "attack",
        "domain": "pgd-linf",
        "measured": robust,
        "threshold": 0.1,
        "comparison": ">=",
        "status": "pass",
        "n": N,
        "ci_low": round(lo, 6),
        "ci_high": round(hi, 6),
        "clean_accuracy": clean,
        "robust_accuracy": robust,
        "degradation": round(clean - robust, 6),
        "parameters": 4_500_000 if variant.startswith("fp") else 11_180_000,
        **{f"accuracy[{d}]": a for d, a in acc.items()},
    }
    return {"id": f"suites/office.yaml::{model}::{variant}::attack[pgd-linf]", "status": "pass", "properties": props}


#: office: one model, a baseline, a pruned variant at chance (3 classes) and int8; plain: two models, no variants.
OFFICE = {
    "baseline": ({"amazon": 0.9, "webcam": 0.62}, 0.9, 0.4),
    "fp-0.2": ({"amazon": 0.33, "webcam": 0.31}, 0.33, 0.36),  # more accurate under attack: -3 points
    "int8": ({"amazon": 0.89, "webcam": 0.6}, 0.89, 0.38),
}
PLAIN = {"resnet18": {"amazon": 0.8, "webcam": 0.5}, "mobilenet": {"amazon": 0.7, "webcam": 0.55}}


def charts_doc(root: Path) -> dict[str, Any]:
    items = []
    for variant, (acc, clean, robust) in OFFICE.items():
        right = round(acc["webcam"] * N)
        outcomes = encode_outcomes([i < right for i in range(N)], "data-webcam")
        confusion = Confusion(("a", "b", "c"), ((30, 2, 2), (2, 30, 1), (1, 2, 30))).to_json()
        items.append(
            accuracy_item(
                "office", "resnet18", variant, "source-accuracy", "amazon", acc, **{"confusion[amazon]": confusion}
            )
        )
        web = accuracy_item("office", "resnet18", variant, "target-accuracy", "webcam", acc)
        web["properties"].update({"ci_low": None, "ci_high": None, "outcomes[webcam]": outcomes})
        items.append(web)
        items.append(attack_item("resnet18", variant, clean, robust, acc))
    failing = items[3]  # fp-0.2's source accuracy
    failing["status"] = failing["properties"]["status"] = "fail"
    failing["message"] = f"{root}/suites/office.yaml:12: accuracy on source domain 'amazon': measured 0.330; < min 0.5"
    for model, acc in PLAIN.items():
        for check, domain in (("source-accuracy", "amazon"), ("target-accuracy", "webcam")):
            item = accuracy_item("plain", model, "baseline", check, domain, acc)
            for k in ("ci_low", "ci_high"):
                del item["properties"][k]  # the intervals come from n_test
            items.append(item)
    items[-1]["status"] = "error"
    items[-1]["message"] = f"could not run: {root}/store/ab/cdef.pt: cannot read\n{root}/store/ab/cdef.pt: truncated"
    return make_document(items, {"python": "3"}, "abc123", {"baseline": {"path": f"{root}/baseline/results.json"}})


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Any]:
    pytest.importorskip("matplotlib")
    return {t.suite: t for t in table1(charts_doc(tmp_path))}


def error_segments(ax: Any) -> list[tuple[float, float, float]]:
    """(x, low, high) of every error bar drawn on an axes."""
    from matplotlib.container import ErrorbarContainer

    out = []
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            for collection in c.lines[2]:
                for seg in collection.get_segments():
                    out.append((float(seg[0][0]), float(min(seg[0][1], seg[1][1])), float(max(seg[0][1], seg[1][1]))))
    return sorted(out)


def bars(ax: Any) -> list[tuple[float, float]]:
    """(x centre, height) of every bar on an axes."""
    from matplotlib.patches import Rectangle

    return [
        (p.get_x() + p.get_width() / 2, p.get_height())
        for c in ax.containers
        if hasattr(c, "patches")
        for p in c.patches
        if isinstance(p, Rectangle)
    ]


def test_every_plotted_accuracy_has_its_interval(tables: dict[str, Any]) -> None:
    from robustspec.report.html import figure_attacks, figure_pareto

    office = tables["office"]
    subjects = {s.variant: s for s in office.subjects}
    # amazon: the interval the check recorded; webcam: Wilson of the per-image outcomes; attacks: of n.
    assert subjects["baseline"].accuracy_ci["amazon"] == pytest.approx(wilson_interval(90, N), abs=1e-6)
    assert subjects["baseline"].accuracy_ci["webcam"] == pytest.approx(wilson_interval(62, N))
    assert subjects["fp-0.2"].clean_ci["pgd-linf"] == pytest.approx(wilson_interval(33, N))
    assert subjects["fp-0.2"].attack_ci["pgd-linf"] == pytest.approx(wilson_interval(36, N), abs=1e-6)
    low, high = subjects["fp-0.2"].degradation_ci["pgd-linf"]
    assert low < -0.03 < high  # robust above clean: Newcombe's interval of the difference, not clipped at 0
    assert office.classes == 3

    fig = figure_pareto(office)
    for ax in fig.axes:
        segments = error_segments(ax)
        assert len(segments) == 3, ax.get_title()  # each variant's accuracy on that domain
    webcam = next(ax for ax in fig.axes if ax.get_title() == "webcam")
    assert sorted(round(lo, 2) for _, lo, _ in error_segments(webcam)) == sorted(
        round(100 * wilson_interval(round(a["webcam"] * N), N)[0], 2) for a, _, _ in OFFICE.values()
    )
    top, bottom = figure_attacks(office).axes
    assert len(error_segments(top)) == 6  # clean and robust accuracy of each variant
    assert len(error_segments(bottom)) == 3  # the degradation of each


def test_clean_accuracy_beside_degradation_and_negative_degradation_as_it_is(tables: dict[str, Any]) -> None:
    from robustspec.report.html import figure_attacks

    top, bottom = figure_attacks(tables["office"]).axes
    heights = sorted(round(h, 6) for _, h in bars(top))
    assert heights == sorted(round(100 * v, 6) for _, clean, robust in OFFICE.values() for v in (clean, robust))
    degradation = sorted(round(h, 6) for _, h in bars(bottom))
    assert degradation == sorted(round(100 * (c - r), 6) for _, c, r in OFFICE.values())
    assert degradation[0] == pytest.approx(-3.0)
    lowest = min(lo for _, lo, _ in error_segments(bottom))
    assert bottom.get_ylim()[0] <= lowest < -3.0  # the axis follows the data, below zero too
    assert bottom.get_ylim()[1] >= max(hi for _, _, hi in error_segments(bottom))
    # Chance (1/3) is drawn where the pruned model sits: it has nothing left to lose, it is not robust.
    chance = [line for line in top.get_lines() if line.get_label().startswith("chance")]
    assert chance and chance[0].get_ydata()[0] == pytest.approx(100 / 3)


def test_a_suite_without_variants_gets_bars_per_domain_not_a_front(tables: dict[str, Any], tmp_path: Path) -> None:
    from robustspec.report.html import figure_domains, figure_pareto

    plain = tables["plain"]
    assert figure_pareto(plain) is None and not plain.has_variants
    [ax] = figure_domains(plain).axes
    assert sorted(round(h, 6) for _, h in bars(ax)) == sorted(
        round(100 * a, 6) for acc in PLAIN.values() for a in acc.values()
    )
    assert len(error_segments(ax)) == 4  # from n_test: Wilson of 100 images
    sections = {s.title: s for s in build_report(charts_doc(tmp_path))}
    assert "plain: accuracy per model" in sections and "office: accuracy per model and variant" in sections
    assert not any(t.startswith("Table 1") for t in sections)
    assert [name for name, _, _ in sections["plain: accuracy per model"].images] == ["domains-plain"]
    assert [name for name, _, _ in sections["office: accuracy per model and variant"].images] == [
        "pareto-office",
        "attacks-office",
    ]
    # One subject on one domain: a single bar says nothing the table does not.
    one = table1(make_document([accuracy_item("solo", "m", "baseline", "source-accuracy", "amazon", {"amazon": 0.9})]))
    assert figure_domains(one[0]) is None and figure_pareto(one[0]) is None


def crowded_doc() -> dict[str, Any]:
    """Two models with six variants each, within 30 % of each other's size and 2 points of accuracy."""
    items = []
    sizes = {"baseline": 1.0e6, "fp-0.1": 0.92e6, "fp-0.2": 0.85e6, "fp-0.3": 0.77e6, "int8": 1.0e6, "kd-0.5": 1.0e6}
    for m, model in enumerate(("mini", "mini-wide")):
        for k, (variant, size) in enumerate(sizes.items()):
            acc = {"amazon": 0.5 + 0.004 * k + 0.002 * m, "webcam": 0.41 + 0.003 * k}
            item = accuracy_item("ux/gate", model, variant, "source-accuracy", "amazon", acc)
            item["properties"]["parameters"] = size * (1 + 0.03 * m)
            items.append(item)
    return make_document(items)


def drawn_texts(fig: Any) -> list[tuple[str, Any]]:
    """(text, window extent) of every non-empty text a figure draws: titles, labels, tick labels, legends."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for legend in fig.legends:
        texts += [*legend.get_texts(), legend.get_title()]
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, ax.xaxis.offsetText, ax.yaxis.offsetText, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            pad = 1e-9 * max(1.0, abs(hi - lo))
            texts += [
                t.label1
                for t in [*axis.get_major_ticks(), *axis.get_minor_ticks()]
                if lo - pad <= t.get_loc() <= hi + pad
            ]
        if ax.get_legend() is not None:
            texts += [*ax.get_legend().get_texts(), ax.get_legend().get_title()]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text().strip()]


def assert_no_overlaps(fig: Any) -> None:
    boxes = drawn_texts(fig)
    assert len(boxes) > 5
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        shrunk_a, shrunk_b = box_a.padded(-1), box_b.padded(-1)  # touching is not overlapping
        assert not shrunk_a.overlaps(shrunk_b), (a, b)


def test_no_label_overlaps_another_in_any_chart(tables: dict[str, Any], tmp_path: Path) -> None:
    from robustspec.report.html import figure_attacks, figure_domains, figure_pareto
    from robustspec.report.trends import trend_figures
    from tests.test_report import table1_doc

    figures = [figure_pareto(tables["office"]), figure_attacks(tables["office"]), figure_domains(tables["plain"])]
    crowded = table1(crowded_doc())[0]  # close sizes and accuracies: what per-point labels cannot survive
    figures.append(figure_pareto(crowded))
    assert not any(ax.texts for ax in figures[-1].axes)  # nothing written on the points: the legend says it
    research = {t.suite: t for t in table1(table1_doc())}["office"]  # two models, four variants, three domains
    figures += [figure_pareto(research), figure_attacks(research)]
    for i in range(3):
        keep_run(tmp_path / "history", charts_doc(tmp_path) | {"git_commit": f"{i + 1}" * 12})
    figures += [fig for _, fig, _ in trend_figures(*series_with_intervals(kept_runs(tmp_path / "history")))]
    assert all(fig is not None for fig in figures)
    for fig in figures:
        assert_no_overlaps(fig)


MACHINE_PATH = re.compile(r"(?<![\w.~:/-])/(?:[^\s/:;,'\"()\[\]{}<>|&]+/)+[^\s/:;,'\"()\[\]{}<>|&]*")


def visible_text(html: str) -> str:
    """The page without its embedded images and tags."""
    return re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]*"', "", html))


def test_no_machine_paths_in_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / ".robustspec" / "results.json"  # the default place: the project is its parent
    write_document(results, charts_doc(tmp_path))
    out = tmp_path / "out" / "report.html"
    assert main(["report", str(results), "-o", str(out), "--title", f"gate of {tmp_path}/suites"]) == 0
    html, md = out.read_text(), out.with_suffix(".md").read_text()
    for text in (html, md):
        assert str(tmp_path) not in text and os.path.expanduser("~") + "/" not in text
        assert "suites/office.yaml:12: accuracy on source domain" in text  # as the node id names it
        assert "baseline/results.json" in text and "store/ab/cdef.pt: truncated" in text
        assert "gate of suites" in text
    for found in MACHINE_PATH.findall(visible_text(html)) + MACHINE_PATH.findall(md):
        assert not Path(found).exists() and not Path(found).parent.exists(), found
    # Elsewhere than the default place: relative to the results file's directory.
    elsewhere = tmp_path / "ci" / "results.json"
    doc = charts_doc(tmp_path)
    for item in doc["items"]:
        item["message"] = None
    write_document(elsewhere, doc)
    monkeypatch.setattr("robustspec.report.html.has_plots", lambda: False)  # the text is what counts here
    assert main(["report", str(elsewhere), "-o", str(out)]) == 0
    assert "Compared with baseline ../baseline/results.json" in out.read_text()


def test_relative_paths_leaves_what_is_not_an_absolute_path(tmp_path: Path) -> None:
    from robustspec.report.html import Section

    sec = Section("t", notes=["https://example.com/a/b 3/4 images/s a / b ./x/y ~/z/w"])
    relative_paths([sec], {"items": []}, tmp_path)
    assert sec.notes == ["https://example.com/a/b 3/4 images/s a / b ./x/y ~/z/w"]
    sec = Section("t", notes=[f"{tmp_path}/x/y.yaml and {tmp_path.parent}/z"])
    relative_paths([sec], {"items": []}, tmp_path)
    assert sec.notes == ["x/y.yaml and ../z"]


def test_the_trends_over_kept_runs_are_in_the_report_with_their_intervals(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from robustspec.report.trends import trend_figures

    history = tmp_path / "history"
    for commit, shift in (("a1b2c3d4e5f6", 0.0), ("b1b2c3d4e5f6", -0.05)):
        doc = charts_doc(tmp_path)
        for item in doc["items"]:
            if item["properties"].get("ci_low") is not None:
                for k in ("measured", "ci_low", "ci_high"):
                    item["properties"][k] = round(item["properties"][k] + shift, 6)
        keep_run(history, doc | {"git_commit": commit})
    results = tmp_path / "results.json"
    write_document(results, charts_doc(tmp_path))
    out = tmp_path / "report.html"
    assert main(["report", str(results), "--history", str(history), "-o", str(out)]) == 0
    html, md = out.read_text(), out.with_suffix(".md").read_text()
    assert "<h2>Over kept runs</h2>" in html and "## Over kept runs" in md
    assert "| suites/office.yaml::resnet18::baseline::source-accuracy | 0.900 | 0.850 |" in md
    assert (
        "![suites/office.yaml: each item's measured value over kept runs](report_files/trends-suites-office-yaml.png)"
        in md
    )
    assert (tmp_path / "report_files" / "trends-suites-office-yaml.png").read_bytes().startswith(b"\x89PNG")
    figures = {name: fig for name, fig, _ in trend_figures(*series_with_intervals(kept_runs(history)))}
    panels = {ax.get_title(): ax for ax in figures["trends-suites-office-yaml"].axes}
    # source-accuracy: three variants over two runs, each value with its recorded interval.
    assert len(error_segments(panels["source-accuracy"])) == 6


def test_the_report_in_headless_chromium_is_a_drawn_page(tmp_path: Path, render_report) -> None:
    """Look at the page as a person would (skipped where there is no Chromium)."""
    pytest.importorskip("matplotlib")
    PIL = pytest.importorskip("PIL.Image")
    results = tmp_path / "results.json"
    write_document(results, charts_doc(tmp_path))
    out = tmp_path / "report.html"
    assert main(["report", str(results), "-o", str(out)]) == 0
    assert len(re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', out.read_text())) == 4
    png = render_report.render(out, tmp_path / "report.png", width=1200, height=2000)
    with PIL.open(png) as im:
        assert im.size == (1200, 2000)
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 22)
        histogram = rgb.convert("L").histogram()
    assert colours is not None and len(colours) > 200  # text, tables and anti-aliased plots
    non_white = sum(histogram[:235]) / (1200 * 2000)
    assert non_white > 0.04, non_white  # not a blank page
