"""``robustspec report``: a results file as a self-contained HTML page and a markdown page.

What it shows, per suite:

- **accuracy per model and variant** (the research's Table 1 shape): rows model / compression /
  parameters, columns the domains (accuracy from the ``accuracy[<domain>]`` properties, source first)
  and, when attack checks ran, one column per attack (``check == "attack"``, the item's domain label is the
  attack's name); an attack run in a non-default mode (``attack[pgd-linf,white-box]``) goes to a row of its
  own, ``int8 (white-box)``;
- **accuracy against parameter count** per domain, when a model has variants of different sizes: each
  model's variants (colour: model, marker: variant, explained in one legend; no text on the points), with
  the model's Pareto front (no other variant of it has fewer parameters and higher accuracy); a suite
  without variants gets **accuracy per domain** as bars instead (nothing for a single bar);
- **under attack** (when attacks ran): clean and robust accuracy per subject and attack, and the
  degradation (clean minus attacked accuracy, in points) below it, negative values as they are;
- **per class** (when accuracy checks recorded ``confusion[<domain>]``): one table per domain, rows the
  classes, columns the models and variants, each class's accuracy, then the balanced accuracy and the
  worst class, and each subject's most frequent confusions (true → predicted);
- **pass / warn / fail per suite**, and every check with its numbers, interval and baseline comparison.

Every plotted accuracy has its 95 % interval as an error bar: the interval its check recorded
(``ci_low``/``ci_high``), else the Wilson interval of its per-image outcomes (``outcomes[<domain>]``) or of
its test split's size (``n_test[<domain>]``, an attack item's ``n``). Absolute paths in messages and notes
are shown relative to the project (the root the suite files' node ids are relative to), the results
file's directory, or ``~``, so a report says nothing about the machine it was made on.

Images are PNGs drawn with matplotlib's Agg canvas (no pyplot, no global backend), embedded in the HTML as
base64 and written next to the markdown file (``<name>_files/``) for the markdown page.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..confusion import Confusion, confusions_of
from ..outcomes import decode_outcomes
from ..stats import newcombe_difference, wilson_interval
from .compare import fmt_number
from .results import domain_accuracies
from .results import finite_number as _num

__all__ = [
    "ClassTable",
    "Subject",
    "Table1",
    "class_tables",
    "table1",
    "build_report",
    "write_report",
    "pareto_front",
    "relative_paths",
]

BASELINE = "baseline"
STATUS_COLOURS = {"pass": "#1a7f37", "warn": "#b58100", "fail": "#cf222e", "error": "#8250df", "skip": "#6e7781"}
STATUS_ORDER = ("pass", "warn", "fail", "error", "skip")


# --- the data ------------------------------------------------------------------------------------------


@dataclass
class Subject:
    """One model and variant of a suite: its size, its accuracy per domain, its accuracy per attack."""

    suite: str
    model: str
    variant: str
    parameters: float | None = None
    bytes: float | None = None
    accuracy: dict[str, float] = field(default_factory=dict)
    attacks: dict[str, float] = field(default_factory=dict)
    clean: dict[str, float] = field(default_factory=dict)  # attack -> clean accuracy it degrades from
    # 95 % intervals (low, high) as fractions, where the results say enough to have one:
    accuracy_ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # domain ->
    attack_ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # attack -> robust accuracy's
    clean_ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # attack -> clean accuracy's
    degradation_ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # attack -> clean - attacked

    @property
    def label(self) -> str:
        return self.model if self.variant == BASELINE else f"{self.model} {self.variant}"


@dataclass
class Table1:
    suite: str
    domains: list[str]
    attacks: list[str]
    subjects: list[Subject]
    classes: int | None = None  # the number of classes, where a confusion matrix says it (chance: 1 / classes)

    @property
    def has_variants(self) -> bool:
        return any(s.variant != BASELINE for s in self.subjects)


ACCURACY_CHECKS = ("source-accuracy", "target-accuracy")


def _recorded_interval(props: Mapping[str, Any]) -> tuple[float, float] | None:
    lo, hi = _num(props.get("ci_low")), _num(props.get("ci_high"))
    return (lo, hi) if lo is not None and hi is not None and lo <= hi else None


def _wilson(p: float | None, n: float | None) -> tuple[float, float] | None:
    """The 95 % Wilson interval of a proportion ``p`` of ``n`` images; None when they do not make a count."""
    if p is None or n is None or n < 1:
        return None
    count, total = round(p * n), int(round(n))
    return wilson_interval(count, total) if 0 <= count <= total else None


def _outcomes_interval(text: Any, accuracy: float) -> tuple[float, float] | None:
    decoded = decode_outcomes(text)
    if decoded is None or not decoded[1]:
        return None
    bits = decoded[1]
    if abs(sum(bits) / len(bits) - accuracy) > 1e-4:  # not the outcomes of this accuracy
        return None
    return wilson_interval(sum(bits), len(bits))


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) < 1e-6


def table1(doc: Mapping[str, Any]) -> list[Table1]:
    """Table 1 of every suite in a results document, rows in the order items appear (baseline first)."""
    by_suite: dict[str, dict[tuple[str, str], Subject]] = {}
    domains: dict[str, list[str]] = {}
    attacks: dict[str, list[str]] = {}
    modes: dict[tuple[str, str, str], tuple[str, str, str]] = {}  # (suite, model, "int8 (white-box)") -> its variant
    recorded: dict[tuple[str, str, str, str], tuple[float, float]] = {}  # (suite, model, variant, domain) ->
    derived: dict[tuple[str, str, str, str], tuple[float, float]] = {}  # the same, from outcomes or n_test
    classes: dict[str, int] = {}
    clean_from: dict[tuple[str, str, str, str], str] = {}  # (suite, model, row, attack) -> the domain, when
    # the clean accuracy is the subject's accuracy (no clean_accuracy recorded)
    for item in doc.get("items", []):
        props = item.get("properties", {})
        suite, model, variant = (str(props.get(k, item.get(k, ""))) for k in ("suite", "model", "variant"))
        if not model:
            continue
        subj = by_suite.setdefault(suite, {}).setdefault((model, variant), Subject(suite, model, variant))
        doms = domains.setdefault(suite, [])
        accs = domain_accuracies(props)
        for d, acc in accs.items():
            subj.accuracy[d] = acc
            if d not in doms:
                doms.append(d)
            if (suite, model, variant, d) not in derived:
                ci = _outcomes_interval(props.get(f"outcomes[{d}]"), acc) or _wilson(
                    acc, _num(props.get(f"n_test[{d}]"))
                )
                if ci is not None:
                    derived[(suite, model, variant, d)] = ci
        if props.get("check") in ACCURACY_CHECKS and (ci := _recorded_interval(props)) is not None:
            # The interval the check gated on; source-accuracy's domain label is "" (the first domain).
            d = str(props.get("domain") or "") or next(iter(accs), "")
            if d and (d not in accs or _close(accs[d], _num(props.get("measured")))):
                recorded.setdefault((suite, model, variant, d), ci)
        for confusion in confusions_of(props).values():
            classes[suite] = max(classes.get(suite, 0), len(confusion.names))
        for k in ("parameters", "bytes"):
            if _num(props.get(k)) is not None:
                setattr(subj, k, _num(props.get(k)))
        if props.get("check") == "attack":
            # The column is the attack's name; a second expectation of the same attack (another eps) gets "#2".
            name = str(props.get("domain") or props.get("attack") or "attack")
            name, _, mode = name.partition(",")
            if mode:  # attack[pgd-linf,white-box]: a row of its own ("int8 (white-box)"), same columns
                row = f"{variant} ({mode})"
                subj = by_suite[suite].setdefault((model, row), Subject(suite, model, row))
                modes[(suite, model, row)] = (suite, model, variant)
            last = str(item.get("id", "")).rsplit("::", 1)[-1]
            if last.startswith("attack#"):
                name += " #" + last[len("attack#") :].split("[", 1)[0]
            value = _num(props.get("robust_accuracy", props.get("measured")))
            if value is not None:
                subj.attacks[name] = value
                measured, n, ci = _num(props.get("measured")), _num(props.get("n")), _recorded_interval(props)
                comparison = str(props.get("comparison", ""))
                # The recorded interval is the measured value's: robust accuracy (">=") or degradation ("<=").
                robust_ci = ci if ci and comparison == ">=" and _close(measured, value) else _wilson(value, n)
                if robust_ci is not None:
                    subj.attack_ci[name] = robust_ci
                clean = _num(props.get("clean_accuracy"))
                if clean is not None:
                    subj.clean[name] = clean
                    if (clean_ci := _wilson(clean, n)) is not None:
                        subj.clean_ci[name] = clean_ci
                    degradation = _num(props.get("degradation"))
                    if (
                        ci
                        and comparison == "<="
                        and _close(measured, degradation)
                        and _close(degradation, clean - value)
                    ):
                        subj.degradation_ci[name] = ci
                    elif n is not None and n >= 1:
                        k_clean, k_robust, total = round(clean * n), round(value * n), int(round(n))
                        if 0 <= k_robust <= k_clean <= total:  # the flipped images' share, as the check has it
                            subj.degradation_ci[name] = wilson_interval(k_clean - k_robust, total)
                        elif 0 <= k_clean <= total and 0 <= k_robust <= total:
                            subj.degradation_ci[name] = newcombe_difference(k_clean, total, k_robust, total)
                elif subj.accuracy:
                    first = next(iter(subj.accuracy))
                    subj.clean[name] = subj.accuracy[first]
                    clean_from[(suite, model, subj.variant, name)] = first
                if name not in attacks.setdefault(suite, []):
                    attacks[suite].append(name)
    for (suite, model, row), (_, _, variant) in modes.items():  # a mode row shares its variant's size
        base, subj = by_suite[suite].get((model, variant)), by_suite[suite][(model, row)]
        if base is not None:
            subj.parameters, subj.bytes = base.parameters, base.bytes
    for suite, subjects in by_suite.items():
        for (model, variant), subj in subjects.items():
            for d in subj.accuracy:
                ci = recorded.get((suite, model, variant, d)) or derived.get((suite, model, variant, d))
                if ci is not None:
                    subj.accuracy_ci[d] = ci
    for (suite, model, row, name), d in clean_from.items():
        subj = by_suite[suite][(model, row)]
        if d in subj.accuracy_ci:
            subj.clean_ci[name] = subj.accuracy_ci[d]
    out = []
    for suite, subjects in by_suite.items():
        models: list[str] = []
        for model, _ in subjects:
            if model not in models:
                models.append(model)
        rows = sorted(subjects.values(), key=lambda s: (models.index(s.model), s.variant != BASELINE))
        # By name, a second expectation of one attack ("pgd-linf #2") after the first.
        names = sorted(
            attacks.get(suite, []), key=lambda n: (n.split(" #")[0], int(n.split(" #")[1]) if " #" in n else 1)
        )
        out.append(Table1(suite, domains.get(suite, []), names, rows, classes.get(suite) or None))
    return out


@dataclass
class ClassTable:
    """The per-class numbers of one suite and domain: a confusion matrix per model/variant."""

    suite: str
    domain: str
    confusions: dict[tuple[str, str], Confusion] = field(default_factory=dict)  # (model, variant) -> matrix


def class_tables(doc: Mapping[str, Any]) -> list[ClassTable]:
    """Every suite's and domain's confusion matrices (the ``confusion[<domain>]`` properties), subjects in
    the order items appear, baseline first per model; one matrix per subject and domain (the first)."""
    tables: dict[tuple[str, str], ClassTable] = {}
    for item in doc.get("items", []):
        props = item.get("properties", {})
        suite, model, variant = (str(props.get(k, item.get(k, ""))) for k in ("suite", "model", "variant"))
        for domain, confusion in confusions_of(props).items():
            table = tables.setdefault((suite, domain), ClassTable(suite, domain))
            table.confusions.setdefault((model, variant), confusion)
    for table in tables.values():
        models = list(dict.fromkeys(m for m, _ in table.confusions))
        order = sorted(table.confusions, key=lambda s: (models.index(s[0]), s[1] != BASELINE))
        table.confusions = {s: table.confusions[s] for s in order}
    return list(tables.values())


def _class_section(suite: str, tables: list[ClassTable]) -> Section:
    """Per domain: each class's accuracy (%) per subject, the balanced accuracy, the worst class; then the
    most frequent confusions. Rows are classes, so 31 classes make 31 rows, whatever the subjects."""
    sec = Section(f"Per class: {suite}")
    for t in tables:
        subjects = list(t.confusions)
        first = next(iter(t.confusions.values()))
        label = lambda s: s[0] if s[1] == BASELINE else f"{s[0]} {s[1]}"  # noqa: E731
        head = [f"{t.domain}: class", "n", *(f"{label(s)} (%)" for s in subjects)]
        rows: list[list[str]] = []
        for k, name in enumerate(first.names):
            accuracy = [t.confusions[s].class_accuracy().get(name) for s in subjects]
            rows.append([name, str(first.counts[k][1]), *(_pct(a) for a in accuracy)])
        rows.append(["balanced", str(first.n), *(_pct(t.confusions[s].balanced_accuracy) for s in subjects)])
        rows.append(
            [
                "worst class",
                "",
                *(
                    f"{w[0]} {_pct(w[1] / w[2])}" if (w := next(iter(t.confusions[s].worst(1)), None)) else "-"
                    for s in subjects
                ),
            ]
        )
        sec.tables.append((head, rows, [None] * len(rows)))
        confused = [
            [label(s), "; ".join(f"{a} → {b} ({v})" for a, b, v in t.confusions[s].confusions(3)) or "none"]
            for s in subjects
        ]
        sec.tables.append(
            (
                [f"{t.domain}: model", "most frequent confusions (true → predicted, images)"],
                confused,
                [None] * len(confused),
            )
        )
    sec.notes.append(
        "Accuracy in % of each class on the domain's test split (n: its test images), from the confusion "
        "matrices the accuracy checks recorded; balanced: the mean over the classes with test images."
    )
    return sec


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points (parameters, accuracy) not dominated by another (fewer or equal parameters, higher accuracy)."""
    front: list[tuple[float, float]] = []
    best = -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _status_counts(doc: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for item in doc.get("items", []):
        suite = str(item.get("properties", {}).get("suite") or item.get("suite") or item["id"].split("::")[0])
        row = counts.setdefault(suite, {s: 0 for s in STATUS_ORDER})
        status = str(item.get("status", "error"))
        row[status] = row.get(status, 0) + 1
    return counts


# --- plots ---------------------------------------------------------------------------------------------


NO_PLOTS = "matplotlib is not installed: no plots (pip install 'robustspec[report]' for them); the tables are complete."


def has_plots() -> bool:
    """Whether matplotlib can be imported; without it the report has its tables and no plots."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


#: Variant markers after the baseline's diamond, in order of appearance (cycling after twelve variants).
_MARKERS = ("o", "s", "^", "v", "P", "X", "<", ">", "h", "*", "p", "d")
_INK = "#24292f"
_CLEAN = "#8c959f"
_DODGE = 0.022  # share of the x axis between points of (nearly) equal size, drawn side by side
INTERVAL_NOTE = (
    "Error bars: 95 % intervals (the interval a check recorded, else the Wilson interval of the per-image "
    "outcomes or of the test split's size)."
)


def _variant_markers(t: Table1) -> dict[str, str]:
    variants = [v for v in dict.fromkeys(s.variant for s in t.subjects) if v != BASELINE]
    markers = {BASELINE: "D"} if any(s.variant == BASELINE for s in t.subjects) else {}
    markers.update((v, _MARKERS[k % len(_MARKERS)]) for k, v in enumerate(variants))
    return markers


def _errorbars(ax: Any, xs: Sequence[float], ys: Sequence[float], cis: Sequence[Any], colour: str = _INK) -> None:
    """Error bars at (x, y) (in %) from intervals (fractions); points without an interval get none."""
    pts = [(x, y, ci) for x, y, ci in zip(xs, ys, cis) if ci is not None]
    if not pts:
        return
    ax.errorbar(
        [p[0] for p in pts],
        [p[1] for p in pts],
        yerr=[[max(0.0, y - 100 * ci[0]) for _, y, ci in pts], [max(0.0, 100 * ci[1] - y) for _, y, ci in pts]],
        fmt="none",
        ecolor=colour,
        elinewidth=0.9,
        capsize=2.5,
        zorder=4,
    )


def _pareto_domains(t: Table1) -> list[str]:
    """The domains where some model has two or more sizes measured: a front needs more than one point."""
    out = []
    for d in t.domains:
        per_model = Counter(s.model for s in t.subjects if s.parameters and d in s.accuracy)
        if any(k >= 2 for k in per_model.values()):
            out.append(d)
    return out


def _dodged(xs: Sequence[float], log_x: bool) -> list[float]:
    """x positions with points of (nearly, 1 %) equal size spread side by side, in order, around their size."""
    if not xs:
        return []
    f = (lambda v: math.log10(v)) if log_x else (lambda v: v)  # noqa: E731
    g = (lambda v: 10**v) if log_x else (lambda v: v)  # noqa: E731
    span = (f(max(xs)) - f(min(xs))) or (1.0 if log_x else max(xs))
    groups: list[list[int]] = []
    for i in sorted(range(len(xs)), key=lambda i: xs[i]):
        if groups and abs(xs[i] - xs[groups[-1][0]]) <= 0.01 * max(xs[i], xs[groups[-1][0]]):
            groups[-1].append(i)
        else:
            groups.append([i])
    out = list(xs)
    for group in groups:
        for k, i in enumerate(sorted(group)):
            out[i] = g(f(xs[i]) + (k - (len(group) - 1) / 2) * _DODGE * span)
    return out


def figure_pareto(t: Table1) -> Any:
    """Accuracy (%) against parameters (M), one panel per domain where a model has two or more sizes, each
    model's Pareto front drawn; None when there is no such domain (see :func:`figure_domains`).

    Colour is the model, the marker the variant (◆ baseline), one legend beside the panels says which; front
    points are ringed; points of (nearly) equal size are drawn side by side. Error bars are the accuracies'
    intervals. The x axis is logarithmic when sizes span more than 10x.
    """
    if not has_plots():
        return None
    domains = _pareto_domains(t)
    if not domains:
        return None
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    n = len(domains)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = _figure(4.3 * cols + 2.0, 3.7 * rows)
    models = list(dict.fromkeys(s.model for s in t.subjects))
    markers = _variant_markers(t)
    sizes = [s.parameters for s in t.subjects if s.parameters]
    log_x = max(sizes) / min(sizes) > 10
    for i, domain in enumerate(domains):
        ax = fig.add_subplot(rows, cols, i + 1)
        subjects = [s for s in t.subjects if s.parameters and domain in s.accuracy]
        size = {id(s): float(s.parameters or 0) / 1e6 for s in subjects}
        xs = _dodged([size[id(s)] for s in subjects], log_x)
        at = {id(s): (x, 100 * s.accuracy[domain]) for s, x in zip(subjects, xs)}
        for m, model in enumerate(models):
            colour = f"C{m % 10}"
            mine = [s for s in subjects if s.model == model]
            if not mine:
                continue
            for s in mine:
                x, y = at[id(s)]
                ax.scatter([x], [y], color=colour, marker=markers[s.variant], s=34, zorder=5)
            _errorbars(
                ax,
                [at[id(s)][0] for s in mine],
                [at[id(s)][1] for s in mine],
                [s.accuracy_ci.get(domain) for s in mine],
                colour,
            )
            front = pareto_front([(size[id(s)], 100 * s.accuracy[domain]) for s in mine])
            on_front = sorted(
                (s for s in mine if (size[id(s)], 100 * s.accuracy[domain]) in front), key=lambda s: size[id(s)]
            )
            ax.scatter(
                [at[id(s)][0] for s in on_front],
                [at[id(s)][1] for s in on_front],
                facecolors="none",
                edgecolors=colour,
                s=120,
                linewidths=1.2,
                zorder=3,
            )
            if len(on_front) > 1:
                ax.step(
                    [at[id(s)][0] for s in on_front],
                    [at[id(s)][1] for s in on_front],
                    where="post",
                    color=colour,
                    alpha=0.55,
                    lw=1.3,
                )
        if log_x:
            ax.set_xscale("log")
        ax.set_title(f"{domain}" + (" (source)" if domain == t.domains[0] else ""), fontsize=10)
        ax.set_xlabel("parameters (M)" + (", log scale" if log_x else ""))
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        ax.margins(x=0.12, y=0.1)
    handles: list[Any] = [Patch(facecolor=f"C{m % 10}", label=model) for m, model in enumerate(models)]
    handles += [Line2D([], [], color=_INK, marker=mk, linestyle="", markersize=6, label=v) for v, mk in markers.items()]
    handles += [
        Line2D(
            [],
            [],
            marker="o",
            markerfacecolor="none",
            markeredgecolor=_INK,
            markersize=10,
            linestyle="",
            label="on the model's Pareto front",
        ),
        Line2D([], [], color=_INK, marker="|", markersize=10, linestyle="", label="95 % interval"),
    ]
    fig.legend(
        handles=handles,
        loc="outside right upper",
        fontsize=8,
        frameon=False,
        title="colour: model\nmarker: variant",
        title_fontsize=8,
    )
    fig.suptitle(f"{t.suite}: accuracy against parameters", fontsize=11)
    return fig


def plot_pareto(t: Table1) -> bytes | None:
    fig = figure_pareto(t)
    return None if fig is None else _png(fig)


def _tick_label(s: Subject) -> str:
    return s.model if s.variant == BASELINE else f"{s.model}\n{s.variant}"


def _chance(ax: Any, t: Table1) -> None:
    if t.classes and t.classes > 1:
        ax.axhline(100 / t.classes, color="#6e7781", lw=1, ls="--", zorder=1, label=f"chance (1/{t.classes})")


def figure_domains(t: Table1) -> Any:
    """Accuracy (%) per domain as grouped bars, one bar per model and variant, with the intervals: for a
    suite where no model has two sizes (no front to draw). None for fewer than two bars."""
    if not has_plots():
        return None
    subjects = [s for s in t.subjects if s.accuracy]
    if not t.domains or sum(len(s.accuracy) for s in subjects) < 2:
        return None
    per = 0.8 / len(subjects)
    fig = _figure(max(5.5, 2.4 + len(t.domains) * (0.32 * len(subjects) + 0.5)), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for i, s in enumerate(subjects):
        doms = [j for j, d in enumerate(t.domains) if d in s.accuracy]
        xs = [j + (i - (len(subjects) - 1) / 2) * per for j in doms]
        ys = [100 * s.accuracy[t.domains[j]] for j in doms]
        ax.bar(xs, ys, width=per * 0.92, color=f"C{i % 10}", label=s.label, zorder=2)
        _errorbars(ax, xs, ys, [s.accuracy_ci.get(t.domains[j]) for j in doms])
    _chance(ax, t)
    ax.set_xticks(
        range(len(t.domains)), [d + (" (source)" if j == 0 else "") for j, d in enumerate(t.domains)], fontsize=8
    )
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{t.suite}: accuracy per domain", fontsize=11)
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    return fig


def plot_domains(t: Table1) -> bytes | None:
    fig = figure_domains(t)
    return None if fig is None else _png(fig)


def figure_attacks(t: Table1) -> Any:
    """Under attack, per model and variant: clean and robust accuracy (%) per attack above, the degradation
    (clean minus attacked accuracy, points) below, with their intervals. Negative degradations are drawn as
    they are and the axes follow the data, so a model at chance accuracy, which has nothing left to lose,
    is seen at chance and not as the most robust."""
    if not has_plots():
        return None
    subjects = [s for s in t.subjects if s.attacks]
    if not t.attacks or not subjects:
        return None
    groups = 1 + len(t.attacks)
    fig = _figure(max(6.0, 2.6 + len(subjects) * (0.26 * groups + 0.5)), 5.8)
    top, bottom = fig.subplots(2, 1, sharex=True)
    width = 0.8 / groups
    xs = list(range(len(subjects)))
    # Clean accuracy: the first attack's (each attack item records the clean accuracy of its images).
    clean = [next(((s.clean[a], s.clean_ci.get(a)) for a in t.attacks if a in s.clean), None) for s in subjects]
    cx = [x - (groups - 1) / 2 * width for x, c in zip(xs, clean) if c is not None]
    cy = [100 * c[0] for c in clean if c is not None]
    top.bar(cx, cy, width=width * 0.92, color=_CLEAN, label="clean", zorder=2)
    _errorbars(top, cx, cy, [c[1] for c in clean if c is not None])
    per = 0.8 / len(t.attacks)
    for j, attack in enumerate(t.attacks):
        colour = f"C{j % 10}"
        mine = [(x, s) for x, s in zip(xs, subjects) if attack in s.attacks]
        ax_ = [x + (j + 1 - (groups - 1) / 2) * width for x, _ in mine]
        ay = [100 * s.attacks[attack] for _, s in mine]
        top.bar(ax_, ay, width=width * 0.92, color=colour, label=attack, zorder=2)
        _errorbars(top, ax_, ay, [s.attack_ci.get(attack) for _, s in mine])
        deg = [(x, s) for x, s in mine if attack in s.clean]
        dx = [x + (j - (len(t.attacks) - 1) / 2) * per for x, _ in deg]
        dy = [100 * (s.clean[attack] - s.attacks[attack]) for _, s in deg]
        bottom.bar(dx, dy, width=per * 0.92, color=colour, zorder=2)
        # Its interval: the check's, else Wilson's of the flipped images (Newcombe's when robust exceeds clean).
        _errorbars(bottom, dx, dy, [s.degradation_ci.get(attack) for _, s in deg])
    _chance(top, t)
    top.set_ylabel("accuracy (%)")
    top.set_title(f"{t.suite}: accuracy under attack", fontsize=11)
    top.grid(axis="y", alpha=0.3)
    bottom.axhline(0, color=_INK, lw=0.8, zorder=1)
    bottom.set_ylabel("clean − attacked\n(points)")
    bottom.set_title("degradation per attack (below 0: more accurate under attack)", fontsize=9)
    bottom.grid(axis="y", alpha=0.3)
    bottom.set_xticks(xs, [_tick_label(s) for s in subjects], fontsize=7)
    fig.legend(*top.get_legend_handles_labels(), loc="outside right upper", fontsize=8, frameon=False)
    return fig


def plot_attacks(t: Table1) -> bytes | None:
    fig = figure_attacks(t)
    return None if fig is None else _png(fig)


def plot_status(counts: Mapping[str, Mapping[str, int]]) -> bytes | None:
    if not has_plots():
        return None
    if not counts:
        return None
    suites = list(counts)
    fig = _figure(6.5, 0.4 * len(suites) + 1.2)
    ax = fig.add_subplot(1, 1, 1)
    left = [0] * len(suites)
    for status in STATUS_ORDER:
        values = [counts[s].get(status, 0) for s in suites]
        if not any(values):
            continue
        ax.barh(suites, values, left=left, height=0.6, color=STATUS_COLOURS[status], label=status)
        for y, (l, v) in enumerate(zip(left, values)):
            if v:
                ax.text(l + v / 2, y, str(v), ha="center", va="center", color="white", fontsize=8, fontweight="bold")
        left = [l + v for l, v in zip(left, values)]
    ax.invert_yaxis()
    ax.set_xlabel("checks")
    ax.set_title("checks per suite", fontsize=11)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _png(fig)


# --- the document --------------------------------------------------------------------------------------


@dataclass
class Section:
    title: str
    tables: list[tuple[list[str], list[list[str]], list[str | None]]] = field(
        default_factory=list
    )  # header, rows, row status
    images: list[tuple[str, bytes, str]] = field(default_factory=list)  # name, png, alt
    notes: list[str] = field(default_factory=list)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _check_rows(doc: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str | None]]:
    header = ["suite", "item", "status", "measured", "threshold", "interval", "baseline", "message"]
    rows, statuses = [], []
    for item in doc.get("items", []):
        p = item.get("properties", {})
        status = str(item.get("status", "error"))
        lo, hi = _num(p.get("ci_low")), _num(p.get("ci_high"))
        conf = _num(p.get("confidence"))
        interval = "-" if lo is None else f"[{fmt_number(lo)}, {fmt_number(hi)}]" + (f" @{conf:g}" if conf else "")
        base = str(p.get("baseline_status", "-"))
        if _num(p.get("baseline_measured")) is not None:
            base += f" ({fmt_number(_num(p.get('baseline_measured')))}, Δ {fmt_number(_num(p.get('baseline_delta')), signed=True)})"
        message = "" if status == "pass" else (item.get("message") or "").strip().splitlines()[-1:] or [""]
        parts = item["id"].split("::")
        rows.append(
            [
                str(p.get("suite", parts[0])),
                "::".join(parts[1:]) or item["id"],
                status.upper(),
                fmt_number(_num(p.get("measured"))),
                f"{p.get('comparison', '')} {fmt_number(_num(p.get('threshold')))}".strip(),
                interval,
                base,
                message if isinstance(message, str) else message[0],
            ]
        )
        statuses.append(status)
    return header, rows, statuses


def build_report(doc: Mapping[str, Any], base: str | os.PathLike[str] | None = None) -> list[Section]:
    """The report's sections; absolute paths in them are made relative (:func:`relative_paths`, ``base``
    the results file's directory)."""
    sections = _build_sections(doc)
    relative_paths(sections, doc, base)
    return sections


def _build_sections(doc: Mapping[str, Any]) -> list[Section]:
    sections: list[Section] = []
    counts = _status_counts(doc)
    overview = Section("Overview")
    header = ["suite", *(s.upper() for s in STATUS_ORDER), "total"]
    overview.tables.append(
        (
            header,
            [[suite, *(str(c.get(s, 0)) for s in STATUS_ORDER), str(sum(c.values()))] for suite, c in counts.items()],
            [None] * len(counts),
        )
    )
    status_png = plot_status(counts)
    if status_png:
        overview.images.append(("status", status_png, "checks per suite by status"))
    if not has_plots():
        overview.notes.append(NO_PLOTS)
    sections.append(overview)

    classes = class_tables(doc)
    for t in table1(doc):
        sec = Section(f"{t.suite}: accuracy per model" + (" and variant" if t.has_variants else ""))
        head = [
            "model",
            "compression",
            "params (M)",
            "size (MB)",
            *(f"{d} (%)" for d in t.domains),
            *(f"{a} (%)" for a in t.attacks),
        ]
        rows = [
            [
                s.model,
                s.variant if s.variant != BASELINE else "— (baseline)",
                "-" if s.parameters is None else f"{s.parameters / 1e6:.2f}",
                "-" if s.bytes is None else f"{s.bytes / 1e6:.1f}",
                *(_pct(s.accuracy.get(d)) for d in t.domains),
                *(_pct(s.attacks.get(a)) for a in t.attacks),
            ]
            for s in t.subjects
        ]
        sec.tables.append((head, rows, [None] * len(rows)))
        if t.domains:
            sec.notes.append(
                f"Accuracy in % on each domain's test split; {t.domains[0]} is the source domain."
                + (" Attack columns: accuracy under that attack." if t.attacks else "")
            )
        slug = "".join(c if c.isalnum() else "-" for c in t.suite)
        png = plot_pareto(t)
        if png:
            sec.images.append((f"pareto-{slug}", png, f"{t.suite}: accuracy against parameters per domain"))
        elif png := plot_domains(t):  # no model has two sizes: no front to draw
            sec.images.append((f"domains-{slug}", png, f"{t.suite}: accuracy per domain"))
        png = plot_attacks(t)
        if png:
            sec.images.append(
                (f"attacks-{slug}", png, f"{t.suite}: clean and robust accuracy and degradation per attack")
            )
        if sec.images:
            sec.notes.append(INTERVAL_NOTE)
        sections.append(sec)
        per_class = [c for c in classes if c.suite == t.suite]
        if per_class:
            sections.append(_class_section(t.suite, per_class))

    checks = Section("Checks")
    checks.tables.append(_check_rows(doc))
    base = doc.get("baseline")
    if isinstance(base, Mapping):
        checks.notes.append(
            f"Compared with baseline {base.get('path')} (commit {str(base.get('git_commit') or 'unknown')[:10]}, "
            f"default tolerance {base.get('tolerance')})."
        )
    sections.append(checks)

    env = doc.get("environment", {}) or {}
    envsec = Section("Environment")
    rows = [["git commit", str(doc.get("git_commit") or "-")], ["created", str(doc.get("created", "-"))]]
    for k in ("python", "platform", "torch_threads", "device", "workers"):
        if k in env:
            rows.append([k, str(env[k])])
    for name, version in (env.get("packages") or {}).items():
        rows.append([name, str(version or "-")])
    envsec.tables.append((["", ""], rows, [None] * len(rows)))
    sections.append(envsec)
    return sections


# --- no machine paths ----------------------------------------------------------------------------------

#: An absolute POSIX path of two or more parts, not inside a word, a relative path or a URL.
_ABS_PATH = re.compile(r"(?<![\w.~:/\\-])/(?:[^\s/:;,'\"()\[\]{}<>|]+/)+[^\s/:;,'\"()\[\]{}<>|]*")


def _path_roots(doc: Mapping[str, Any], base: str | os.PathLike[str] | None) -> list[str]:
    """Directories that absolute paths are made relative to, most specific first: the project root (where a
    message names an item's suite file, whose node id is relative to it; the parent of a default
    ``.robustspec/`` results directory), then ``base``."""
    roots: list[str] = []
    for item in doc.get("items", []):
        suite = str(item.get("id", "")).split("::")[0]
        if not suite or suite.startswith("/"):
            continue
        for m in _ABS_PATH.finditer(str(item.get("message") or "")):
            if m.group(0).endswith("/" + suite):
                root = m.group(0)[: -len(suite)]
                if root not in roots:
                    roots.append(root)
    if base is not None:
        b = os.path.abspath(base)
        if os.path.basename(b) == ".robustspec":
            roots.append(os.path.dirname(b).rstrip("/") + "/")
        roots.append(b.rstrip("/") + "/")
    return sorted(set(roots), key=len, reverse=True)


def _relative_text(text: str, roots: Sequence[str], base: str | os.PathLike[str] | None) -> str:
    home = os.path.expanduser("~").rstrip("/") + "/"

    def rel(m: re.Match[str]) -> str:
        path = m.group(0)
        for root in roots:
            if path.startswith(root) and len(path) > len(root):
                return path[len(root) :]
        if home != "/" and path.startswith(home):
            return "~/" + path[len(home) :]
        start = os.path.abspath(base) if base is not None else os.getcwd()
        try:
            return os.path.relpath(path, start)
        except ValueError:  # another drive
            return os.path.basename(path.rstrip("/"))

    return _ABS_PATH.sub(rel, text)


def relative_paths(
    sections: Sequence[Section], doc: Mapping[str, Any], base: str | os.PathLike[str] | None = None
) -> None:
    """Make every absolute path in the sections' titles, notes and cells relative, in place: to the project
    root (a suite file as its node id names it), to ``base`` (the results file's directory), to ``~``, or
    else relative to ``base`` (or the working directory) with ``..``."""
    roots = _path_roots(doc, base)
    for sec in sections:
        sec.title = _relative_text(sec.title, roots, base)
        sec.notes = [_relative_text(n, roots, base) for n in sec.notes]
        sec.tables = [
            (
                [_relative_text(h, roots, base) for h in header],
                [[_relative_text(c, roots, base) for c in row] for row in rows],
                statuses,
            )
            for header, rows, statuses in sec.tables
        ]
        sec.images = [(name, png, _relative_text(alt, roots, base)) for name, png, alt in sec.images]


# --- rendering -----------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1200px;color:#1f2328;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.25rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2rem}
.meta{color:#59636e;font-size:.9rem} .verdict{display:inline-block;padding:.15rem .6rem;border-radius:1rem;color:#fff;font-weight:600}
table{border-collapse:collapse;margin:.8rem 0;font-size:.86rem} th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.pass td.status{color:#1a7f37;font-weight:600} tr.fail td.status{color:#cf222e;font-weight:600}
tr.warn td.status{color:#b58100;font-weight:600} tr.error td.status{color:#8250df;font-weight:600} tr.skip td.status{color:#6e7781}
tr.fail{background:#fff5f5} tr.warn{background:#fffbea} tr.error{background:#f8f4ff}
td.nowrap{white-space:nowrap;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.8rem}
img{max-width:100%;border:1px solid #d0d7de;border-radius:6px;margin:.5rem 0} p.note{color:#59636e;font-size:.85rem}
"""


def _is_num(text: str) -> bool:
    t = text.replace("%", "").replace("M", "").replace("+", "").replace("-", "", 1).replace(".", "", 1)
    return t.isdigit()


def _summary(doc: Mapping[str, Any]) -> dict[str, int]:
    """Counts by status, from the items (a hand-edited file may disagree with its own summary)."""
    out = {"items": 0, **{k: 0 for k in STATUS_ORDER}}
    for item in doc.get("items", []):
        out["items"] += 1
        status = str(item.get("status", "error"))
        out[status] = out.get(status, 0) + 1
    return out


def _verdict(doc: Mapping[str, Any]) -> tuple[str, str]:
    s = _summary(doc)
    if s.get("fail") or s.get("error"):
        return "FAIL", STATUS_COLOURS["fail"]
    if s.get("warn"):
        return "WARN", STATUS_COLOURS["warn"]
    return "PASS", STATUS_COLOURS["pass"]


def render_html(doc: Mapping[str, Any], sections: list[Section], title: str) -> str:
    e = html.escape
    verdict, colour = _verdict(doc)
    s = _summary(doc)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f'<h1>{e(title)} <span class="verdict" style="background:{colour}">{verdict}</span></h1>',
        f'<p class="meta">{s.get("items", 0)} checks: '
        + ", ".join(f"{s.get(k, 0)} {k}" for k in STATUS_ORDER)
        + f" · commit {e(str(doc.get('git_commit') or '-')[:10])} · {e(str(doc.get('created', '')))}</p>",
    ]
    for sec in sections:
        out.append(f"<h2>{e(sec.title)}</h2>")
        for note in sec.notes:
            out.append(f'<p class="note">{e(note)}</p>')
        for header, rows, statuses in sec.tables:
            out.append("<table>")
            if any(header):
                out.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead>")
            out.append("<tbody>")
            for row, status in zip(rows, statuses):
                cls = f' class="{e(status)}"' if status else ""
                cells = []
                for h, cell in zip(header, row):
                    kind = {"status": "status", "item": "nowrap", "interval": "nowrap", "threshold": "nowrap"}.get(
                        h
                    ) or ("num" if _is_num(cell) else "")
                    cells.append(f'<td class="{kind}">{e(cell)}</td>' if kind else f"<td>{e(cell)}</td>")
                out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
        for name, png, alt in sec.images:
            data = base64.b64encode(png).decode("ascii")
            out.append(f'<figure><img alt="{e(alt)}" title="{e(name)}" src="data:image/png;base64,{data}"></figure>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: Mapping[str, Any], sections: list[Section], title: str, images_dir: str) -> str:
    verdict, _ = _verdict(doc)
    s = _summary(doc)
    out = [
        f"# {title}: {verdict}",
        "",
        f"{s.get('items', 0)} checks: "
        + ", ".join(f"{s.get(k, 0)} {k}" for k in STATUS_ORDER)
        + f"; commit `{str(doc.get('git_commit') or '-')[:10]}`; {doc.get('created', '')}",
        "",
    ]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        for note in sec.notes:
            out += [note, ""]
        for header, rows, _ in sec.tables:
            if not rows:
                continue
            head = [h or " " for h in header]
            out.append("| " + " | ".join(_md_cell(h) for h in head) + " |")
            out.append(
                "|" + "|".join("---:" if rows and _is_num(rows[0][i]) else "---" for i in range(len(head))) + "|"
            )
            for row in rows:
                out.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            out.append("")
        for name, _, alt in sec.images:
            out += [f"![{alt}]({images_dir}/{name}.png)", ""]
    return "\n".join(out)


def write_report(
    doc: Mapping[str, Any],
    html_path: Path,
    title: str = "robustspec report",
    extra_sections: Sequence[Section] = (),
    base: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path]:
    """Write ``html_path`` (self-contained) and the markdown next to it (same name, ``.md``, images in
    ``<name>_files/``); ``extra_sections`` (e.g. the trends over kept runs) go before the environment.
    ``base`` is the results file's directory: absolute paths are shown relative to the project, to it or
    to ``~`` (:func:`relative_paths`). Returns both paths."""
    html_path = Path(html_path)
    md_path = html_path.with_suffix(".md")
    images = html_path.parent / f"{html_path.stem}_files"
    sections = _build_sections(doc)
    sections[-1:-1] = list(extra_sections)
    relative_paths(sections, doc, base)
    title = _relative_text(title, _path_roots(doc, base), base)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(doc, sections, title), encoding="utf-8")
    pngs = [(name, png) for sec in sections for name, png, _ in sec.images]
    if pngs:
        images.mkdir(exist_ok=True)
        for name, png in pngs:
            (images / f"{name}.png").write_bytes(png)
    md_path.write_text(render_markdown(doc, sections, title, images.name), encoding="utf-8")
    return html_path, md_path
