"""Tests of the ``imagefolder`` dataset on small generated JPEG trees."""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from robustspec.data.base import DATASETS, Split
from robustspec.data.imagefolder import FolderData, ImageFolderDataset, split_counts
from robustspec.errors import DataError

DOMAINS = ["amazon", "dslr", "webcam"]
CLASSES = ["back_pack", "bike", "mug"]
# images per (domain, class): 4 or 5, varied so splits differ between classes
COUNTS = {(d, c): 4 + (i + j) % 2 for i, d in enumerate(DOMAINS) for j, c in enumerate(CLASSES)}


def _write_image(path: Path, rng: random.Random, fmt: str = "JPEG", size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = tuple(rng.randrange(256) for _ in range(3))
    Image.new("RGB", size, colour).save(path, format=fmt)


def make_tree(root: Path, *, office: bool) -> Path:
    """3 domains x 3 classes x 4-5 JPEGs of 40x30 random colours, in the Office-31 or the flat layout."""
    rng = random.Random(1234)
    for d in DOMAINS:
        base = root / d / "images" if office else root / d
        for c in CLASSES:
            for k in range(COUNTS[d, c]):
                _write_image(base / c / f"frame_{k:04d}.jpg", rng)
    return root


@pytest.fixture(params=["office31", "flat"])
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data", office=request.param == "office31")


def _class_dir(root: Path, domain: str, cls: str) -> Path:
    office = root / domain / "images"
    return (office if office.is_dir() else root / domain) / cls


# --- discovery ---


def test_finds_domains_and_classes(tree: Path) -> None:
    ds = ImageFolderDataset(tree, image_size=16)
    assert ds.domains == DOMAINS
    assert ds.classes == CLASSES
    assert ds.image_size == 16


def test_domain_subset_keeps_given_order(tree: Path) -> None:
    ds = ImageFolderDataset(tree, image_size=16, domains=["webcam", "amazon"])
    assert ds.domains == ["webcam", "amazon"]
    assert ds.recipe()["domains"] == ["webcam", "amazon"]


def test_hidden_files_and_other_extensions_are_ignored(tree: Path) -> None:
    cls = _class_dir(tree, "amazon", "mug")
    (cls / "notes.txt").write_text("not an image")
    _write_image(cls / ".hidden.jpg", random.Random(0))
    (tree / ".cache").mkdir()
    (tree / "amazon" / ".DS_Store").write_text("")
    ds = ImageFolderDataset(tree, image_size=8)
    assert ds.domains == DOMAINS
    splits = ds.build_domain("amazon")
    assert sum(len(s) for s in splits.values()) == sum(COUNTS["amazon", c] for c in CLASSES)


def test_mixed_layouts(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", office=True)
    # move one domain to the flat layout
    shutil.move(str(root / "dslr" / "images"), str(tmp_path / "dslr_images"))
    shutil.rmtree(root / "dslr")
    shutil.move(str(tmp_path / "dslr_images"), str(root / "dslr"))
    ds = ImageFolderDataset(root, image_size=8)
    assert ds.classes == CLASSES
    assert len(ds.build_domain("dslr")["train"]) > 0


# --- build_domain ---


def test_build_domain_shapes_labels_and_split_sizes(tree: Path) -> None:
    ds = ImageFolderDataset(tree, image_size=24, test_fraction=0.3)
    for d in DOMAINS:
        splits = ds.build_domain(d)
        assert set(splits) == {"train", "test"}
        for s in splits.values():
            assert isinstance(s, Split)
            assert s.images.dtype == torch.uint8
            assert s.images.shape[1:] == (3, 24, 24)
            assert s.labels.dtype == torch.int64
            assert s.labels.min() >= 0 and s.labels.max() < len(CLASSES)
            # ordered by label
            assert torch.equal(s.labels, s.labels.sort().values)
        for k, c in enumerate(CLASSES):
            n = COUNTS[d, c]
            n_test = int((splits["test"].labels == k).sum())
            n_train = int((splits["train"].labels == k).sum())
            assert n_test == split_counts(n, 0.3) == round(0.3 * n)
            assert n_train + n_test == n


def test_pixels_are_the_solid_colour(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for d in ("a", "b"):
        for c, colour in (("red", (250, 0, 0)), ("blue", (0, 0, 250))):
            for k in range(2):
                p = root / d / c / f"{k}.png"
                p.parent.mkdir(parents=True, exist_ok=True)
                # two sizes: the same bytes in train and test would be an error
                Image.new("RGB", (40 + k, 30), colour).save(p)
    splits = ImageFolderDataset(root, image_size=10).build_domain("a")
    for s in splits.values():
        for img, label in zip(s.images, s.labels):
            expect = torch.tensor((0, 0, 250) if label == 0 else (250, 0, 0), dtype=torch.uint8)
            assert torch.equal(img[:, 5, 5], expect)


def test_train_and_test_are_disjoint_and_cover_all_files(tree: Path) -> None:
    ds = ImageFolderDataset(tree, image_size=8, test_fraction=0.4)
    for d in DOMAINS:
        files = ds.split_files(d)
        train = {p for _, p in files["train"]}
        test = {p for _, p in files["test"]}
        assert not train & test
        on_disk = {p for c in CLASSES for p in _class_dir(tree.resolve(), d, c).iterdir()}
        assert train | test == on_disk
        for _split, pairs in files.items():
            assert all(ds.classes[label] == p.parent.name for label, p in pairs)
            assert pairs == sorted(pairs, key=lambda lp: (lp[0], str(lp[1])))


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.5, 0.99])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 17])
def test_split_counts_keep_one_of_each(n: int, fraction: float) -> None:
    n_test = split_counts(n, fraction)
    assert 0 <= n_test <= n
    if n >= 2:
        assert 1 <= n_test <= n - 1


