"""Datasets as named domains: the embedded generated one and image trees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import synthetic  # noqa: F401  (registers office-synth)
from .base import DATASETS, DomainDataset, Split, split_from_state, split_to_state

__all__ = ["DATASETS", "DomainDataset", "Split", "open_dataset", "split_from_state", "split_to_state"]


def open_dataset(spec: Any, base_dir: Path | None = None) -> DomainDataset:
    """A dataset object for a validated data spec; cheap (no image is generated or decoded here)."""
    from ..spec.schema import FolderData, SynthData

    if isinstance(spec, SynthData):
        return DATASETS.get("office-synth")(
            classes=spec.classes,
            image_size=spec.image_size,
            train_per_class=spec.train_per_class,
            test_per_class=spec.test_per_class,
            seed=spec.seed,
        )
    if isinstance(spec, FolderData):
        from . import imagefolder  # noqa: F401  (registers imagefolder)

        root = Path(spec.imagefolder)
        if base_dir is not None and not root.is_absolute():
            root = base_dir / root
        return DATASETS.get("imagefolder")(
            root=root,
            image_size=spec.image_size,
            test_fraction=spec.test_fraction,
            split_seed=spec.split_seed,
            domains=spec.domains,
        )
    raise TypeError(f"not a dataset spec: {spec!r}")
