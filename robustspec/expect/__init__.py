"""Expectation kinds; importing this package registers the built-in ones."""

from . import accuracy  # noqa: F401  (registers source-accuracy, target-accuracy, drop-vs-source)
from .base import EXPECTATIONS, Accuracy, CheckTarget, Expectation, Outcome

__all__ = ["EXPECTATIONS", "Accuracy", "CheckTarget", "Expectation", "Outcome"]
