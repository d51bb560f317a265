"""Content-addressed artifact store shared by pytest-xdist workers (and separate runs).

Layout under ``root``::

    builds.jsonl                 one JSON line per successful build (appended with O_APPEND)
    <kind>/<key>.value.json      the artifact when its value is plain JSON data (format "json")
    <kind>/<key>.pt              the artifact otherwise (tensors, state dicts), written with torch.save
    <kind>/<key>.json            sidecar: key, kind, format, describe, created, bytes, sha256, meta, parents
    <kind>/<key>.lock            per-key FileLock serialising builders of that key
    <kind>/<key>.{value.json,pt,json}.tmp-<pid>-<hex>   in-flight writes (never read)

Two formats. A value made only of dicts (with string keys), lists, strings, ints, finite floats, bools and
None (exact types, so it reads back equal, key order included) is stored as JSON; anything else as a
``.pt`` read back with ``torch.load(weights_only=True)``. torch is imported only to write or read a
``.pt``: a process that only reads JSON artifacts (a warm run judging stored numbers) never imports it.
The sidecar's ``format`` says which file holds the data; a sidecar without one (written before JSON
artifacts existed) means ``.pt``. Such a legacy ``.pt`` whose value is plain JSON (or becomes so through
the reader's ``upgrade``) is rewritten as JSON once, by the first process that reads it.

Crash safety: an artifact is *valid* only if its sidecar exists and records the size and sha256 of
the data file it names as it is on disk now. Both files are written to temporaries, fsynced and moved into
place with ``os.replace`` (data first, then sidecar, then the directory is fsynced); a data file of the
other format left from before is deleted only after that. Whatever step a crash interrupts, the pair on
disk is either the old pair, a data file without a matching sidecar, or the complete new pair; the
checksum tells them apart, so a partial artifact is never loaded, only rebuilt (with a warning, in the log
and on the progress sink). Readers take no lock (a reader that finds its data file gone under a sidecar
that changed meanwhile reads again); builders hold the per-key lock and re-check before building, so each
key is built at most once however many processes ask for it concurrently.

Faults (docs/store.md, "Faults"): reading writes nothing that must succeed (the last-use time and the
rewrite of a legacy ``.pt`` as JSON are skipped where the store cannot be written), so a read-only store
serves everything it holds; a build it cannot store, for want of permission or of space, is an
ArtifactError naming the store, the key and the cause (:func:`storage_problem`), raised before building
where the lock file cannot be created. What killed builds leave (temp files, lock files of keys with no
artifact) :meth:`Store.sweep` deletes, from ``cache prune`` and ``cache clear``.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import io
import json
import logging
import math
import os
import re
import secrets
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import filelock

from robustspec.errors import ArtifactError, RobustSpecError
from robustspec.progress import report

__all__ = ["Store", "canonical_json", "content_key", "is_plain_json", "storage_problem"]

log = logging.getLogger("robustspec.store")

_KIND_RE = re.compile(r"[a-z0-9-]+")
_KEY_RE = re.compile(r"([a-z0-9-]+)-[0-9a-f]{24}")
_HASH_CHARS = 24
_STALE_TEMP_SECONDS = 3600.0
_CHUNK = 1 << 20

#: The data file of each format, after the key; a sidecar without ``format`` was written before JSON.
_SUFFIXES = {"json": ".value.json", "pt": ".pt"}
_LEGACY_FORMAT = "pt"

# Per-process cache of checksum verifications: data path -> ((inode, mtime_ns, size), sha256).
_VERIFIED: dict[str, tuple[tuple[int, int, int], str]] = {}


def _normalize(obj: Any, where: str) -> Any:
    """Turn ``obj`` into plain JSON types, refusing anything without one canonical form."""
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isnan(obj):
            raise ArtifactError(f"cannot make a canonical key from NaN at {where}")
        return float(obj)
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ArtifactError(f"cannot make a canonical key: non-string mapping key {k!r} at {where}")
            out[str.__str__(k)] = _normalize(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_normalize(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise ArtifactError(f"cannot make a canonical key from {type(obj).__name__} at {where}")


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` to one canonical JSON string (sorted keys, no spaces, ASCII, tuples as lists)."""
    return json.dumps(
        _normalize(obj, "<root>"), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True
    )


