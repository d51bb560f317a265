"""Which model an attack takes its gradients from, for every kind of chain end (robustspec.attacks.planning)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from torch import nn

from robustspec.attacks.planning import float_parent, plan_attack


class Float(nn.Linear):
    def __init__(self) -> None:
        super().__init__(2, 2)


class Program(nn.Module):
    """Stands for a runtime's file or a converted graph: no input gradients."""

    input_gradients = False

    def __init__(self, quantized: bool) -> None:
        super().__init__()
        self.quantized = quantized


@dataclass
class Step:
    kind: str
    params: Any = None


TRAINED, PRUNED = Float(), Float()
INT8, FILE = Program(quantized=True), Program(quantized=True)
FLOAT_FILE = Program(quantized=False)


def plan(modules, steps, mode="worst-case", gradient_free=False, transfer=None):
    return plan_attack(modules, steps, ctx=None, mode=mode, gradient_free=gradient_free, transfer=transfer)


def test_a_float_variant_is_attacked_white_box() -> None:
    p = plan([TRAINED, PRUNED], [Step("prune")])
    assert p.surrogate is None and p.mode == "white-box"


def test_a_gradient_free_attack_runs_on_the_file_itself() -> None:
    p = plan([TRAINED, PRUNED, INT8, FILE], [Step("prune"), Step("quantize"), Step("export")], gradient_free=True)
    assert p.surrogate is None and p.mode == "black-box"


def test_transfer_takes_the_last_float_module_of_the_chain() -> None:
    p = plan([TRAINED, PRUNED, INT8, FILE], [Step("prune"), Step("quantize"), Step("export")], mode="transfer")
    assert p.surrogate is PRUNED and p.mode == "transfer"
    assert float_parent([TRAINED, INT8]) is TRAINED


def test_white_box_on_an_exported_int8_file_asks_the_quantize_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from robustspec.compress.quantize import Quantize

    asked = []
    copy = Float()
    monkeypatch.setattr(Quantize, "white_box_surrogate", lambda self, parent, params, ctx: asked.append(parent) or copy)
    p = plan([TRAINED, PRUNED, INT8, FILE], [Step("prune"), Step("quantize"), Step("export")], mode="white-box")
    assert p.surrogate is copy and p.mode == "white-box (fake-quant surrogate)"
    assert asked == [PRUNED]  # the quantize step's own parent: export passed the question on


def test_white_box_on_a_float_file_is_the_graph_it_was_exported_from() -> None:
    p = plan([TRAINED, FLOAT_FILE], [Step("export")], mode="white-box")
    assert p.surrogate is TRAINED and p.mode.startswith("white-box (the float graph")


def test_a_named_transfer_source_wins() -> None:
    other = Float()
    p = plan([TRAINED, PRUNED], [Step("prune")], transfer=("baseline", other))
    assert p.surrogate is other and p.mode == "transfer from baseline"
