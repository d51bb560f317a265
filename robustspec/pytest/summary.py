"""The robustspec tables at the end of the session: one row per check, then accuracy by domain.

Default verbosity: both tables. ``-q``: failures and counts only (one line of counts, one line per
failed or flagged check). ``-qq``: nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..verdict import STATUSES
from .state import verbosity


def _word(props: dict[str, Any]) -> str:
    verdict = str(props.get("verdict") or props.get("status") or "fail")
    return STATUSES.get(verdict, "FAIL")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    level = verbosity(config)
    if level <= -2:
        return
    rows = []
    for status in ("passed", "failed"):
        for rep in terminalreporter.stats.get(status, []):
            if getattr(rep, "when", "") != "call":
                continue
            props = dict(rep.user_properties)
            if props.get("robustspec") != "1":
                continue
            rows.append(props | {"_nodeid": rep.nodeid})
    if not rows:
        return
    rows.sort(key=lambda r: r["_nodeid"])
    if level < 0:
        _counts(terminalreporter, rows)
        return

    def num(v: Any) -> str:
        v = float(v)
        return f"{v / 1e6:.3f}M" if abs(v) >= 1e4 else f"{v:.3f}"

    header = ("suite", "model", "variant", "check", "domain", "measured", "threshold", "status")
    table = [header]
    for r in rows:
        cmp = r.get("comparison", "")
        table.append(
            (
                str(r.get("suite", "")),
                str(r.get("model", "")),
                str(r.get("variant", "")),
                str(r.get("check", "")),
                str(r.get("domain", "")) or "-",
                num(r.get("measured", 0)),
                f"{cmp} {num(r.get('threshold', 0))}",
                _word(r),
            )
        )
    terminalreporter.write_sep("=", "robustspec summary")
    _write_table(terminalreporter, table, status_column=True)
    _accuracy_table(terminalreporter, rows)


_MARKUP = {"FAIL": {"red": True}, "FLAGGED": {"red": True}, "WARN": {"yellow": True}}


def _counts(tr: Any, rows: list[dict[str, Any]]) -> None:
    """``-q``: the counts, and the checks that failed or were flagged."""
    words = [_word(r) for r in rows]
    counts = ", ".join(f"{words.count(w)} {w}" for w in STATUSES.values() if words.count(w))
    tr.write_line(f"robustspec: {len(rows)} checks: {counts}")
    for r, w in zip(rows, words):
        if w in ("FAIL", "FLAGGED"):
            tr.write_line(f"{w} {r['_nodeid']}", **_MARKUP[w])


def _write_table(tr: Any, table: list[tuple[str, ...]], status_column: bool = False) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
        if i == 0:
            markup = {"bold": True}
        elif status_column:
            markup = _MARKUP.get(row[-1], {"green": True})
        else:
            markup = {}
        tr.write_line(line, **markup)


def _accuracy_table(tr: Any, rows: list[dict[str, Any]]) -> None:
    """Rows model / variant / parameters, columns domains: the shape of the research's Table 1."""
    by_subject: dict[tuple[str, str, str], dict[str, Any]] = {}
    domains: list[str] = []
    for r in rows:
        subject = (str(r.get("suite")), str(r.get("model")), str(r.get("variant")))
        entry = by_subject.setdefault(subject, {})
        for k, v in r.items():
            if k.startswith("accuracy[") and k.endswith("]"):
                d = k[len("accuracy[") : -1]
                entry[d] = float(v)
                if d not in domains:
                    domains.append(d)
        for k in ("parameters", "bytes", "compression_ratio"):
            if k in r:
                entry[k] = float(r[k])
    if not by_subject or not domains:
        return
    header = ("suite", "model", "variant", "params (M)", "size (MB)", *domains)
    table = [header]
    for (suite, model, variant), e in by_subject.items():
        table.append(
            (
                suite,
                model,
                variant,
                f"{e['parameters'] / 1e6:.2f}" if "parameters" in e else "-",
                f"{e['bytes'] / 1e6:.1f}" if "bytes" in e else "-",
                *(f"{100 * e[d]:.1f}" if d in e else "-" for d in domains),
            )
        )
    tr.write_sep("-", "accuracy (%) by domain; the first domain is the source")
    _write_table(tr, table)
