"""Datasets as named domains, each with a train and a test split of uint8 images."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..registry import Registry

if TYPE_CHECKING:
    import torch

__all__ = ["Split", "DomainDataset", "DATASETS", "split_to_state", "split_from_state"]


@dataclass(frozen=True)
class Split:
    """Images as uint8 ``[N, 3, H, W]`` in RGB order, labels as int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        import torch

        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N,3,H,W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be [N] and match images")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def float_images(self) -> torch.Tensor:
        """Pixels in [0, 1] as float32."""
        return self.images.float().div_(255.0)


class DomainDataset(Protocol):
    """What every dataset provides: class names, domain names, and a way to materialise one domain."""

    classes: list[str]
    domains: list[str]
    image_size: int

    def recipe(self) -> dict[str, Any]:
        """A JSON-able description that determines the data exactly; it becomes part of content keys."""

    def build_domain(self, domain: str) -> dict[str, Split]:
        """Materialise ``{"train": Split, "test": Split}`` for one domain (slow; the store caches it)."""


#: Dataset factories by name; each takes its validated parameters and returns a DomainDataset.
DATASETS: Registry[Any] = Registry("dataset")


def split_to_state(splits: Mapping[str, Split]) -> dict[str, Any]:
    """A store-friendly form of ``{"train": Split, "test": Split}``."""
    return {name: {"images": s.images.contiguous(), "labels": s.labels.contiguous()} for name, s in splits.items()}


def split_from_state(state: Mapping[str, Any]) -> dict[str, Split]:
    """Inverse of :func:`split_to_state`."""
    return {name: Split(v["images"], v["labels"]) for name, v in state.items()}