def content_key(kind: str, recipe: Mapping[str, Any], parents: Sequence[str] = (), version: str = "1") -> str:
    """Return ``"<kind>-<24 hex>"``, the sha256 of the canonical kind, recipe, parent keys and version."""
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise ArtifactError(f"invalid artifact kind {kind!r}: must match [a-z0-9-]+")
    if isinstance(parents, str) or not all(isinstance(p, str) for p in parents):
        raise ArtifactError(f"parents of a {kind} artifact must be a sequence of keys, got {parents!r}")
    if not isinstance(version, str):
        raise ArtifactError(f"version of a {kind} artifact must be a string, got {version!r}")
    text = canonical_json({"kind": kind, "recipe": recipe, "parents": list(parents), "version": version})
    return f"{kind}-{hashlib.sha256(text.encode('ascii')).hexdigest()[:_HASH_CHARS]}"


#: Deeper values are stored as .pt (JSON's own reader would hit the recursion limit long before).
_MAX_JSON_DEPTH = 64


def is_plain_json(value: Any, _depth: int = 0) -> bool:
    """Whether ``value`` reads back from JSON equal and of the same types: dicts with str keys, lists, str,
    int, finite float, bool and None, by exact type (no tuples, subclasses, NaN or infinities)."""
    t = type(value)
    if value is None or t is bool or t is int or t is str:
        return True
    if t is float:
        return math.isfinite(value)
    if _depth >= _MAX_JSON_DEPTH:
        return False
    if t is list:
        return all(is_plain_json(v, _depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and is_plain_json(v, _depth + 1) for k, v in value.items())
    return False


def _json_bytes(value: Any) -> bytes:
    """The stored form of a plain JSON value (key order kept: it reads back equal, order included)."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _torch() -> Any:
    """torch, imported on first need (writing or reading a ``.pt``)."""
    import torch

    return torch


def _check_saveable(value: Any, where: str = "value") -> None:
    """Raise ArtifactError unless torch.load(weights_only=True) can read ``value`` back."""
    torch = _torch()
    # Leaf types that torch.load(weights_only=True) reads back (checked by exact type, so numpy scalars,
    # enums and other subclasses are refused before they are written, not when a later process loads them).
    leaves = (str, bytes, int, float, bool, complex, type(None), torch.Size, torch.dtype, torch.device)

    def check(value: Any, where: str) -> None:
        if isinstance(value, torch.Tensor) or type(value) in leaves:
            return
        if type(value) in (dict, collections.OrderedDict):
            for k, v in value.items():
                check(k, f"{where} key {k!r}")
                check(v, f"{where}[{k!r}]")
            return
        if type(value) in (list, tuple, set, frozenset):
            for i, v in enumerate(value):
                check(v, f"{where}[{i}]")
            return
        raise ArtifactError(
            f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which torch.load(weights_only=True) "
            "cannot read; store tensors, str, int, float, bool, None and dicts/lists of them"
        )

    check(value, where)


#: A ``.pt`` at least this large is memory-mapped, not read: a decoded image tree may exceed memory, and
#: its pages are then read as training and evaluation touch them.
MMAP_BYTES = 64 << 20


def _mapped_path(f: IO[bytes]) -> str | None:
    """A path to the very file ``f`` has open (``/proc/self/fd``), to memory-map it without the race of
    reopening it by name; None where there is none."""
    path = f"/proc/self/fd/{f.fileno()}"
    return path if os.path.exists(path) else None


def _torch_load(f: IO[bytes]) -> Any:
    """Read a ``.pt`` onto the CPU with ``weights_only=True``; memory-mapped from :data:`MMAP_BYTES` on."""
    torch = _torch()
    mapped = _mapped_path(f) if os.fstat(f.fileno()).st_size >= MMAP_BYTES else None
    with warnings.catch_warnings():
        # torch's own loader of quantized (int8) tensors still goes through TypedStorage.
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)
        # ... and torch 2.14 deprecates creating quantized tensors, which is what reading one does.
        warnings.filterwarnings(
            "ignore", message="torch.quantize_per_tensor, torch.quantize_per_channel", category=UserWarning
        )
        if mapped is not None:
            return torch.load(mapped, weights_only=True, map_location="cpu", mmap=True)
        return torch.load(f, weights_only=True, map_location="cpu")


def _sha256_stream(f: IO[bytes]) -> str:
    """Hash an open binary file from its current position to the end."""
    h = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    """Make renames inside ``path`` durable (best effort on platforms without directory fsync)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> bool:
    """Delete ``path`` if it exists; return whether it did."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


# -- file-system faults in words -------------------------------------------------------------

_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_READ_ONLY_ERRNOS = frozenset({errno.EROFS})
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})

#: What torch's zip writer says (with no errno) when the file it writes stops growing: a full disk.
_TORCH_SHORT_WRITE = ("unexpected pos", "PytorchStreamWriter failed", "file write failed")

#: Hint after a store that cannot be written.
_WRITABLE_HINT = (
    "the artifact store must be writable to build: make it writable, or point --robustspec-store "
    "(or $ROBUSTSPEC_STORE) at a writable copy"
)
_SPACE_HINT = (
    "free some space (robustspec cache prune --unused-for 7d removes what no run used for a week), "
    "or point --robustspec-store (or $ROBUSTSPEC_STORE) at a larger disk"
)


def _size(n: float) -> str:
    """``512 bytes``, ``1.5 KiB``, ``3.2 GiB``."""
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            break
    return f"{n:.1f} {unit}"


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or while handling, each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def _existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mount_point(path: Path) -> Path:
    """The mount point of the file system that holds ``path`` (its nearest existing ancestor)."""
    path = _existing(path)
    try:
        dev = path.stat().st_dev
        while path != path.parent and path.parent.stat().st_dev == dev:
            path = path.parent
    except OSError:
        pass
    return path


def _free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged process may still write on the file system of ``path``; None if unknown."""
    try:
        st = os.statvfs(_existing(path))
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return None
    return st.f_bavail * st.f_frsize


def _estimated_bytes(value: Any) -> int:
    """Roughly how many bytes ``torch.save(value)`` writes: its tensors' storages (each once), bytes and str."""
    torch = _torch()
    storages: dict[tuple[str, int], int] = {}
    total = 0
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, torch.Tensor):
            try:
                s = v.untyped_storage()
                storages[(str(v.device), s.data_ptr())] = s.nbytes()
            except Exception:  # noqa: BLE001 - quantized or other tensors without a plain storage
                total += v.numel() * v.element_size()
        elif isinstance(v, (bytes, bytearray, str)):
            total += len(v)
        elif isinstance(v, Mapping):
            todo += [*v.keys(), *v.values()]
        elif isinstance(v, (list, tuple, set, frozenset)):
            todo += list(v)
    return total + sum(storages.values())


