"""The split protocol of an image tree: which images of each domain train, and which are scored.

The standard protocol of unsupervised domain adaptation, the default:

- the **source** domain keeps a train/test split: ``test-fraction`` of each class (0.3) is held out,
  by a seeded permutation per class, and the model trains on the rest;
- every **target** domain is scored on **all** its images (``whole``), and adaptation steps (CORAL,
  AdaBN) see the same images without their labels.

A domain's entry in ``splits:`` changes that: ``whole``, ``held-out`` (the suite's ``test-fraction``),
``{test-fraction: 0.5}``, or list files ``{train: amazon_train.txt, test: amazon_test.txt}`` with one
image path per line (relative to the tree's root or to the domain's class folders; a label after the
path, as in the published Office-31 lists, is ignored: the class is the image's folder). The source
cannot be ``whole``: it would be scored on the images it trained on.

Splits are stratified (per class) and seeded: a class's images are ordered by the SHA-256 of the seed,
the class and the image's relative path, and the first ``round(test-fraction * n)`` are held out (at
least one of each when the class has two images). So they are the same on every machine and library
version; what decides them is part of the domain's data key, and the number of
images per domain and split is recorded with every item.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from ..errors import DataError
from ..spec.schema import Strict

__all__ = [
    "DomainSplit",
    "HeldOut",
    "ListFiles",
    "SplitPlan",
    "class_seed",
    "domain_split",
    "plan_split",
    "split_counts",
]

#: ``whole``: every image is scored (and seen unlabelled by adaptation); ``held-out``: the suite's
#: ``test-fraction`` is held out per class.
Named = Literal["whole", "held-out"]


class HeldOut(Strict):
    """A seeded, stratified train/test split holding out ``test-fraction`` of each class."""

    test_fraction: float = Field(gt=0.0, lt=1.0, description="share of each class held out for testing")


class ListFiles(Strict):
    """Splits read from list files: one image path per line (relative to the root or the domain)."""

    train: str = Field(min_length=1, description="list file of the train images, relative to the suite file")
    test: str = Field(min_length=1, description="list file of the test images, relative to the suite file")


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "lists" if {"train", "test"} & set(value) else "fraction"
    if isinstance(value, ListFiles):
        return "lists"
    return "fraction" if isinstance(value, HeldOut) else "named"


#: One domain's ``splits:`` entry (tagged by its shape, so a bad one gets one precise message).
DomainSplit = Annotated[
    Annotated[Named, Tag("named")] | Annotated[HeldOut, Tag("fraction")] | Annotated[ListFiles, Tag("lists")],
    Discriminator(_kind),
]


def domain_split(value: Any) -> Any:
    """``value`` validated as a :data:`DomainSplit` (for a dataset made in Python, not from a suite)."""
    from pydantic import TypeAdapter

    return TypeAdapter(DomainSplit).validate_python(value)


def split_counts(n: int, test_fraction: float) -> int:
    """How many of a class's ``n`` images go to test: ``round(test_fraction * n)``, but at least one
    test and one train image whenever ``n >= 2``."""
    n_test = round(test_fraction * n)
    if n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    return n_test


def class_seed(split_seed: int, class_name: str) -> int:
    """The generator seed for one class: ``split_seed`` plus a stable (CRC-32) hash of its name."""
    return (split_seed + zlib.crc32(class_name.encode("utf-8"))) % (2**63)


@dataclass(frozen=True)
class SplitPlan:
    """One domain's splits as ``(label, path)`` pairs, and what decided them (for keys and results)."""

    protocol: str
    train: list[tuple[int, Path]]
    test: list[tuple[int, Path]]
    #: JSON-able: the protocol and its parameters, and for list files their contents' digest.
    recipe: dict[str, Any]

    @property
    def whole(self) -> bool:
        return self.protocol == "whole"

    def counts(self) -> dict[str, Any]:
        """``{"protocol", "train", "test"}``: what a result records of this domain's data."""
        return {"protocol": self.protocol, "train": len(self.train), "test": len(self.test)}


def _order(seed: int, class_name: str, names: list[str]) -> list[int]:
    """A seeded permutation of ``range(len(names))``: positions sorted by SHA-256 of the seed, the class
    and the image's relative path. Stable across machines and library versions, needs no torch, and an
    image added to a class moves no other image between train and test beyond the count's change."""
    import hashlib

    salt = f"{class_seed(seed, class_name)}/"
    return sorted(range(len(names)), key=lambda i: hashlib.sha256((salt + names[i]).encode("utf-8")).digest())


