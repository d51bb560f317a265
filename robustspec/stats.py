"""Confidence intervals for accuracies and their differences (no scipy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

__all__ = [
    "mean_proportion_interval",
    "newcombe_difference",
    "newcombe_paired_difference",
    "wilson_interval",
    "z_value",
]


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


def mean_proportion_interval(counts: Sequence[tuple[int, int]], confidence: float = 0.95) -> tuple[float, float]:
    """Interval for the unweighted mean of independent proportions ``(successes, n)``, each with ``n > 0``:
    balanced accuracy is the mean of the per-class recalls.

    The mean's variance is ``sum(p_k (1 - p_k) / n_k) / K^2``; instead of the normal interval on it (which
    collapses to a point when every class is all right or all wrong), each proportion's Wilson limits are
    combined by MOVER (the method of variance estimates recovery, Zou and Donner 2008, the construction of
    Newcombe's difference interval): ``mean -/+ sqrt(sum((p_k - l_k)^2)) / K`` below and
    ``sqrt(sum((u_k - p_k)^2)) / K`` above. Within (0, 1) each Wilson half-width is about
    ``z sqrt(p_k (1 - p_k) / n_k)``, so this is the normal interval there; at the edges it keeps Wilson's
    width. One proportion gives its Wilson interval.
    """
    if not counts:
        raise ValueError("need at least one proportion")
    for s, n in counts:
        if n <= 0 or not 0 <= s <= n:
            raise ValueError(f"need 0 <= successes <= n and n > 0, got {s}/{n}")
    k = len(counts)
    p = [s / n for s, n in counts]
    limits = [wilson_interval(s, n, confidence) for s, n in counts]
    mean = sum(p) / k
    below = math.sqrt(sum((pk - lo) ** 2 for pk, (lo, _) in zip(p, limits))) / k
    above = math.sqrt(sum((hi - pk) ** 2 for pk, (_, hi) in zip(p, limits))) / k
    return max(0.0, min(mean, mean - below)), min(1.0, max(mean, mean + above))
