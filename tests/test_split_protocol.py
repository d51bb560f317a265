"""The split protocol of image trees (whole targets, held-out source, list files) and the resize modes."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from robustspec.data.imagefolder import ImageFolderDataset
from robustspec.data.pipeline import to_square
from robustspec.data.protocol import _order, split_counts
from robustspec.errors import DataError, SpecErrors
from robustspec.spec.loader import load_suite
from robustspec.store import Store
from robustspec.workspace import Workspace

#: images per class in each domain: unequal, so stratification shows
SIZES = {"amazon": {"bike": 7, "mug": 4}, "webcam": {"bike": 5, "mug": 3}}


def _tree(root: Path) -> Path:
    rng = random.Random(7)
    for domain, classes in SIZES.items():
        for name, count in classes.items():
            folder = root / domain / name
            folder.mkdir(parents=True)
            for k in range(count):
                colour = tuple(rng.randrange(256) for _ in range(3))
                Image.new("RGB", (12, 10), colour).save(folder / f"{k:03d}.png")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return _tree(tmp_path / "tree")


def test_targets_are_scored_whole_by_default(tree: Path) -> None:
    ds = ImageFolderDataset(tree, image_size=8, source="amazon")
    n_webcam = sum(SIZES["webcam"].values())
    assert ds.split_counts("webcam") == {"protocol": "whole", "train": n_webcam, "test": n_webcam}
    splits = ds.build_domain("webcam")
    assert len(splits["test"]) == n_webcam
    # adaptation sees the same images, unlabelled: one tensor, stored once
    assert splits["train"].images.data_ptr() == splits["test"].images.data_ptr()


def test_the_source_holds_out_a_stratified_fraction(tree: Path) -> None:
    ds = ImageFolderDataset(tree, image_size=8, source="amazon", test_fraction=0.3)
    files = ds.split_files("amazon")
    for label, name in enumerate(ds.classes):
        n = SIZES["amazon"][name]
        n_test = sum(1 for lab, _ in files["test"] if lab == label)
        assert n_test == split_counts(n, 0.3)
        assert n_test + sum(1 for lab, _ in files["train"] if lab == label) == n
    assert ds.split_counts("amazon") == {"protocol": "held-out", "train": 8, "test": 3}


def test_a_target_can_be_held_out_and_the_source_cannot_be_whole(tree: Path) -> None:
    ds = ImageFolderDataset(tree, image_size=8, source="amazon", splits={"webcam": "held-out"})
    assert ds.split_counts("webcam")["protocol"] == "held-out"
    with pytest.raises(DataError, match="cannot be split 'whole'") as info:
        ImageFolderDataset(tree, image_size=8, source="amazon", splits={"amazon": "whole"})
    assert info.value.field == ("splits", "amazon")


def test_a_targets_split_is_not_the_sources_data(tree: Path, tmp_path: Path) -> None:
    """Changing how a target is split changes that domain's key only: the model is not retrained."""
    keys = []
    for split in ("whole", "held-out"):
        suite = tmp_path / f"{split}.yaml"
        suite.write_text(
            f"data: {{imagefolder: {tree}, image-size: 16, splits: {{webcam: {split}}}}}\n"
            "source: amazon\nmodels: [{name: m, arch: resnet10-mini}]\nexpect:\n  - source-accuracy: {min: 0.1}\n"
        )
        loaded = load_suite(suite)
        ws = Workspace(Store(tmp_path / "store"))
        keys.append((ws.data_key(loaded.suite, "amazon"), ws.data_key(loaded.suite, "webcam")))
    assert keys[0][0] == keys[1][0]
    assert keys[0][1] != keys[1][1]


def _lists(tmp_path: Path, train: list[str], test: list[str]) -> tuple[Path, Path]:
    a, b = tmp_path / "train.txt", tmp_path / "test.txt"
    a.write_text("\n".join(train) + "\n")
    b.write_text("# published split\n" + "\n".join(test) + "\n")
    return a, b


def test_list_files_decide_the_split(tree: Path, tmp_path: Path) -> None:
    # relative to the domain's class folders, to the root (with a label, as published lists have it)
    train, test = _lists(
        tmp_path, ["bike/000.png", "webcam/bike/001.png 0", "mug/000.png"], ["bike/002.png", "mug/001.png 1"]
    )
    ds = ImageFolderDataset(
        tree, image_size=8, source="amazon", splits={"webcam": {"train": str(train), "test": str(test)}}
    )
    files = ds.split_files("webcam")
    assert [p.relative_to(tree / "webcam").as_posix() for _, p in files["train"]] == [
        "bike/000.png",
        "bike/001.png",
        "mug/000.png",
    ]
    assert [(lab, p.name) for lab, p in files["test"]] == [(0, "002.png"), (1, "001.png")]
    assert ds.split_counts("webcam") == {"protocol": "lists", "train": 3, "test": 2}


