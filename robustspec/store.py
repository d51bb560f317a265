"""Content-addressed artifact store shared by pytest-xdist workers (and separate runs).

Layout under ``root``::

    builds.jsonl                 one JSON line per successful build (appended with O_APPEND)
    <kind>/<key>.pt              the artifact, written with torch.save
    <kind>/<key>.json            sidecar: key, kind, describe, created, bytes, sha256, meta
    <kind>/<key>.lock            per-key FileLock serialising builders of that key
    <kind>/<key>.{pt,json}.tmp-<pid>-<hex>   in-flight writes (never read)

Crash safety: an artifact is *valid* only if its sidecar exists and records the size and sha256 of
the data file as it is on disk now. Both files are written to temporaries, fsynced and moved into
place with ``os.replace`` (data first, then sidecar, then the directory is fsynced). Whatever step a
crash interrupts, the pair on disk is either the old pair, a data file without a matching sidecar,
or the complete new pair; the checksum tells them apart, so a partial artifact is never loaded, only
rebuilt. Readers take no lock; builders hold the per-key lock and re-check before building, so each
key is built at most once however many processes ask for it concurrently.
"""

from __future__ import annotations

import collections
import contextlib
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
import torch

from robustspec.errors import ArtifactError, RobustSpecError

__all__ = ["Store", "canonical_json", "content_key"]

log = logging.getLogger("robustspec.store")

_KIND_RE = re.compile(r"[a-z0-9-]+")
_KEY_RE = re.compile(r"([a-z0-9-]+)-[0-9a-f]{24}")
_HASH_CHARS = 24
_STALE_TEMP_SECONDS = 3600.0
_CHUNK = 1 << 20

# Per-process cache of checksum verifications: data path -> ((inode, mtime_ns, size), sha256).
_VERIFIED: dict[str, tuple[tuple[int, int, int], str]] = {}

# Leaf types that torch.load(weights_only=True) reads back (checked by exact type, so numpy scalars,
# enums and other subclasses are refused before they are written, not when a later process loads them).
_SAVEABLE_LEAVES: tuple[type, ...] = (
    str,
    bytes,
    int,
    float,
    bool,
    complex,
    type(None),
    torch.Size,
    torch.dtype,
    torch.device,
)


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


def _check_saveable(value: Any, where: str = "value") -> None:
    """Raise ArtifactError unless torch.load(weights_only=True) can read ``value`` back."""
    if isinstance(value, torch.Tensor) or type(value) in _SAVEABLE_LEAVES:
        return
    if type(value) in (dict, collections.OrderedDict):
        for k, v in value.items():
            _check_saveable(k, f"{where} key {k!r}")
            _check_saveable(v, f"{where}[{k!r}]")
        return
    if type(value) in (list, tuple, set, frozenset):
        for i, v in enumerate(value):
            _check_saveable(v, f"{where}[{i}]")
        return
    raise ArtifactError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which torch.load(weights_only=True) "
        "cannot read; store tensors, str, int, float, bool, None and dicts/lists of them"
    )


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


#: Kinds that other artifacts are built from; ``prune`` keeps them all when it cannot tell which are needed.
_UPSTREAM_KINDS = frozenset({"data", "model", "variant"})


