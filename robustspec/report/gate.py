"""What a check item does once it is judged: compare with the baseline, then pass, warn or fail.

Called from ``CheckItem.runtest`` after the item's properties are recorded (:func:`conclude`). It adds
properties, and it is the one place that turns a verdict into a failure:

- ``regression_max_drop`` / ``severity``: the expectation's own settings, when it has them;
- with ``--robustspec-baseline``: ``baseline_status`` (``ok``, ``regression``, ``new``, ``stale``),
  ``baseline_measured``, ``baseline_delta``, ``regression_tolerance`` and ``baseline_reason``;
- a failed gate or a regression fails the item (:class:`CheckFailed` / :class:`BaselineRegression`, shown
  as one line with the numbers, never a traceback), or, with ``severity: warn``, sets ``status`` to
  ``warn``, records the message as the property ``warning`` and emits a
  :class:`~robustspec.errors.RobustSpecWarning` instead;
- a stale baseline entry (other artifact keys) is a warning and skips the comparison for that item.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import RobustSpecWarning
from ..pytest_plugin import CheckFailed
from .compare import compare_item

__all__ = ["BaselineRegression", "conclude", "BASELINE_STATUS"]

#: ``baseline_status`` property by comparison category.
BASELINE_STATUS = {"regressed": "regression", "improved": "ok", "unchanged": "ok", "new": "new", "stale": "stale"}


class BaselineRegression(CheckFailed):
    """The measured value moved the wrong way against the baseline by more than the tolerance."""


def _set_status(props: list[tuple[str, Any]], status: str) -> None:
    props[:] = [(k, status if k == "status" else v) for k, v in props]


def _warn(item: Any, message: str) -> None:
    check = item.check
    warnings.warn_explicit(
        RobustSpecWarning(message), RobustSpecWarning, filename=str(check.loaded.path), lineno=check.line
    )


def conclude(item: Any, outcome: Any) -> None:
    """Baseline comparison and severity for one judged item; raises :class:`CheckFailed` when it fails."""
    from .plugin import report_state

    params = item.check.params
    severity = getattr(params, "severity", "fail") or "fail"
    spec = getattr(params, "regression", None)
    props: list[tuple[str, Any]] = item.user_properties
    if spec is not None:
        props.append(("regression_max_drop", spec.max_drop))
    if severity != "fail":
        props.append(("severity", severity))

    delta = None
    state = report_state(item.config)
    if state is not None and state.baseline_items is not None:
        current = {"id": item.nodeid, "status": "pass" if outcome.passed else "fail", "properties": dict(props)}
        delta = compare_item(item.nodeid, state.baseline_items.get(item.nodeid), current, state.tolerance)
        props.append(("baseline_status", BASELINE_STATUS.get(delta.status, delta.status)))
        if delta.old is not None:
            props.append(("baseline_measured", round(delta.old, 6)))
        if delta.delta is not None and delta.status != "stale":
            props.append(("baseline_delta", round(delta.delta, 6)))
        props.append(("regression_tolerance", delta.tolerance))
        if delta.reason:
            props.append(("baseline_reason", delta.reason))
        if delta.status == "stale":
            _warn(item, f"baseline not compared: {delta.reason}")

    regressed = delta is not None and delta.status == "regressed"
    if outcome.passed and not regressed:
        return
    message = outcome.message
    if delta is not None:
        message = f"{message}; baseline: {delta.message()}"
    if severity == "warn":
        _set_status(props, "warn")
        props.append(("warning", message))
        _warn(item, f"severity warn: {message}")
        return
    _set_status(props, "fail")
    if regressed:
        raise BaselineRegression(message)
    raise CheckFailed(message)
