"""Per-image outcomes (right or wrong, robust or fooled) as one short string, for results files.

Two models evaluated on the same images can be compared image by image (a paired interval, see
:func:`robustspec.stats.newcombe_paired_difference`), which is much sharper than comparing two accuracies
as if they came from independent samples. Results files carry the outcomes as ``<items>:<n>:<hex>``:
``items`` says which images they are (e.g. a data artifact's key, plus the seed that drew an attack's
sample), ``n`` how many, and ``hex`` the outcomes as bits, the first image in the lowest bit. 500 images
take 125 hex digits.

An evaluation also stores each image's true and predicted class (:func:`encode_classes`): class indices
as fixed-width hex, :func:`class_digits` digits an image (two for 11 to 256 classes), the first image
first; 500 images of 31 classes take 1000 digits.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "class_digits",
    "contingency",
    "decode_classes",
    "decode_outcomes",
    "encode_classes",
    "encode_outcomes",
    "paired_counts",
]


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


_HEX = "0123456789abcdef"


def class_digits(classes: int) -> int:
    """Hex digits an image takes in :func:`encode_classes` for ``classes`` classes (1 for up to 16)."""
    if classes < 1:
        raise ValueError(f"need at least one class, got {classes}")
    return max(1, len(f"{classes - 1:x}"))


def encode_classes(values: Sequence[int], classes: int) -> str:
    """Class indices (each in ``[0, classes)``; a list, or a 1-D integer tensor) as fixed-width hex."""
    width = class_digits(classes)
    out = []
    for v in values:
        k = int(v)
        if not 0 <= k < classes:
            raise ValueError(f"class index {k} is not one of {classes} classes")
        out.append(f"{k:0{width}x}")
    return "".join(out)


def decode_classes(text: object, n: int, classes: int) -> list[int] | None:
    """The ``n`` class indices of :func:`encode_classes`'s string; None for anything else (another length,
    a digit that is not hex, an index beyond ``classes``)."""
    if not isinstance(text, str) or not isinstance(classes, int) or classes < 1:
        return None
    width = class_digits(classes)
    if len(text) != n * width or text.strip(_HEX):
        return None
    values = [int(text[i : i + width], 16) for i in range(0, len(text), width)]
    return None if any(v >= classes for v in values) else values
