"""One item's measured value against a baseline, and ``robustspec compare OLD NEW`` as a markdown table.

The rule, shared by the pytest gate (``--robustspec-baseline``) and ``robustspec compare``:

- the metric is the item's ``measured`` value; its good direction comes from ``comparison``: for ``>=``
  checks (accuracies, retained fractions) a drop is worse, for ``<=`` checks (drops, sizes) a rise is;
- the tolerance is the expectation's ``regression: {max-drop: ...}`` (recorded as the item property
  ``regression_max_drop``), else the global default (``--robustspec-regression-tolerance`` /
  ``--tolerance``, 0.02); the allowed move is ``tolerance * max(1, |baseline|)``: absolute for values
  within [-1, 1], relative beyond (parameter counts, bytes);
- worse by more than that is a regression; better by anything is an improvement;
- an item whose recipe, code or content keys differ from the baseline's entry is compared all the same:
  that difference is the change under review, recorded in words (:mod:`robustspec.report.changes`) in
  ``ItemDelta.changes``; no item is ever left out of the comparison;
- with ``regression: {confidence: 0.95}`` and per-image outcomes on both sides (accuracies, robust
  accuracies), a worse value regresses only when the paired interval (Newcombe) of the move lies beyond
  zero, i.e. the drop is more than the test images' noise; without outcomes the tolerance alone decides
  and the reason says so;
- an item without a number (it could not run) regresses against a baseline that had one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..outcomes import paired_counts
from ..stats import newcombe_paired_difference
from .changes import describe_changes, recipe_of
from .results import items_by_id

__all__ = [
    "DEFAULT_TOLERANCE",
    "ItemDelta",
    "Comparison",
    "allowed_move",
    "judge_metric",
    "compare_item",
    "compare_documents",
    "fmt_number",
]

DEFAULT_TOLERANCE = 0.02
EPS = 1e-9
#: Order of the categories in tables and summaries.
CATEGORIES = ("regressed", "error", "new", "gone", "skipped", "improved", "unchanged")


def allowed_move(baseline: float, tolerance: float) -> float:
    """How far a value may move the wrong way: ``tolerance`` absolute within [-1, 1], relative beyond."""
    return tolerance * max(1.0, abs(baseline))


def judge_metric(old: float, new: float, comparison: str, tolerance: float) -> str:
    """``regressed``, ``improved`` or ``unchanged`` (worse within tolerance counts as unchanged)."""
    if not math.isfinite(new):
        return "regressed" if math.isfinite(old) else "unchanged"
    if not math.isfinite(old):
        return "improved"
    worse = new - old if comparison == "<=" else old - new
    if worse > allowed_move(old, tolerance) + EPS:
        return "regressed"
    if worse < -EPS:
        return "improved"
    return "unchanged"


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fmt_number(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    sign = "+" if signed and v > 0 else ""
    if abs(v) >= 1e4:  # parameter counts, bytes
        return f"{sign}{v / 1e6:.4g}M"
    return f"{sign}{v:.3f}"


@dataclass
class ItemDelta:
    """One item of the comparison."""

    id: str
    status: str  # one of CATEGORIES
    old: float | None = None
    new: float | None = None
    comparison: str = ""
    tolerance: float | None = None
    severity: str = "fail"
    reason: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    #: What differs between what the baseline and this run measured, in words (empty: the same recipe).
    changes: list[str] = field(default_factory=list)
    #: Paired interval of the move (new - old) when ``regression.confidence`` applied, else None.
    interval: tuple[float, float] | None = None
    confidence: float | None = None

    @property
    def delta(self) -> float | None:
        if self.old is None or self.new is None:
            return None
        return self.new - self.old

    @property
    def fails(self) -> bool:
        """A regression that fails the gate (not one of an expectation with ``severity: warn``)."""
        return self.status == "regressed" and self.severity != "warn"

    def message(self) -> str:
        """One line: both numbers, the move and the tolerance."""
        if self.status in ("regressed", "improved", "unchanged") and self.old is not None and self.new is not None:
            worse = "drop" if self.comparison != "<=" else "rise"
            move = self.delta or 0.0
            allowed = allowed_move(self.old, self.tolerance or 0.0)
            text = (
                f"measured {fmt_number(self.new)} vs baseline {fmt_number(self.old)} "
                f"({fmt_number(move, signed=True)}; allowed {worse} {fmt_number(allowed)}, tolerance {self.tolerance:g})"
            )
            if self.interval is not None:
                lo, hi = self.interval
                text += f", paired {self.confidence:.0%} CI of the move [{lo:+.3f}, {hi:+.3f}]"
            return f"{self.status}: {text}" + "".join(f"; {x}" for x in (self.reason, self.changed) if x)
        notes = [x for x in (self.reason, self.changed) if x]
        return f"{self.status}: " + "; ".join(notes) if notes else self.status

    @property
    def changed(self) -> str:
        """``changed: variant fp-half: prune.ratio 0.2 → 0.5; ...`` or empty."""
        return "changed: " + "; ".join(self.changes) if self.changes else ""


def compare_item(
    item_id: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ItemDelta:
    """Compare one item of a results document (``new``) with its baseline entry (``old``); either may be None."""
    old_props = dict((old or {}).get("properties", {}))
    new_props = dict((new or {}).get("properties", {}))
    props = new_props or old_props
    labels = {k: str(props.get(k, "")) for k in ("suite", "model", "variant", "check", "domain")}
    comparison = str(new_props.get("comparison") or old_props.get("comparison") or ">=")
    tol = _number(new_props.get("regression_max_drop"))
    tol = tolerance if tol is None else tol
    severity = str(new_props.get("severity", "fail"))
    o, n = _number(old_props.get("measured")), _number(new_props.get("measured"))
    d = ItemDelta(item_id, "unchanged", o, n, comparison, tol, severity, "", labels)
    if new is None:
        d.status, d.reason = "gone", "in the baseline, not in these results"
        return d
    new_status = str(new.get("status", ""))
    if new_status == "skip":
        d.status, d.reason = "skipped", str(new.get("message") or "skipped")
        return d
    if old is None:
        d.status, d.reason = "new", "not in the baseline"
        if n is None:
            d.status, d.reason = "error", f"could not run: {_first_line(new.get('message'))}"
        return d
    d.changes = describe_changes(old_props, new_props)
    if n is None:
        if o is None:
            d.status, d.reason = "error", f"could not run here nor in the baseline: {_first_line(new.get('message'))}"
        else:
            d.status, d.reason = "regressed", f"could not run: {_first_line(new.get('message'))}"
        return d
    if o is None:
        d.status, d.reason = "new", "the baseline has no number for it (it could not run there)"
        return d
    d.status = judge_metric(o, n, comparison, tol)
    confidence = _number(new_props.get("regression_confidence"))
    if confidence is not None and d.status == "regressed":
        _judge_paired(d, old_props, new_props, confidence)
    return d


def _outcomes_property(props: Mapping[str, Any]) -> str | None:
    """The property holding the per-image outcomes behind ``measured``, when it is one proportion."""
    check, domain = str(props.get("check", "")), str(props.get("domain", ""))
    if check == "source-accuracy" and not domain:
        domain = str((recipe_of(props) or {}).get("model", {}).get("source", ""))
    if check in ("source-accuracy", "target-accuracy") and domain:
        return f"outcomes[{domain}]"
    if check == "attack" and str(props.get("comparison", "")) == ">=":  # min-accuracy: the robust accuracy
        return "outcomes"
    return None


def _judge_paired(d: ItemDelta, old_props: Mapping[str, Any], new_props: Mapping[str, Any], confidence: float) -> None:
    """A regression by the tolerance stands only if the paired interval says the move is beyond noise."""
    prop = _outcomes_property(new_props)
    counts = paired_counts(old_props.get(prop), new_props.get(prop)) if prop else None
    if counts is None:
        d.reason = "confidence not applied: no per-image outcomes of the same images on both sides; tolerance rule"
        return
    both, old_only, new_only, neither = counts
    # (new - old): the new run is the first proportion of the pair.
    lo, hi = newcombe_paired_difference(both, new_only, old_only, neither, confidence)
    d.interval, d.confidence = (lo, hi), confidence
    if hi >= 0.0:
        d.status = "unchanged"
        d.reason = (
            f"worse beyond the tolerance but within noise: paired {confidence:.0%} CI [{lo:+.3f}, {hi:+.3f}] holds 0"
        )


def _first_line(text: Any) -> str:
    lines = str(text or "no message").strip().splitlines()
    return lines[-1] if lines else "no message"


@dataclass
class Comparison:
    deltas: list[ItemDelta]
    tolerance: float
    old_commit: str | None = None
    new_commit: str | None = None

    def by_status(self, status: str) -> list[ItemDelta]:
        return [d for d in self.deltas if d.status == status]

    @property
    def regressions(self) -> list[ItemDelta]:
        return [d for d in self.deltas if d.fails]

    def counts(self) -> dict[str, int]:
        return {c: len(self.by_status(c)) for c in CATEGORIES}

    def headline(self) -> str:
        counts = self.counts()
        parts = [f"{counts[c]} {c}" for c in CATEGORIES if counts[c] or c in ("regressed", "improved", "new", "gone")]
        verdict = "FAIL" if self.regressions else "OK"
        return f"robustspec compare: {verdict}: " + ", ".join(parts)

    def markdown(self) -> str:
        """A markdown block for a PR comment: changes first, unchanged items folded away."""
        lines = [f"### {self.headline()}", ""]
        commits = f"baseline `{(self.old_commit or 'unknown')[:10]}` → this run `{(self.new_commit or 'unknown')[:10]}`"
        lines += [f"{commits}; default tolerance {self.tolerance:g} (absolute within [-1, 1], relative beyond)", ""]
        changed = [d for c in CATEGORIES if c != "unchanged" for d in self.by_status(c)]
        if changed:
            lines += _md_table(changed)
        else:
            lines.append("No changes against the baseline.")
        unchanged = self.by_status("unchanged")
        if unchanged:
            lines += ["", f"<details><summary>{len(unchanged)} unchanged</summary>", ""]
            lines += _md_table(unchanged)
            lines += ["", "</details>"]
        return "\n".join(lines) + "\n"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(deltas: list[ItemDelta]) -> list[str]:
    lines = [
        "| status | suite | item | baseline | now | Δ | tolerance | what changed | note |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for d in deltas:
        status = f"**{d.status}**" if d.status == "regressed" else d.status
        if d.status == "regressed" and d.severity == "warn":
            status += " (warn)"
        parts = d.id.split("::")
        item = "::".join(parts[1:]) if len(parts) > 1 else d.id
        lines.append(
            "| "
            + " | ".join(
                _cell(c)
                for c in (
                    status,
                    d.labels.get("suite", "") or parts[0],
                    f"`{item}`",
                    fmt_number(d.old),
                    fmt_number(d.new),
                    fmt_number(d.delta, signed=True),
                    "-" if d.tolerance is None else f"{d.tolerance:g}",
                    "; ".join(d.changes) or "-",
                    d.reason,
                )
            )
            + " |"
        )
    return lines


def compare_documents(
    old: Mapping[str, Any], new: Mapping[str, Any], tolerance: float = DEFAULT_TOLERANCE
) -> Comparison:
    """Every item of either document, compared; ``tolerance`` is the default for items without their own."""
    old_items, new_items = items_by_id(old, "baseline"), items_by_id(new, "results")
    ids = sorted(set(old_items) | set(new_items))
    deltas = [compare_item(i, old_items.get(i), new_items.get(i), tolerance) for i in ids]
    return Comparison(deltas, tolerance, old.get("git_commit"), new.get("git_commit"))