def test_deterministic_across_instances(tree: Path) -> None:
    a = ImageFolderDataset(tree, image_size=16, split_seed=3).build_domain("webcam")
    b = ImageFolderDataset(tree, image_size=16, split_seed=3).build_domain("webcam")
    for name in ("train", "test"):
        assert torch.equal(a[name].images, b[name].images)
        assert torch.equal(a[name].labels, b[name].labels)


def test_split_seed_changes_the_split(tmp_path: Path) -> None:
    root = tmp_path / "data"
    rng = random.Random(5)
    for d in ("a", "b"):
        for c in ("x", "y"):
            for k in range(20):
                _write_image(root / d / c / f"{k:02d}.jpg", rng, size=(4, 4))
    splits = {seed: ImageFolderDataset(root, split_seed=seed, image_size=4).split_files("a") for seed in range(4)}
    tests = {seed: tuple(p.name for _, p in s["test"]) for seed, s in splits.items()}
    assert len(set(tests.values())) > 1


def test_progress_is_logged(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="robustspec.progress"):
        ImageFolderDataset(tree, image_size=8).build_domain("amazon")
    assert any("amazon" in r.getMessage() for r in caplog.records if r.name == "robustspec.progress")


# --- recipe ---


def test_recipe_is_json_and_complete(tree: Path) -> None:
    import json

    ds = ImageFolderDataset(tree, image_size=32, test_fraction=0.25, split_seed=7)
    r = ds.recipe()
    assert json.loads(json.dumps(r)) == r
    assert r["dataset"] == "imagefolder" and r["version"] == 2
    assert r["root"] == str(tree.resolve())
    assert (r["image_size"], r["resize"]) == (32, "shorter-side")
    assert r["splits"]["amazon"] == {"protocol": "held-out", "test_fraction": 0.25, "split_seed": 7}
    assert r["domains"] == DOMAINS and r["classes"] == CLASSES
    assert re.fullmatch(r"[0-9a-f]{64}", r["fingerprint"])
    assert ImageFolderDataset(tree, image_size=32, test_fraction=0.25, split_seed=7).recipe() == r


def test_fingerprint_changes_when_a_file_is_added(tree: Path) -> None:
    before = ImageFolderDataset(tree).recipe()["fingerprint"]
    _write_image(_class_dir(tree, "dslr", "bike") / "frame_new.jpg", random.Random(9))
    after = ImageFolderDataset(tree).recipe()["fingerprint"]
    assert before != after


def test_fingerprint_changes_when_a_files_content_changes(tree: Path) -> None:
    before = ImageFolderDataset(tree).recipe()["fingerprint"]
    path = _class_dir(tree, "amazon", "mug") / "frame_0000.jpg"
    st = path.stat()
    _write_image(path, random.Random(99))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert ImageFolderDataset(tree).recipe()["fingerprint"] != before


def test_a_copied_or_touched_tree_keeps_its_keys(tree: Path, tmp_path: Path) -> None:
    """Keys follow content, not times or places: a fresh checkout on another machine builds nothing new."""
    before = ImageFolderDataset(tree, source="amazon").domain_recipe("webcam")
    copy = shutil.copytree(tree, tmp_path / "elsewhere")
    for path in copy.rglob("*.jpg"):
        os.utime(path, ns=(1, 1))
    assert ImageFolderDataset(copy, source="amazon").domain_recipe("webcam") == before


# --- file types ---


def test_png_and_uppercase_jpg_are_picked_up(tree: Path) -> None:
    rng = random.Random(3)
    cls = _class_dir(tree, "amazon", "bike")
    _write_image(cls / "extra.png", rng, fmt="PNG")
    _write_image(cls / "SHOUT.JPG", rng, fmt="JPEG")
    _write_image(cls / "old.BMP", rng, fmt="BMP")
    ds = ImageFolderDataset(tree, image_size=8, test_fraction=0.5)
    files = ds.split_files("amazon")
    names = {p.name for pairs in files.values() for _, p in pairs}
    assert {"extra.png", "SHOUT.JPG", "old.BMP"} <= names
    splits = ds.build_domain("amazon")
    n_bike = sum(int((s.labels == CLASSES.index("bike")).sum()) for s in splits.values())
    assert n_bike == COUNTS["amazon", "bike"] + 3


