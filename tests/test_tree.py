"""Checking an image tree at collection (robustspec.data.tree): every bad file at once, links, the cache.

Trees are generated under tmp_path with tiny images (8-16 px); every image is distinct (the same bytes in
a domain's train and test splits are an error). ROBUSTSPEC_CACHE_DIR points into tmp_path.
"""

from __future__ import annotations

import builtins
import io
import itertools
import os
import re
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from robustspec import progress
from robustspec.data import tree as tree_mod
from robustspec.data.imagefolder import FolderData, ImageFolderDataset
from robustspec.data.tree import cache_path, check_file, check_train_test
from robustspec.errors import DataError

_colours = itertools.count(1)


def _unique_colour() -> tuple[int, int, int]:
    n = next(_colours)
    return (n * 37 % 256, n * 91 % 256, n // 7 % 256)


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (12, 10), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    colour: object = _unique_colour()
    if mode in ("L", "P"):
        colour = colour[0]  # type: ignore[index]
    elif mode in ("RGBA", "CMYK"):
        colour = (*colour, 200)  # type: ignore[misc]
    Image.new(mode, size, colour).save(buf, format=fmt)  # type: ignore[arg-type]
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_tree(root: Path, domains=("a", "b"), classes=("x", "y"), per_class: int = 3) -> Path:
    """``<root>/<domain>/<class>/<k>.jpg``, every image distinct."""
    for d in domains:
        for c in classes:
            for k in range(per_class):
                write(root / d / c / f"{k}.jpg", image_bytes("JPEG"))
    return root


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("ROBUSTSPEC_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data")


def _count(ds: ImageFolderDataset) -> dict[str, int]:
    return {d: sum(len(p) for p in ds._files[d].values()) for d in ds.domains}


# --------------------------------------------------------------------------- one file


def _cut(data: bytes) -> bytes:
    """The file without its last 8 bytes: the end is gone, the header (most of a tiny image) is not."""
    return data[:-8]


GOOD = {
    "jpeg": lambda: image_bytes("JPEG"),
    "jpeg-gray": lambda: image_bytes("JPEG", mode="L"),
    "jpeg-cmyk": lambda: image_bytes("JPEG", mode="CMYK"),
    "jpeg-zero-padding": lambda: image_bytes("JPEG") + bytes(100),
    "jpeg-data-after-the-image": lambda: image_bytes("JPEG") + b"SEFH trailer written by a phone",
    "png": lambda: image_bytes("PNG"),
    "png-rgba": lambda: image_bytes("PNG", mode="RGBA"),
    "png-palette": lambda: image_bytes("PNG", mode="P"),
    "png-data-after-iend": lambda: image_bytes("PNG") + b"\x00\x00junk",
    "bmp": lambda: image_bytes("BMP"),
    "webp": lambda: image_bytes("WEBP"),
    "gif": lambda: image_bytes("GIF"),
    "tiff": lambda: image_bytes("TIFF"),
}

BAD = {
    "zero-byte": (lambda: b"", "zero-byte file"),
    "text": (lambda: b"this is not an image at all", "not an image"),
    "jpeg-cut": (lambda: _cut(image_bytes("JPEG", size=(16, 16))), "truncated JPEG"),
    "jpeg-header-only": (lambda: image_bytes("JPEG")[:40], "not an image"),
    "png-cut": (lambda: _cut(image_bytes("PNG")), "truncated PNG"),
    "png-signature-only": (lambda: image_bytes("PNG")[:8], "not an image"),
    "bmp-cut": (lambda: _cut(image_bytes("BMP", size=(16, 16))), "truncated BMP"),
    "webp-cut": (lambda: _cut(image_bytes("WEBP", size=(16, 16))), "truncated WebP"),
    "gif-cut": (lambda: image_bytes("GIF")[:-1], "truncated GIF"),
}


@pytest.mark.parametrize("make", GOOD.values(), ids=GOOD.keys())
def test_good_files_pass(tmp_path: Path, make) -> None:
    path = write(tmp_path / "f.img", make())
    reason, digest, cacheable = check_file(path, path.stat().st_size)
    assert reason is None and cacheable
    assert re.fullmatch(r"[0-9a-f]{64}", digest or "")


@pytest.mark.parametrize("make, expect", BAD.values(), ids=BAD.keys())
def test_bad_files_are_named_with_their_reason(tmp_path: Path, make, expect: str) -> None:
    path = write(tmp_path / "f.img", make())
    reason, _, cacheable = check_file(path, path.stat().st_size)
    assert reason is not None and reason.startswith(expect), reason
    assert cacheable


# --------------------------------------------------------------------------- all problems at once


def _bad_tree(root: Path) -> dict[str, str]:
    """Three bad files in two domains and an empty class folder ``z`` in both; returns {relative path: reason}."""
    write(root / "a" / "x" / "zero.jpg", b"")
    write(root / "a" / "y" / "cut.jpg", _cut(image_bytes("JPEG", size=(16, 16))))
    write(root / "b" / "x" / "fake.png", b"<html>not a png</html>")
    (root / "a" / "z").mkdir()
    (root / "b" / "z").mkdir()
    (root / "b" / "z" / "notes.txt").write_text("no image here")
    return {"a/x/zero.jpg": "zero-byte", "a/y/cut.jpg": "truncated JPEG", "b/x/fake.png": "not an image"}


def test_fail_lists_every_bad_file_and_empty_class_folder_at_once(root: Path) -> None:
    bad = _bad_tree(root)
    with pytest.raises(DataError) as info:
        ImageFolderDataset(root, image_size=16)
    message = str(info.value)
    assert "5 problem(s)" in message
    for rel, reason in bad.items():
        assert re.search(re.escape(repr(str(root.resolve() / rel))) + r": " + reason, message), message
    for domain in ("a", "b"):
        assert re.search(rf"domain '{domain}' has class folders with no images .*{domain}/z", message), message
    assert "bad-images: skip" in message


def test_skip_leaves_the_bad_files_out_and_says_which(root: Path) -> None:
    bad = _bad_tree(root)
    # Empty class folders are still an error under skip (a class without images is not a bad image) ...
    with pytest.raises(DataError) as info:
        ImageFolderDataset(root, image_size=16, bad_images="skip")
    message = str(info.value)
    assert "2 problem(s)" in message and "a/z" in message and "b/z" in message
    assert not any(rel in message for rel in bad)
    # ... so give them images: then the tree opens, without the bad files.
    for domain in ("a", "b"):
        for k in range(2):
            write(root / domain / "z" / f"{k}.png", image_bytes("PNG"))
    lines: list[str] = []
    with progress.sink(lines.append):
        ds = ImageFolderDataset(root, image_size=16, bad_images="skip", workers=0)
    assert [rel for rel, _ in ds.skipped] == sorted(bad)
    assert all(reason.startswith(bad[rel]) for rel, reason in ds.skipped)
    assert _count(ds) == {"a": 3 + 3 + 2, "b": 3 + 3 + 2}
    assert [line for line in lines if "left out 3 bad file(s)" in line]
    recipe = ds.recipe()
    assert recipe["skipped"] == {"count": 3, "files": ds.skipped}
    assert ds.domain_recipe("b")["skipped"] == {"count": 1, "files": [s for s in ds.skipped if s[0].startswith("b/")]}
    splits = ds.build_domain("a")
    assert len(splits["train"]) + len(splits["test"]) == 8
    # The data key follows the skipped set: one bad file fixed, a different recipe.
    write(root / "a" / "x" / "zero.jpg", image_bytes("JPEG"))
    again = ImageFolderDataset(root, image_size=16, bad_images="skip")
    assert again.recipe()["skipped"]["count"] == 2 and again.recipe() != recipe


def test_a_class_emptied_by_skipping_is_an_error(root: Path) -> None:
    for k in range(3):
        write(root / "b" / "y" / f"{k}.jpg", b"")
    with pytest.raises(DataError, match=r"domain 'b' has class folders with no images left once their 3 bad file"):
        ImageFolderDataset(root, bad_images="skip")


def test_clean_tree_recipe_has_no_skipped_key(root: Path) -> None:
    ds = ImageFolderDataset(root, image_size=16, bad_images="skip")
    assert ds.skipped == [] and "skipped" not in ds.recipe() and "skipped" not in ds.domain_recipe("a")


def test_many_problems_are_capped(root: Path) -> None:
    for k in range(60):
        write(root / "a" / "x" / f"bad{k:02d}.jpg", b"")
    with pytest.raises(DataError) as info:
        ImageFolderDataset(root)
    assert "60 problem(s)" in str(info.value) and "and 10 more" in str(info.value)
    assert str(info.value).count("zero-byte file") == 50


# --------------------------------------------------------------------------- links


def test_symlink_loops_are_walked_once(root: Path) -> None:
    before = _count(ImageFolderDataset(root))
    x = root / "a" / "x"
    (x / "loop").symlink_to(".")
    (x / "up").symlink_to("..")
    (x / "top").symlink_to(root.resolve(), target_is_directory=True)  # the root: it holds every domain
    (x / "sub").mkdir()
    write(x / "sub" / "deep.jpg", image_bytes("JPEG"))
    (x / "sub" / "back").symlink_to("../..", target_is_directory=True)
    (root / "a" / "y" / "twin.jpg").symlink_to("../x/0.jpg")  # the same file through a link: counted once
    (root / "b" / "y" / "self").symlink_to("self")  # a link to itself, not named like an image: ignored
    ds = ImageFolderDataset(root, image_size=8)
    assert _count(ds) == {"a": before["a"] + 1, "b": before["b"]}
    names = [p.relative_to(root.resolve()).as_posix() for p in ds._files["a"]["x"]]
    assert names == ["a/x/0.jpg", "a/x/1.jpg", "a/x/2.jpg", "a/x/sub/deep.jpg"]
    for domain in ds.domains:
        files = ds.split_files(domain)
        assert not {p for _, p in files["train"]} & {p for _, p in files["test"]}


def test_links_inside_the_root_are_followed(root: Path) -> None:
    (root / "a" / "x" / "more").symlink_to(root / "b" / "x", target_is_directory=True)
    (root / "a" / "y" / "one.jpg").symlink_to(root / "b" / "y" / "0.jpg")
    ds = ImageFolderDataset(root, image_size=8)
    assert _count(ds) == {"a": 6 + 3 + 1, "b": 6}  # another domain's files, through links: that domain keeps them


def test_symlinks_to_outside_the_root_are_problems_or_skipped(root: Path, tmp_path: Path) -> None:
    outside = make_tree(tmp_path / "elsewhere", domains=("o",), classes=("x",))
    (root / "a" / "x" / "ext.jpg").symlink_to(outside / "o" / "x" / "0.jpg")
    (root / "b" / "y" / "extdir").symlink_to(outside / "o" / "x", target_is_directory=True)
    (root / "b" / "y" / "gone.jpg").symlink_to(tmp_path / "no-such-file.jpg")
    (root / "b" / "y" / "notes.txt").symlink_to(outside / "o" / "x" / "0.jpg")  # not an image name: ignored
    with pytest.raises(DataError) as info:
        ImageFolderDataset(root)
    message = str(info.value)
    assert "3 problem(s)" in message
    assert re.search(r"a/x/ext\.jpg': symbolic link to a file outside the root \(.*elsewhere", message), message
    assert re.search(r"b/y/extdir': symbolic link to a folder outside the root", message), message
    assert re.search(r"b/y/gone\.jpg': broken symbolic link", message), message
    ds = ImageFolderDataset(root, bad_images="skip")
    assert [rel for rel, _ in ds.skipped] == ["a/x/ext.jpg", "b/y/extdir", "b/y/gone.jpg"]
    assert _count(ds) == {"a": 6, "b": 6}


def test_a_domain_folder_linked_from_elsewhere_is_read(root: Path, tmp_path: Path) -> None:
    elsewhere = make_tree(tmp_path / "disk2", domains=("c",))
    (elsewhere / "c" / "x" / "alias.jpg").symlink_to("0.jpg")  # a link inside the linked domain: followed
    (elsewhere / "c" / "y" / "more").symlink_to("../x", target_is_directory=True)  # loop-free, same domain
    (root / "c").symlink_to(elsewhere / "c", target_is_directory=True)
    ds = ImageFolderDataset(root)
    assert ds.domains == ["a", "b", "c"] and _count(ds) == {"a": 6, "b": 6, "c": 6}


# --------------------------------------------------------------------------- train/test duplicates


def test_the_same_content_in_train_and_test_is_an_error(root: Path) -> None:
    files = ImageFolderDataset(root).split_files("a")
    train = next(p for _, p in files["train"])
    test = next(p for _, p in files["test"])
    test.write_bytes(train.read_bytes())
    with pytest.raises(DataError) as info:
        ImageFolderDataset(root)
    message = str(info.value)
    assert "1 pair(s)" in message and "same content (SHA-256)" in message
    assert f"domain 'a': {str(train)!r} (train) = {str(test)!r} (test)" in message


def test_duplicates_that_are_no_leak_are_allowed(root: Path) -> None:
    # the source's train image copied into another domain: a different domain, no error
    a_train = next(p for _, p in ImageFolderDataset(root).split_files("a")["train"])
    write(root / "b" / "x" / "from-a.jpg", a_train.read_bytes())
    ImageFolderDataset(root)
    # a target scored whole: its train split is its test split by design, so it is not compared
    files = ImageFolderDataset(root).split_files("b")
    next(p for _, p in files["test"]).write_bytes(next(p for _, p in files["train"]).read_bytes())
    with pytest.raises(DataError, match="domain 'b'"):
        ImageFolderDataset(root)  # every domain held out
    ds = ImageFolderDataset(root, source="a")
    assert ds.protocol("b") == "whole"


def test_duplicates_inside_one_split_are_allowed(tmp_path: Path) -> None:
    one, two, three, four = (tmp_path / f"{k}.jpg" for k in range(4))
    digests = {one: "d1", two: "d1", three: "d2", four: "d1"}
    check_train_test(tmp_path, {"a": ([one, two], [three])}, digests)
    check_train_test(tmp_path, {"a": ([one, two, four], [one, two, four])}, digests)
    with pytest.raises(DataError, match=r"2 pair\(s\)"):
        check_train_test(tmp_path, {"a": ([one, two], [three, four])}, digests)


# --------------------------------------------------------------------------- the cache


def _png_with_text(base: bytes, text: bytes) -> bytes:
    """``base`` (a PNG) with a tEXt chunk before IEND: distinct bytes, one encode for all."""
    data = b"note\x00" + text
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return base[:-12] + chunk + base[-12:]


class _Opens:
    """Counts every open of a path below ``root``: builtins.open (PIL's, ours), io.open (pathlib's) and os.open."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = str(root.resolve())
        self.paths: list[str] = []
        real_open, real_os_open = builtins.open, os.open

        def counted_open(file, *args, **kwargs):
            self._note(file)
            return real_open(file, *args, **kwargs)

        def counted_os_open(path, *args, **kwargs):
            self._note(path)
            return real_os_open(path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", counted_open)
        monkeypatch.setattr(io, "open", counted_open)
        monkeypatch.setattr(os, "open", counted_os_open)

    def _note(self, file: object) -> None:
        if isinstance(file, (str, bytes, os.PathLike)):
            path = os.fsdecode(os.fspath(file))
            if os.path.realpath(path).startswith(self.root + os.sep):
                self.paths.append(path)


def test_a_warm_check_of_5000_images_reads_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "big"
    base = image_bytes("PNG", size=(8, 8))
    for d in ("a", "b"):
        for c in ("x", "y"):
            folder = root / d / c
            folder.mkdir(parents=True)
            for k in range(1250):
                (folder / f"{k:04d}.png").write_bytes(_png_with_text(base, f"{d}/{c}/{k}".encode()))
    t0 = time.perf_counter()
    cold = ImageFolderDataset(root, image_size=16)
    cold_s = time.perf_counter() - t0
    assert cache_path(cold.root).is_file()

    # Besides counting opens: every 10th image replaced by bytes of its size that are no image, its mtime
    # put back. A check that read one of them again would report it, so the warm run must not.
    for path in [p for paths in cold._files.values() for ps in paths.values() for p in ps][::10]:
        st = path.stat()
        path.write_bytes(b"\x00" * st.st_size)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    opens = _Opens(root, monkeypatch)
    t0 = time.perf_counter()
    warm = ImageFolderDataset(root, image_size=16)
    warm_s = time.perf_counter() - t0
    assert opens.paths == []
    assert warm.recipe() == cold.recipe() and warm.split_files("a") == cold.split_files("a")
    print(f"\n5000 images: cold check {cold_s:.2f}s, warm {warm_s:.2f}s")
    assert warm_s < cold_s

    # A changed file is the only one read again (and, being zeros now, reported).
    changed = root / "a" / "x" / "0007.png"
    changed.write_bytes(b"\x00" * 10)
    del opens.paths[:]
    with pytest.raises(DataError, match=r"(?s)1 problem\(s\).*a/x/0007\.png': not an image"):
        ImageFolderDataset(root, image_size=16)
    assert opens.paths == [str(changed.resolve())]


def test_only_changed_and_new_files_are_read_again(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ImageFolderDataset(root)
    edited = root / "a" / "x" / "1.jpg"
    edited.write_bytes(image_bytes("JPEG", size=(9, 9)))
    new = write(root / "b" / "y" / "new.jpg", image_bytes("JPEG"))
    opens = _Opens(root, monkeypatch)
    ImageFolderDataset(root)
    assert sorted(opens.paths) == sorted([str(edited.resolve()), str(new.resolve())])


def test_a_subset_of_domains_keeps_the_others_cached(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ImageFolderDataset(root)
    ImageFolderDataset(root, domains=["a"])
    opens = _Opens(root, monkeypatch)
    ImageFolderDataset(root)
    assert opens.paths == []


@pytest.mark.parametrize("how", ["unwritable", "corrupt"])
def test_a_bad_cache_is_ignored(root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "unwritable":
        cache.write_text("a file where the cache folder should be")
    else:
        ImageFolderDataset(root)
        cache_path(root.resolve()).write_text("{not json")
    ds = ImageFolderDataset(root)
    assert _count(ds) == {"a": 6, "b": 6}
    if how == "unwritable":
        assert cache.is_file()
    else:
        opens = _Opens(root, monkeypatch)
        ImageFolderDataset(root)
        assert opens.paths == []  # rewritten


def test_cache_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ROBUSTSPEC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tree_mod.cache_dir() == tmp_path / "xdg" / "robustspec"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tree_mod.cache_dir() == tmp_path / "home" / ".cache" / "robustspec"


def test_a_slow_check_reports_progress(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree_mod, "PROGRESS_EVERY", 4)
    monkeypatch.setattr(tree_mod, "PROGRESS_AFTER_S", 0.0)
    lines: list[str] = []
    with progress.sink(lines.append):
        ImageFolderDataset(root)
    assert [ln for ln in lines if re.search(r"checked 8/12 image files", ln)]
    assert [ln for ln in lines if re.search(r"checked 12 image files .*\(12 read, 0 from the cache\)", ln)]


# --------------------------------------------------------------------------- the YAML parameter


def test_bad_images_in_yaml(root: Path) -> None:
    params = FolderData.model_validate({"imagefolder": str(root), "bad-images": "skip"})
    assert params.bad_images == "skip"
    assert ImageFolderDataset.from_params(params).bad_images == "skip"
    assert FolderData.model_validate({"imagefolder": str(root)}).bad_images == "fail"
    with pytest.raises(DataError, match="bad_images must be 'fail' or 'skip'"):
        ImageFolderDataset(root, bad_images="maybe")


def test_collection_reports_each_problem_on_its_own(root: Path, tmp_path: Path) -> None:
    """At collection every problem is its own file:line:col message, so the list is never cut."""
    from robustspec.errors import SpecErrors
    from robustspec.spec.loader import load_suite

    long = root / "a" / "x" / ("deep" * 20)
    for k in range(60):
        write(long / f"bad{k:02d}.jpg", b"")
    suite = write(
        tmp_path / "suite.yaml",
        b"data: {imagefolder: data}\nsource: a\nmodels: [resnet10-mini]\nexpect:\n  - source-accuracy: {min: 0.5}\n",
    )
    with pytest.raises(SpecErrors) as info:
        load_suite(suite)
    messages = [e.message for e in info.value.errors if (e.line, e.col) == (1, 7)]
    assert len([m for m in messages if m.endswith("': zero-byte file")]) == 50
    assert "and 10 more problem(s), not listed" in messages
    assert any(m.startswith("imagefolder: 60 problem(s) in the image tree") for m in messages)
    assert not any(m.endswith(" characters)") for m in messages)  # none clipped
