"""The artifact store in an object store (``s3://bucket/prefix``, ``gs://...``, ``file:///dir``), shared by
machines, with a local read-through cache (an ordinary :class:`~robustspec.store.Store`).

Layout under the URL::

    blobs/sha256/<ab>/<sha256>          the data file of an artifact, by its content's sha256
    manifests/<kind>/<key>.json         sha256, bytes, format, meta, parents, describe, created, builder
    leases/<key>.json                   who builds <key> now, until when (holder, host, pid, expires, ttl)
    builds/<key>-<holder>.json          one object per build (key, seconds, time, host, pid, published)

A manifest is written once, with a create-only write (S3: ``PutObject`` with ``If-None-Match: *``;
``file://``: a hard link of a complete temp file, which fails if the name exists), and only after its
blob is completely uploaded: the first writer wins, and a builder that loses the race drops its own
artifact and serves the winner's. Every read checks the blob's size and sha256 against the manifest; a
blob that does not match is a corrupt artifact, rebuilt with a warning naming its URL, and its manifest is
replaced conditionally (on the ETag it had when it was read, so only one repair wins).

Builds are serialised across machines by leases with a TTL: a builder creates ``leases/<key>.json``
create-only, renews it every third of the TTL from a background thread (a write conditional on the ETag
it last wrote, ``If-Match``), and deletes it when done. Others poll for the manifest while the lease is
live; a lease past its expiry (its holder was killed, or lost its network) is taken over by a replace
conditional on the expired lease's ETag, so exactly one taker wins. Expiry is the holder's clock: the
machines' clocks must agree to well within the TTL.

Within one machine the local cache's per-key file lock serialises xdist workers first, so one process
per machine talks to the remote store about a key. A local hit is served without any request.

Credentials and the endpoint come from the usual places only (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws``, ``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3``,
read by botocore), never from a suite. Faults of the remote store (endpoint down, missing bucket,
permission, no credentials) are ArtifactErrors naming the URL and the cause (:func:`remote_problem`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import random
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from robustspec import store as _store
from robustspec.errors import ArtifactError, RobustSpecError
from robustspec.progress import report
from robustspec.store import Store

__all__ = ["RemoteStore", "check_url", "open_backend", "remote_problem", "DEFAULT_LEASE_TTL"]

log = logging.getLogger("robustspec.store")

#: Seconds a lease lasts without renewal (renewed every third of it while its holder builds).
DEFAULT_LEASE_TTL = 60.0
#: Seconds between two looks at a lease held by another process, at first; at most _MAX_POLL later.
DEFAULT_POLL = 0.5
_MAX_POLL = 5.0

_URL_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)")


def _now() -> float:
    return time.time()


# -- faults in words --------------------------------------------------------------------------


def _error_code(exc: BaseException) -> str:
    """The S3 error code behind ``exc`` (``NoSuchBucket``, ``PreconditionFailed``, ...), else ``""``."""
    for e in _store._exception_chain(exc):
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            code = (response.get("Error") or {}).get("Code")
            if code:
                return str(code)
    return ""


def _is_precondition(exc: BaseException) -> bool:
    """Whether ``exc`` is a refused conditional write (If-None-Match / If-Match did not hold)."""
    if _error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
        return True
    return any("pre-condition" in str(e) or "precondition" in str(e).lower() for e in _store._exception_chain(exc))


def remote_problem(exc: BaseException) -> str:
    """What went wrong talking to an object store, in words (the cause of an ArtifactError)."""
    chain = list(_store._exception_chain(exc))
    code = _error_code(exc)
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain)
    if names & {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}:
        return (
            "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials)"
        )
    if code == "NoSuchBucket" or "bucket does not exist" in text:
        return "the bucket does not exist"
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "403") or any(
        isinstance(e, PermissionError) for e in chain
    ):
        return f"permission denied ({code or text})"
    connection = {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ClientConnectorError",
        "ServerDisconnectedError",
    }
    if names & connection or any(isinstance(e, (ConnectionError, TimeoutError, socket.gaierror)) for e in chain):
        first = next(e for e in chain if type(e).__name__ in connection or isinstance(e, (OSError, TimeoutError)))
        return f"cannot reach the endpoint ({first})"
    return f"{type(exc).__name__}: {exc}"


# -- backends: the few operations the store needs, per kind of URL ----------------------------


class _Backend:
    """Objects under one URL, by relative path. ``etag``: an opaque version of one object's content."""

    url: str

    def read(self, rel: str) -> tuple[bytes, str] | None:
        raise NotImplementedError

    def create(self, rel: str, data: bytes) -> str | None:
        """Write ``rel`` if it does not exist (atomically); its etag, or None if it existed."""
        raise NotImplementedError

    def replace(self, rel: str, data: bytes, etag: str) -> str | None:
        """Overwrite ``rel`` if its etag is ``etag``; the new etag, or None if it was not (or is gone)."""
        raise NotImplementedError

    def delete(self, rel: str, etag: str | None = None) -> bool:
        """Delete ``rel`` (only if its etag is ``etag``, when given); whether it did."""
        raise NotImplementedError

    def put(self, rel: str, data: bytes) -> None:
        """Write ``rel`` whatever is there (atomically: readers see the old or the new content)."""
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        """Relative paths of the objects under ``prefix`` (a folder), sorted."""
        raise NotImplementedError

    def size(self, rel: str) -> int | None:
        """The size of the object ``rel`` in bytes; None if it is absent."""
        got = self.read(rel)
        return None if got is None else len(got[0])

    def download(self, rel: str, dest: Path) -> bool:
        """Write the object ``rel`` to the new file ``dest`` (streamed, for blobs); False if it is absent."""
        got = self.read(rel)
        if got is None:
            return False
        dest.write_bytes(got[0])
        return True

    def upload(self, rel: str, src: Path) -> None:
        """Write the file ``src`` to ``rel`` whatever is there (streamed; atomically, like :meth:`put`)."""
        self.put(rel, src.read_bytes())

    def url_of(self, rel: str) -> str:
        return f"{self.url}/{rel}"


