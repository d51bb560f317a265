"""Each item's measured value over the kept runs of a history directory, as a report section.

``robustspec report RESULTS --history DIR`` adds it: one table (items × runs) and, with matplotlib, one
figure per suite with a panel per check kind and a line per item, so a change that moved a number is
seen at the commit that moved it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .compare import fmt_number
from .history import KeptRun, series_with_intervals
from .html import Section

__all__ = ["trends_section", "plot_trends", "trend_figures"]

_MAX_LEGEND = 10
_MAX_TICKS = 12

Intervals = dict[str, list[tuple[float, float] | None]]


def _split(item_id: str) -> tuple[str, str, str]:
    """(suite file, check kind, label) of an item id ``suites/x.yaml::model::variant::check[...]``; the
    label is model, variant and what the check adds to its kind (``#2 [webcam]``)."""
    parts = item_id.split("::")
    check = parts[-1] if parts else item_id
    kind = check.split("[")[0].split("#")[0]
    rest = check[len(kind) :].replace("[", " [").strip()
    return parts[0], kind, " ".join([*parts[1:-1], rest]).strip() or check


def trend_figures(
    labels: Sequence[str], values: dict[str, list[float | None]], intervals: Intervals | None = None
) -> list[tuple[str, Any, str]]:
    """``(name, figure, alt)`` per suite: a panel per check kind, a line per item with its intervals as error
    bars; empty when matplotlib is missing or there is under two runs."""
    if len(labels) < 2:
        return []
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return []

    by_suite: dict[str, dict[str, dict[str, str]]] = {}  # suite -> kind -> label -> item id
    for item_id in values:
        suite, kind, label = _split(item_id)
        by_suite.setdefault(suite, {}).setdefault(kind, {})[label] = item_id
    figures = []
    xs = list(range(len(labels)))
    step = math.ceil(len(labels) / _MAX_TICKS)
    ticks = sorted({*xs[::step], xs[-1]})
    for suite, kinds in by_suite.items():
        cols = min(3, len(kinds))
        rows = (len(kinds) + cols - 1) // cols
        fig = Figure(figsize=(5.4 * cols, 3.2 * rows), layout="constrained")
        FigureCanvasAgg(fig)
        for i, (kind, lines) in enumerate(sorted(kinds.items())):
            ax = fig.add_subplot(rows, cols, i + 1)
            for j, (label, item_id) in enumerate(sorted(lines.items())):
                row = values[item_id]
                cis = (intervals or {}).get(item_id) or [None] * len(row)
                points = [(x, v, ci) for x, v, ci in zip(xs, row, cis) if v is not None]
                if not points:
                    continue
                colour = f"C{j % 10}"
                ax.plot(
                    [p[0] for p in points], [p[1] for p in points], marker="o", ms=3, lw=1, label=label, color=colour
                )
                bars = [p for p in points if p[2] is not None]
                if bars:
                    ax.errorbar(
                        [p[0] for p in bars],
                        [p[1] for p in bars],
                        yerr=[[max(0.0, v - ci[0]) for _, v, ci in bars], [max(0.0, ci[1] - v) for _, v, ci in bars]],
                        fmt="none",
                        ecolor=colour,
                        elinewidth=0.8,
                        capsize=2,
                        alpha=0.8,
                    )
            ax.set_title(kind, fontsize=10)
            ax.set_xticks(ticks, [labels[k] for k in ticks], fontsize=6, rotation=45, ha="right")
            ax.grid(alpha=0.3)
            if len(lines) <= _MAX_LEGEND:
                ax.legend(fontsize=6, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.suptitle(f"{suite}: measured value per kept run (error bars: the recorded intervals)", fontsize=11)
        slug = "".join(c if c.isalnum() else "-" for c in suite)
        figures.append((f"trends-{slug}", fig, f"{suite}: each item's measured value over kept runs"))
    return figures


def plot_trends(
    labels: Sequence[str], values: dict[str, list[float | None]], intervals: Intervals | None = None
) -> list[tuple[str, bytes, str]]:
    """``(name, png, alt)`` per suite (:func:`trend_figures`)."""
    import io

    images = []
    for name, fig, alt in trend_figures(labels, values, intervals):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        images.append((name, buf.getvalue(), alt))
    return images


def trends_section(runs: list[KeptRun]) -> Section:
    """The section: the table of every item over the runs, and the plots when matplotlib is there."""
    labels, values, intervals = series_with_intervals(runs)
    sec = Section("Over kept runs")
    header = ["item", *labels]
    rows = [[item_id, *(fmt_number(v) for v in row)] for item_id, row in values.items()]
    sec.tables.append((header, rows, [None] * len(rows)))
    sec.images += plot_trends(labels, values, intervals)
    if len(labels) >= 2 and not sec.images:
        sec.notes.append(
            "No plots: matplotlib is not installed (pip install 'robustspec[report]'); the table has every value."
        )
    sec.notes.append(f"{len(runs)} kept runs, oldest first; '-' where an item did not run or had no number.")
    return sec
