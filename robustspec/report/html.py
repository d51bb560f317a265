"""``robustspec report``: a results file as a self-contained HTML page and a markdown page.

What it shows, per suite:

- **Table 1** (the research's shape): rows model / compression / parameters, columns the domains (accuracy
  from the ``accuracy[<domain>]`` properties, source first) and, when attack checks ran, one column per
  attack (``check == "attack"``, the item's domain label is the attack's name); an attack run in a
  non-default mode (``attack[pgd-linf,white-box]``) goes to a row of its own, ``int8 (white-box)``;
- **accuracy against parameter count** per domain: each model's variants, with the model's Pareto front
  (no other variant of it has fewer parameters and higher accuracy);
- **degradation per attack** (when attacks ran): clean accuracy minus accuracy under attack;
- **per class** (when accuracy checks recorded ``confusion[<domain>]``): one table per domain, rows the
  classes, columns the models and variants, each class's accuracy, then the balanced accuracy and the
  worst class, and each subject's most frequent confusions (true → predicted);
- **pass / warn / fail per suite**, and every check with its numbers, interval and baseline comparison.

Images are PNGs drawn with matplotlib's Agg canvas (no pyplot, no global backend), embedded in the HTML as
base64 and written next to the markdown file (``<name>_files/``) for the markdown page.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..confusion import Confusion, confusions_of
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


@dataclass
class Table1:
    suite: str
    domains: list[str]
    attacks: list[str]
    subjects: list[Subject]


def table1(doc: Mapping[str, Any]) -> list[Table1]:
    """Table 1 of every suite in a results document, rows in the order items appear (baseline first)."""
    by_suite: dict[str, dict[tuple[str, str], Subject]] = {}
    domains: dict[str, list[str]] = {}
    attacks: dict[str, list[str]] = {}
    modes: dict[tuple[str, str, str], tuple[str, str, str]] = {}  # (suite, model, "int8 (white-box)") -> its variant
    for item in doc.get("items", []):
        props = item.get("properties", {})
        suite, model, variant = (str(props.get(k, item.get(k, ""))) for k in ("suite", "model", "variant"))
        if not model:
            continue
        subj = by_suite.setdefault(suite, {}).setdefault((model, variant), Subject(suite, model, variant))
        doms = domains.setdefault(suite, [])
        for d, acc in domain_accuracies(props).items():
            subj.accuracy[d] = acc
            if d not in doms:
                doms.append(d)
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
                clean = _num(props.get("clean_accuracy"))
                if clean is None and subj.accuracy:
                    clean = next(iter(subj.accuracy.values()))
                if clean is not None:
                    subj.clean[name] = clean
                if name not in attacks.setdefault(suite, []):
                    attacks[suite].append(name)
    for (suite, model, row), (_, _, variant) in modes.items():  # a mode row shares its variant's size
        base, subj = by_suite[suite].get((model, variant)), by_suite[suite][(model, row)]
        if base is not None:
            subj.parameters, subj.bytes = base.parameters, base.bytes
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
        out.append(Table1(suite, domains.get(suite, []), names, rows))
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


def plot_pareto(t: Table1) -> bytes | None:
    """Accuracy (%) against parameters (M), one panel per domain, each model's Pareto front drawn.

    Baselines are diamonds; variants on the front are ringed; points that coincide (an int8 variant has its
    baseline's parameter count) share one label. The x axis is logarithmic when sizes span more than 10x.
    """
    if not has_plots():
        return None
    if not t.domains or not any(s.parameters for s in t.subjects):
        return None
    n = len(t.domains)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = _figure(4.6 * cols, 3.9 * rows)
    models = list(dict.fromkeys(s.model for s in t.subjects))
    sizes = [s.parameters for s in t.subjects if s.parameters]
    log_x = max(sizes) / min(sizes) > 10
    for i, domain in enumerate(t.domains):
        ax = fig.add_subplot(rows, cols, i + 1)
        for m, model in enumerate(models):
            colour = f"C{m % 10}"
            pts = [
                (s.parameters / 1e6, 100 * s.accuracy[domain], s.variant)
                for s in t.subjects
                if s.model == model and s.parameters and domain in s.accuracy
            ]
            if not pts:
                continue
            front = pareto_front([(x, y) for x, y, _ in pts])
            labels: dict[tuple[float, float], list[str]] = {}
            for j, (x, y, v) in enumerate(pts):
                # Points within 1 % of size and 0.1 points of accuracy share a label (int8 keeps the parameter count).
                near = next((k for k in labels if abs(k[0] - x) <= 0.01 * max(k[0], x) and abs(k[1] - y) < 0.1), (x, y))
                labels.setdefault(near, []).append(v)
                ax.scatter(
                    [x],
                    [y],
                    color=colour,
                    marker="D" if v == BASELINE else "o",
                    s=34,
                    zorder=3,
                    label=model if j == 0 else None,
                )
            ax.scatter(
                [x for x, _ in front],
                [y for _, y in front],
                facecolors="none",
                edgecolors=colour,
                s=110,
                linewidths=1.2,
                zorder=2,
            )
            for (x, y), vs in labels.items():
                ax.annotate(", ".join(vs), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7, color=colour)
            if len(front) > 1:
                ax.step([p[0] for p in front], [p[1] for p in front], where="post", color=colour, alpha=0.6, lw=1.4)
        if log_x:
            ax.set_xscale("log")
        ax.set_title(f"{domain}" + (" (source)" if i == 0 else ""), fontsize=10)
        ax.set_xlabel("parameters (M)" + (", log scale" if log_x else ""))
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        ax.margins(x=0.12, y=0.1)
        if i == 0:
            ax.legend(fontsize=8, loc="best")
    fig.suptitle(
        f"{t.suite}: accuracy against parameters (◆ baseline, ringed: on the model's Pareto front)", fontsize=11
    )
    return _png(fig)


def plot_attacks(t: Table1) -> bytes | None:
    """Clean accuracy minus accuracy under attack, in points, per attack and subject."""
    if not has_plots():
        return None
    if not t.attacks:
        return None
    subjects = [s for s in t.subjects if s.attacks]
    fig = _figure(max(5.0, 1.1 * len(subjects) * max(1, len(t.attacks)) * 0.45 + 3), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(t.attacks)
    for j, attack in enumerate(t.attacks):
        xs, ys = [], []
        for i, s in enumerate(subjects):
            if attack in s.attacks and attack in s.clean:
                xs.append(i + (j - (len(t.attacks) - 1) / 2) * width)
                ys.append(100 * (s.clean[attack] - s.attacks[attack]))
        ax.bar(xs, ys, width=width * 0.95, label=attack, color=f"C{j % 10}")
    ax.set_xticks(range(len(subjects)), [f"{s.model}\n{s.variant}" for s in subjects], fontsize=7)
    ax.set_ylabel("clean − attacked accuracy (points)")
    ax.set_title(f"{t.suite}: degradation per attack", fontsize=11)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


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


def build_report(doc: Mapping[str, Any]) -> list[Section]:
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
        sec = Section(f"Table 1: {t.suite}")
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
        png = plot_attacks(t)
        if png:
            sec.images.append((f"attacks-{slug}", png, f"{t.suite}: degradation per attack"))
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
) -> tuple[Path, Path]:
    """Write ``html_path`` (self-contained) and the markdown next to it (same name, ``.md``, images in
    ``<name>_files/``); ``extra_sections`` (e.g. the trends over kept runs) go before the environment.
    Returns both paths."""
    html_path = Path(html_path)
    md_path = html_path.with_suffix(".md")
    images = html_path.parent / f"{html_path.stem}_files"
    sections = build_report(doc)
    sections[-1:-1] = list(extra_sections)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(doc, sections, title), encoding="utf-8")
    pngs = [(name, png) for sec in sections for name, png, _ in sec.images]
    if pngs:
        images.mkdir(exist_ok=True)
        for name, png in pngs:
            (images / f"{name}.png").write_bytes(png)
    md_path.write_text(render_markdown(doc, sections, title, images.name), encoding="utf-8")
    return html_path, md_path