def test_grayscale_image_becomes_rgb(tree: Path) -> None:
    p = _class_dir(tree, "amazon", "mug") / "gray.png"
    Image.new("L", (30, 40), 77).save(p)
    splits = ImageFolderDataset(tree, image_size=8).build_domain("amazon")
    assert all(s.images.shape[1] == 3 for s in splits.values())


def test_corrupt_image_names_the_file(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBUSTSPEC_CACHE_DIR", str(tree.parent / "cache"))
    bad = _class_dir(tree, "webcam", "mug") / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg at all")
    with pytest.raises(DataError, match=re.escape(str(bad.resolve())) + ".*not an image"):
        ImageFolderDataset(tree, image_size=8)  # the tree check reads every header (tests/test_tree.py)
    ds = ImageFolderDataset(tree, image_size=8, bad_images="skip")
    assert ds.skipped == [(bad.resolve().relative_to(tree.resolve()).as_posix(), ds.skipped[0][1])]
    ds.build_domain("webcam")


# --- errors ---


def _missing_root(root: Path) -> dict:
    return {"root": root / "nope"}


def _root_is_file(root: Path) -> dict:
    f = root.parent / "file.txt"
    f.write_text("x")
    return {"root": f}


def _no_domains(root: Path) -> dict:
    empty = root.parent / "empty"
    empty.mkdir()
    (empty / "README").write_text("")
    return {"root": empty}


def _unknown_domain(root: Path) -> dict:
    return {"root": root, "domains": ["amazon", "webcams"]}


def _no_class_folders(root: Path) -> dict:
    (root / "clipart").mkdir()
    _write_image(root / "clipart" / "loose.jpg", random.Random(0))
    return {"root": root}


def _empty_class(root: Path) -> dict:
    cls = _class_dir(root, "dslr", "bike")
    for p in cls.iterdir():
        p.unlink()
    (cls / "readme.txt").write_text("")
    return {"root": root}


def _missing_class(root: Path) -> dict:
    shutil.rmtree(_class_dir(root, "webcam", "mug"))
    return {"root": root}


def _extra_class(root: Path) -> dict:
    _write_image(_class_dir(root, "dslr", "zebra") / "z.jpg", random.Random(0))
    return {"root": root}


def _bad_fraction(root: Path) -> dict:
    return {"root": root, "test_fraction": 1.0}


def _zero_fraction(root: Path) -> dict:
    return {"root": root, "test_fraction": 0}


ERROR_CASES = [
    pytest.param(_missing_root, r"root .*nope.* does not exist", id="root-missing"),
    pytest.param(_root_is_file, r"root .*file\.txt.* is not a directory", id="root-not-a-directory"),
    pytest.param(_no_domains, r"no domain folders in .*empty", id="no-domain-folders"),
    pytest.param(
        _unknown_domain,
        r"domain 'webcams' not found .*did you mean 'webcam'.*found: amazon, dslr, webcam",
        id="unknown-domain",
    ),
    pytest.param(_no_class_folders, r"domain 'clipart' has no class folders in .*clipart", id="domain-without-classes"),
    pytest.param(_empty_class, r"domain 'dslr' has class folders with no images .*bike", id="class-without-images"),
    pytest.param(
        _missing_class, r"domain 'webcam' lacks classes \['mug'\] that 'amazon' has", id="class-missing-in-domain"
    ),
    pytest.param(
        _extra_class, r"domain 'dslr' has classes \['zebra'\] that 'amazon' lacks", id="extra-class-in-domain"
    ),
    pytest.param(_bad_fraction, r"test_fraction must be strictly between 0 and 1", id="test-fraction-one"),
    pytest.param(_zero_fraction, r"test_fraction must be strictly between 0 and 1", id="test-fraction-zero"),
]


@pytest.mark.parametrize("layout", ["office31", "flat"])
@pytest.mark.parametrize("make_case, message", ERROR_CASES)
def test_data_errors(tmp_path: Path, layout: str, make_case, message: str) -> None:
    root = make_tree(tmp_path / "data", office=layout == "office31")
    params = make_case(root)
    with pytest.raises(DataError, match=message):
        ImageFolderDataset(**params)


def test_build_unknown_domain_is_a_data_error(tree: Path) -> None:
    ds = ImageFolderDataset(tree, domains=["amazon"])
    with pytest.raises(DataError, match=r"unknown domain 'webcam'.*has: amazon"):
        ds.build_domain("webcam")


# --- registry ---


def test_registered_dataset(tree: Path) -> None:
    assert DATASETS.get("imagefolder") is ImageFolderDataset and ImageFolderDataset.Params is FolderData
    params = FolderData.model_validate(
        {"imagefolder": tree.name, "image-size": 16, "test-fraction": 0.5, "domains": ["dslr"]}
    )
    ds = ImageFolderDataset.from_params(params, tree.parent)  # a relative root is relative to base_dir
    assert isinstance(ds, ImageFolderDataset) and ds.root == tree.resolve()
    assert ds.domains == ["dslr"] and ds.image_size == 16 and ds.test_fraction == 0.5
