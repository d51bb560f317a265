"""The artifact store at a URL (robustspec.remote_store), against a real S3 server (SeaweedFS, tests/s3server.py)
and a ``file://`` directory: builds once across machines, leases that expire, checksums on every read,
create-only publishing, faults as ArtifactErrors naming the URL."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import robustspec
from robustspec import cli
from robustspec.config import CACHE_ENV, LEASE_TTL_ENV, STORE_ENV, cache_root, open_store, store_location
from robustspec.errors import ArtifactError
from robustspec.remote_store import RemoteStore, remote_problem
from robustspec.store import Store, content_key
from tests.s3server import S3Server

PROJECT_ROOT = Path(robustspec.__file__).resolve().parent.parent


def _fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return (tmp_path / "remote").as_uri()
    if request.param == "memory":
        return f"memory://rs-{secrets.token_hex(4)}/store"
    server: S3Server = request.getfixturevalue("s3_env")
    return server.url()


@pytest.fixture(params=["s3", "file", "memory"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store URL: in the S3 server's bucket, a ``file://`` directory, or fsspec's in-memory
    file system (this process only: the generic fsspec backend, as for ``gs://``)."""
    return _fresh_url(request, tmp_path)


@pytest.fixture(params=["s3", "file"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """:func:`store_url` of the stores another process can reach too."""
    return _fresh_url(request, tmp_path)


def machine(url: str, tmp_path: Path, name: str, **kw: Any) -> RemoteStore:
    """A store as one machine sees it: the URL, and a local cache of its own."""
    return RemoteStore(url, tmp_path / f"cache-{name}", **kw)


def counts(store: RemoteStore) -> Counter[str]:
    return Counter(b["key"] for b in store.builds())


KEYS = {kind: content_key(kind, {"test": kind}) for kind in ("data", "model", "eval")}


def chain(store: RemoteStore, built: list[str], pause: float = 0.0) -> dict[str, Any]:
    """data -> model -> eval, each built inside the next one's build (as the workspace nests them)."""

    def data() -> dict[str, Any]:
        built.append("data")
        time.sleep(pause)
        return {"images": [1, 2, 3]}

    def model() -> dict[str, Any]:
        d = store.get_or_build(KEYS["data"], data, describe="data")
        built.append("model")
        time.sleep(pause)
        return {"weights": sum(d["images"])}

    def evaluation() -> dict[str, Any]:
        m = store.get_or_build(KEYS["model"], model, describe="model", parents=[KEYS["data"]])
        built.append("eval")
        return {"n": 3, "correct": m["weights"]}

    return store.get_or_build(KEYS["eval"], evaluation, describe="eval", parents=[KEYS["model"]])


# -- (a) every artifact is built once across machines ----------------------------------------


def test_two_machines_build_each_artifact_once(store_url: str, tmp_path: Path) -> None:
    """Two machines (separate caches) ask for the same chain at once: each artifact is built once, by one
    of them; a third machine with an empty cache reads all of it and builds nothing. The builder's lease
    (TTL 1 s, held for two builds of 0.8 s each) is renewed while it builds, so the waiter never takes it over."""
    stores = [machine(store_url, tmp_path, name, lease_ttl=1.0, poll=0.05) for name in "ab"]
    built: list[list[str]] = [[], []]
    results: list[Any] = [None, None]

    def run(i: int) -> None:
        results[i] = chain(stores[i], built[i], pause=0.8)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results[0] == results[1] == {"n": 3, "correct": 6}
    assert sorted(built[0] + built[1]) == ["data", "eval", "model"], stores[0].builds()
    assert counts(stores[0]) == {key: 1 for key in KEYS.values()}
    assert all(b["published"] for b in stores[0].builds())

    third = machine(store_url, tmp_path, "c")
    again: list[str] = []
    assert chain(third, again) == {"n": 3, "correct": 6}
    assert again == []  # the eval came from the store: nothing else was even asked for
    assert third.cache.has(KEYS["eval"]) and not third.cache.has(KEYS["model"])
    assert third.has(KEYS["model"]) and not third.cache.has(KEYS["model"])  # has() downloads nothing
    assert third.load(KEYS["model"]) == {"weights": 6}  # read through on demand
    assert counts(third) == {key: 1 for key in KEYS.values()}
    assert third.leases() == []  # released
    # Sharding weighs a model by its subtree's recorded build seconds, read from every machine's records
    # (the eval's own seconds exclude the nested model build: one process, intervals inside each other).
    from robustspec.shard import subtree_seconds

    (seconds,) = subtree_seconds(third, [KEYS["model"]]).values()
    assert 0.75 < seconds < 3.0  # the model's own 0.8 s and the eval's few milliseconds


def test_the_layout_at_the_url(store_url: str, tmp_path: Path) -> None:
    """blobs by sha256, one manifest per key, one build record per build; a tensor artifact too."""
    import torch

    store = machine(store_url, tmp_path, "a")
    key = content_key("model", {"t": 1})
    value = store.get_or_build(key, lambda: {"w": torch.arange(4.0)}, describe="tiny model", meta={"m": 1})
    assert torch.equal(value["w"], torch.arange(4.0))
    backend = store._backend
    manifest = json.loads(backend.read(f"manifests/model/{key}.json")[0])
    assert manifest["key"] == key and manifest["format"] == "pt" and manifest["meta"] == {"m": 1}
    assert manifest["describe"] == "tiny model" and manifest["parents"] == [] and "builder" in manifest
    blob = backend.read(f"blobs/sha256/{manifest['sha256'][:2]}/{manifest['sha256']}")[0]
    assert len(blob) == manifest["bytes"]
    (record,) = store.builds()
    assert record["key"] == key and record["seconds"] >= 0 and record["published"] is True
    entry = store.entries()[0]
    assert entry["key"] == key and entry["cached"] is True and entry["path"].startswith(store_url)
    other = machine(store_url, tmp_path, "b")
    assert torch.equal(other.load(key)["w"], torch.arange(4.0))
    assert other.entries()[0]["cached"] is True


# -- (b) a killed builder's lease expires and another machine takes over ---------------------

KILLED_BUILDER = """
import sys, time
from pathlib import Path
from robustspec.remote_store import RemoteStore

url, cache, key, started = sys.argv[1:]
store = RemoteStore(url, cache, lease_ttl=1.5, poll=0.1)

def build():
    Path(started).write_text("building")
    time.sleep(120)  # killed here, holding the lease
    return {"never": True}

store.get_or_build(key, build, describe="killed")
"""


@pytest.mark.slow
def test_a_killed_builders_lease_expires_and_another_machine_takes_over(
    shared_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = content_key("eval", {"killed": 1})
    started = tmp_path / "started"
    script = tmp_path / "builder.py"
    script.write_text(KILLED_BUILDER)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(script), shared_url, str(tmp_path / "cache-x"), key, str(started)], env=env
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert child.poll() is None, "the builder exited early"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        store = machine(shared_url, tmp_path, "b", lease_ttl=1.5, poll=0.1)
        (lease,) = store.leases()
        assert lease["pid"] == child.pid and not lease["expired"]
        time.sleep(1.0)  # renewed meanwhile: still live
        assert not store.leases()[0]["expired"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    killed_at = time.monotonic()
    built: list[int] = []
    with caplog.at_level(logging.WARNING, logger="robustspec.store"):
        value = store.get_or_build(key, lambda: built.append(1) or {"n": 1}, describe="killed")
    waited = time.monotonic() - killed_at
    assert value == {"n": 1} and built == [1]
    assert 0.2 < waited < 10  # it waited for the lease to expire, then built
    assert "took over the expired build lease" in caplog.text
    # Nothing half-written was published: the only build record and manifest are the taker's.
    assert [b["pid"] for b in store.builds()] == [f"{store.host}:{os.getpid()}"]
    assert machine(shared_url, tmp_path, "c").load(key) == {"n": 1}
    assert store.leases() == []


class _Unreachable:
    url = "s3://unreachable/x"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the object store was asked ({name})")


def test_a_cache_hit_asks_the_object_store_nothing(store_url: str, tmp_path: Path) -> None:
    key = content_key("eval", {"hit": 1})
    machine(store_url, tmp_path, "a").get_or_build(key, lambda: {"n": 2})
    offline = RemoteStore(store_url, tmp_path / "cache-a", backend=_Unreachable())  # type: ignore[arg-type]
    assert offline.get_or_build(key, lambda: {"n": 3}) == {"n": 2}
    assert offline.load(key) == {"n": 2} and offline.has(key)


def test_a_store_at_a_url_pickles(store_url: str, tmp_path: Path) -> None:
    """A build sent to another process (an executor's task) takes the store with it, and reconnects there."""
    import pickle

    key = content_key("eval", {"pickled": 1})
    store = machine(store_url, tmp_path, "a")
    store.get_or_build(key, lambda: {"n": 4})
    copy = pickle.loads(pickle.dumps(store))
    assert copy.url == store.url and copy.cache.root == store.cache.root and copy.lease_ttl == store.lease_ttl
    copy.cache.clear()
    assert copy.load(key) == {"n": 4}  # read again from the object store


def test_a_blob_without_its_manifest_is_never_read(store_url: str, tmp_path: Path) -> None:
    """A builder killed between uploading its blob and publishing its manifest left only the blob."""
    store = machine(store_url, tmp_path, "a")
    key = content_key("eval", {"half": 1})
    store._backend.put("blobs/sha256/00/" + "0" * 64, b'{"half": "written"}')
    with pytest.raises(ArtifactError, match=f"artifact {key} in {store_url} is not available: missing"):
        store.load(key)
    assert store.get_or_build(key, lambda: {"whole": 1}) == {"whole": 1}


# -- (c) a tampered blob is detected --------------------------------------------------------


def test_a_tampered_blob_is_detected_and_rebuilt(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = machine(store_url, tmp_path, "a")
    key = content_key("eval", {"tampered": 1})
    first.get_or_build(key, lambda: {"n": 10, "correct": 9}, describe="eval x")
    manifest = json.loads(first._backend.read(f"manifests/eval/{key}.json")[0])
    blob = f"blobs/sha256/{manifest['sha256'][:2]}/{manifest['sha256']}"
    raw = first._backend.read(blob)[0]
    assert raw == b'{"n":10,"correct":9}'
    first._backend.put(blob, b'{"n":10,"correct":1}')  # same size: only the checksum tells

    reader = machine(store_url, tmp_path, "b")
    with pytest.raises(ArtifactError) as info:
        reader.load(key)
    assert f"{store_url}/{blob}" in str(info.value) and "checksum mismatch" in str(info.value)
    assert reader.has(key)  # published, of the recorded size: has() downloads nothing to verify
    assert not reader.cache.has(key)  # and nothing corrupt was copied into the cache

    builder = machine(store_url, tmp_path, "c")
    with caplog.at_level(logging.WARNING, logger="robustspec.store"):
        value = builder.get_or_build(key, lambda: {"n": 10, "correct": 7}, describe="eval x")
    assert value == {"n": 10, "correct": 7}
    assert f"artifact {key} (eval x) in {store_url} is corrupt (checksum mismatch" in caplog.text
    # The manifest was replaced (conditionally on the corrupt one's ETag): every machine reads the rebuild.
    assert machine(store_url, tmp_path, "d").load(key) == {"n": 10, "correct": 7}
    assert len(builder.builds()) == 2
    # The cache that held the good copy before the tampering still serves it: a local hit asks nothing.
    assert first.load(key) == {"n": 10, "correct": 9}


# -- (d) concurrent publish: the loser adopts the winner's artifact --------------------------


class _NoLease:
    def release(self) -> None:
        pass


def test_a_builder_that_loses_the_publish_race_adopts_the_winners_artifact(store_url: str, tmp_path: Path) -> None:
    """B builds without the lease (as after its lease lapsed and A took it over); A publishes first."""
    key = content_key("eval", {"race": 1})
    a, b = machine(store_url, tmp_path, "a"), machine(store_url, tmp_path, "b")
    b._take_lease = lambda key: (_NoLease(), "")  # type: ignore[method-assign]

    def build_b() -> dict[str, Any]:
        assert a.get_or_build(key, lambda: {"by": "a"}) == {"by": "a"}  # A wins meanwhile
        return {"by": "b"}

    assert b.get_or_build(key, build_b) == {"by": "a"}
    assert b.cache.load(key) == {"by": "a"}  # B's cache holds the winner's bytes, not its own
    assert machine(store_url, tmp_path, "c").load(key) == {"by": "a"}
    published = sorted((r["published"], r["key"]) for r in a.builds())
    assert published == [(False, key), (True, key)]


def test_create_only_writes(store_url: str, tmp_path: Path) -> None:
    """The primitives: create refuses an existing object, replace needs the current ETag, delete too."""
    backend = machine(store_url, tmp_path, "a")._backend
    etag = backend.create("leases/x.json", b"1")
    assert etag is not None and backend.create("leases/x.json", b"2") is None
    assert backend.read("leases/x.json")[0] == b"1"
    new = backend.replace("leases/x.json", b"3", etag)
    assert new is not None and backend.replace("leases/x.json", b"4", etag) is None
    assert backend.read("leases/x.json")[0] == b"3"
    assert not backend.delete("leases/x.json", etag) and backend.delete("leases/x.json", new)
    assert backend.read("leases/x.json") is None and backend.list("leases") == []


# -- (e) faults are ArtifactErrors naming the URL and the cause ------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        "endpoint-down",
        "missing-bucket",
        "no-credentials",
        "unknown-key",
        "read-only-key",
        "unknown-scheme",
        "relative-file-url",
    ],
)
def test_remote_faults_name_the_url_and_the_cause(
    fault: str, s3_env: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = s3_env.url()
    if fault == "endpoint-down":
        from tests.s3server import free_ports

        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_ports(1)[0]}")
        expected = "cannot reach the endpoint"
    elif fault == "missing-bucket":
        url = "s3://no-such-bucket-rs/x"
        expected = "the bucket does not exist"
    elif fault == "no-credentials":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        monkeypatch.setenv("HOME", str(tmp_path))
        expected = "no credentials (set AWS_ACCESS_KEY_ID"
    elif fault == "unknown-scheme":
        url = "nosuch-scheme://bucket/x"
        expected = "no file system for nosuch-scheme://"
    elif fault == "relative-file-url":
        url = "file://relative/dir"
        expected = "needs an absolute path"
    elif fault == "unknown-key":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
        expected = "permission denied"
    else:  # may read and list, not write: it reads the manifest (absent), then cannot take the lease
        for name, value in s3_env.env("reader").items():
            monkeypatch.setenv(name, value)
        expected = "taking the build lease of eval-"
    started = time.monotonic()
    with pytest.raises(ArtifactError) as info:
        open_store(url, rootdir=tmp_path).get_or_build(content_key("eval", {"f": fault}), lambda: {"n": 1})
    message = str(info.value)
    assert url in message and expected in message, message
    if fault == "read-only-key":
        assert "failed: permission denied (AccessDenied)" in message
    assert time.monotonic() - started < 15


def test_a_scheme_whose_package_is_missing_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if not installed
    with pytest.raises(ArtifactError, match=r"gs://b/p: gs:// needs the gcsfs package \(pip install gcsfs\)"):
        open_store("gs://b/p", rootdir=tmp_path)
    monkeypatch.setitem(sys.modules, "s3fs", None)
    with pytest.raises(ArtifactError, match=r"needs the s3fs package \(pip install 'robustspec\[s3\]'"):
        open_store("s3://b/p", rootdir=tmp_path)


def test_remote_problem_words() -> None:
    assert remote_problem(ConnectionRefusedError(111, "Connection refused")).startswith("cannot reach the endpoint")
    assert remote_problem(PermissionError("Access Denied")).startswith("permission denied")


# -- resolution: one open_store for the plugin, the command line and the API ------------------


def test_store_urls_resolve_like_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert store_location("s3://b/p/", {}, None, tmp_path) == "s3://b/p"
    assert store_location(None, {STORE_ENV: "file:///x"}, "ini", tmp_path) == "file:///x"
    assert store_location(None, {}, "gs://b/p", tmp_path) == "gs://b/p"
    assert store_location("dir", {STORE_ENV: "s3://b/p"}, None, tmp_path) == tmp_path / "dir"
    default = cache_root("s3://b/p", None, {}, None, tmp_path / "root")
    assert default.parent == tmp_path / "root" / ".robustspec" / "cache" and len(default.name) == 16
    assert cache_root("s3://b/q", None, {}, None, tmp_path / "root") != default
    assert cache_root("s3://b/p", None, {CACHE_ENV: "c"}, "ini", tmp_path) == tmp_path / "c"
    assert cache_root("s3://b/p", None, {}, "ini", tmp_path / "root") == tmp_path / "root" / "ini"
    store = open_store(None, {STORE_ENV: (tmp_path / "r").as_uri(), LEASE_TTL_ENV: "5"}, None, tmp_path)
    assert isinstance(store, RemoteStore) and store.lease_ttl == 5.0 and store.cache.root.is_relative_to(tmp_path)
    assert isinstance(open_store(None, {}, None, tmp_path), Store)
    with pytest.raises(ArtifactError, match=LEASE_TTL_ENV):
        open_store((tmp_path / "r").as_uri(), {LEASE_TTL_ENV: "soon"}, None, tmp_path)


def test_the_store_is_made_in_one_place() -> None:
    """The plugin, the command line and the API open the store through config.open_store, so a URL (or a
    directory) means the same store to all three."""
    makers = {}
    for p in sorted((PROJECT_ROOT / "robustspec").rglob("*.py")):
        rel = p.relative_to(PROJECT_ROOT).as_posix()
        if rel not in ("robustspec/store.py", "robustspec/remote_store.py"):
            text = p.read_text(encoding="utf-8")
            if "Store(" in text:
                makers[rel] = text.count("Store(")
    assert makers == {"robustspec/config.py": 2}


def test_cache_commands_on_a_store_url(s3_env: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = s3_env.url()
    store = RemoteStore(url, tmp_path / "cache-a")
    key = content_key("eval", {"cli": 1})
    store.get_or_build(key, lambda: {"n": 1}, describe="eval for the cli")
    other = str(tmp_path / "cache-b")
    assert cli.main(["cache", "list", "--store", url, "--cache", other]) == 0
    out = capsys.readouterr().out
    assert (
        key in out
        and "eval for the cli" in out
        and "total: 1 artifact" in out
        and f"0 of them in the local cache {other}" in out
    )
    assert cli.main(["cache", "path", "--store", url, "--cache", other]) == 0
    assert capsys.readouterr().out.splitlines() == [url, f"cache: {other}"]
    assert cli.main(["cache", "clear", "--store", url, "--cache", str(tmp_path / "cache-a")]) == 0
    assert "removed 1 artifact from the local cache" in capsys.readouterr().out
    assert not store.cache.has(key) and store.has(key) and store.load(key) == {"n": 1}  # the remote copy stays
    assert cli.main(["cache", "prune", "--unused-for", "0", "--store", url, "--cache", other]) == 0
    assert f"{url} itself is left as it is" in capsys.readouterr().out
    assert cli.main(["cache", "clear", "--remote", "--store", url, "--cache", other]) == 0
    assert f"removed 1 artifact from {url}" in capsys.readouterr().out
    assert RemoteStore(url, tmp_path / "cache-c").entries() == []
    assert cli.main(["cache", "list", "--store", "s3://no-such-bucket-rs/x", "--cache", other]) == 1
    err = capsys.readouterr().err
    assert "s3://no-such-bucket-rs/x" in err and "the bucket does not exist" in err and "Traceback" not in err


# -- (f) a suite run against the S3 store, cold, then warm from a fresh local cache ------------

PROJECT = {
    "specs/datasets.yaml": (
        "tiny: {name: office-synth, classes: 3, image-size: 16, train-per-class: 8, test-per-class: 6, seed: 0}\n"
    ),
    "specs/training.yaml": "tiny: {epochs: 1, batch-size: 16}\n",
    "suites/s.yaml": textwrap.dedent(
        """\
        data: tiny
        source: amazon
        targets: [webcam]
        train: tiny
        models:
          - name: resnet10-mini
        expect:
          - source-accuracy: {min: 0.0}
          - target-accuracy: {min: 0.0}
        """
    ),
}


def _numbers(path: Path) -> dict[str, dict[str, str]]:
    out = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        out[tc.get("name")] = props
    return out


@pytest.mark.slow
def test_a_suite_on_the_s3_store_cold_then_warm_from_a_fresh_cache(
    write_project, s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cold with the options, warm with the environment variables (and another cache): the same numbers."""
    pytester = write_project(PROJECT)
    url = s3_env.url("suite")

    def run(cache: str, *options: str) -> dict[str, dict[str, str]]:
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-p", "no:xdist", *options, f"--junitxml={cache}.xml", timeout=300
        )
        assert result.ret == 0, result.stdout.str() + result.stderr.str()
        result.assert_outcomes(passed=2)
        return _numbers(pytester.path / f"{cache}.xml")

    cold = run("cache-a", f"--robustspec-store={url}", "--robustspec-store-cache=cache-a")
    store = RemoteStore(url, pytester.path / "cache-check")
    built = store.builds()
    assert sorted({b["kind"] for b in built}) == ["data", "eval", "metrics", "model"]
    assert all(n == 1 for n in Counter(b["key"] for b in built).values())
    monkeypatch.setenv(STORE_ENV, url)
    monkeypatch.setenv(CACHE_ENV, str(pytester.path / "cache-b"))
    warm = run("cache-b")
    assert (pytester.path / "cache-b").is_dir()
    assert warm == cold and len(cold) == 2
    assert store.builds() == built  # the fresh cache read everything from the store
    assert not (pytester.path / ".robustspec" / "store").exists()