class Store:
    """A directory of content-addressed torch artifacts, safe to share between processes."""

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = 3600.0) -> None:
        """Use ``root`` (created on first write); wait at most ``lock_timeout`` s (-1: forever) for a builder."""
        self.root: Path = Path(root).expanduser().absolute()
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        """Show the root."""
        return f"Store({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """Return ``root/<kind>/<key>.pt`` after checking that ``key`` is a well-formed content key."""
        m = _KEY_RE.fullmatch(key) if isinstance(key, str) else None
        if m is None:
            raise ArtifactError(f"invalid artifact key {key!r}: expected <kind>-<24 hex digits>")
        return self.root / m.group(1) / f"{key}.pt"

    def _meta_path(self, key: str) -> Path:
        """Return the sidecar path of ``key``."""
        return self.path_for(key).with_suffix(".json")

    def _lock(self, key: str) -> filelock.FileLock:
        """Return the (not yet acquired) per-key lock, creating its directory."""
        lock_path = self.path_for(key).with_suffix(".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(lock_path), timeout=self.lock_timeout)

    @contextlib.contextmanager
    def _locked(self, key: str, describe: str = "") -> Iterator[None]:
        """Hold the per-key lock, turning a timeout into ArtifactError."""
        lock = self._lock(key)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise ArtifactError(
                f"timed out after {self.lock_timeout:g} s waiting for another process to build {describe or key}"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    # -- validation --------------------------------------------------------------------------

    def _read_meta(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """Return (sidecar, None), (None, None) if it is absent, or (None, reason) if it is unreadable."""
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
        return meta, None

    def _check(self, key: str, *, load: bool) -> tuple[str | None, Any]:
        """Return (None, value or None) if ``key`` is valid, else (reason, None); reason "missing" if absent."""
        data_path = self.path_for(key)
        meta, meta_problem = self._read_meta(key)
        try:
            f = open(data_path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            if meta is None and meta_problem is None:
                return "missing", None
            return "metadata without a data file", None
        with f:
            if meta is None:
                return meta_problem or "data file without metadata", None
            st = os.fstat(f.fileno())
            if st.st_size != meta["bytes"]:
                return f"data file has {st.st_size} bytes, metadata records {meta['bytes']}", None
            signature = (st.st_ino, st.st_mtime_ns, st.st_size)
            cached = _VERIFIED.get(str(data_path))
            if cached != (signature, meta["sha256"]):
                digest = _sha256_stream(f)
                if digest != meta["sha256"]:
                    _VERIFIED.pop(str(data_path), None)
                    return "checksum mismatch", None
                _VERIFIED[str(data_path)] = (signature, digest)
            if not load:
                return None, None
            f.seek(0)
            try:
                with warnings.catch_warnings():
                    # torch's own loader of quantized (int8) tensors still goes through TypedStorage.
                    warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)
                    # ... and torch 2.14 deprecates creating quantized tensors, which is what reading one does.
                    warnings.filterwarnings(
                        "ignore", message="torch.quantize_per_tensor, torch.quantize_per_channel", category=UserWarning
                    )
                    return None, torch.load(f, weights_only=True, map_location="cpu")
            except Exception as exc:  # noqa: BLE001 - any unreadable payload is a corrupt artifact
                return f"torch.load failed ({type(exc).__name__}: {exc})", None

    def has(self, key: str) -> bool:
        """Return whether a complete artifact with a verified checksum exists for ``key``."""
        return self._check(key, load=False)[0] is None

    def load(self, key: str) -> Any:
        """Load a verified artifact onto the CPU; ArtifactError if it is missing or corrupt."""
        reason, value = self._check(key, load=True)
        if reason is not None:
            raise ArtifactError(f"artifact {key} in {self.root} is not available: {reason}")
        self._mark_used(key)
        return value

    def _mark_used(self, key: str) -> None:
        """Record that ``key`` was just used: its sidecar's modification time (``prune`` reads it).

        A store on a read-only file system (a restored CI cache, say) simply keeps its old times.
        """
        with contextlib.suppress(OSError):
            os.utime(self._meta_path(key))

    def last_used(self, key: str) -> float | None:
        """When ``key`` was last built or loaded (seconds since the epoch); None if it has no files."""
        for path in (self._meta_path(key), self.path_for(key)):
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
    ) -> Any:
        """Return the artifact ``key``, calling ``build()`` and storing its result if no valid copy exists.

        ``parents`` are the keys it is built from (recorded in its sidecar: ``prune`` keeps the parents of
        what it keeps).
        """
        reason, value = self._check(key, load=True)
        if reason is None:
            self._mark_used(key)
            return value
        with self._locked(key, describe):
            reason, value = self._check(key, load=True)
            if reason is None:
                self._mark_used(key)
                return value
            if reason != "missing":
                log.warning("artifact %s (%s) is corrupt or partial: %s; rebuilding", key, describe or "-", reason)
            self._clean_stale_temps(key)
            started = time.monotonic()
            try:
                value = build()
            except RobustSpecError:
                raise
            except Exception as exc:
                raise ArtifactError(f"building {describe or key} failed: {exc}") from exc
            seconds = time.monotonic() - started
            _check_saveable(value, f"the result of building {describe or key}")
            self._write(key, value, meta=meta, describe=describe, parents=parents)
            self._log_build(key, describe, seconds)
            return value

    def _write(
        self, key: str, value: Any, *, meta: Mapping[str, Any] | None, describe: str, parents: Sequence[str] = ()
    ) -> None:
        """Atomically store ``value`` and its sidecar (caller holds the key's lock)."""
        data_path = self.path_for(key)
        meta_path = self._meta_path(key)
        tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        data_tmp = data_path.with_name(f"{data_path.name}.tmp-{tag}")
        meta_tmp = meta_path.with_name(f"{meta_path.name}.tmp-{tag}")
        try:
            with open(data_tmp, "xb") as f:
                torch.save(value, f)
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
                "bytes": st.st_size,
                "sha256": digest,
                "meta": dict(meta) if meta is not None else {},
                "parents": list(parents),
            }
            with open(meta_tmp, "x", encoding="utf-8") as f:
                json.dump(sidecar, f, sort_keys=True, indent=1, default=str)
                f.flush()
                os.fsync(f.fileno())
            os.replace(data_tmp, data_path)
            _fsync_dir(data_path.parent)
            os.replace(meta_tmp, meta_path)
            _fsync_dir(data_path.parent)
            _VERIFIED[str(data_path)] = ((st.st_ino, st.st_mtime_ns, st.st_size), digest)
        except RobustSpecError:
            raise
        except Exception as exc:
            raise ArtifactError(f"writing {describe or key} to {data_path} failed: {exc}") from exc
        finally:
            _unlink_quietly(data_tmp)
            _unlink_quietly(meta_tmp)

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
        for pattern in (f"{key}.pt.tmp-*", f"{key}.json.tmp-*"):
            for tmp in directory.glob(pattern):
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
                if file.suffix not in (".pt", ".json"):
                    continue
                m = _KEY_RE.fullmatch(file.stem)
                if m is not None and m.group(1) == kind_dir.name:
                    keys.add(file.stem)
        return sorted(keys)

    def entries(self) -> list[dict[str, Any]]:
        """Return the sidecar of every valid artifact (plus its ``path``), sorted by key."""
        out = []
        for key in self._keys_on_disk():
            if self._check(key, load=False)[0] is None:
                meta, _ = self._read_meta(key)
                if meta is not None:
                    out.append({**meta, "path": str(self.path_for(key))})
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
        with self._locked(key):
            removed_meta = _unlink_quietly(self._meta_path(key))
            removed_data = _unlink_quietly(data_path)
            _VERIFIED.pop(str(data_path), None)
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
            with contextlib.suppress(OSError):
                size = self.path_for(key).stat().st_size
            stale.append({"key": key, "bytes": size, "describe": (meta or {}).get("describe"), "last_used": used})
        stale.sort(key=lambda e: (e["last_used"], e["key"]))
        if not dry_run:
            stale = [e for e in stale if self.remove(e["key"])]
        return stale

    def clear(self) -> int:
        """Remove every artifact and the build log; return how many keys were removed.

        Lock files and recent temp files are kept: deleting a lock another process waits on would
        let two builders in at once.
        """
        removed = sum(self.remove(key) for key in self._keys_on_disk())
        _unlink_quietly(self.root / "builds.jsonl")
        return removed