def _held_out(
    files: Mapping[str, list[Path]], classes: list[str], fraction: float, seed: int, class_root: Path
) -> tuple[list[tuple[int, Path]], list[tuple[int, Path]]]:
    train: list[tuple[int, Path]] = []
    test: list[tuple[int, Path]] = []
    for label, name in enumerate(classes):
        paths = files[name]
        names = [path.relative_to(class_root).as_posix() for path in paths]
        chosen = set(_order(seed, name, names)[: split_counts(len(paths), fraction)])
        for i, path in enumerate(paths):
            (test if i in chosen else train).append((label, path))
    return train, test


def _read_list(
    list_file: str, which: str, index: dict[str, tuple[int, Path]], domain: str, field: tuple[str, ...]
) -> tuple[list[tuple[int, Path]], list[str]]:
    """The images one list file names, and a problem per line that names none."""
    path = Path(list_file)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"imagefolder: cannot read the {which} list of domain {domain!r}: {exc}", field=field) from None
    chosen: list[tuple[int, Path]] = []
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        # "<path> [label]": a trailing integer is a label, which the image's class folder decides anyway.
        parts = text.rsplit(maxsplit=1)
        name = parts[0] if len(parts) == 2 and parts[1].lstrip("-").isdigit() else text
        hit = _lookup(index, name.replace("\\", "/"), domain)
        if hit is None:
            problems.append(f"{path.name}:{number}: {name!r} is not an image of domain {domain!r}")
        else:
            chosen.append(hit)
    return chosen, problems


def _lookup(index: dict[str, tuple[int, Path]], name: str, domain: str) -> tuple[int, Path] | None:
    """An image by its path relative to the domain's class folders, the domain, or the tree's root."""
    name = name.removeprefix("./")
    for candidate in (name, name.removeprefix(f"{domain}/"), name.removeprefix(f"{domain}/images/")):
        if candidate in index:
            return index[candidate]
    return None


def plan_split(
    domain: str,
    spec: DomainSplit,
    files: Mapping[str, list[Path]],
    classes: list[str],
    class_root: Path,
    *,
    test_fraction: float,
    split_seed: int,
    field: tuple[str, ...] = (),
) -> SplitPlan:
    """One domain's :class:`SplitPlan` for its ``splits:`` entry (``files``: class -> sorted paths).

    ``field`` is where the entry is written (``("splits", domain)``), for errors that point at it.
    """
    if spec == "whole":
        pairs = [(label, path) for label, name in enumerate(classes) for path in files[name]]
        return SplitPlan("whole", pairs, pairs, {"protocol": "whole"})
    if isinstance(spec, ListFiles):
        return _from_lists(domain, spec, files, classes, class_root, field)
    fraction = spec.test_fraction if isinstance(spec, HeldOut) else test_fraction
    train, test = _held_out(files, classes, fraction, split_seed, class_root)
    return SplitPlan(
        "held-out", train, test, {"protocol": "held-out", "test_fraction": fraction, "split_seed": split_seed}
    )


def _from_lists(
    domain: str,
    spec: ListFiles,
    files: Mapping[str, list[Path]],
    classes: list[str],
    class_root: Path,
    field: tuple[str, ...],
) -> SplitPlan:
    import hashlib

    index = {
        path.relative_to(class_root).as_posix(): (label, path)
        for label, name in enumerate(classes)
        for path in files[name]
    }
    train, train_problems = _read_list(spec.train, "train", index, domain, (*field, "train"))
    test, test_problems = _read_list(spec.test, "test", index, domain, (*field, "test"))
    if train_problems or test_problems:
        problems = train_problems + test_problems
        shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise DataError(
            f"imagefolder: {len(problems)} line(s) of the split lists of domain {domain!r} name no image: {shown}",
            field=(*field, "train" if train_problems else "test"),
        )
    both = sorted(
        {p.relative_to(class_root).as_posix() for _, p in train}
        & {p.relative_to(class_root).as_posix() for _, p in test}
    )
    if both:
        raise DataError(
            f"imagefolder: {len(both)} image(s) of domain {domain!r} are in both the train and the test list: "
            + ", ".join(both[:10]),
            field=field,
        )
    if not test:
        raise DataError(f"imagefolder: the test list of domain {domain!r} names no image", field=(*field, "test"))
    key = lambda pair: (pair[0], pair[1].relative_to(class_root).as_posix())  # noqa: E731
    train, test = sorted(set(train), key=key), sorted(set(test), key=key)
    digest = hashlib.sha256(
        "\n".join(["train", *(key(p)[1] for p in train), "test", *(key(p)[1] for p in test)]).encode("utf-8")
    ).hexdigest()
    return SplitPlan("lists", train, test, {"protocol": "lists", "images": digest})
