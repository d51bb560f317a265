"""Expectation kinds; importing this package registers the built-in ones."""

from . import accuracy, adaptation, attack, compression, corruption  # noqa: F401  (register the built-in kinds)
from .base import EXPECTATIONS, Accuracy, CheckTarget, Expectation, Measurements, Outcome

__all__ = ["EXPECTATIONS", "Accuracy", "CheckTarget", "Expectation", "Measurements", "Outcome"]