def test_a_list_naming_a_missing_image_is_reported_at_its_field(tree: Path, tmp_path: Path) -> None:
    train, test = _lists(tmp_path, ["bike/000.png"], ["bike/001.png", "bike/999.png", "mug/nope.png"])
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        textwrap.dedent(
            f"""\
            data:
              imagefolder: {tree}
              image-size: 16
              splits:
                webcam: {{train: {train.name}, test: {test.name}}}
            source: amazon
            models: [{{name: m, arch: resnet10-mini}}]
            expect:
              - source-accuracy: {{min: 0.1}}
            """
        )
    )
    with pytest.raises(SpecErrors) as info:
        load_suite(suite)
    (error,) = info.value.errors
    line = suite.read_text().splitlines()[error.line - 1]
    assert error.line == 5 and line[error.col - 1 :].startswith("test"), error  # the test list
    assert "test.txt:3: 'bike/999.png'" in error.message and "test.txt:4: 'mug/nope.png'" in error.message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param("resize: stretch", "'shorter-side', 'squash' or 'pad'", id="unknown-resize"),
        pytest.param("splits: {webcam: {test-fraction: -0.2}}", "greater than 0", id="negative-fraction"),
        pytest.param("splits: {webcam: all}", "whole", id="unknown-protocol"),
        pytest.param("splits: {dslr: whole}", "not a domain of this dataset", id="unknown-domain"),
    ],
)
def test_bad_split_and_resize_input_is_located(tree: Path, tmp_path: Path, data: str, fragment: str) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"data:\n  imagefolder: {tree}\n  {data}\nsource: amazon\nmodels: [{{name: m, arch: resnet10-mini}}]\n"
        "expect:\n  - source-accuracy: {min: 0.1}\n"
    )
    with pytest.raises(SpecErrors) as info:
        load_suite(suite)
    (error,) = info.value.errors
    assert error.line == 3 and error.col > 2, error
    assert fragment in error.message


def _stripes(width: int, height: int) -> torch.Tensor:
    """Red left quarter, green middle half, blue right quarter."""
    img = torch.zeros(3, height, width, dtype=torch.uint8)
    q = width // 4
    img[0, :, :q] = 255
    img[1, :, q : width - q] = 255
    img[2, :, width - q :] = 255
    return img


def test_shorter_side_scales_then_crops_the_centre() -> None:
    out = to_square(_stripes(40, 20), 16, "shorter-side")  # 40x20 -> 32x16 -> the middle 16 columns
    assert out.shape == (3, 16, 16)
    assert (out[1] > 200).all() and (out[0] < 50).all() and (out[2] < 50).all()


def test_squash_keeps_everything_and_pad_letterboxes() -> None:
    squashed = to_square(_stripes(40, 20), 16, "squash")
    assert squashed[0, 8, 0] > 200 and squashed[2, 8, 15] > 200  # both edges are still there
    padded = to_square(_stripes(40, 20), 16, "pad")  # 40x20 -> 16x8, centred: 4 black rows above and below
    assert padded.shape == (3, 16, 16)
    assert padded[:, :4].max() == 0 and padded[:, 12:].max() == 0
    assert padded[0, 8, 0] > 200 and padded[1, 8, 8] > 200


def test_resize_is_part_of_the_data_key(tree: Path) -> None:
    a = ImageFolderDataset(tree, image_size=8, source="amazon").domain_recipe("amazon")
    b = ImageFolderDataset(tree, image_size=8, source="amazon", resize="squash").domain_recipe("amazon")
    assert a != b and a["resize"] == "shorter-side"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text("abc/", min_size=1, max_size=6), min_size=1, max_size=20, unique=True), st.integers(0, 9))
def test_the_order_is_a_seeded_permutation(names: list[str], seed: int) -> None:
    order = _order(seed, "bike", names)
    assert sorted(order) == list(range(len(names)))
    assert order == _order(seed, "bike", names)
    # a file added to the class leaves the others in the same relative order
    grown = _order(seed, "bike", [*names, "zz-new"])
    assert [i for i in grown if i < len(names)] == order
