"""``imagefolder``: domains read from an image tree on disk, e.g. an unpacked Office-31.

Two layouts are understood, detected per domain (they may be mixed)::

    <root>/<domain>/images/<class>/<file>     # Office-31: amazon/images/back_pack/frame_0001.jpg
    <root>/<domain>/<class>/<file>            # flat

A domain uses the first layout when ``<root>/<domain>/images`` is a directory. Every domain must have
the same class folders. Image files are ``.jpg .jpeg .png .bmp .webp`` (any case); names starting with
``.`` are ignored, and files below a class folder are found at any depth.

The constructor lists the tree and checks every image file's header and tail, without decoding
(:mod:`robustspec.data.tree`: links followed inside the root only, loops walked once, verdicts cached by
size and mtime), so it is cheap and fails early with one clear :class:`~robustspec.errors.DataError`
listing every unreadable, truncated or empty file and empty class folder (``bad_images="skip"`` leaves
the bad files out instead, in :attr:`ImageFolderDataset.skipped`); files of the same content in a
domain's train and test splits are an error too. :meth:`ImageFolderDataset.build_domain` decodes one domain,
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
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from ..errors import DataError
from ..progress import Timer, report
from ..spec.schema import MAX_SEED, DataParams, Int, Name, Probability
from .base import DATASETS, Split
from .pipeline import ResizeMode, decode_images
from .protocol import DomainSplit, ListFiles, SplitPlan, class_seed, domain_split, plan_split, split_counts
from .tree import BadImages, DomainScan, check_train_test, check_tree, scan_domain

__all__ = ["FolderData", "ImageFolderDataset", "IMAGE_EXTENSIONS", "class_seed", "split_counts"]


class FolderData(DataParams):
    """An image tree: ``<root>/<domain>/images/<class>/*`` (Office-31) or ``<root>/<domain>/<class>/*``."""

    imagefolder: str = Field(min_length=1, description="root directory, relative to the suite file")
    image_size: Int = Field(224, ge=16, le=1024)
    resize: ResizeMode = Field(
        "shorter-side",
        description="shorter-side: scale the shorter side to image-size, then centre-crop (ImageNet's evaluation "
        "convention); squash: scale both sides (the aspect ratio is lost); pad: scale the longer side, then pad",
    )
    test_fraction: Probability = Field(0.3, description="share of each class of the source held out for testing")
    split_seed: Int = Field(0, ge=0, le=MAX_SEED)
    domains: list[Name] | None = None
    splits: dict[Name, DomainSplit] = Field(
        default_factory=dict,
        description="per domain: whole (score every image; the default of targets), held-out (the default of the "
        "source), {test-fraction: f}, or list files {train: <file>, test: <file>}",
    )
    workers: Int | None = Field(
        None, ge=0, le=64, description="decoding processes (default: the CPUs; 0 decodes in the main process)"
    )
    bad_images: BadImages = Field(
        "fail",
        description="fail: unreadable, truncated or empty image files are an error that lists them all; skip: "
        "leave them out (each is named in the recipe and reported)",
    )

    @field_validator("test_fraction")
    @classmethod
    def _open_interval(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            raise ValueError("must be strictly between 0 and 1")
        return v


log = logging.getLogger("robustspec.data")

#: File name endings (compared in lower case) that count as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _visible_dirs(path: Path) -> list[str]:
    """Sorted names of the non-hidden sub-directories of ``path``."""
    with os.scandir(path) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())


def _close_matches(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


@DATASETS.register("imagefolder")
class ImageFolderDataset:
    """Domains read from an image tree: ``<root>/<domain>/images/<class>/*`` (Office-31) or
    ``<root>/<domain>/<class>/*``; see the module docstring. In suites: ``data: {imagefolder: <root>}``.

    Images are made ``image_size x image_size`` by ``resize`` (:mod:`robustspec.data.pipeline`; by
    default the shorter side is scaled, then the centre cropped). Each domain is split by its protocol
    (:mod:`robustspec.data.protocol`): the source holds out ``test_fraction`` of each class (a seeded
    permutation per class), a target is scored on all its images, unless ``splits`` says otherwise.
    Inside a split, images are ordered by (label, relative path).
    """

    Params: ClassVar[type[DataParams]] = FolderData
    #: ``imagefolder`` is relative to the suite file it is written in.
    paths: ClassVar[tuple[str, ...]] = ("imagefolder",)

    @classmethod
    def from_params(
        cls, params: FolderData, base_dir: Path | None = None, *, source: str | None = None
    ) -> ImageFolderDataset:
        root = Path(params.imagefolder)
        if base_dir is not None and not root.is_absolute():
            root = base_dir / root
        return cls(
            root,
            image_size=params.image_size,
            resize=params.resize,
            test_fraction=params.test_fraction,
            split_seed=params.split_seed,
            domains=params.domains,
            splits=dict(params.splits),
            source=source,
            workers=params.workers,
            bad_images=params.bad_images,
        )

    @classmethod
    def resolve(cls, params: FolderData, here: Path) -> FolderData:
        """``params`` with the root and the split lists absolute (relative to ``here``, the suite's folder)."""

        def absolute(path: str) -> str:
            return str((here / os.path.expandvars(os.path.expanduser(path))).resolve())

        splits = {
            domain: spec.model_copy(update={"train": absolute(spec.train), "test": absolute(spec.test)})
            if isinstance(spec, ListFiles)
            else spec
            for domain, spec in params.splits.items()
        }
        return params.model_copy(update={"imagefolder": absolute(params.imagefolder), "splits": splits})

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        image_size: int = 224,
        resize: str = "shorter-side",
        test_fraction: float = 0.3,
        split_seed: int = 0,
        domains: list[str] | None = None,
        splits: dict[str, DomainSplit] | None = None,
        source: str | None = None,
        workers: int | None = None,
        bad_images: str = "fail",
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
        if bad_images not in ("fail", "skip"):
            raise DataError(f"imagefolder: bad_images must be 'fail' or 'skip', got {bad_images!r}")

        self.root = Path(root).expanduser().resolve()
        self.image_size = image_size
        self.test_fraction = float(test_fraction)
        self.split_seed = split_seed
        self.resize = resize
        self.workers = workers
        self.bad_images = bad_images
        #: The domain trained on; it holds out ``test_fraction``. None (a dataset opened on its own):
        #: every domain without a ``splits`` entry is held out.
        self.source = source
        self.splits: dict[str, DomainSplit] = {name: domain_split(spec) for name, spec in (splits or {}).items()}

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
        scans = {d: self._scan_domain(d) for d in self.domains}
        self._files: dict[str, dict[str, list[Path]]] = {d: scan.files for d, scan in scans.items()}
        self.classes = self._check_same_classes()
        # Every image file's header and tail, all domains at once (robustspec.data.tree), cached.
        checked = check_tree(self.root, scans, bad_images=self.bad_images)  # type: ignore[arg-type]
        self._files = checked.files
        #: ``(path relative to the root, reason)`` of every file or link ``bad_images="skip"`` left out.
        self.skipped: list[tuple[str, str]] = checked.skipped
        self._digests: dict[Path, str] = checked.digests
        self._plans: dict[str, SplitPlan] = self._plan_splits()
        self.check_duplicates()

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

    def _scan_domain(self, domain: str) -> DomainScan:
        base = self._class_root(domain)
        class_names = _visible_dirs(base)
        if not class_names:
            raise DataError(f"imagefolder: domain {domain!r} has no class folders in {str(base)!r}")
        # Empty class folders and bad files are reported by check_tree, every domain's at once.
        return scan_domain(domain, self.root, base, class_names, extensions=IMAGE_EXTENSIONS)

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

    def protocol(self, domain: str) -> DomainSplit:
        """A domain's split: its ``splits`` entry, else ``held-out`` for the source, ``whole`` for a target."""
        if domain in self.splits:
            return self.splits[domain]
        return "whole" if self.source is not None and domain != self.source else "held-out"

    def _plan_splits(self) -> dict[str, SplitPlan]:
        problems = [
            DataError(
                f"imagefolder: splits names {name!r}, which is not a domain of this dataset"
                f"{_close_matches(name, self.domains)} (domains: {', '.join(self.domains)})",
                field=("splits", name),
            )
            for name in self.splits
            if name not in self.domains
        ]
        if self.source is not None and self.protocol(self.source) == "whole":
            problems.append(
                DataError(
                    f"imagefolder: the source domain {self.source!r} cannot be split 'whole': it would be scored on "
                    "the images it trains on (use held-out, {test-fraction: f} or list files)",
                    field=("splits", self.source),
                )
            )
        plans: dict[str, SplitPlan] = {}
        for domain in self.domains:
            try:
                plans[domain] = plan_split(
                    domain,
                    self.protocol(domain),
                    self._files[domain],
                    self.classes,
                    self._class_root(domain),
                    test_fraction=self.test_fraction,
                    split_seed=self.split_seed,
                    field=("splits", domain),
                )
            except DataError as exc:
                problems.append(exc)
                continue
            if not plans[domain].test:
                # Every domain is evaluated on its test split (the source too): an empty one is an error
                # now, not a division by zero after training.
                problems.append(
                    DataError(
                        f"imagefolder: domain {domain!r} has no test images: its classes have "
                        f"{max(len(p) for p in self._files[domain].values())} image(s) at most and the split puts "
                        "none of them in the test split (give each class at least 2 images)",
                        field=("splits", domain) if domain in self.splits else (),
                    )
                )
        if problems:
            if len(problems) == 1:
                raise problems[0]
            raise DataError("; ".join(str(p) for p in problems), field=problems[0].field)
        return plans

    # --- the DomainDataset protocol ---

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def fingerprint(self, domain: str | None = None) -> str:
        """SHA-256 hex of the sorted ``(relative path, content SHA-256)`` of every image file of ``domain``
        (None: of every domain). By content, not by modification time: a fresh checkout, a copy or a
        moved tree keeps its keys (the digests come from the tree check, cached, so nothing is re-read)."""
        entries = []
        for name in self.domains if domain is None else [domain]:
            for paths in self._domain_files(name).values():
                for path in paths:
                    digest = self._digests.get(path)
                    if digest is None:  # not checked (a dataset made without its tree check)
                        try:
                            st = path.stat()
                        except OSError as exc:
                            raise DataError(f"imagefolder: cannot stat {str(path)!r}: {exc}") from exc
                        digest = f"{st.st_size}:{st.st_mtime_ns}"
                    entries.append((self._relative(path), digest))
        entries.sort()
        return hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode("utf-8")).hexdigest()

    def _pipeline(self) -> dict[str, Any]:
        return {"dataset": "imagefolder", "version": 2, "image_size": self.image_size, "resize": self.resize}

    def recipe(self) -> dict[str, Any]:
        return {
            **self._pipeline(),
            "root": str(self.root),
            "domains": list(self.domains),
            "classes": list(self.classes),
            "splits": {domain: self._plans[domain].recipe for domain in self.domains},
            "fingerprint": self.fingerprint(),
            # Only when some were: a clean tree keeps the key it had before bad-images existed.
            **({"skipped": {"count": len(self.skipped), "files": self.skipped}} if self.skipped else {}),
        }

    def domain_recipe(self, domain: str) -> dict[str, Any]:
        """What decides one domain's images: the pipeline, the classes, its split and its files (not the
        other domains', so changing a target's split rebuilds neither the source's data nor the model)."""
        self._domain_files(domain)
        return {
            **self._pipeline(),
            "domain": domain,
            "classes": list(self.classes),
            "split": self._plans[domain].recipe,
            "fingerprint": self.fingerprint(domain),
            **({"skipped": {"count": len(mine), "files": mine}} if (mine := self.skipped_in(domain)) else {}),
        }

    def skipped_in(self, domain: str) -> list[tuple[str, str]]:
        """The entries of :attr:`skipped` below one domain's folder."""
        return [(rel, reason) for rel, reason in self.skipped if rel.split("/", 1)[0] == domain]

    def split_counts(self, domain: str) -> dict[str, Any]:
        """``{"protocol", "train", "test"}``: how a domain is split and how many images each split has."""
        self._domain_files(domain)
        return self._plans[domain].counts()

    def split_files(self, domain: str) -> dict[str, list[tuple[int, Path]]]:
        """The ``(label, path)`` pairs of each split of one domain, in split order, without decoding.

        Under the ``whole`` protocol both are every image of the domain (the train split is what adaptation
        sees, unlabelled)."""
        self._domain_files(domain)
        plan = self._plans[domain]
        key = lambda lp: (lp[0], self._relative(lp[1]))  # noqa: E731
        return {"train": sorted(plan.train, key=key), "test": sorted(plan.test, key=key)}

    def build_domain(self, domain: str) -> dict[str, Split]:
        import torch

        splits = self.split_files(domain)
        whole = self._plans[domain].whole
        names = ("test",) if whole else ("train", "test")
        total = sum(len(splits[n]) for n in names)
        report(f"imagefolder: decoding {total} images of domain {domain!r} ({self.resize} to {self.image_size} px)")
        timer = Timer()
        out: dict[str, Split] = {}
        for name in names:
            pairs = splits[name]
            images = decode_images(
                [path for _, path in pairs],
                self.image_size,
                self.resize,
                workers=self.workers,
                label=f"imagefolder: {domain} {name}",
            )
            out[name] = Split(images, torch.tensor([label for label, _ in pairs], dtype=torch.int64))
        if whole:
            out["train"] = out["test"]  # the same tensors: stored once
        report(
            f"imagefolder: domain {domain!r}: {len(out['train'])} train, {len(out['test'])} test images "
            f"({total / max(timer.seconds, 1e-9):.0f} images/s)"
        )
        return {"train": out["train"], "test": out["test"]}

    def check_duplicates(self) -> None:
        """DataError naming every pair of files of the same content (SHA-256, from the tree check) of which
        one is in a domain's train split and the other in its test split. A domain whose train and test
        splits are the same files (``whole``) is not checked, and the same content in two domains (the
        source's train and a target's test) is no error. Reads no file."""
        splits = {}
        for domain in self.domains:
            files = self.split_files(domain)
            splits[domain] = ([p for _, p in files["train"]], [p for _, p in files["test"]])
        check_train_test(self.root, splits, self._digests)

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
