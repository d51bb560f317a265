"""Wilson and Newcombe intervals (independent and paired)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robustspec.stats import (
    newcombe_difference,
    newcombe_paired_difference,
    wilson_interval,
)


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


@st.composite
def tables(draw):
    return tuple(draw(st.integers(0, 300)) for _ in range(4))


@given(tables())
def test_paired_contains_the_difference(t) -> None:
    n = sum(t)
    lo, hi = newcombe_paired_difference(*t)
    d = (t[1] - t[2]) / n if n else 0.0
    assert -1.0 <= lo <= d + 1e-12 and d - 1e-12 <= hi <= 1.0


def test_paired_without_correlation_is_the_independent_interval() -> None:
    # both * neither == first_only * second_only: phi = 0.
    assert newcombe_paired_difference(30, 10, 60, 20) == pytest.approx(newcombe_difference(40, 120, 90, 120))


def test_paired_is_narrower_when_the_pairs_agree() -> None:
    # Two models right on the same 430 of 500 images, one of them also on 12 more: +0.024.
    lo, hi = newcombe_paired_difference(430, 12, 0, 58)
    ilo, ihi = newcombe_difference(442, 500, 430, 500)
    assert lo > 0.0 > ilo and hi - lo < (ihi - ilo) / 2


def test_paired_interval_covers_at_its_level() -> None:
    # Correlated pairs, p1 = 0.80 and p2 = 0.74 on 200 items; 1500 simulated tables.
    rng = random.Random(0)
    cells, weights = range(4), (0.70, 0.10, 0.04, 0.16)  # both, first only, second only, neither
    covered = 0
    for _ in range(1500):
        draws = rng.choices(cells, weights, k=200)
        lo, hi = newcombe_paired_difference(*(draws.count(c) for c in cells))
        covered += lo <= 0.06 <= hi
    assert 0.93 <= covered / 1500 <= 0.98