class _LocalBackend(_Backend):
    """``file:///dir``: create-only by hard link, compare-and-swap under a per-object file lock."""

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def _tmp(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    @staticmethod
    def _etag(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    @contextlib.contextmanager
    def _cas(self, path: Path) -> Iterator[None]:
        import filelock

        path.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(path.with_name(f".{path.name}.cas")), timeout=60):
            yield

    def read(self, rel: str) -> tuple[bytes, str] | None:
        try:
            data = self._path(rel).read_bytes()
        except FileNotFoundError:
            return None
        return data, self._etag(data)

    def create(self, rel: str, data: bytes) -> str | None:
        path = self._path(rel)
        tmp = self._tmp(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return None
        finally:
            _store._unlink_quietly(tmp)
        _store._fsync_dir(path.parent)
        return self._etag(data)

    def replace(self, rel: str, data: bytes, etag: str) -> str | None:
        path = self._path(rel)
        with self._cas(path):
            now = self.read(rel)
            if now is None or now[1] != etag:
                return None
            os.replace(self._tmp(path, data), path)
        _store._fsync_dir(path.parent)
        return self._etag(data)

    def delete(self, rel: str, etag: str | None = None) -> bool:
        path = self._path(rel)
        if etag is None:
            return _store._unlink_quietly(path)
        with self._cas(path):
            now = self.read(rel)
            if now is None or now[1] != etag:
                return False
            return _store._unlink_quietly(path)

    def put(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        os.replace(self._tmp(path, data), path)
        _store._fsync_dir(path.parent)

    def size(self, rel: str) -> int | None:
        try:
            return self._path(rel).stat().st_size
        except FileNotFoundError:
            return None

    def download(self, rel: str, dest: Path) -> bool:
        try:
            shutil.copyfile(self._path(rel), dest)
        except FileNotFoundError:
            return False
        return True

    def upload(self, rel: str, src: Path) -> None:
        path = self._path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            _store._unlink_quietly(tmp)
        _store._fsync_dir(path.parent)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
        )


class _S3Backend(_Backend):
    """``s3://bucket/prefix`` through s3fs: conditional writes with If-None-Match / If-Match."""

    def __init__(self, url: str, fs: Any, bucket: str, prefix: str) -> None:
        self.url = url
        self.fs = fs
        self.bucket = bucket
        self.prefix = prefix

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def read(self, rel: str) -> tuple[bytes, str] | None:
        from fsspec.asyn import sync

        async def get() -> tuple[bytes, str]:
            r = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self._key(rel))
            async with r["Body"] as body:
                data = await body.read()
            return data, str(r["ETag"])

        try:
            return sync(self.fs.loop, get)
        except FileNotFoundError as exc:
            if _error_code(exc) == "NoSuchBucket" or "bucket does not exist" in str(exc):
                raise
            return None

    def _put(self, rel: str, data: bytes, **cond: str) -> str | None:
        try:
            r = self.fs.call_s3("put_object", Bucket=self.bucket, Key=self._key(rel), Body=data, **cond)
        except Exception as exc:
            if cond and (_is_precondition(exc) or (isinstance(exc, FileNotFoundError) and "IfMatch" in cond)):
                if _error_code(exc) == "NoSuchBucket":
                    raise
                return None
            raise
        return str(r.get("ETag", ""))

    def create(self, rel: str, data: bytes) -> str | None:
        return self._put(rel, data, IfNoneMatch="*")

    def replace(self, rel: str, data: bytes, etag: str) -> str | None:
        return self._put(rel, data, IfMatch=etag)

    def put(self, rel: str, data: bytes) -> None:
        self._put(rel, data)

    def delete(self, rel: str, etag: str | None = None) -> bool:
        cond = {"IfMatch": etag} if etag is not None else {}
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self._key(rel), **cond)
        except FileNotFoundError:
            return False
        except Exception as exc:
            if cond and _is_precondition(exc):
                return False
            raise
        return True

    def size(self, rel: str) -> int | None:
        try:
            r = self.fs.call_s3("head_object", Bucket=self.bucket, Key=self._key(rel))
        except FileNotFoundError as exc:
            if _error_code(exc) == "NoSuchBucket" or "bucket does not exist" in str(exc):
                raise
            return None
        return int(r["ContentLength"])

    def download(self, rel: str, dest: Path) -> bool:
        try:
            self.fs.get_file(f"{self.bucket}/{self._key(rel)}", str(dest))
        except FileNotFoundError as exc:
            if _error_code(exc) == "NoSuchBucket" or "bucket does not exist" in str(exc):
                raise
            return False
        return True

    def upload(self, rel: str, src: Path) -> None:
        # One PUT up to s3fs's chunk size, else a multipart upload: either way the object appears whole.
        self.fs.put_file(str(src), f"{self.bucket}/{self._key(rel)}")

    def list(self, prefix: str) -> list[str]:
        out: list[str] = []
        token: str | None = None
        root = self._key("")
        while True:
            kw = {"ContinuationToken": token} if token else {}
            r = self.fs.call_s3("list_objects_v2", Bucket=self.bucket, Prefix=self._key(prefix.rstrip("/") + "/"), **kw)
            out += [c["Key"][len(root) :] for c in r.get("Contents", [])]
            if not r.get("IsTruncated"):
                return sorted(out)
            token = r.get("NextContinuationToken")


