"""What one expectation selects: the (model, variant, target) items it becomes.

Shared by the planner (:mod:`robustspec.plan`, which names the items) and the loader, which reports an
expectation that selects nothing as an error where it is written, instead of dropping it silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..expect import EXPECTATIONS, CheckTarget

__all__ = ["selects", "expectation_targets"]


def selects(params: Any, model: str, variant: str) -> bool:
    """Whether an expectation's ``models`` / ``variants`` filters keep this model and variant."""
    if params.models is not None and model not in params.models:
        return False
    return params.variants is None or variant in params.variants


def expectation_targets(
    kind: str, params: Any, source: str, targets: list[str], variant: str, steps: Sequence[Any]
) -> list[CheckTarget]:
    """The items of one expectation on one model's variant (``steps``: the variant's chain, () for baseline)."""
    expectation = EXPECTATIONS.get(kind)()
    if hasattr(expectation, "expand_chain"):  # items that depend on the chain (adaptation-gain)
        return list(expectation.expand_chain(params, source, targets, variant, tuple(steps)))
    return list(expectation.expand(params, source, targets, variant))
