"""Per-class numbers of one evaluation: the confusion matrix, per-class accuracy, balanced accuracy.

Pure Python (no torch): a warm run builds them from the true and predicted classes an evaluation artifact
stores (:func:`robustspec.outcomes.encode_classes`), and reports read them back from results files.

A class with no test images has no accuracy: it is left out of the balanced accuracy and of the worst
class (``n`` of it is 0), as scikit-learn's ``balanced_accuracy_score`` leaves out classes absent from
``y_true``.

Results files carry, per domain an accuracy check measured (:func:`confusion_properties`):
``balanced_accuracy[<domain>]``, ``class_accuracy[<domain>][<class>]`` and ``confusion[<domain>]``, the
matrix as compact JSON ``{"classes": [...], "matrix": [[...], ...]}`` (rows: true class, columns:
predicted), from which :func:`confusions_of` reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .stats import mean_proportion_interval, wilson_interval

__all__ = [
    "Confusion",
    "balanced_accuracy",
    "confusion_matrix",
    "confusion_properties",
    "confusions_of",
    "per_class_counts",
]


def confusion_matrix(labels: Sequence[int], predicted: Sequence[int], classes: int) -> list[list[int]]:
    """``matrix[true][predicted]``: how many images of each true class got each predicted class."""
    if len(labels) != len(predicted):
        raise ValueError(f"{len(labels)} labels and {len(predicted)} predictions")
    matrix = [[0] * classes for _ in range(classes)]
    for t, p in zip(labels, predicted):
        matrix[int(t)][int(p)] += 1
    return matrix


def per_class_counts(matrix: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """``(correct, n)`` of each true class: the diagonal and the row sums."""
    return [(int(row[k]), int(sum(row))) for k, row in enumerate(matrix)]


def balanced_accuracy(counts: Sequence[tuple[int, int]]) -> float:
    """The mean per-class recall over the classes with test images (0.0 when none has any)."""
    present = [c / n for c, n in counts if n > 0]
    return sum(present) / len(present) if present else 0.0


@dataclass(frozen=True)
class Confusion:
    """A confusion matrix with its class names; ``matrix[true][predicted]``."""

    names: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        k = len(self.names)
        if len(self.matrix) != k or any(len(row) != k for row in self.matrix):
            raise ValueError(f"a confusion matrix of {len(self.names)} classes must be {k} x {k}")
        if any(v < 0 for row in self.matrix for v in row):
            raise ValueError("a confusion matrix holds counts (>= 0)")

    @classmethod
    def of(cls, labels: Sequence[int], predicted: Sequence[int], names: Sequence[str]) -> Confusion:
        matrix = confusion_matrix(labels, predicted, len(names))
        return cls(tuple(names), tuple(tuple(row) for row in matrix))

    # -- per class -----------------------------------------------------------------------------------

    @property
    def counts(self) -> list[tuple[int, int]]:
        """``(correct, n)`` per class, in class order."""
        return per_class_counts(self.matrix)

    @property
    def n(self) -> int:
        return sum(sum(row) for row in self.matrix)

    @property
    def correct(self) -> int:
        return sum(self.matrix[k][k] for k in range(len(self.names)))

    def class_accuracy(self) -> dict[str, float | None]:
        """Accuracy (recall) of each class; None for a class without test images."""
        return {name: (c / n if n else None) for name, (c, n) in zip(self.names, self.counts)}

    def present(self) -> list[tuple[str, int, int]]:
        """``(name, correct, n)`` of the classes that have test images."""
        return [(name, c, n) for name, (c, n) in zip(self.names, self.counts) if n > 0]

    def worst(self, count: int | None = None) -> list[tuple[str, int, int]]:
        """Classes with test images from the lowest accuracy up (ties: more images first, then by name)."""
        ranked = sorted(self.present(), key=lambda r: (r[1] / r[2], -r[2], r[0]))
        return ranked if count is None else ranked[:count]

    # -- balanced accuracy ---------------------------------------------------------------------------

    @property
    def balanced_accuracy(self) -> float:
        return balanced_accuracy(self.counts)

    def balanced_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """:func:`~robustspec.stats.mean_proportion_interval` of the per-class recalls."""
        counts = [(c, n) for _, c, n in self.present()]
        return mean_proportion_interval(counts, confidence) if counts else (0.0, 1.0)

    def class_intervals(self, confidence: float = 0.95) -> dict[str, tuple[float, float]]:
        """Each class's Wilson interval (classes with test images)."""
        return {name: wilson_interval(c, n, confidence) for name, c, n in self.present()}

    # -- confusions ----------------------------------------------------------------------------------

    def confusions(self, count: int = 3) -> list[tuple[str, str, int]]:
        """The largest off-diagonal cells, ``(true, predicted, images)``, most images first."""
        cells = [
            (self.names[t], self.names[p], v)
            for t, row in enumerate(self.matrix)
            for p, v in enumerate(row)
            if t != p and v > 0
        ]
        return sorted(cells, key=lambda c: (-c[2], c[0], c[1]))[:count]

    # -- in results files ----------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(
            {"classes": list(self.names), "matrix": [list(r) for r in self.matrix]}, separators=(",", ":")
        )

    @classmethod
    def from_json(cls, text: object) -> Confusion | None:
        """:meth:`to_json`'s string back; None for anything else."""
        if not isinstance(text, str):
            return None
        try:
            data = json.loads(text)
            names, matrix = data["classes"], data["matrix"]
            if not all(isinstance(n, str) for n in names):
                return None
            if not all(isinstance(v, int) and not isinstance(v, bool) for row in matrix for v in row):
                return None
            return cls(tuple(names), tuple(tuple(row) for row in matrix))
        except (ValueError, TypeError, KeyError):
            return None


def confusion_properties(domain: str, confusion: Confusion) -> dict[str, Any]:
    """What an accuracy check records for one domain: balanced and per-class accuracy, the matrix."""
    props: dict[str, Any] = {f"balanced_accuracy[{domain}]": round(confusion.balanced_accuracy, 6)}
    for name, acc in confusion.class_accuracy().items():
        if acc is not None:
            props[f"class_accuracy[{domain}][{name}]"] = round(acc, 6)
    props[f"confusion[{domain}]"] = confusion.to_json()
    return props


def confusions_of(props: Mapping[str, Any]) -> dict[str, Confusion]:
    """The ``confusion[<domain>]`` properties of an item, as {domain: Confusion}, in recorded order."""
    out: dict[str, Confusion] = {}
    for k, v in props.items():
        if k.startswith("confusion[") and k.endswith("]"):
            confusion = Confusion.from_json(v)
            if confusion is not None:
                out[k[len("confusion[") : -1]] = confusion
    return out
