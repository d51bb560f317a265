"""Checking an image tree at collection: every bad image file and every empty class folder, at once.

:func:`scan_domain` lists one domain's image files; :func:`check_tree` checks every file of every domain
and either raises one :class:`~robustspec.errors.DataError` listing every problem with its path
(``bad-images: fail``, the default) or leaves the bad files out and says which (``bad-images: skip``);
:func:`check_train_test` finds files of the same content in a domain's train and test splits.

**Walking a class folder.** Names starting with ``.`` are ignored (``.DS_Store``, ``.cache/``), and so are
files whose names do not end in an image extension. Below a class folder, at any depth, the real
(non-link) folders and files of every class of the domain are listed first, then the symbolic links,
in order of path:

- a link is followed only when its target is inside the root (or inside the domain's or a class's own
  folder, where that folder is itself a link); a link to a folder or an image outside is not followed
  and is a problem (``symbolic link to outside the root``): with ``skip`` it is left out and listed among
  the skipped;
- a link to a folder already walked (``loop -> .``, ``up -> ..``, a second link to one folder), to the
  domain's folder or to the root is not followed, and a file reached a second time (through a link, or
  a hard link) counts once, where it was found first: its real place before any link;
- a broken link named like an image, an image name that is not a regular file (a FIFO) and a folder
  that cannot be listed are problems.

**What is checked, per image file** (the first problem found is its reason):

1. ``zero-byte file``: its size (stat) is 0; the file is not opened.
2. ``cannot open``: opening it for reading fails.
3. ``not an image``: ``PIL.Image.open`` recognises no format in its header, the header cannot be parsed,
   or it says the image has no pixels. Only the header is read; no pixel is decoded.
4. ``truncated``, from the header and the last 64 KiB of the file:

   - JPEG: after trailing padding (bytes ``00``, ``FF``, whitespace) the file ends with the end-of-image
     marker ``FF D9``, or an ``FF D9`` follows the start of the first scan (data appended after the image);
   - PNG: the tail holds the ``IEND`` chunk (``00 00 00 00 IEND AE 42 60 82``); what follows it is ignored;
   - WebP: the size in its RIFF header, plus 8, is at most the file's size (checked before PIL's reader,
     which reads a WebP file whole);
   - BMP without compression: the pixel data's offset plus row stride times height is at most the file's
     size (a run-length compressed BMP: its header only);
   - GIF: it ends with the trailer ``3B`` (after trailing zero bytes);
   - any other format PIL recognises (TIFF, ...): its header only.

5. In the same open, the SHA-256 of the whole file, for :func:`check_train_test`.

So a file cut short is found, but damage inside the compressed data of a file that still ends well
is not (only decoding finds that, when the domain is built).

**The cache.** Verdicts and digests are kept in one JSON file per tree root,
``<cache dir>/trees/<sha256 of the root's path>.json``, where the cache dir is ``$ROBUSTSPEC_CACHE_DIR``,
else ``$XDG_CACHE_HOME/robustspec``, else ``~/.cache/robustspec``. Each file's entry is keyed by its
path relative to the root and holds its size and modification time (ns): a file whose size or mtime
changed, or that is new, is checked again; the others are not opened. (A change that keeps both the
size and the mtime, which ordinary writes do not, goes unnoticed.) Failures to open are not cached (a
permission fix changes no mtime). The file is written through a temporary file and ``os.replace``; a
cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat as stat_mod
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import DataError
from ..progress import Timer, report

__all__ = [
    "BadImages",
    "CACHE_ENV",
    "CheckedTree",
    "DomainScan",
    "Problem",
    "tree_problems",
    "cache_dir",
    "cache_path",
    "check_file",
    "check_train_test",
    "check_tree",
    "scan_domain",
]

log = logging.getLogger("robustspec.data")

BadImages = Literal["fail", "skip"]

#: The environment variable naming the cache directory.
CACHE_ENV = "ROBUSTSPEC_CACHE_DIR"
#: Bumped whenever what :func:`check_file` checks changes: older cache files are then ignored.
CHECK_VERSION = 1
#: How much of a file's end the truncation checks look at.
TAIL_BYTES = 64 * 1024
#: At most this many problems are listed in one error; the rest are counted.
MAX_LISTED = 50
#: A progress line every this many files, once a check has taken PROGRESS_AFTER_S seconds.
PROGRESS_EVERY = 500
PROGRESS_AFTER_S = 2.0

_JPEG_PADDING = b"\x00\xff \t\r\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def tree_problems(headline: str, lines: Sequence[str]) -> DataError:
    """One DataError listing many problems: ``str()`` is the headline and a line per problem (the first
    :data:`MAX_LISTED`); its ``messages`` are the headline and each problem apart (the suite loader reports
    each at the ``data:`` line, so a long list is not cut by the length limit of one message)."""
    shown = list(lines[:MAX_LISTED])
    more = len(lines) - len(shown)
    return DataError(
        headline + ":" + "".join(f"\n  {line}" for line in shown) + (f"\n  and {more} more" if more else ""),
        messages=[headline, *shown] + ([f"and {more} more problem(s), not listed"] if more else []),
    )


@dataclass(frozen=True)
class Problem:
    """A bad file or link (``path`` as reached from the root) and why."""

    path: Path
    reason: str


@dataclass
class DomainScan:
    """One domain's image files, per class (sorted by path relative to the class folder), and what the
    walk found wrong."""

    domain: str
    class_root: Path
    files: dict[str, list[Path]]
    #: ``(size, mtime_ns, path relative to the root)`` of every listed file, from the walk's stat.
    stats: dict[Path, tuple[int, int, str]] = field(default_factory=dict)
    #: Links to outside the root, broken links, non-regular files, folders that cannot be listed.
    problems: list[Problem] = field(default_factory=list)
    #: Folders and files reached again through a link (or a hard link): walked or counted once.
    aliases: list[Path] = field(default_factory=list)
    #: The image extensions the walk looked for (for messages).
    extensions: tuple[str, ...] = ()


@dataclass
class CheckedTree:
    """What :func:`check_tree` found: the good files, what was left out, and each good file's digest."""

    #: domain -> class -> good image files, sorted as in :class:`DomainScan`.
    files: dict[str, dict[str, list[Path]]]
    #: ``(path relative to the root, reason)`` of every file or link left out (``skip``), sorted.
    skipped: list[tuple[str, str]]
    #: SHA-256 hex of every good file.
    digests: dict[Path, str]
    #: Files opened by this check, and files whose verdict came from the cache.
    read: int = 0
    cached: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------- walking


