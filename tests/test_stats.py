"""Wilson and Newcombe intervals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robustspec.stats import newcombe_difference, wilson_interval


@st.composite
def counts(draw):
    n = draw(st.integers(1, 5000))
    return draw(st.integers(0, n)), n


def test_the_documented_example() -> None:
    lo, hi = wilson_interval(905, 1000)
    assert lo == pytest.approx(0.8852, abs=1e-4) and hi == pytest.approx(0.9217, abs=1e-4)


@given(counts(), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_contains_the_estimate_and_stays_in_unit_interval(c, conf) -> None:
    s, n = c
    lo, hi = wilson_interval(s, n, conf)
    assert 0.0 <= lo <= s / n <= hi <= 1.0


@given(counts())
def test_wilson_agrees_with_scipy(c) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    s, n = c
    ref = scipy_stats.binomtest(s, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(s, n)
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)


@given(counts(), counts())
def test_newcombe_contains_the_difference(a, b) -> None:
    lo, hi = newcombe_difference(a[0], a[1], b[0], b[1])
    d = a[0] / a[1] - b[0] / b[1]
    assert -1.0 <= lo <= d + 1e-12 and d - 1e-12 <= hi <= 1.0


def test_higher_confidence_is_wider() -> None:
    lo90, hi90 = wilson_interval(300, 500, 0.90)
    lo99, hi99 = wilson_interval(300, 500, 0.99)
    assert lo99 < lo90 and hi99 > hi90
