"""Per-image outcomes in results files (robustspec.outcomes) and the paired comparisons they allow."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robustspec.outcomes import (
    contingency,
    decode_outcomes,
    encode_outcomes,
    paired_counts,
)

ITEMS = st.text(st.characters(blacklist_characters=":", blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(st.lists(st.booleans(), max_size=600), ITEMS)
def test_round_trip(outcomes: list[bool], items: str) -> None:
    text = encode_outcomes(outcomes, items)
    assert decode_outcomes(text) == (items, outcomes)


def test_encoding_is_compact_and_low_bit_first() -> None:
    assert encode_outcomes([True, False, False, False, True], "data-x") == "data-x:5:11"
    assert len(encode_outcomes([True] * 500, "d").rsplit(":", 1)[1]) == 125


@pytest.mark.parametrize("text", [None, 3, "", "no-colons", "d:x:1", "d:3:zz", "d:3:f"])
def test_anything_else_decodes_to_none(text: object) -> None:
    assert decode_outcomes(text) is None  # "d:3:f" has a fourth bit set: not 3 outcomes


def test_items_with_a_colon_are_refused() -> None:
    with pytest.raises(ValueError, match="must not contain ':'"):
        encode_outcomes([True], "a:b")


def test_pairing_needs_the_same_images() -> None:
    a = encode_outcomes([True, True, False, False], "data-webcam")
    b = encode_outcomes([True, False, True, False], "data-webcam")
    assert paired_counts(a, b) == (1, 1, 1, 1) == contingency([1, 1, 0, 0], [1, 0, 1, 0])
    assert paired_counts(a, encode_outcomes([True, False, True, False], "data-dslr")) is None
    assert paired_counts(a, encode_outcomes([True, False, True], "data-webcam")) is None
    assert paired_counts(a, None) is None


def test_research_pairs_what_was_measured_on_the_same_images() -> None:
    from robustspec.report.research import Row, _acc_pair

    n = 500
    base = [i < 430 for i in range(n)]
    better = [i < 442 for i in range(n)]  # right on the same 430, and on 12 more
    a, b = Row("resnet18", "kd"), Row("resnet18", "baseline")
    for row, out in ((a, better), (b, base)):
        row.accuracy["webcam"] = sum(out) / n
        row.n["webcam"] = n
    unpaired = _acc_pair("webcam", a, b, "webcam")
    a.outcomes["webcam"], b.outcomes["webcam"] = encode_outcomes(better, "data-w"), encode_outcomes(base, "data-w")
    paired = _acc_pair("webcam", a, b, "webcam")
    assert unpaired.pairs is None and unpaired.outcome == "within noise"
    assert paired.pairs == (430, 12, 0, 58) and paired.outcome == "supports"
    assert "95% paired CI [+1.0, +3.9]" in paired.describe()


def test_research_pairs_attack_cells_on_the_same_sample() -> None:
    from robustspec.report.research import AttackCell, Row, _attack_pair

    n = 100
    a, b = Row("resnet18", "int8"), Row("resnet18", "baseline")
    for row, right in ((a, 70), (b, 60)):
        out = [i < right for i in range(n)]
        row.attacks["pgd-linf"] = AttackCell(
            right / n, 0.99, n, "white-box", 4 / 255, "pgd-linf", encode_outcomes(out, "data-a.test.seed0")
        )
    c = _attack_pair("resnet18 pgd-linf", a, b, "pgd-linf")
    assert c.pairs == (60, 10, 0, 30) and c.outcome == "supports"
