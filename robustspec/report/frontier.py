"""The frontier ``robustspec search --json`` wrote, as a report section: ``robustspec report ... --frontier F``.

One table (every point: its budget, parameters, MACs, each gate's value and verdict) and, with matplotlib,
one plot per gated metric against the parameter count: passing points filled, failing ones hollow, the
Pareto frontier joined, the gate's threshold dashed and the smallest passing point ringed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .html import _INK, STATUS_COLOURS, Section, _figure, _png, has_plots

__all__ = ["frontier_section", "figure_frontier"]


def _count(n: float) -> str:
    from ..compress.prune import format_count

    return format_count(int(n))


def frontier_section(doc: Mapping[str, Any]) -> Section:
    """The section of one frontier document (``robustspec search --json``)."""
    title = f"Frontier: {doc.get('model')}/{doc.get('variant')} along {doc.get('axis')}"
    sec = Section(title)
    points = [p for p in doc.get("points", []) if isinstance(p, Mapping)]
    gates: list[str] = []
    for p in points:
        for g in p.get("gates", []):
            if g.get("name") not in gates:
                gates.append(g.get("name"))
    header = ["budget", "parameters", "MACs", *gates, "status"]
    rows, statuses = [], []
    for p in points:
        by_name = {g.get("name"): g for g in p.get("gates", [])}
        cells = [str(p.get("label")), _count(p.get("parameters", 0)), _count(p.get("macs", 0))]
        for name in gates:
            g = by_name.get(name)
            m = None if g is None else g.get("measured")
            value = "-" if m is None else _count(m) if abs(m) >= 1000 else f"{m:.3f}"
            cells.append("" if g is None else f"{value} {'ok' if g.get('passed') else 'fail'}")
        status = "error" if p.get("error") else "pass" if p.get("passed") else "fail"
        cells.append(status)
        rows.append(cells)
        statuses.append(status)
    sec.tables.append((header, rows, statuses))
    validation = doc.get("validation") or {}
    sec.notes.append(
        "Measured on validation images, never the test splits: "
        + ", ".join(f"{d} {n}" for d, n in validation.items())
        + " images."
    )
    smallest = doc.get("smallest_passing")
    sec.notes.append(
        f"Smallest passing: {smallest}; as a variant: {doc.get('variant_yaml')}"
        if smallest
        else "No measured point passes every gate."
    )
    if has_plots() and points:
        for name in gates:
            fig = figure_frontier(doc, name)
            if fig is not None:
                slug = re.sub(r"[^A-Za-z0-9.-]+", "-", f"frontier-{doc.get('variant')}-{name}").strip("-")
                sec.images.append((slug, _png(fig), f"{name} against parameters, every measured point"))
    elif points:
        sec.notes.append("No plots: matplotlib is not installed (pip install 'robustspec[report]').")
    return sec


def figure_frontier(doc: Mapping[str, Any], gate: str) -> Any:
    """``gate``'s value against parameters for every measured point (None when no point measured it)."""
    rows = []
    for p in doc.get("points", []):
        g = next((g for g in p.get("gates", []) if g.get("name") == gate), None)
        if g is not None and g.get("measured") is not None and not p.get("error"):
            rows.append((float(p["parameters"]), float(g["measured"]), bool(g.get("passed")), p, g))
    if not rows:
        return None
    rows.sort(key=lambda r: r[0])
    fig = _figure(5.6, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    pareto = set((doc.get("pareto") or {}).get(gate, []))
    front = [r for r in rows if r[3].get("label") in pareto]
    if len(front) > 1:
        ax.plot(
            [r[0] for r in front], [r[1] for r in front], color=_INK, linewidth=1, zorder=1, label="Pareto frontier"
        )
    for x, y, ok, _, _ in rows:
        colour = STATUS_COLOURS["pass"] if ok else STATUS_COLOURS["fail"]
        ax.scatter([x], [y], s=36, zorder=2, facecolors=colour if ok else "none", edgecolors=colour)
    threshold = rows[0][4].get("threshold")
    if isinstance(threshold, (int, float)):
        ax.axhline(
            float(threshold),
            color=_INK,
            linestyle="--",
            linewidth=0.8,
            label=f"gate {rows[0][4].get('comparison')} {threshold:g}",
        )
    smallest = doc.get("smallest_passing")
    for x, y, _, p, _ in rows:
        if p.get("label") == smallest:
            ax.scatter(
                [x], [y], s=160, facecolors="none", edgecolors=_INK, zorder=3, label=f"smallest passing ({smallest})"
            )
    ax.set_xlabel("parameters")
    ax.set_ylabel(gate)
    ax.set_title(f"{doc.get('model')}/{doc.get('variant')}: {gate}", fontsize=9)
    ax.xaxis.set_major_formatter(lambda v, _pos: _count(v))
    ax.legend(fontsize=7, frameon=False)
    return fig
