"""Datasets as named domains: the embedded generated one, image trees, and any an installed package adds.

Each dataset is one module that registers its class in ``DATASETS`` (every module of this package is
imported here); installed packages add datasets through the ``robustspec.datasets`` entry points
(docs/extending.md).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ..registry import import_modules
from .base import (
    DATASETS,
    Dataset,
    DomainDataset,
    Split,
    data_adapter,
    data_tag,
    data_union,
    dataset_name,
    default_dataset,
    split_from_state,
    split_to_state,
)

import_modules(__name__)

__all__ = [
    "DATASETS",
    "Dataset",
    "DomainDataset",
    "Split",
    "data_adapter",
    "data_tag",
    "data_union",
    "dataset_name",
    "default_dataset",
    "open_dataset",
    "split_from_state",
    "split_to_state",
]


def open_dataset(spec: Any, base_dir: Path | None = None, *, source: str | None = None) -> DomainDataset:
    """A dataset object for a validated data spec; cheap (no image is generated or decoded here).

    ``source``: the suite's source domain, for a dataset whose splits depend on it (an image tree holds
    out part of the source and scores targets whole); given to ``from_params`` when it takes it.
    """
    try:
        name = dataset_name(spec)
    except ValueError:
        raise TypeError(f"not a dataset spec: {spec!r}") from None
    cls = DATASETS.get(name)
    if source is not None and "source" in inspect.signature(cls.from_params).parameters:
        return cls.from_params(spec, base_dir, source=source)
    return cls.from_params(spec, base_dir)
