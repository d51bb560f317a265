"""Derived domains: ``amazon+gaussian_noise@3`` is domain ``amazon`` with a corruption at a severity.

A derived name works wherever a domain name does (``targets:``, an expectation's ``domains:``, an
attack's ``domain:``). Its data is an artifact of its own, built from the base domain's train and test
splits with a generator seeded from the corruption, the severity, the split and :data:`SEED`, so the same
name gives the same images in every process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..data.base import Split
from ..errors import DataError
from ..progress import Progress
from .base import CORRUPTIONS, SEVERITIES

if TYPE_CHECKING:
    import torch

__all__ = ["SEED", "VERSION", "corrupt_split", "derived_name", "domain_problem", "generator_for", "parse_domain"]

#: Part of every derived domain's data key; changing it gives every corrupted set new random draws.
SEED = 0
#: Version of the code that builds corrupted data: bump it when a corruption's output changes.
VERSION = "2"
#: Images corrupted per batch (bounds memory for large images; results do not depend on it).
BATCH = 256

_EXAMPLE = "amazon+gaussian_noise@3"


def parse_domain(name: str) -> tuple[str, str | None, int | None]:
    """``(base, corruption, severity)`` of a domain name; ``(name, None, None)`` for a plain domain.

    Raises :class:`~robustspec.errors.DataError` for a malformed derived name, an unknown corruption or a
    severity outside 1-5. Whether the base domain exists is for the dataset to say (:func:`domain_problem`).
    """
    if "+" not in name:
        return name, None, None
    base, _, rest = name.partition("+")
    if not base:
        raise DataError(f"derived domain {name!r} has no base domain: write it like {_EXAMPLE!r}")
    if "+" in rest:
        raise DataError(f"derived domain {name!r} has more than one corruption; one per domain, like {_EXAMPLE!r}")
    corruption, at, level = rest.partition("@")
    if corruption not in CORRUPTIONS:
        raise DataError(CORRUPTIONS.unknown_message(corruption))
    if not at:
        raise DataError(f"derived domain {name!r} needs a severity 1-5: {base}+{corruption}@3")
    if not level.isdigit() or int(level) not in SEVERITIES:
        raise DataError(f"severity of {name!r} must be 1-5 (got {level!r})")
    return base, corruption, int(level)


def derived_name(base: str, corruption: str, severity: int) -> str:
    return f"{base}+{corruption}@{severity}"


def domain_problem(name: str, domains: Iterable[str]) -> str | None:
    """Why ``name`` is not a domain of a dataset with these ``domains``, or None when it is."""
    try:
        base, corruption, _ = parse_domain(name)
    except DataError as exc:
        return str(exc)
    if corruption is None or base in domains:
        return None
    import difflib

    known = list(domains)
    close = difflib.get_close_matches(base, known, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown base domain {base!r} in {name!r}{hint} (the dataset has: {', '.join(known)})"


def generator_for(corruption: str, severity: int, split: str, seed: int = SEED) -> torch.Generator:
    """A CPU generator seeded from the corruption, severity, split and seed (sha256, stable across processes)."""
    import torch

    text = f"{corruption}@{severity}/{split}/{seed}".encode()
    g = torch.Generator(device="cpu")
    g.manual_seed(int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1))
    return g


def corrupt_split(split: Split, corruption: str, severity: int, split_name: str, seed: int = SEED) -> Split:
    """The split's images with the corruption applied (uint8 in, uint8 out), labels unchanged.

    A slow corruption on many images reports its progress (:class:`~robustspec.progress.Progress`).
    """
    import torch

    fn = CORRUPTIONS.get(corruption)
    g = generator_for(corruption, severity, split_name, seed)
    parts = []
    progress = Progress(len(split), f"corrupting {split_name} images: {corruption}@{severity}", unit="images")
    for start in range(0, len(split), BATCH):
        batch = split.images[start : start + BATCH].float().div_(255.0)
        parts.append(fn(batch, severity, g).mul_(255.0).round_().to(torch.uint8))
        progress.update(len(batch))
    progress.close()
    images = torch.cat(parts) if parts else split.images.clone()
    return Split(images.contiguous(), split.labels.clone())
