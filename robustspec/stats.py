"""Confidence intervals for accuracies and their differences (no scipy needed)."""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["newcombe_difference", "newcombe_paired_difference", "wilson_interval", "z_value"]


def z_value(confidence: float) -> float:
    """Two-sided normal quantile: 1.96 for 0.95."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when n == 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # min/max with p: the exact bounds at 0 and n, which rounding would otherwise miss by 1e-19.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def newcombe_difference(s1: int, n1: int, s2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 of two independent proportions (method 10, 1998)."""
    p1, p2 = (s1 / n1 if n1 else 0.0), (s2 / n2 if n2 else 0.0)
    l1, u1 = wilson_interval(s1, n1, confidence)
    l2, u2 = wilson_interval(s2, n2, confidence)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lo), min(1.0, hi)


def newcombe_paired_difference(
    both: int, first_only: int, second_only: int, neither: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's score interval for p1 - p2 of two proportions measured on the same items (paired data).

    The counts are the 2x2 table of the items: right in both, only in the first, only in the second, in
    neither; p1 = (both + first_only) / n, p2 = (both + second_only) / n. It is the independent
    interval's construction with the Wilson limits combined through the phi correlation of the pairs
    (Newcombe 1998, "Improved confidence intervals for the difference between binomial proportions based
    on paired data", method 10). With phi = 0 it equals :func:`newcombe_difference`; two models that
    agree on most items (phi near 1) get a much narrower interval than independent samples would.
    """
    counts = (both, first_only, second_only, neither)
    if any(k < 0 for k in counts):
        raise ValueError(f"counts must be >= 0, got {counts}")
    n = sum(counts)
    if n == 0:
        return -1.0, 1.0
    s1, s2 = both + first_only, both + second_only
    p1, p2 = s1 / n, s2 / n
    l1, u1 = wilson_interval(s1, n, confidence)
    l2, u2 = wilson_interval(s2, n, confidence)
    margins = s1 * (n - s1) * s2 * (n - s2)
    phi = (both * neither - first_only * second_only) / math.sqrt(margins) if margins else 0.0
    d = p1 - p2
    lo = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = d + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, lo), min(1.0, hi)
