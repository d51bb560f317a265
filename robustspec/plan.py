"""A validated suite becomes checks (one pytest item each) in a deterministic order.

Collection must be cheap and identical on every xdist worker: planning only reads the validated suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .expect import CheckTarget
from .spec.loader import LoadedSuite
from .spec.schema import BASELINE, ModelSpec
from .spec.selection import expectation_targets, selects

__all__ = ["Check", "plan_suite"]


@dataclass(frozen=True)
class Check:
    """One expectation on one model, variant and (where it has one) domain."""

    loaded: LoadedSuite
    model: ModelSpec
    variant: str
    kind: str
    params: Any
    target: CheckTarget
    name: str  # item name, e.g. "target-accuracy[webcam]"
    line: int  # 1-based line of the expectation in the suite file

    @property
    def nodeid_parts(self) -> tuple[str, str, str]:
        return self.model.name, self.variant, self.name


def plan_suite(loaded: LoadedSuite) -> list[Check]:
    """Expand every expectation over models, variants and domains; names are unique within a model/variant."""
    suite = loaded.suite
    checks: list[Check] = []
    for model in suite.models:
        for variant in [BASELINE, *loaded.variants.get(model.name, {})]:
            # A name used twice under one model/variant (same kind, same domain) gets #2, #3 ...
            seen: dict[str, int] = {}
            steps = () if variant == BASELINE else tuple(loaded.variants[model.name][variant])
            for e in loaded.expectations:
                if not selects(e.params, model.name, variant):
                    continue
                targets = expectation_targets(e.kind, e.params, suite.source, suite.targets, variant, steps)
                for target in targets:
                    name = f"{e.kind}[{target.label}]" if target.label else e.kind
                    seen[name] = seen.get(name, 0) + 1
                    if seen[name] > 1:
                        name = f"{e.kind}#{seen[name]}" + (f"[{target.label}]" if target.label else "")
                    checks.append(Check(loaded, model, variant, e.kind, e.params, target, name, e.line))
    return checks
