"""Expectation kinds; importing this package imports every module in it, which registers the built-in kinds.

Installed packages add kinds through the ``robustspec.expectations`` entry points (docs/extending.md).
"""

from ..registry import import_modules
from .base import EXPECTATIONS, Accuracy, CheckTarget, Expectation, Measurements, Outcome

import_modules(__name__)

__all__ = ["EXPECTATIONS", "Accuracy", "CheckTarget", "Expectation", "Measurements", "Outcome"]
