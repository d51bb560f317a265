"""Datasets as named domains, each with a train and a test split of uint8 images.

A dataset is one class registered in ``DATASETS`` under its YAML name (:class:`Dataset`): it carries its
parameter model (``Params``, a :class:`~robustspec.spec.schema.DataParams`) and opens itself from
validated parameters. The suite's ``data:`` union, the dispatch from parameters to dataset and the names
a suite may write bare are all read from the registry.

Which dataset a ``data:`` mapping means: the one whose name is a key of the mapping and a field of its
parameters (``{imagefolder: data/office31}``), else the one its ``name`` says when its parameters have a
``name`` field (``{name: office-synth, classes: 4}``), else the default dataset (``default = True``:
office-synth). So every dataset's parameters carry its name, as a field named after it or as
``name: Literal[<its name>]``, and a dumped spec reads back as the same dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..registry import Registry

if TYPE_CHECKING:
    import torch
    from pydantic import TypeAdapter

    from ..spec.schema import DataParams

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
    "split_from_state",
    "split_to_state",
]


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

    # Optional: ``domain_recipe(domain)``, what decides one domain's data (its key, instead of
    # ``{"dataset": recipe(), "domain": domain}``), and ``split_counts(domain)``, ``{"protocol", "train",
    # "test"}`` recorded with every result.


class Dataset(Protocol):
    """A registered dataset class: its parameter model, and a way to open it from validated parameters.

    The class is usually the :class:`DomainDataset` itself (``OfficeSynth``, ``ImageFolderDataset``).
    """

    #: The ``data:`` mapping's model: a Strict :class:`~robustspec.spec.schema.DataParams` with a field named
    #: after the dataset (``imagefolder: <root>``) or ``name: Literal[<the dataset's name>]``.
    Params: ClassVar[type[DataParams]]
    #: Optional: True for the one dataset a mapping that names none is (office-synth).
    # default: ClassVar[bool]
    #: Optional: the fields of ``Params`` that are paths; the loader expands ``~`` and ``$VARS`` in them
    #: and makes them absolute, relative to the file they are written in.
    # paths: ClassVar[tuple[str, ...]]

    @classmethod
    def from_params(cls, params: Any, base_dir: Path | None = None) -> DomainDataset:
        """The dataset for validated parameters; cheap (no image is generated or decoded here).

        ``base_dir``: what relative paths among ``params`` are relative to (the loader has already made
        the paths of a loaded suite absolute). It may take a keyword ``source`` too: the suite's source
        domain, when its splits depend on which domain is trained on.
        """

    # Optional: ``resolve(params, here) -> params``, the parameters with their paths made absolute
    # (relative to ``here``, the suite file's folder), for paths ``paths`` cannot name (nested ones).


#: Dataset classes by their YAML name (``office-synth``, ``imagefolder``, ...: ``DATASETS.names()``).
DATASETS: Registry[Any] = Registry("dataset")


def dataset_name(params: Any) -> str:
    """The registered name of the dataset whose ``Params`` validated ``params``; ValueError if none."""
    for name, cls in DATASETS.items():
        if type(params) is cls.Params:
            return name
    raise ValueError(f"not the parameters of a registered dataset: {type(params).__name__}")


def default_dataset() -> str:
    """The name of the dataset a ``data:`` mapping that names none is."""
    defaults = [name for name, cls in DATASETS.items() if getattr(cls, "default", False)]
    if len(defaults) != 1:
        raise ValueError(f"exactly one dataset must say default = True, these do: {defaults}")
    return defaults[0]


def _fields(params: type) -> set[str]:
    return {info.alias or name for name, info in params.model_fields.items()}


def data_tag(value: Any) -> str:
    """The pydantic discriminator of the ``data:`` union: which dataset a mapping (or parameters) means."""
    if not isinstance(value, Mapping):
        try:
            return dataset_name(value)
        except ValueError:
            return default_dataset()
    for name, cls in DATASETS.items():
        if name in value and name in _fields(cls.Params):
            return name
    name = value.get("name")
    if isinstance(name, str) and name in DATASETS and "name" in _fields(DATASETS.get(name).Params):
        return name
    return default_dataset()


@cache
def _union(names: tuple[str, ...]) -> Any:
    from typing import Annotated, Union

    from pydantic import Discriminator, Tag

    members = tuple(Annotated[DATASETS.get(name).Params, Tag(name)] for name in names)
    return Annotated[Union[members], Discriminator(data_tag)]  # noqa: UP007


def _ordered() -> tuple[str, ...]:
    """Every dataset's name, the default first."""
    first = default_dataset()
    return (first, *(name for name in DATASETS.names() if name != first))


def data_union() -> Any:
    """``Annotated[Union[Annotated[Params, Tag(name)], ...], Discriminator(data_tag)]`` of every dataset."""
    return _union(_ordered())


@cache
def _adapter(names: tuple[str, ...]) -> TypeAdapter[Any]:
    from pydantic import TypeAdapter

    return TypeAdapter(_union(names))


def data_adapter() -> TypeAdapter[Any]:
    """A TypeAdapter of :func:`data_union` (made once per set of registered datasets)."""
    return _adapter(_ordered())


def split_to_state(splits: Mapping[str, Split]) -> dict[str, Any]:
    """A store-friendly form of ``{"train": Split, "test": Split}``."""
    return {name: {"images": s.images.contiguous(), "labels": s.labels.contiguous()} for name, s in splits.items()}


def split_from_state(state: Mapping[str, Any]) -> dict[str, Split]:
    """Inverse of :func:`split_to_state`."""
    return {name: Split(v["images"], v["labels"]) for name, v in state.items()}