class _FsspecBackend(_Backend):
    """Any other fsspec file system (``gs://`` through gcsfs, ...): create-only through mode ``xb`` where
    the file system supports it; replacing a lease is read-compare-write (not atomic: two takers of one
    expired lease may both build; the create-only manifest still keeps one result)."""

    def __init__(self, url: str, fs: Any, base: str) -> None:
        self.url = url
        self.fs = fs
        self.base = base.rstrip("/")

    def _p(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def read(self, rel: str) -> tuple[bytes, str] | None:
        try:
            data = self.fs.cat_file(self._p(rel))
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def create(self, rel: str, data: bytes) -> str | None:
        try:
            with self.fs.open(self._p(rel), "xb") as f:
                f.write(data)
        except FileExistsError:
            return None
        return hashlib.sha256(data).hexdigest()

    def replace(self, rel: str, data: bytes, etag: str) -> str | None:
        now = self.read(rel)
        if now is None or now[1] != etag:
            return None
        self.fs.pipe_file(self._p(rel), data)
        return hashlib.sha256(data).hexdigest()

    def delete(self, rel: str, etag: str | None = None) -> bool:
        if etag is not None:
            now = self.read(rel)
            if now is None or now[1] != etag:
                return False
        try:
            self.fs.rm_file(self._p(rel))
        except FileNotFoundError:
            return False
        return True

    def put(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(self._p(rel), data)

    def size(self, rel: str) -> int | None:
        try:
            return int(self.fs.info(self._p(rel))["size"])
        except FileNotFoundError:
            return None

    def download(self, rel: str, dest: Path) -> bool:
        try:
            self.fs.get_file(self._p(rel), str(dest))
        except FileNotFoundError:
            return False
        return True

    def upload(self, rel: str, src: Path) -> None:
        self.fs.put_file(str(src), self._p(rel))

    def list(self, prefix: str) -> list[str]:
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(self._p(prefix))
        except FileNotFoundError:
            return []
        start = len(self.fs._strip_protocol(self.base)) + 1
        return sorted(str(p)[start:] for p in found)


#: What to install for each scheme that needs a package.
_PACKAGES = {"s3": ("s3fs", "pip install 'robustspec[s3]' (or pip install s3fs)"), "gs": ("gcsfs", "pip install gcsfs")}


def _s3_filesystem() -> Any:
    import s3fs

    fs = s3fs.S3FileSystem(
        skip_instance_cache=True,
        use_listings_cache=False,
        config_kwargs={"retries": {"max_attempts": 3, "mode": "standard"}, "connect_timeout": 5, "read_timeout": 60},
    )
    fs.retries = 2  # s3fs's own retries on top of botocore's: an endpoint that is down fails within seconds
    return fs


def check_url(url: str) -> tuple[str, str]:
    """``(scheme, rest)`` of a store URL, without importing or connecting anything; ArtifactError for a
    URL that is malformed, or whose scheme needs a package that is not installed."""
    m = _URL_RE.fullmatch(url)
    if m is None:
        raise ArtifactError(f"artifact store {url!r} is not a URL (scheme://...)")
    scheme, rest = m.group(1).lower(), m.group(2).strip("/")
    if scheme == "file":
        if not m.group(2).startswith("/"):
            raise ArtifactError(f"artifact store {url}: a file:// URL needs an absolute path (file:///dir)")
        return scheme, rest
    if scheme in _PACKAGES:
        package, how = _PACKAGES[scheme]
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):  # ValueError: blocked in sys.modules
            found = False
        if not found:
            raise ArtifactError(f"artifact store {url}: {scheme}:// needs the {package} package ({how})")
    elif scheme not in ("s3", "s3a"):
        from fsspec.registry import known_implementations, registry

        if scheme not in known_implementations and scheme not in registry:
            raise ArtifactError(f"artifact store {url}: no file system for {scheme}:// (fsspec knows no such scheme)")
    if not rest:
        raise ArtifactError(f"artifact store {url}: no bucket in the URL ({scheme}://bucket/prefix)")
    return scheme, rest


def open_backend(url: str) -> _Backend:
    """The backend of ``url``; ArtifactError for an unknown scheme or a missing package."""
    scheme, rest = check_url(url)
    if scheme == "file":
        return _LocalBackend(url, Path("/" + rest))
    if scheme in ("s3", "s3a"):
        bucket, _, prefix = rest.partition("/")
        return _S3Backend(url, _s3_filesystem(), bucket, prefix.strip("/"))
    import fsspec.core

    try:  # from the whole URL, so a scheme whose file system needs a host (ftp://host/dir) gets it
        fs, path = fsspec.core.url_to_fs(f"{scheme}://{rest}")
    except (ImportError, ValueError) as exc:
        raise ArtifactError(f"artifact store {url}: no file system for {scheme}:// ({exc})") from exc
    return _FsspecBackend(url, fs, path)


# -- the local cache ------------------------------------------------------------------------


class _Cache(Store):
    """The local read-through cache: a Store that also takes an artifact as the remote store holds it."""

    def temp_for(self, key: str, fmt: str) -> Path:
        """A new temp file name next to ``key``'s data file of format ``fmt`` (what :meth:`sweep` knows)."""
        data_path = self._format_path(key, fmt)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        return data_path.with_name(f"{data_path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")

    def ingest(self, key: str, data_tmp: Path, manifest: Mapping[str, Any], url: str) -> None:
        """Move the verified temp file ``data_tmp`` (:meth:`temp_for`) into place as ``key``'s data file,
        with its sidecar from ``manifest``, replacing what is there (caller holds the key's lock)."""
        fmt = manifest["format"]
        data_path = self._format_path(key, fmt)
        meta_path = self._meta_path(key)
        meta_tmp = meta_path.with_name(f"{meta_path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        sidecar = {
            "key": key,
            "kind": manifest.get("kind") or key.rsplit("-", 1)[0],
            "describe": manifest.get("describe", ""),
            "created": manifest.get("created"),
            "meta": manifest.get("meta") or {},
            **({"parents": list(manifest["parents"])} if isinstance(manifest.get("parents"), list) else {}),
            "format": fmt,
            "bytes": manifest["bytes"],
            "sha256": manifest["sha256"],
            "remote": url,
        }
        try:
            with open(data_tmp, "rb+") as f:
                os.fsync(f.fileno())
            with open(meta_tmp, "x", encoding="utf-8") as f:
                json.dump(sidecar, f, sort_keys=True, indent=1, default=str)
                f.flush()
                os.fsync(f.fileno())
            os.replace(data_tmp, data_path)
            os.replace(meta_tmp, meta_path)
            _store._fsync_dir(data_path.parent)
            st = os.stat(data_path)
            _store._VERIFIED[str(data_path)] = ((st.st_ino, st.st_mtime_ns, st.st_size), manifest["sha256"])
            for other in self._data_paths(key):
                if other != data_path:
                    _store._VERIFIED.pop(str(other), None)
                    _store._unlink_quietly(other)
        except OSError as exc:
            problem = _store.storage_problem(exc, data_path, manifest["bytes"])
            raise self._cannot("store", key, str(manifest.get("describe") or ""), problem or str(exc)) from exc
        finally:
            _store._unlink_quietly(meta_tmp)


# -- leases ---------------------------------------------------------------------------------


class _Lease:
    """A build lease held by this process, renewed by a daemon thread until released."""

    def __init__(self, store: RemoteStore, key: str, body: dict[str, Any], etag: str) -> None:
        self.store, self.key, self.body, self.etag = store, key, body, etag
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"robustspec-lease-{key}", daemon=True)
        self._thread.start()

    @property
    def rel(self) -> str:
        return f"leases/{self.key}.json"

    def _renew(self) -> None:
        ttl = self.store.lease_ttl
        while not self._stop.wait(ttl / 3):
            body = {**self.body, "renewed": _now(), "expires": _now() + ttl}
            try:
                etag = self.store._backend.replace(self.rel, _dump(body), self.etag)
            except Exception as exc:  # noqa: BLE001 - a renewal that fails is retried; the lease may lapse
                log.warning("could not renew the lease of %s at %s: %s", self.key, self.store.url, remote_problem(exc))
                continue
            if etag is None:
                self.lost = True
                log.warning(
                    "lost the build lease of %s at %s (it expired and was taken over)", self.key, self.store.url
                )
                return
            self.body, self.etag = body, etag

    def release(self) -> None:
        """Stop renewing and delete the lease (conditionally on its ETag; where the server refuses
        conditional deletes, only if it still names this holder)."""
        self._stop.set()
        self._thread.join()
        if self.lost:
            return
        backend = self.store._backend
        try:
            backend.delete(self.rel, self.etag)
        except Exception:  # noqa: BLE001 - a lease left behind only lapses: never fail a build for it
            with contextlib.suppress(Exception):
                got = backend.read(self.rel)
                if got is not None and (_parse(got[0]) or {}).get("holder") == self.body["holder"]:
                    backend.delete(self.rel)


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=1, default=str).encode("utf-8")


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


