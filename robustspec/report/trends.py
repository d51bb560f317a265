"""Each item's measured value over the kept runs of a history directory, as a report section.

``robustspec report RESULTS --history DIR`` adds it: one table (items × runs) and, with matplotlib, one
figure per suite with a panel per check kind and a line per item, so a change that moved a number is
seen at the commit that moved it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .compare import fmt_number
from .history import KeptRun, series
from .html import Section

__all__ = ["trends_section", "plot_trends"]

_MAX_LEGEND = 10


def _split(item_id: str) -> tuple[str, str, str]:
    """(suite file, check kind, label) of an item id ``suites/x.yaml::model::variant::check[...]``."""
    parts = item_id.split("::")
    check = parts[-1] if parts else item_id
    kind = check.split("[")[0].split("#")[0]
    return parts[0], kind, " ".join(parts[1:])


def plot_trends(labels: Sequence[str], values: dict[str, list[float | None]]) -> list[tuple[str, bytes, str]]:
    """``(name, png, alt)`` per suite; empty when matplotlib is missing or there is under two runs."""
    if len(labels) < 2:
        return []
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return []
    import io

    by_suite: dict[str, dict[str, dict[str, list[float | None]]]] = {}
    for item_id, row in values.items():
        suite, kind, label = _split(item_id)
        by_suite.setdefault(suite, {}).setdefault(kind, {})[label] = row
    images = []
    xs = list(range(len(labels)))
    for suite, kinds in by_suite.items():
        cols = min(3, len(kinds))
        rows = (len(kinds) + cols - 1) // cols
        fig = Figure(figsize=(4.2 * cols, 3.0 * rows), layout="constrained")
        FigureCanvasAgg(fig)
        for i, (kind, lines) in enumerate(sorted(kinds.items())):
            ax = fig.add_subplot(rows, cols, i + 1)
            for j, (label, row) in enumerate(sorted(lines.items())):
                points = [(x, v) for x, v in zip(xs, row) if v is not None]
                if points:
                    ax.plot(
                        [p[0] for p in points],
                        [p[1] for p in points],
                        marker="o",
                        ms=3,
                        lw=1,
                        label=label,
                        color=f"C{j % 10}",
                    )
            ax.set_title(kind, fontsize=10)
            ax.set_xticks(xs, list(labels), fontsize=6, rotation=45, ha="right")
            ax.grid(alpha=0.3)
            if len(lines) <= _MAX_LEGEND:
                ax.legend(fontsize=6, frameon=False)
        fig.suptitle(f"{suite}: measured value per kept run", fontsize=11)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        slug = "".join(c if c.isalnum() else "-" for c in suite)
        images.append((f"trends-{slug}", buf.getvalue(), f"{suite}: each item's measured value over kept runs"))
    return images


def trends_section(runs: list[KeptRun]) -> Section:
    """The section: the table of every item over the runs, and the plots when matplotlib is there."""
    labels, values = series(runs)
    sec = Section("Over kept runs")
    header = ["item", *labels]
    rows = [[item_id, *(fmt_number(v) for v in row)] for item_id, row in values.items()]
    sec.tables.append((header, rows, [None] * len(rows)))
    sec.images += plot_trends(labels, values)
    if len(labels) >= 2 and not sec.images:
        sec.notes.append(
            "No plots: matplotlib is not installed (pip install 'robustspec[report]'); the table has every value."
        )
    sec.notes.append(f"{len(runs)} kept runs, oldest first; '-' where an item did not run or had no number.")
    return sec