def storage_problem(exc: BaseException, path: str | os.PathLike[str], needed: int | None = None) -> str | None:
    """The file-system fault behind ``exc`` (raised writing ``path``) in words, or None if it is not one.

    A full disk or quota (``ENOSPC``, ``EDQUOT``, or torch's zip writer failing on a short write with no
    errno while the disk is about full) is ``no space left on <mount point> (<free> free, the artifact
    needed about <needed>)``; ``EROFS`` is ``read-only file system (<path>)``; ``EACCES``/``EPERM``
    ``permission denied (<path>)``. ``needed``: the artifact's size, when known.
    """
    path = Path(path)
    errors = list(_exception_chain(exc))

    def no_space() -> str:
        free = _free_bytes(path)
        have = f"{_size(free)} free" if free is not None else "free space unknown"
        want = f", the artifact needed about {_size(needed)}" if needed is not None else ""
        return f"no space left on {_mount_point(path)} ({have}{want})"

    for e in errors:
        if isinstance(e, OSError) and e.errno is not None:
            where = e.filename if e.filename is not None else path
            if e.errno in _NO_SPACE_ERRNOS:
                return no_space()
            if e.errno in _READ_ONLY_ERRNOS:
                return f"read-only file system ({where})"
            if e.errno in _DENIED_ERRNOS:
                return f"permission denied ({where})"
    if any(isinstance(e, RuntimeError) and any(s in str(e) for s in _TORCH_SHORT_WRITE) for e in errors):
        free = _free_bytes(path)
        if free is not None and free < max(needed or 0, 1 << 20):
            return no_space()
    return None


#: Kinds that other artifacts are built from; ``prune`` keeps them all when it cannot tell which are needed.
_UPSTREAM_KINDS = frozenset({"data", "model", "variant"})

#: How often a reader reads again when the data file its sidecar named is gone and the sidecar changed
#: meanwhile (another process rewrote a legacy .pt as JSON between the two reads).
_READ_ATTEMPTS = 3


