"""``imagefolder``: domains read from an image tree on disk, e.g. an unpacked Office-31.

Two layouts are understood, detected per domain (they may be mixed)::

    <root>/<domain>/images/<class>/<file>     # Office-31: amazon/images/back_pack/frame_0001.jpg
    <root>/<domain>/<class>/<file>            # flat

A domain uses the first layout when ``<root>/<domain>/images`` is a directory. Every domain must have
the same class folders. Image files are ``.jpg .jpeg .png .bmp .webp`` (any case); names starting with
``.`` are ignored, and files below a class folder are found at any depth.

The constructor only lists directories (no decoding), so it is cheap and fails early with a clear
:class:`~robustspec.errors.DataError`. :meth:`ImageFolderDataset.build_domain` decodes one domain,
squashes every image to ``image_size x image_size`` and splits it, per class, into train and test with a
seeded permutation. :meth:`ImageFolderDataset.recipe` carries a fingerprint of the file list (paths,
sizes, modification times), so editing the tree changes every content key derived from it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from ..errors import DataError
from ..spec.schema import MAX_SEED, DataParams, Int, Name, Probability
from .base import DATASETS, Split

if TYPE_CHECKING:
    import torch

__all__ = ["FolderData", "ImageFolderDataset", "IMAGE_EXTENSIONS"]


class FolderData(DataParams):
    """An image tree: ``<root>/<domain>/images/<class>/*`` (Office-31) or ``<root>/<domain>/<class>/*``."""

    imagefolder: str = Field(min_length=1, description="root directory, relative to the suite file")
    image_size: Int = Field(224, ge=16, le=1024)
    test_fraction: Probability = 0.3
    split_seed: Int = Field(0, ge=0, le=MAX_SEED)
    domains: list[Name] | None = None

    @field_validator("test_fraction")
    @classmethod
    def _open_interval(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            raise ValueError("must be strictly between 0 and 1")
        return v


log = logging.getLogger("robustspec.data")

#: File name endings (compared in lower case) that count as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

_PROGRESS_EVERY = 500


def _visible_dirs(path: Path) -> list[str]:
    """Sorted names of the non-hidden sub-directories of ``path``."""
    with os.scandir(path) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())


def _image_files(folder: Path) -> list[Path]:
    """Every non-hidden image file below ``folder``, sorted by path relative to it."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = here / name
            found.append((path.relative_to(folder).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def _close_matches(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


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


@DATASETS.register("imagefolder")
class ImageFolderDataset:
    """Domains read from an image tree: ``<root>/<domain>/images/<class>/*`` (Office-31) or
    ``<root>/<domain>/<class>/*``; see the module docstring. In suites: ``data: {imagefolder: <root>}``.

    Images are resized to ``image_size x image_size`` by squashing (the aspect ratio is not kept and
    nothing is cropped), with antialiasing. Each class of each domain is split into train and test:
    a permutation from ``torch.Generator().manual_seed(class_seed(split_seed, class))``, whose first
    :func:`split_counts` entries are the test images. Inside a split, images are ordered by
    (label, relative path).
    """

    Params: ClassVar[type[DataParams]] = FolderData
    #: ``imagefolder`` is relative to the suite file it is written in.
    paths: ClassVar[tuple[str, ...]] = ("imagefolder",)

    @classmethod
    def from_params(cls, params: FolderData, base_dir: Path | None = None) -> ImageFolderDataset:
        root = Path(params.imagefolder)
        if base_dir is not None and not root.is_absolute():
            root = base_dir / root
        return cls(
            root,
            image_size=params.image_size,
            test_fraction=params.test_fraction,
            split_seed=params.split_seed,
            domains=params.domains,
        )

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        image_size: int = 224,
        test_fraction: float = 0.3,
        split_seed: int = 0,
        domains: list[str] | None = None,
    ) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise DataError(f"imagefolder: image_size must be a positive integer, got {image_size!r}")
        if (
            isinstance(test_fraction, bool)
            or not isinstance(test_fraction, (int, float))
            or not (0.0 < float(test_fraction) < 1.0)
        ):
            raise DataError(f"imagefolder: test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
        if isinstance(split_seed, bool) or not isinstance(split_seed, int):
            raise DataError(f"imagefolder: split_seed must be an integer, got {split_seed!r}")

        self.root = Path(root).expanduser().resolve()
        self.image_size = image_size
        self.test_fraction = float(test_fraction)
        self.split_seed = split_seed

        if not self.root.exists():
            raise DataError(f"imagefolder: root {str(self.root)!r} does not exist")
        if not self.root.is_dir():
            raise DataError(f"imagefolder: root {str(self.root)!r} is not a directory")

        found = _visible_dirs(self.root)
        if not found:
            raise DataError(
                f"imagefolder: no domain folders in {str(self.root)!r} "
                "(expected <root>/<domain>/images/<class>/* or <root>/<domain>/<class>/*)"
            )
        if domains is None:
            self.domains = found
        else:
            self.domains = self._check_requested(list(domains), found)

        # domain -> class -> image paths (sorted by relative path)
        self._files: dict[str, dict[str, list[Path]]] = {d: self._scan_domain(d) for d in self.domains}
        self.classes = self._check_same_classes()
        self._check_test_images()

    # --- scanning and validation ---

    def _check_requested(self, requested: list[str], found: list[str]) -> list[str]:
        if not requested:
            raise DataError(f"imagefolder: an empty list of domains was given for {str(self.root)!r}")
        seen: set[str] = set()
        for name in requested:
            if not isinstance(name, str):
                raise DataError(f"imagefolder: domain names must be strings, got {name!r}")
            if name in seen:
                raise DataError(f"imagefolder: domain {name!r} is listed twice")
            seen.add(name)
            if name not in found:
                raise DataError(
                    f"imagefolder: domain {name!r} not found in {str(self.root)!r}{_close_matches(name, found)} "
                    f"(found: {', '.join(found)})"
                )
        return requested

    def _class_root(self, domain: str) -> Path:
        """Where a domain's class folders live: ``<domain>/images`` if that is a directory, else ``<domain>``."""
        office = self.root / domain / "images"
        return office if office.is_dir() else self.root / domain

    def _scan_domain(self, domain: str) -> dict[str, list[Path]]:
        base = self._class_root(domain)
        class_names = _visible_dirs(base)
        if not class_names:
            raise DataError(f"imagefolder: domain {domain!r} has no class folders in {str(base)!r}")
        files: dict[str, list[Path]] = {}
        empty: list[str] = []
        for name in class_names:
            files[name] = _image_files(base / name)
            if not files[name]:
                empty.append(str(base / name))
        if empty:
            raise DataError(
                f"imagefolder: domain {domain!r} has class folders with no images "
                f"({' '.join(IMAGE_EXTENSIONS)}): {', '.join(repr(p) for p in empty)}"
            )
        return files

    def _check_same_classes(self) -> list[str]:
        ref = self.domains[0]
        ref_classes = set(self._files[ref])
        problems: list[str] = []
        for domain in self.domains[1:]:
            have = set(self._files[domain])
            lacks, extra = sorted(ref_classes - have), sorted(have - ref_classes)
            if lacks:
                problems.append(f"domain {domain!r} lacks classes {lacks} that {ref!r} has")
            if extra:
                problems.append(f"domain {domain!r} has classes {extra} that {ref!r} lacks")
        if problems:
            raise DataError(
                f"imagefolder: class folders differ between domains in {str(self.root)!r}: " + "; ".join(problems)
            )
        return sorted(ref_classes)

    def _check_test_images(self) -> None:
        # Every domain is evaluated on its test split (the source too), so an empty one is an error now,
        # not a division by zero after training.
        for domain in self.domains:
            sizes = [len(paths) for paths in self._files[domain].values()]
            if not any(split_counts(n, self.test_fraction) for n in sizes):
                raise DataError(
                    f"imagefolder: domain {domain!r} has no test images: its classes have {max(sizes)} image(s) at "
                    f"most and test_fraction {self.test_fraction} puts none of them in the test split "
                    "(give each class at least 2 images)"
                )

    # --- the DomainDataset protocol ---

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def fingerprint(self) -> str:
        """SHA-256 hex of the sorted ``(relative path, size, mtime_ns)`` of every image file (stat only)."""
        entries = []
        for domain in self.domains:
            for paths in self._files[domain].values():
                for path in paths:
                    try:
                        st = path.stat()
                    except OSError as exc:
                        raise DataError(f"imagefolder: cannot stat {str(path)!r}: {exc}") from exc
                    entries.append((self._relative(path), st.st_size, st.st_mtime_ns))
        entries.sort()
        return hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode("utf-8")).hexdigest()

    def recipe(self) -> dict[str, Any]:
        return {
            "dataset": "imagefolder",
            "version": 1,
            "root": str(self.root),
            "image_size": self.image_size,
            "test_fraction": self.test_fraction,
            "split_seed": self.split_seed,
            "domains": list(self.domains),
            "classes": list(self.classes),
            "fingerprint": self.fingerprint(),
        }

    def split_files(self, domain: str) -> dict[str, list[tuple[int, Path]]]:
        """The ``(label, path)`` pairs of each split of one domain, in split order, without decoding."""
        import torch

        files = self._domain_files(domain)
        out: dict[str, list[tuple[int, Path]]] = {"train": [], "test": []}
        for label, name in enumerate(self.classes):
            paths = files[name]
            g = torch.Generator().manual_seed(class_seed(self.split_seed, name))
            perm = torch.randperm(len(paths), generator=g).tolist()
            n_test = split_counts(len(paths), self.test_fraction)
            test_idx = set(perm[:n_test])
            for i, path in enumerate(paths):
                out["test" if i in test_idx else "train"].append((label, path))
        for pairs in out.values():
            pairs.sort(key=lambda lp: (lp[0], self._relative(lp[1])))
        return out

    def build_domain(self, domain: str) -> dict[str, Split]:
        import torch

        splits = self.split_files(domain)
        total = sum(len(v) for v in splits.values())
        log.info("imagefolder: reading %d images of domain %r from %s", total, domain, self.root / domain)
        size = self.image_size
        done = 0
        out: dict[str, Split] = {}
        for split_name in ("train", "test"):
            pairs = splits[split_name]
            images = torch.empty((len(pairs), 3, size, size), dtype=torch.uint8)
            for i, (_, path) in enumerate(pairs):
                images[i] = _resize(_decode(path), size)
                done += 1
                if done % _PROGRESS_EVERY == 0:
                    log.info("imagefolder: domain %r: %d/%d images decoded", domain, done, total)
            labels = torch.tensor([label for label, _ in pairs], dtype=torch.int64)
            out[split_name] = Split(images, labels)
        log.info("imagefolder: domain %r done: %d train, %d test images", domain, len(out["train"]), len(out["test"]))
        return out

    def _domain_files(self, domain: str) -> dict[str, list[Path]]:
        try:
            return self._files[domain]
        except KeyError:
            raise DataError(
                f"imagefolder: unknown domain {domain!r}{_close_matches(str(domain), self.domains)} "
                f"(this dataset has: {', '.join(self.domains)})"
            ) from None

    def __repr__(self) -> str:
        return (
            f"ImageFolderDataset({str(self.root)!r}, domains={self.domains}, classes={len(self.classes)}, "
            f"image_size={self.image_size})"
        )


def _decode(path: Path) -> torch.Tensor:
    """One image file as uint8 ``[3, H, W]`` RGB: torchvision first, then PIL; DataError if neither can."""
    import torch
    import torchvision.io as tvio

    try:
        # torchvision 0.29 deprecates its image codecs with one warning per call: thousands per domain.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            img = tvio.decode_image(str(path), mode=tvio.ImageReadMode.RGB)
        if img.dtype == torch.uint8 and img.ndim == 3 and img.shape[0] == 3:
            return img
    except Exception:  # noqa: BLE001 - any failure falls through to PIL
        pass
    try:
        from PIL import Image

        with Image.open(path) as pil:
            rgb = pil.convert("RGB")
            width, height = rgb.size
            data = bytearray(rgb.tobytes())
        return torch.frombuffer(data, dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1).contiguous()
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"imagefolder: cannot decode image {str(path)!r}: {exc}") from exc


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """Squash to ``size x size`` (no crop, aspect ratio not kept), antialiased."""
    if img.shape[1] == size and img.shape[2] == size:
        return img
    from torchvision.transforms.v2 import functional as TF

    return TF.resize(img, [size, size], antialias=True)