class _Walker:
    def __init__(self, root: Path, class_root: Path, class_names: Sequence[str], extensions: tuple[str, ...]):
        self.extensions = extensions
        folders = [class_root / name for name in class_names]
        self.allowed = [_with_sep(os.path.realpath(p)) for p in (root, class_root, *folders)]
        # The root and the domain's own folders are never walked through a link (``up -> ..``).
        self.visited: set[str] = {os.path.realpath(p) for p in (root, class_root, class_root.parent)}
        self.seen: set[tuple[int, int]] = set()
        self.found: dict[str, list[tuple[str, Path]]] = {name: [] for name in class_names}
        self.stats: dict[Path, tuple[int, int, str]] = {}
        self.problems: list[Problem] = []
        self.aliases: list[Path] = []
        # (class index, class, link, its path relative to the class folder)
        self.pending: list[tuple[int, str, Path, str]] = []
        self.index = {name: i for i, name in enumerate(class_names)}
        # Relative paths are joined as strings: pathlib's relative_to costs more than the whole walk.
        self.prefix = {name: (class_root / name).relative_to(root).as_posix() + "/" for name in class_names}

    def is_image(self, name: str) -> bool:
        return name.lower().endswith(self.extensions)

    def inside(self, real: str) -> bool:
        return any(_with_sep(real).startswith(prefix) for prefix in self.allowed)

    def walk(self, cls: str, start: Path, start_rel: str) -> None:
        """List ``start`` (a folder of class ``cls``, at ``start_rel`` below the class folder: ``""`` for the
        class folder itself) without following links; links are queued for :meth:`follow`."""
        stack = [(start, start_rel)]
        while stack:
            here, here_rel = stack.pop()
            try:
                with os.scandir(here) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self.problems.append(Problem(here, f"cannot list the folder: {exc.strerror or exc}"))
                continue
            subfolders: list[tuple[Path, str]] = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                path = here / entry.name
                rel = f"{here_rel}/{entry.name}" if here_rel else entry.name
                try:
                    if entry.is_symlink():
                        self.pending.append((self.index[cls], cls, path, rel))
                    elif entry.is_dir(follow_symlinks=False):
                        real = os.path.realpath(path)
                        if real in self.visited:
                            self.aliases.append(path)
                        else:
                            self.visited.add(real)
                            subfolders.append((path, rel))
                    elif self.is_image(entry.name):
                        st = entry.stat(follow_symlinks=False)
                        if stat_mod.S_ISREG(st.st_mode):
                            self.add(cls, path, rel, st)
                        else:
                            self.problems.append(Problem(path, "not a regular file"))
                except OSError as exc:
                    self.problems.append(Problem(path, f"cannot stat: {exc.strerror or exc}"))
            stack.extend(reversed(subfolders))

    def add(self, cls: str, path: Path, rel: str, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_ino:  # some file systems report 0 for every file: no identity to compare then
            if key in self.seen:
                self.aliases.append(path)
                return
            self.seen.add(key)
        self.found[cls].append((rel, path))
        self.stats[path] = (st.st_size, st.st_mtime_ns, self.prefix[cls] + rel)

    def follow(self) -> None:
        """Follow the queued links in order (of class, then path); links found below them are queued too."""
        self.pending.sort(key=lambda item: (item[0], item[3]))
        done = 0
        while done < len(self.pending):
            _, cls, link, rel = self.pending[done]
            done += 1
            try:
                st = os.stat(link)
            except OSError as exc:
                if self.is_image(link.name):
                    self.problems.append(Problem(link, f"broken symbolic link ({exc.strerror or exc})"))
                continue
            real = os.path.realpath(link)
            is_dir = stat_mod.S_ISDIR(st.st_mode)
            if not is_dir and not self.is_image(link.name):
                continue
            if not self.inside(real):
                what = "a folder" if is_dir else "a file"
                self.problems.append(Problem(link, f"symbolic link to {what} outside the root ({real}), not followed"))
            elif is_dir:
                if real in self.visited:
                    self.aliases.append(link)
                else:
                    self.visited.add(real)
                    self.walk(cls, link, rel)
            elif stat_mod.S_ISREG(st.st_mode):
                self.add(cls, link, rel, st)
            else:
                self.problems.append(Problem(link, "not a regular file"))


def _with_sep(path: str) -> str:
    return path if path.endswith(os.sep) else path + os.sep


def scan_domain(
    domain: str, root: Path, class_root: Path, class_names: Sequence[str], *, extensions: tuple[str, ...]
) -> DomainScan:
    """Every image file below each of ``class_names`` (folders of ``class_root``, in ``root``), as the
    module docstring says: links followed inside the root only, each folder walked and each file counted
    once. Reads no file."""
    walker = _Walker(root, class_root, class_names, tuple(e.lower() for e in extensions))
    for name in class_names:
        folder = class_root / name
        real = os.path.realpath(folder)
        if real in walker.visited:  # two class folders that are one folder
            walker.aliases.append(folder)
            continue
        walker.visited.add(real)
        walker.walk(name, folder, "")
    walker.follow()
    files = {
        name: [path for _, path in sorted(found, key=lambda item: item[0])] for name, found in walker.found.items()
    }
    if walker.aliases:
        log.debug("imagefolder: domain %r: %d link(s) reach what was already listed", domain, len(walker.aliases))
    return DomainScan(domain, class_root, files, walker.stats, walker.problems, walker.aliases, tuple(extensions))


# --------------------------------------------------------------------------- one file


def check_file(path: Path, size: int) -> tuple[str | None, str | None, bool]:
    """``(reason, digest, cacheable)`` of one image file of ``size`` bytes: reason None when it is good
    (the checks of the module docstring), the SHA-256 hex of its bytes when it could be read, and whether
    the verdict may be cached (not when the file could not be opened)."""
    if size == 0:
        return "zero-byte file", None, True
    try:
        # The one place a file of the tree is opened (the plain builtin, looked up at each call).
        fh = open(path, "rb")  # noqa: SIM115 - closed below, in every case
    except OSError as exc:
        return f"cannot open: {exc.strerror or exc}", None, False
    with fh:
        try:
            reason = _header_and_tail(fh, size)
            fh.seek(0)
            digest = hashlib.sha256()
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        except OSError as exc:
            return f"cannot read: {exc.strerror or exc}", None, False
    return reason, digest.hexdigest(), True


def _header_and_tail(fh: Any, size: int) -> str | None:
    from PIL import Image, UnidentifiedImageError

    head = fh.read(12)
    fh.seek(0)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":  # before PIL, whose WebP reader reads the whole file
        expected = int.from_bytes(head[4:8], "little") + 8
        if size < expected:
            return f"truncated WebP: its RIFF header says {expected} bytes, the file has {size}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(fh) as im:
                fmt, (width, height) = im.format or "?", im.size
                after_header = fh.tell()
                tile = list(im.tile or [])
    except UnidentifiedImageError:
        return "not an image (PIL recognises no image format in its header)"
    except Image.DecompressionBombError as exc:
        return f"too many pixels to decode safely ({str(exc)[:120]})"
    except Exception as exc:  # noqa: BLE001 - any parser failure of a header is the file's problem
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # reading the file failed (PIL's own OSErrors carry no errno)
        return f"not an image, or its header is cut off ({type(exc).__name__}: {str(exc)[:120]})"
    if width <= 0 or height <= 0:
        return f"not an image: its {fmt} header says {width}x{height} pixels"
    fh.seek(max(0, size - TAIL_BYTES))
    tail_start = fh.tell()
    tail = fh.read()
    if fmt in ("JPEG", "MPO"):
        if tail.rstrip(_JPEG_PADDING).endswith(b"\xff\xd9"):
            return None
        eoi = tail.rfind(b"\xff\xd9")
        if eoi >= 0 and tail_start + eoi >= after_header:
            return None  # data appended after the image
        return "truncated JPEG: no end-of-image marker (FF D9) after the image data"
    if fmt == "PNG":
        return None if _PNG_IEND in tail else "truncated PNG: no IEND chunk at the end"
    if fmt in ("BMP", "DIB") and len(tile) == 1 and tile[0][0] == "raw":
        offset, args = tile[0][2], tile[0][3]
        stride = args[1] if isinstance(args, tuple) and len(args) > 1 and isinstance(args[1], int) else 0
        expected = offset + abs(stride) * height
        if stride and size < expected:
            return f"truncated BMP: its header says the pixels end at byte {expected}, the file has {size}"
        return None
    if fmt == "GIF":
        return None if tail.rstrip(b"\x00").endswith(b";") else "truncated GIF: no trailer (3B) at the end"
    return None


# --------------------------------------------------------------------------- the cache


def cache_dir() -> Path:
    """``$ROBUSTSPEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/robustspec``, else ``~/.cache/robustspec``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "robustspec"
    return Path.home() / ".cache" / "robustspec"


def cache_path(root: Path) -> Path:
    """The cache file of the tree at ``root`` (an absolute, resolved path)."""
    return cache_dir() / "trees" / f"{hashlib.sha256(str(root).encode('utf-8')).hexdigest()[:32]}.json"


def _load_cache(path: Path, root: Path) -> dict[str, list[Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        if doc.get("version") != CHECK_VERSION or doc.get("root") != str(root):
            return {}
        files = doc["files"]
        return {k: v for k, v in files.items() if isinstance(v, list) and len(v) == 4}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_cache(path: Path, root: Path, files: dict[str, list[Any]]) -> None:
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": CHECK_VERSION, "root": str(root), "files": files}, fh, separators=(",", ":"))
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        log.debug("imagefolder: the tree cache %s cannot be written (%s); skipped", path, exc)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# --------------------------------------------------------------------------- the whole tree


def check_tree(
    root: Path, scans: Mapping[str, DomainScan], *, bad_images: BadImages = "fail", cache: bool = True
) -> CheckedTree:
    """Check every image file of every scanned domain (the module docstring says how), reusing cached
    verdicts. With ``fail``, any bad file or link and any empty class folder raise one DataError that
    lists them all; with ``skip``, bad files and links are left out (:attr:`CheckedTree.skipped`) and one
    progress line says so, while an empty class folder (from the start, or once its bad files are left
    out) is still an error."""
    timer = Timer()
    where = cache_path(root) if cache else None
    old = _load_cache(where, root) if where is not None else {}
    entries: dict[str, list[Any]] = {}
    total = sum(len(paths) for scan in scans.values() for paths in scan.files.values())
    bad: list[Problem] = [p for scan in scans.values() for p in scan.problems]
    digests: dict[Path, str] = {}
    bad_paths: set[Path] = set()
    read = cached = done = 0
    for scan in scans.values():
        for paths in scan.files.values():
            for path in paths:
                size, mtime, rel = scan.stats[path]
                hit = old.get(rel)
                if hit is not None and hit[0] == size and hit[1] == mtime:
                    reason, digest = hit[2], hit[3]
                    entries[rel] = hit
                    cached += 1
                else:
                    reason, digest, cacheable = check_file(path, size)
                    read += size > 0
                    if cacheable:
                        entries[rel] = [size, mtime, reason, digest]
                if reason is not None:
                    bad.append(Problem(path, reason))
                    bad_paths.add(path)
                elif digest is not None:
                    digests[path] = digest
                done += 1
                if done % PROGRESS_EVERY == 0 and timer.seconds >= PROGRESS_AFTER_S:
                    report(f"imagefolder: checked {done}/{total} image files of {root} ({timer.seconds:.0f}s)")
    if where is not None:
        # Entries of domains not scanned this time (a suite naming fewer domains) are kept.
        kept = {k: v for k, v in old.items() if k.split("/", 1)[0] not in scans}
        merged = {**kept, **entries}
        if merged != old:
            _write_cache(where, root, merged)
    if timer.seconds >= PROGRESS_AFTER_S:
        report(
            f"imagefolder: checked {total} image files of {root} in {timer.seconds:.1f}s "
            f"({read} read, {cached} from the cache)"
        )

    empty = [
        (scan.domain, scan.class_root / name, scan.extensions)
        for scan in scans.values()
        for name, paths in scan.files.items()
        if not paths
    ]
    if bad_images == "fail":
        if bad or empty:
            raise _problems_error(root, bad, empty)
        files = {domain: {name: list(paths) for name, paths in scan.files.items()} for domain, scan in scans.items()}
        skipped: list[tuple[str, str]] = []
    else:
        files = {
            domain: {name: [p for p in paths if p not in bad_paths] for name, paths in scan.files.items()}
            for domain, scan in scans.items()
        }
        emptied = [
            (domain, scans[domain].class_root / name, sum(p in bad_paths for p in scans[domain].files[name]))
            for domain, classes in files.items()
            for name, paths in classes.items()
            if not paths and scans[domain].files[name]
        ]
        if empty or emptied:
            raise _empty_error(root, empty, emptied)
        skipped = sorted((_relative(p.path, root, scans), p.reason) for p in bad)
        if skipped:
            shown = ", ".join(rel for rel, _ in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
            report(f"imagefolder: bad-images: skip left out {len(skipped)} bad file(s) of {root}: {shown}")
    return CheckedTree(files, skipped, digests, read, cached, timer.seconds)


def _relative(path: Path, root: Path, scans: Mapping[str, DomainScan]) -> str:
    for scan in scans.values():
        if path in scan.stats:
            return scan.stats[path][2]
    return path.relative_to(root).as_posix()


def _empty_lines(empty: list[tuple[str, Path, tuple[str, ...]]]) -> list[str]:
    by_domain: dict[str, list[Path]] = {}
    exts: dict[str, tuple[str, ...]] = {}
    for domain, folder, extensions in empty:
        by_domain.setdefault(domain, []).append(folder)
        exts[domain] = extensions
    # At most 4 folders a line: each line is one message of the suite loader, which bounds its length.
    return [
        f"domain {domain!r} has class folders with no images ({' '.join(exts[domain])}): "
        + ", ".join(repr(str(p)) for p in folders[i : i + 4])
        for domain, folders in by_domain.items()
        for i in range(0, len(folders), 4)
    ]


def _problems_error(root: Path, bad: list[Problem], empty: list[tuple[str, Path, tuple[str, ...]]]) -> DataError:
    lines = _empty_lines(empty) + [f"{str(p.path)!r}: {p.reason}" for p in sorted(bad, key=lambda p: p.path)]
    hint = ""
    if bad:
        hint = f"; `bad-images: skip` leaves out the {len(bad)} bad file(s)" + (
            ", not the empty class folders" if empty else ""
        )
    return tree_problems(f"imagefolder: {len(lines)} problem(s) in the image tree {str(root)!r}{hint}", lines)


def _empty_error(
    root: Path, empty: list[tuple[str, Path, tuple[str, ...]]], emptied: list[tuple[str, Path, int]]
) -> DataError:
    lines = _empty_lines(empty) + [
        f"domain {domain!r} has class folders with no images left once their {n} bad file(s) are skipped: "
        f"{str(folder)!r}"
        for domain, folder, n in emptied
    ]
    return tree_problems(f"imagefolder: {len(lines)} problem(s) in the image tree {str(root)!r}", lines)


def check_train_test(
    root: Path, splits: Mapping[str, tuple[Sequence[Path], Sequence[Path]]], digests: Mapping[Path, str]
) -> None:
    """DataError naming every pair of files, one in a domain's train split and one in its test split, with
    the same content (SHA-256 in ``digests``). ``splits``: domain -> (train paths, test paths). A domain
    whose two splits are the same files (``whole``: adaptation sees the test images unlabelled, by
    design) is not checked, and the same content in two domains is no error."""
    lines: list[str] = []
    for domain, (train, test) in splits.items():
        train_set, test_set = set(train), set(test)
        if train_set == test_set:
            continue
        by_digest: dict[str, list[Path]] = {}
        for path in train:
            if path not in test_set and path in digests:
                by_digest.setdefault(digests[path], []).append(path)
        for path in test:
            if path not in train_set:
                for twin in by_digest.get(digests.get(path, ""), []):
                    lines.append(f"domain {domain!r}: {str(twin)!r} (train) = {str(path)!r} (test)")
    if lines:
        raise tree_problems(
            f"imagefolder: {len(lines)} pair(s) of files in the image tree {str(root)!r} have the same content "
            "(SHA-256) in a domain's train and test splits, so the test would score images the model trained on "
            "(remove one of each pair)",
            lines,
        )