class Store:
    """A directory of content-addressed artifacts (JSON or torch), safe to share between processes."""

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = 3600.0) -> None:
        """Use ``root`` (created on first write); wait at most ``lock_timeout`` s (-1: forever) for a builder."""
        self.root: Path = Path(root).expanduser().absolute()
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        """Show the root."""
        return f"Store({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """Return ``root/<kind>/<key>.pt`` after checking that ``key`` is a well-formed content key.

        That is where a torch artifact lives; :meth:`data_path` names the file that holds ``key`` now.
        """
        m = _KEY_RE.fullmatch(key) if isinstance(key, str) else None
        if m is None:
            raise ArtifactError(f"invalid artifact key {key!r}: expected <kind>-<24 hex digits>")
        return self.root / m.group(1) / f"{key}.pt"

    def _format_path(self, key: str, fmt: str) -> Path:
        """The data file of ``key`` in format ``fmt`` (``json`` or ``pt``)."""
        return self.path_for(key).with_name(f"{key}{_SUFFIXES[fmt]}")

    def _data_paths(self, key: str) -> list[Path]:
        """Every data file ``key`` may have, JSON first."""
        return [self._format_path(key, fmt) for fmt in _SUFFIXES]

    def data_path(self, key: str) -> Path:
        """The data file of ``key``: the one its sidecar names, else whichever exists (``.pt`` if none)."""
        meta, _ = self._read_meta(key)
        if meta is not None:
            return self._format_path(key, meta["format"])
        for path in self._data_paths(key):
            if path.exists():
                return path
        return self.path_for(key)

    def _meta_path(self, key: str) -> Path:
        """Return the sidecar path of ``key``."""
        return self.path_for(key).with_suffix(".json")

    def _lock_path(self, key: str) -> Path:
        """The per-key lock file of ``key``."""
        return self.path_for(key).with_suffix(".lock")

    def _lock(self, key: str) -> filelock.FileLock:
        """Return the (not yet acquired) per-key lock, creating its directory."""
        lock_path = self._lock_path(key)
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(lock_path), timeout=self.lock_timeout)

    @staticmethod
    def _holds_named_file(lock: filelock.FileLock) -> bool:
        """Whether the lock file ``lock`` holds is still the one its path names.

        :meth:`sweep` deletes a lock file only while holding it; a process that had opened that file
        before and waited on it then holds a deleted file, which excludes nobody, and must lock again.
        (filelock's descriptor is not public API: where it cannot be read, the lock is trusted.)
        """
        fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
        if not isinstance(fd, int):
            return True
        try:
            held, named = os.fstat(fd), os.stat(lock.lock_file)
        except FileNotFoundError:
            return False
        except OSError:
            return True
        return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)

    def _acquire(self, key: str, timeout: float | None = None) -> filelock.FileLock:
        """The per-key lock of ``key``, acquired (``timeout``: this call's wait, default ``lock_timeout``)."""
        lock = self._lock(key)
        for _ in range(_READ_ATTEMPTS * 3):
            lock.acquire(timeout=self.lock_timeout if timeout is None else timeout)
            if self._holds_named_file(lock):
                return lock
            lock.release()
        raise filelock.Timeout(lock.lock_file)  # deleted under this process again and again

    def _cannot(self, action: str, key: str, describe: str, problem: str, hint: str = _WRITABLE_HINT) -> ArtifactError:
        """``cannot store <key> (<describe>) in <root>: <problem>; <hint>``."""
        what = f"{key} ({describe})" if describe else key
        where = "in" if action == "store" else "from"
        return ArtifactError(f"cannot {action} {what} {where} {self.root}: {problem}; {hint}")

    @contextlib.contextmanager
    def _locked(
        self, key: str, describe: str = "", action: str = "store", corrupt: str | None = None
    ) -> Iterator[None]:
        """Hold the per-key lock, turning a timeout, or a store that cannot be written, into ArtifactError
        (which says that the stored copy is ``corrupt``, when a reader found it so)."""
        try:
            lock = self._acquire(key)
        except filelock.Timeout as exc:
            raise ArtifactError(
                f"timed out after {self.lock_timeout:g} s waiting for another process to build {describe or key}"
            ) from exc
        except OSError as exc:  # the lock file (or its folder) cannot be created: a read-only store, say
            problem = storage_problem(exc, self._lock_path(key)) or f"cannot create its lock file ({exc})"
            if corrupt is not None:
                problem += f", and its stored copy is corrupt ({corrupt})"
            if action != "store":
                hint = f"the artifact store must be writable to {action} artifacts"
            elif problem.startswith("no space"):
                hint = _SPACE_HINT
            else:
                hint = _WRITABLE_HINT
            raise self._cannot(action, key, describe, problem, hint) from exc
        try:
            yield
        finally:
            lock.release()

    # -- validation --------------------------------------------------------------------------

    def _read_meta(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """Return (sidecar, None), (None, None) if it is absent, or (None, reason) if it is unreadable.

        The sidecar returned always has a ``format`` (``pt`` when it predates formats).
        """
        try:
            text = self._meta_path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"unreadable metadata ({exc})"
        try:
            meta = json.loads(text)
        except ValueError:
            return None, "unparseable metadata"
        if (
            not isinstance(meta, dict)
            or meta.get("key") != key
            or not isinstance(meta.get("sha256"), str)
            or not isinstance(meta.get("bytes"), int)
        ):
            return None, "malformed metadata"
        fmt = meta.setdefault("format", _LEGACY_FORMAT)
        if fmt not in _SUFFIXES:
            return None, f"unknown data format {fmt!r} in metadata"
        return meta, None

    def _check(self, key: str, *, load: bool) -> tuple[str | None, Any, dict[str, Any] | None]:
        """``(None, value or None, sidecar)`` if ``key`` is valid, else ``(reason, None, None)``; reason
        ``"missing"`` if it is absent."""
        for attempt in range(_READ_ATTEMPTS):
            meta, meta_problem = self._read_meta(key)
            if meta is None:
                if any(path.exists() for path in self._data_paths(key)):
                    return meta_problem or "data file without metadata", None, None
                return ("missing" if meta_problem is None else "metadata without a data file"), None, None
            data_path = self._format_path(key, meta["format"])
            try:
                f = open(data_path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                again, _ = self._read_meta(key)
                if again is not None and again != meta and attempt + 1 < _READ_ATTEMPTS:
                    continue  # rewritten meanwhile (a legacy .pt converted to JSON): read the new pair
                return "metadata without a data file", None, None
            with f:
                reason, value = self._verify(f, data_path, meta, load=load)
            return reason, value, (meta if reason is None else None)
        raise AssertionError("unreachable")  # pragma: no cover

    def _verify(self, f: IO[bytes], data_path: Path, meta: dict[str, Any], *, load: bool) -> tuple[str | None, Any]:
        """Check the open data file against its sidecar, and read it when ``load``."""
        st = os.fstat(f.fileno())
        if st.st_size != meta["bytes"]:
            return f"data file has {st.st_size} bytes, metadata records {meta['bytes']}", None
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = _VERIFIED.get(str(data_path))
        raw: bytes | None = None
        if cached != (signature, meta["sha256"]):
            if meta["format"] == "json":
                raw = f.read()
                digest = hashlib.sha256(raw).hexdigest()
            else:
                digest = _sha256_stream(f)
            if digest != meta["sha256"]:
                _VERIFIED.pop(str(data_path), None)
                return "checksum mismatch", None
            _VERIFIED[str(data_path)] = (signature, digest)
        if not load:
            return None, None
        if meta["format"] == "json":
            if raw is None:
                f.seek(0)
                raw = f.read()
            try:
                value = json.loads(raw)
            except ValueError as exc:
                return f"unparseable JSON data ({exc})", None
            return None, value
        f.seek(0)
        try:
            return None, _torch_load(f)
        except Exception as exc:  # noqa: BLE001 - any unreadable payload is a corrupt artifact
            return f"torch.load failed ({type(exc).__name__}: {exc})", None

    def has(self, key: str) -> bool:
        """Return whether a complete artifact with a verified checksum exists for ``key``."""
        return self._check(key, load=False)[0] is None

    def load(self, key: str, *, upgrade: Callable[[Any], Any] | None = None) -> Any:
        """Load a verified artifact (tensors onto the CPU); ArtifactError if it is missing or corrupt.

        ``upgrade`` maps a value stored in an older layout to the current one (and the current one to
        itself); see :meth:`get_or_build`.
        """
        reason, value, meta = self._check(key, load=True)
        if reason is not None:
            raise ArtifactError(f"artifact {key} in {self.root} is not available: {reason}")
        self._mark_used(key)
        return self._current(key, value, meta, upgrade)  # type: ignore[arg-type]

    def _current(
        self, key: str, value: Any, meta: dict[str, Any], upgrade: Callable[[Any], Any] | None, describe: str = ""
    ) -> Any:
        """``value`` upgraded; a ``.pt`` whose (upgraded) value is plain JSON is rewritten as JSON, once."""
        if upgrade is not None:
            try:
                value = upgrade(value)
            except RobustSpecError:
                raise
            except Exception as exc:
                raise ArtifactError(
                    f"artifact {describe or key} in {self.root} has an unreadable layout: {exc}"
                ) from exc
        if meta["format"] != "json" and is_plain_json(value):
            self._convert(key, value, meta)
        return value

    def _convert(self, key: str, value: Any, meta: dict[str, Any]) -> None:
        """Rewrite a valid ``.pt`` artifact as JSON, keeping its sidecar's record; best effort.

        Skipped when another process holds the key's lock (it is converting it, or rebuilding it), when
        the artifact changed since it was read, or when the store cannot be written (a read-only cache).
        """
        try:
            lock = self._acquire(key, timeout=0)
        except (filelock.Timeout, OSError):
            return
        try:
            now, _ = self._read_meta(key)
            if now is None or now["format"] != meta["format"] or now["sha256"] != meta["sha256"]:
                return
            self._write(
                key,
                value,
                meta=now.get("meta") or {},
                describe=str(now.get("describe") or ""),
                parents=now.get("parents"),
                keep={k: v for k, v in now.items() if k not in ("bytes", "sha256", "format")},
            )
            log.info("artifact %s (%s) rewritten as JSON", key, now.get("describe") or "-")
        except (ArtifactError, OSError) as exc:
            log.debug("could not rewrite %s as JSON: %s", key, exc)
        finally:
            lock.release()

    def _mark_used(self, key: str) -> None:
        """Record that ``key`` was just used: its sidecar's modification time (``prune`` reads it).

        A store on a read-only file system (a restored CI cache, say) simply keeps its old times.
        """
        with contextlib.suppress(OSError):
            os.utime(self._meta_path(key))

    def last_used(self, key: str) -> float | None:
        """When ``key`` was last built or loaded (seconds since the epoch); None if it has no files."""
        for path in (self._meta_path(key), *self._data_paths(key)):
            with contextlib.suppress(OSError):
                return path.stat().st_mtime
        return None

    # -- building ----------------------------------------------------------------------------

    def get_or_build(
        self,
        key: str,
        build: Callable[[], Any],
        *,
        meta: Mapping[str, Any] | None = None,
        describe: str = "",
        parents: Sequence[str] = (),
        upgrade: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Return the artifact ``key``, calling ``build()`` and storing its result if no valid copy exists.

        ``parents`` are the keys it is built from (recorded in its sidecar: ``prune`` keeps the parents of
        what it keeps). ``upgrade``, when given, is applied to a stored value (never to what ``build()``
        returns): it turns a value in a layout an older version of the builder stored into the current one
        and leaves a current one as it is. A value stored as ``.pt`` that is plain JSON once upgraded is
        rewritten as JSON, so the next reader needs no torch.
        """
        reason, value, stored = self._check(key, load=True)
        if reason is None:
            self._mark_used(key)
            return self._current(key, value, stored, upgrade, describe)  # type: ignore[arg-type]
        with self._locked(key, describe, corrupt=None if reason == "missing" else reason):
            reason, value, stored = self._check(key, load=True)
            if reason is not None:
                if reason != "missing":
                    self._warn_corrupt(key, describe, reason)
                self._clean_stale_temps(key)
                started = time.monotonic()
                try:
                    value = build()
                except RobustSpecError:
                    raise
                except Exception as exc:
                    raise ArtifactError(f"building {describe or key} failed: {exc}") from exc
                seconds = time.monotonic() - started
                self._write(key, value, meta=meta, describe=describe, parents=parents)
                self._log_build(key, describe, seconds)
                return value
            self._mark_used(key)
        # Stored by another process while this one waited; upgraded (and converted: that takes the lock
        # itself) once the lock is released.
        return self._current(key, value, stored, upgrade, describe)  # type: ignore[arg-type]

    def _warn_corrupt(self, key: str, describe: str, reason: str) -> None:
        """Say, in the log and on the progress sink (the terminal under pytest), that ``key`` is rebuilt."""
        what = f"{key} ({describe})" if describe else key
        message = f"artifact {what} in {self.root} is corrupt ({reason}): rebuilding"
        log.warning("%s", message)
        report(message)

    def _write(
        self,
        key: str,
        value: Any,
        *,
        meta: Mapping[str, Any] | None,
        describe: str,
        parents: Sequence[str] | None = (),
        keep: Mapping[str, Any] | None = None,
    ) -> None:
        """Atomically store ``value`` (JSON when it is plain JSON data, else ``.pt``) and its sidecar, then
        delete a data file of the other format (caller holds the key's lock).

        ``keep``: sidecar fields to carry over (``created`` and the rest when a ``.pt`` is rewritten as JSON).
        """
        fmt = "json" if is_plain_json(value) else "pt"
        if fmt == "pt":
            _check_saveable(value, f"the result of building {describe or key}")
        data_path = self._format_path(key, fmt)
        meta_path = self._meta_path(key)
        tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        data_tmp = data_path.with_name(f"{data_path.name}.tmp-{tag}")
        meta_tmp = meta_path.with_name(f"{meta_path.name}.tmp-{tag}")
        try:
            data_path.parent.mkdir(parents=True, exist_ok=True)
            with open(data_tmp, "xb") as f:
                if fmt == "json":
                    f.write(_json_bytes(value))
                else:
                    _torch().save(value, f)
                f.flush()
                os.fsync(f.fileno())
            with open(data_tmp, "rb") as f:
                digest = _sha256_stream(f)
                st = os.fstat(f.fileno())
            sidecar = {
                "key": key,
                "kind": _KEY_RE.fullmatch(key).group(1),  # type: ignore[union-attr]
                "describe": describe,
                "created": time.time(),
                "meta": dict(meta) if meta is not None else {},
                **({"parents": list(parents)} if parents is not None else {}),
                **(keep or {}),
                "format": fmt,
                "bytes": st.st_size,
                "sha256": digest,
            }
            if keep is not None:
                sidecar["rewritten"] = time.time()
            with open(meta_tmp, "x", encoding="utf-8") as f:
                json.dump(sidecar, f, sort_keys=True, indent=1, default=str)
                f.flush()
                os.fsync(f.fileno())
            os.replace(data_tmp, data_path)
            _fsync_dir(data_path.parent)
            os.replace(meta_tmp, meta_path)
            _fsync_dir(data_path.parent)
            _VERIFIED[str(data_path)] = ((st.st_ino, st.st_mtime_ns, st.st_size), digest)
            for other in self._data_paths(key):
                if other != data_path:
                    _VERIFIED.pop(str(other), None)
                    _unlink_quietly(other)
        except RobustSpecError:
            raise
        except Exception as exc:
            for tmp in (data_tmp, meta_tmp):  # first, so that the free space reported is what is free
                with contextlib.suppress(OSError):
                    tmp.unlink()
            problem = storage_problem(exc, data_path, self._needed(value, fmt))
            if problem is not None:
                hint = _SPACE_HINT if problem.startswith("no space") else _WRITABLE_HINT
                raise self._cannot("store", key, describe, problem, hint) from exc
            raise ArtifactError(f"writing {describe or key} to {data_path} failed: {exc}") from exc
        finally:
            for tmp in (data_tmp, meta_tmp):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    @staticmethod
    def _needed(value: Any, fmt: str) -> int | None:
        """About how many bytes ``value`` takes stored (for a message; None if it cannot tell)."""
        try:
            return len(_json_bytes(value)) if fmt == "json" else _estimated_bytes(value)
        except Exception:  # noqa: BLE001 - only a message depends on it
            return None

    def _log_build(self, key: str, describe: str, seconds: float) -> None:
        """Append one record to builds.jsonl with a single O_APPEND write."""
        record = {
            "key": key,
            "kind": _KEY_RE.fullmatch(key).group(1),  # type: ignore[union-attr]
            "describe": describe,
            "pid": os.getpid(),
            "worker": os.environ.get("PYTEST_XDIST_WORKER"),
            "seconds": round(seconds, 6),
            "time": time.time(),
        }
        line = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            fd = os.open(self.root / "builds.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("could not append to %s: %s", self.root / "builds.jsonl", exc)

    def _clean_stale_temps(self, key: str) -> None:
        """Delete this key's temp files older than an hour (caller holds the key's lock, so none is in use)."""
        directory = self.path_for(key).parent
        cutoff = time.time() - _STALE_TEMP_SECONDS
        for suffix in (*_SUFFIXES.values(), ".json"):
            for tmp in directory.glob(f"{key}{suffix}.tmp-*"):
                with contextlib.suppress(OSError):
                    if tmp.stat().st_mtime < cutoff:
                        tmp.unlink()

    # -- inspection and maintenance ----------------------------------------------------------

    def _keys_on_disk(self) -> list[str]:
        """Return every well-formed key with a data or sidecar file, sorted."""
        if not self.root.is_dir():
            return []
        keys: set[str] = set()
        for kind_dir in self.root.iterdir():
            if not kind_dir.is_dir() or not _KIND_RE.fullmatch(kind_dir.name):
                continue
            for file in kind_dir.iterdir():
                for suffix in (*_SUFFIXES.values(), ".json"):
                    if file.name.endswith(suffix):
                        m = _KEY_RE.fullmatch(file.name[: -len(suffix)])
                        if m is not None and m.group(1) == kind_dir.name:
                            keys.add(m.group(0))
                        break
        return sorted(keys)

    def entries(self) -> list[dict[str, Any]]:
        """Return the sidecar of every valid artifact (plus its data file's ``path``), sorted by key."""
        out = []
        for key in self._keys_on_disk():
            reason, _, meta = self._check(key, load=False)
            if reason is None and meta is not None:
                out.append({**meta, "path": str(self._format_path(key, meta["format"]))})
        return out

    def builds(self) -> list[dict[str, Any]]:
        """Return the records of builds.jsonl in order, skipping torn or malformed lines."""
        try:
            raw = (self.root / "builds.jsonl").read_bytes()
        except FileNotFoundError:
            return []
        records = []
        for line in io.BytesIO(raw):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def remove(self, key: str) -> bool:
        """Delete the artifact ``key`` (under its lock); return whether anything was deleted."""
        data_path = self.path_for(key)
        if not data_path.parent.is_dir():
            return False
        with self._locked(key, action="remove"):
            removed_meta = _unlink_quietly(self._meta_path(key))
            removed_data = False
            for path in self._data_paths(key):
                removed_data |= _unlink_quietly(path)
                _VERIFIED.pop(str(path), None)
            self._clean_stale_temps(key)
        return removed_meta or removed_data

    def prune(self, unused_for: float, *, dry_run: bool = False) -> list[dict[str, Any]]:
        """Remove every artifact not built or loaded in the last ``unused_for`` seconds, except the
        ancestors (recorded ``parents``, transitively) of those that were: a warm run loads a stored
        evaluation without its model, and the model must stay for the next evaluation.

        Returns what was removed (or, with ``dry_run``, what would be): ``key``, ``bytes``, ``describe``
        and ``last_used`` per artifact, oldest first. Partial or corrupt artifacts count like the others.
        """
        cutoff = time.time() - unused_for
        keys = self._keys_on_disk()
        sidecars = {key: self._read_meta(key)[0] for key in keys}
        keep = [key for key in keys if (self.last_used(key) or 0.0) >= cutoff]
        kept: set[str] = set()
        unknown_parents = False
        while keep:
            key = keep.pop()
            if key not in kept:
                kept.add(key)
                sidecar = sidecars.get(key) or {}
                unknown_parents |= "parents" not in sidecar
                keep.extend(p for p in sidecar.get("parents", []) if isinstance(p, str))
        if unknown_parents:
            # Something kept was stored before sidecars recorded parents: keep every data set, trained
            # model and variant, whatever it was built from (they are the expensive ones to rebuild).
            kept.update(k for k in keys if k.split("-", 1)[0] in _UPSTREAM_KINDS)
        stale = []
        for key in keys:
            if key in kept:
                continue
            used = self.last_used(key) or 0.0
            meta = sidecars[key]
            size = 0
            for path in self._data_paths(key):
                with contextlib.suppress(OSError):
                    size += path.stat().st_size
            stale.append({"key": key, "bytes": size, "describe": (meta or {}).get("describe"), "last_used": used})
        stale.sort(key=lambda e: (e["last_used"], e["key"]))
        if not dry_run:
            stale = [e for e in stale if self.remove(e["key"])]
        return stale

    def clear(self) -> int:
        """Remove every artifact and the build log; return how many keys were removed.

        What :meth:`sweep` removes goes too; recent lock and temp files are kept.
        """
        removed = sum(self.remove(key) for key in self._keys_on_disk())
        _unlink_quietly(self.root / "builds.jsonl")
        self.sweep()
        return removed

    def sweep(self, older_than: float = _STALE_TEMP_SECONDS, *, dry_run: bool = False) -> list[Path]:
        """Delete what killed builds left: temp files, and lock files of keys that have no artifact, older
        than ``older_than`` seconds and not held by any process; return them (``dry_run``: only list them).

        A file goes only while this process holds its key's lock (taken without waiting): no live process
        is building that key then. A process that opened a lock file before it was deleted and waited on
        it sees, once it holds it, that the path no longer names it, and locks again
        (:meth:`_holds_named_file`), so deleting a lock file never lets two builders in. A lock held by
        a live process, or one this process cannot take (a read-only store), is left alone.
        """
        if not self.root.is_dir():
            return []
        cutoff = time.time() - older_than
        leftovers: dict[str, list[Path]] = {}
        for kind_dir in sorted(self.root.iterdir()):
            if not kind_dir.is_dir() or not _KIND_RE.fullmatch(kind_dir.name):
                continue
            for file in sorted(kind_dir.iterdir()):
                name, _, rest = file.name.partition(".")
                m = _KEY_RE.fullmatch(name)
                if m is None or m.group(1) != kind_dir.name or not (rest == "lock" or ".tmp-" in rest):
                    continue
                with contextlib.suppress(OSError):
                    if file.stat().st_mtime < cutoff:
                        leftovers.setdefault(name, []).append(file)
        swept: list[Path] = []
        for key, files in leftovers.items():
            try:
                lock = self._acquire(key, timeout=0)
            except (filelock.Timeout, OSError):
                continue  # being built now, or the store cannot be written
            try:
                artifact = any(p.exists() for p in (self._meta_path(key), *self._data_paths(key)))
                for file in files:
                    if file.suffix == ".lock" and artifact:
                        continue  # the lock of a stored artifact stays with it
                    if dry_run or self._unlink_logged(file):
                        swept.append(file)
            finally:
                lock.release()
        return swept

    @staticmethod
    def _unlink_logged(path: Path) -> bool:
        """Delete ``path``; whether it did (a failure is logged, not raised)."""
        try:
            return _unlink_quietly(path)
        except OSError as exc:
            log.debug("could not delete %s: %s", path, exc)
            return False
