"""``max-latency-ratio``: a runtime variant's latency against the uncompressed model in PyTorch eager.

The ratio is measured when the ``export`` step builds the file (``export.latency_ratio``: the file in its
runtime against the float baseline in eager, one thread, same process, same images; see
:mod:`robustspec.compress.export`). Times on a shared CI machine are noisy: gate with ``severity: warn``
unless the machine is quiet. Items exist only for variants whose chain ends in ``export``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from ..spec.schema import ExpectationBase, Real
from .base import EXPECTATIONS, CheckTarget, Outcome, gate_max


class MaxLatencyRatioParams(ExpectationBase):
    max: Annotated[Real, Field(gt=0)] = Field(
        description="maximum latency of the runtime's file as a fraction of fp32 eager (0.2: five times faster)"
    )


@EXPECTATIONS.register("max-latency-ratio")
class MaxLatencyRatio:
    """Maximum latency of an exported variant, as a fraction of the uncompressed model's fp32 eager latency."""

    Params = MaxLatencyRatioParams

    def expand(self, params: MaxLatencyRatioParams, source: str, targets: list[str], variant: str) -> list[CheckTarget]:
        return []  # decided by the chain (expand_chain): only exported variants have a runtime latency

    def expand_chain(
        self, params: MaxLatencyRatioParams, source: str, targets: list[str], variant: str, steps: Sequence[Any]
    ) -> list[CheckTarget]:
        return [CheckTarget("", ())] if steps and steps[-1].kind == "export" else []

    def judge(self, params: MaxLatencyRatioParams, target: CheckTarget, m: Any) -> Outcome:
        metrics = m.metrics()
        out = gate_max(f"latency of {m.variant} / fp32 eager", float(metrics["export.latency_ratio"]), params.max, "x")
        out.extra = {k: v for k, v in metrics.items() if k.startswith("export.")}
        return out
