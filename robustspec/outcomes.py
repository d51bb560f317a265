"""Per-image outcomes (right or wrong, robust or fooled) as one short string, for results files.

Two models evaluated on the same images can be compared image by image (a paired interval, see
:func:`robustspec.stats.newcombe_paired_difference`), which is much sharper than comparing two accuracies
as if they came from independent samples. Results files carry the outcomes as ``<items>:<n>:<hex>``:
``items`` says which images they are (e.g. a data artifact's key, plus the seed that drew an attack's
sample), ``n`` how many, and ``hex`` the outcomes as bits, the first image in the lowest bit. 500 images
take 125 hex digits.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["contingency", "decode_outcomes", "encode_outcomes", "paired_counts"]


def encode_outcomes(outcomes: Sequence[bool], items: str) -> str:
    """``items:n:hex`` for a sequence of booleans (a list, or a 1-D bool tensor)."""
    if ":" in items:
        raise ValueError(f"items must not contain ':', got {items!r}")
    bits = [bool(v) for v in outcomes]
    value = sum(1 << i for i, v in enumerate(bits) if v)
    return f"{items}:{len(bits)}:{value:0{max(1, (len(bits) + 3) // 4)}x}"


def decode_outcomes(text: object) -> tuple[str, list[bool]] | None:
    """``(items, outcomes)`` from :func:`encode_outcomes`'s string; None for anything else."""
    if not isinstance(text, str):
        return None
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    items, n, digits = parts[0], int(parts[1]), parts[2]
    try:
        value = int(digits, 16)
    except ValueError:
        return None
    if value >> n:
        return None
    return items, [bool(value >> i & 1) for i in range(n)]


def contingency(first: Sequence[bool], second: Sequence[bool]) -> tuple[int, int, int, int]:
    """(both, first only, second only, neither) of two equally long outcome sequences."""
    if len(first) != len(second):
        raise ValueError(f"outcomes of {len(first)} and {len(second)} items cannot be paired")
    a, b = [bool(v) for v in first], [bool(v) for v in second]
    both = sum(x and y for x, y in zip(a, b))
    first_only, second_only = sum(a) - both, sum(b) - both
    return both, first_only, second_only, len(a) - both - first_only - second_only


def paired_counts(first: object, second: object) -> tuple[int, int, int, int] | None:
    """:func:`contingency` of two encoded outcome strings of the same items; None when they cannot pair."""
    a, b = decode_outcomes(first), decode_outcomes(second)
    if a is None or b is None or a[0] != b[0] or len(a[1]) != len(b[1]):
        return None
    return contingency(a[1], b[1])
