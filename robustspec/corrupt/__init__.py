"""Common corruptions in the style of ImageNet-C, and the derived domains built with them.

``CORRUPTIONS`` holds one function per corruption (``gaussian_noise``, ``defocus_blur``, ...); see
:mod:`robustspec.corrupt.base` for their contract and the size rule of the severity tables, and each
family module for its table. ``amazon+gaussian_noise@3`` names domain ``amazon`` corrupted at severity 3.
Every module of this package is imported here (each family module registers its corruptions); installed
packages add corruptions through the ``robustspec.corruptions`` entry points (docs/extending.md).
"""

from ..registry import import_modules
from .base import CORRUPTIONS, SEVERITIES, Corruption, standard_corruptions
from .domain import corrupt_split, derived_name, domain_problem, parse_domain

import_modules(__name__)

__all__ = [
    "CORRUPTIONS",
    "SEVERITIES",
    "Corruption",
    "corrupt_split",
    "derived_name",
    "domain_problem",
    "parse_domain",
    "standard_corruptions",
]