# -- the store ------------------------------------------------------------------------------


class RemoteStore:
    """Artifacts in an object store at ``url``, read through the local Store ``cache``.

    The same interface as :class:`~robustspec.store.Store` where the workspace, the sharding and
    ``robustspec cache`` use it: :meth:`get_or_build`, :meth:`load`, :meth:`has`, :meth:`entries`,
    :meth:`builds`, :meth:`last_used`, :meth:`remove`, :meth:`prune`, :meth:`clear`, :meth:`sweep`.
    """

    def __init__(
        self,
        url: str,
        cache: str | os.PathLike[str],
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        poll: float = DEFAULT_POLL,
        lock_timeout: float = 3600.0,
        backend: _Backend | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.root = self.url  # what messages name
        self.cache = _Cache(cache, lock_timeout=lock_timeout)
        self.lease_ttl = float(lease_ttl)
        self.poll = float(poll)
        self.lock_timeout = lock_timeout
        if backend is None:
            check_url(self.url)  # a malformed URL or a missing package fails here; s3fs is imported on first use
        self._backend_obj = backend
        self._given_backend = backend is not None
        self._backend_lock = threading.Lock()
        self.host = socket.gethostname()

    def __repr__(self) -> str:
        return f"RemoteStore({self.url!r}, cache={str(self.cache.root)!r})"

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (a build sent to another process or machine): the connection is made again there."""
        state = dict(self.__dict__)
        state.pop("_backend_lock")
        if not self._given_backend:
            state["_backend_obj"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._backend_lock = threading.Lock()
        self.host = socket.gethostname()

    @property
    def _backend(self) -> _Backend:
        if self._backend_obj is None:
            with self._backend_lock:
                if self._backend_obj is None:
                    self._backend_obj = self._call("connecting", open_backend, self.url)
        return self._backend_obj

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, a fault of the remote store turned into ``ArtifactError`` naming the URL."""
        try:
            return fn(*args)
        except RobustSpecError:
            raise
        except Exception as exc:
            raise ArtifactError(f"artifact store {self.url}: {what} failed: {remote_problem(exc)}") from exc

    # -- paths --------------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """Where ``key`` lies in the local cache (checking that it is a well-formed key)."""
        return self.cache.path_for(key)

    def data_path(self, key: str) -> Path:
        return self.cache.data_path(key)

    @staticmethod
    def _manifest_rel(key: str) -> str:
        return f"manifests/{key.rsplit('-', 1)[0]}/{key}.json"

    @staticmethod
    def _blob_rel(sha256: str) -> str:
        return f"blobs/sha256/{sha256[:2]}/{sha256}"

    # -- reading --------------------------------------------------------------------------------

    def _manifest(self, key: str) -> tuple[dict[str, Any] | None, str | None, str | None]:
        """``(manifest, etag, None)``; ``(None, None, None)`` if absent; ``(None, etag, reason)`` if malformed."""
        self.path_for(key)  # validates the key
        got = self._call(f"reading the manifest of {key}", self._backend.read, self._manifest_rel(key))
        if got is None:
            return None, None, None
        raw, etag = got
        m = _parse(raw)
        if (
            m is None
            or m.get("key") != key
            or not isinstance(m.get("sha256"), str)
            or not re.fullmatch(r"[0-9a-f]{64}", m["sha256"])
            or not isinstance(m.get("bytes"), int)
            or m.get("format") not in _store._SUFFIXES
        ):
            return None, etag, "malformed manifest"
        return m, etag, None

    def _fetch(self, key: str) -> tuple[str | None, dict[str, Any] | None, str | None]:
        """Copy ``key`` from the remote store into the cache (caller holds its cache lock).

        ``(None, manifest, etag)`` when it did; ``("missing", None, None)``; or ``(reason, manifest or
        None, etag)`` when the remote copy is corrupt (nothing is copied then).
        """
        manifest, etag, problem = self._manifest(key)
        if manifest is None:
            return (problem or "missing"), None, etag
        blob = self._blob_rel(manifest["sha256"])
        where = self._backend.url_of(blob)
        try:
            tmp = self.cache.temp_for(key, manifest["format"])
        except OSError as exc:
            problem = _store.storage_problem(exc, self.cache.root) or str(exc)
            raise self.cache._cannot("store", key, str(manifest.get("describe") or ""), problem) from exc
        try:
            if not self._call(f"reading {key}", self._backend.download, blob, tmp):
                return f"its blob {where} is missing", manifest, etag
            size = tmp.stat().st_size
            if size != manifest["bytes"]:
                return f"{where} has {size} bytes, the manifest records {manifest['bytes']}", manifest, etag
            with open(tmp, "rb") as f:
                digest = _store._sha256_stream(f)
            if digest != manifest["sha256"]:
                return f"checksum mismatch: {where} is not what its manifest records", manifest, etag
            self.cache.ingest(key, tmp, manifest, self.url)
        except OSError as exc:
            problem = _store.storage_problem(exc, tmp, manifest["bytes"])
            if problem is None:
                raise
            raise self.cache._cannot("store", key, str(manifest.get("describe") or ""), problem) from exc
        finally:
            _store._unlink_quietly(tmp)
        return None, manifest, etag

    def _warn_corrupt(self, key: str, describe: str, reason: str) -> None:
        what = f"{key} ({describe})" if describe else key
        message = f"artifact {what} in {self.url} is corrupt ({reason}): rebuilding"
        log.warning("%s", message)
        report(message)

    def has(self, key: str) -> bool:
        """Whether ``key`` is in the cache (checksum verified), or published in the remote store: its
        manifest well-formed and its blob of the size the manifest records. Nothing is downloaded; the
        checksum of a remote copy is verified when it is read (a mismatch is then a corrupt artifact)."""
        if self.cache.has(key):
            return True
        manifest, _, _ = self._manifest(key)
        if manifest is None:
            return False
        blob = self._blob_rel(manifest["sha256"])
        return self._call(f"reading {key}", self._backend.size, blob) == manifest["bytes"]

    def load(self, key: str, *, upgrade: Callable[[Any], Any] | None = None) -> Any:
        """Load ``key`` from the cache, else from the remote store (verified, then cached)."""
        if not self.cache.has(key):
            with self.cache._locked(key, action="read"):
                if not self.cache.has(key):
                    reason, _, _ = self._fetch(key)
                    if reason is not None:
                        raise ArtifactError(f"artifact {key} in {self.url} is not available: {reason}")
        return self.cache.load(key, upgrade=upgrade)

    def _read_meta(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """The cached sidecar of ``key``, else its remote manifest (for the sharding's ``parents``)."""
        meta, problem = self.cache._read_meta(key)
        if meta is not None:
            return meta, None
        manifest, _, reason = self._manifest(key)
        return manifest, reason or problem

    # -- building -------------------------------------------------------------------------------

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
        """Return ``key`` from the cache, else from the remote store, else build it (once across every
        machine sharing the store: under its lease) and publish it; see :class:`Store.get_or_build`."""
        cache = self.cache
        reason, value, stored = cache._check(key, load=True)
        if reason is None:
            cache._mark_used(key)
            return cache._current(key, value, stored, upgrade, describe)  # type: ignore[arg-type]
        with cache._locked(key, describe):
            reason, value, stored = cache._check(key, load=True)
            if reason is None:
                cache._mark_used(key)
            else:
                built = self._remote_get_or_build(key, build, meta=meta, describe=describe, parents=parents)
                if built is not _FETCHED:
                    return built
                reason, value, stored = cache._check(key, load=True)
                if reason is not None:
                    raise ArtifactError(
                        f"artifact {key} copied from {self.url} into {cache.root} is unreadable: {reason}"
                    )
        return cache._current(key, value, stored, upgrade, describe)  # type: ignore[arg-type]

    def _remote_get_or_build(
        self,
        key: str,
        build: Callable[[], Any],
        *,
        meta: Mapping[str, Any] | None,
        describe: str,
        parents: Sequence[str],
    ) -> Any:
        """Fetch ``key`` into the cache (:data:`_FETCHED`), or build it under its lease and return it."""
        deadline = time.monotonic() + (self.lock_timeout if self.lock_timeout >= 0 else float("inf"))
        warned = False
        # Waiting on another's lease: look again after poll seconds, then less and less often (builds take
        # minutes), but at least every quarter of the TTL, so a lapsed lease is taken over soon.
        pause, longest = self.poll, max(self.poll, min(_MAX_POLL, self.lease_ttl / 4))
        while True:
            reason, _, _ = self._fetch(key)
            if reason is None:
                return _FETCHED
            if reason != "missing" and not warned:
                self._warn_corrupt(key, describe, reason)
                warned = True
            lease, holder = self._take_lease(key)
            if lease is not None:
                try:
                    again, _, etag = self._fetch(key)  # published while the lease was taken?
                    if again is None:
                        return _FETCHED
                    return self._build_and_publish(
                        key,
                        build,
                        meta=meta,
                        describe=describe,
                        parents=parents,
                        replace=None if again == "missing" else etag,
                    )
                finally:
                    lease.release()
            if time.monotonic() > deadline:
                raise ArtifactError(
                    f"timed out after {self.lock_timeout:g} s waiting for {holder} to build {describe or key} in {self.url}"
                )
            time.sleep(pause * random.uniform(0.8, 1.2))
            pause = min(longest, pause * 1.5)

    def _take_lease(self, key: str) -> tuple[_Lease | None, str]:
        """This process's new lease on ``key``, or ``(None, who holds it)``."""
        rel = f"leases/{key}.json"
        for _ in range(5):
            body = {
                "key": key,
                "holder": f"{self.host}-{os.getpid()}-{secrets.token_hex(6)}",
                "host": self.host,
                "pid": os.getpid(),
                "acquired": _now(),
                "expires": _now() + self.lease_ttl,
                "ttl": self.lease_ttl,
            }
            etag = self._call(f"taking the build lease of {key}", self._backend.create, rel, _dump(body))
            if etag is not None:
                return _Lease(self, key, body, etag), ""
            got = self._call(f"reading the build lease of {key}", self._backend.read, rel)
            if got is None:
                continue  # released meanwhile: try again
            held = _parse(got[0]) or {}
            expires = held.get("expires")
            if isinstance(expires, (int, float)) and expires > _now():
                return (
                    None,
                    f"{held.get('holder', 'another process')} (lease until {time.strftime('%H:%M:%S', time.localtime(expires))})",
                )
            etag = self._call(f"taking over the build lease of {key}", self._backend.replace, rel, _dump(body), got[1])
            if etag is not None:
                log.warning(
                    "took over the expired build lease of %s at %s from %s", key, self.url, held.get("holder", "?")
                )
                return _Lease(self, key, body, etag), ""
        return None, "another process"

    def _build_and_publish(
        self,
        key: str,
        build: Callable[[], Any],
        *,
        meta: Mapping[str, Any] | None,
        describe: str,
        parents: Sequence[str],
        replace: str | None,
    ) -> Any:
        """Build ``key``, store it in the cache, upload its blob, publish its manifest (create-only, or
        replacing a corrupt one whose etag is ``replace``); the winner's value if another won."""
        cache = self.cache
        cache._clean_stale_temps(key)
        started = time.monotonic()
        try:
            value = build()
        except RobustSpecError:
            raise
        except Exception as exc:
            raise ArtifactError(f"building {describe or key} failed: {exc}") from exc
        seconds = time.monotonic() - started
        ended = _now()  # the record's time: when the build ended (sharding nests builds by it), not the upload
        cache._write(key, value, meta=meta, describe=describe, parents=parents)
        cache._log_build(key, describe, seconds)
        sidecar, problem = cache._read_meta(key)
        if sidecar is None:
            raise ArtifactError(f"artifact {key} in {cache.root} vanished after it was built ({problem or 'missing'})")
        data_path = cache._format_path(key, sidecar["format"])
        manifest = {
            "key": key,
            "kind": sidecar["kind"],
            "sha256": sidecar["sha256"],
            "bytes": sidecar["bytes"],
            "format": sidecar["format"],
            "meta": sidecar.get("meta") or {},
            "parents": list(parents),
            "describe": describe,
            "created": sidecar.get("created"),
            "builder": {"host": self.host, "pid": os.getpid(), "worker": os.environ.get("PYTEST_XDIST_WORKER")},
        }
        self._call(f"uploading {key}", self._backend.upload, self._blob_rel(manifest["sha256"]), data_path)
        rel = self._manifest_rel(key)
        if replace is None:
            won = self._call(f"publishing {key}", self._backend.create, rel, _dump(manifest)) is not None
        else:
            won = self._call(f"publishing {key}", self._backend.replace, rel, _dump(manifest), replace) is not None
        self._record_build(key, describe, seconds, ended, won)
        if won:
            return value
        # Another builder published first: serve its artifact, so every machine uses the same bytes.
        reason, winner, _ = self._fetch(key)
        if reason is not None:
            raise ArtifactError(f"artifact {key} in {self.url}: another builder published it first, but {reason}")
        log.info("artifact %s: another builder published first; adopted its copy", key)
        return cache.load(key)

    def _record_build(self, key: str, describe: str, seconds: float, ended: float, published: bool) -> None:
        record = {
            "key": key,
            "kind": key.rsplit("-", 1)[0],
            "describe": describe,
            "host": self.host,
            "pid": f"{self.host}:{os.getpid()}",
            "worker": os.environ.get("PYTEST_XDIST_WORKER"),
            "seconds": round(seconds, 6),
            "time": ended,
            "published": published,
        }
        rel = f"builds/{key}-{self.host}-{os.getpid()}-{secrets.token_hex(4)}.json"
        try:
            self._backend.put(rel, _dump(record))
        except Exception as exc:  # noqa: BLE001 - the log is for counting and sharding, not for results
            log.warning("could not record the build of %s in %s: %s", key, self.url, remote_problem(exc))

    # -- inspection and maintenance ---------------------------------------------------------------

    def _read_all(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        rels = self._call(f"listing {prefix}", self._backend.list, prefix)

        def one(rel: str) -> tuple[str, dict[str, Any] | None]:
            got = self._call(f"reading {rel}", self._backend.read, rel)
            return rel, (_parse(got[0]) if got is not None else None)

        if len(rels) > 8:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(8) as pool:
                pairs = list(pool.map(one, rels))
        else:
            pairs = [one(rel) for rel in rels]
        return [(rel, obj) for rel, obj in pairs if obj is not None]

    def entries(self) -> list[dict[str, Any]]:
        """The manifest of every artifact in the remote store (``path``: its blob's URL; ``cached``:
        whether the local cache holds it; ``last_used``: when the cache last used it, else when it was
        published), sorted by key."""
        out = []
        for _, m in self._read_all("manifests"):
            key = m.get("key")
            if isinstance(key, str) and isinstance(m.get("sha256"), str):
                used = self.cache.last_used(key)
                out.append(
                    {
                        **m,
                        "path": self._backend.url_of(self._blob_rel(m["sha256"])),
                        "cached": self.cache.has(key),
                        "last_used": used if used is not None else m.get("created"),
                    }
                )
        return sorted(out, key=lambda e: e["key"])

    def builds(self) -> list[dict[str, Any]]:
        """Every machine's build records (one object each), oldest first."""
        records = [r for _, r in self._read_all("builds")]
        return sorted(records, key=lambda r: (r.get("time") or 0, str(r.get("key"))))

    def leases(self) -> list[dict[str, Any]]:
        """The build leases in the remote store now (``expired``: past their expiry)."""
        now = _now()
        return [
            {**lease, "expired": not (isinstance(lease.get("expires"), (int, float)) and lease["expires"] > now)}
            for _, lease in self._read_all("leases")
        ]

    def last_used(self, key: str) -> float | None:
        """When the local cache last used ``key``, else when it was published; None if unknown."""
        used = self.cache.last_used(key)
        if used is not None:
            return used
        manifest, _, _ = self._manifest(key)
        created = (manifest or {}).get("created")
        return float(created) if isinstance(created, (int, float)) else None

    def remove(self, key: str) -> bool:
        """Delete ``key`` from the cache and its manifest from the remote store (its blob stays: another
        key may share it); whether anything was deleted."""
        local = self.cache.remove(key)
        remote = self._call(f"deleting {key}", self._backend.delete, self._manifest_rel(key))
        return bool(local or remote)

    def prune(self, unused_for: float, *, dry_run: bool = False) -> list[dict[str, Any]]:
        """Prune the local cache (:meth:`Store.prune`); the remote store, shared by machines whose uses
        this one cannot see, is left as it is."""
        return self.cache.prune(unused_for, dry_run=dry_run)

    def clear(self) -> int:
        """Empty the local cache; the remote store is left as it is (:meth:`clear_remote` empties it)."""
        return self.cache.clear()

    def clear_remote(self) -> int:
        """Delete every object under the URL (manifests first, so no reader sees a manifest without its
        blob); return how many artifacts (manifests) were deleted."""
        manifests = self._call("listing manifests", self._backend.list, "manifests")
        for rel in manifests:
            self._call(f"deleting {rel}", self._backend.delete, rel)
        for prefix in ("blobs", "builds", "leases"):
            for rel in self._call(f"listing {prefix}", self._backend.list, prefix):
                self._call(f"deleting {rel}", self._backend.delete, rel)
        return len(manifests)

    def sweep(self, older_than: float = _store._STALE_TEMP_SECONDS, *, dry_run: bool = False) -> list[Any]:
        """What killed builds left: the cache's (:meth:`Store.sweep`), and remote leases expired more than
        ``older_than`` seconds ago (deleted conditionally: a lease renewed meanwhile stays)."""
        swept: list[Any] = list(self.cache.sweep(older_than, dry_run=dry_run))
        cutoff = _now() - older_than
        for rel in self._call("listing leases", self._backend.list, "leases"):
            got = self._call(f"reading {rel}", self._backend.read, rel)
            if got is None:
                continue
            expires = (_parse(got[0]) or {}).get("expires")
            if isinstance(expires, (int, float)) and expires >= cutoff:
                continue
            if dry_run or self._call(f"deleting {rel}", self._backend.delete, rel, got[1]):
                swept.append(self._backend.url_of(rel))
        return swept


#: get_or_build's marker: the artifact was copied into the cache (read it from there).
_FETCHED = object()
