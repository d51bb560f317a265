"""Tests of the content-addressed artifact store, including builds raced by several processes."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import logging
import math
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import IO

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import robustspec
import robustspec.progress
from robustspec import store as store_mod
from robustspec.errors import ArtifactError, DataError
from robustspec.store import Store, canonical_json, content_key

PROJECT_ROOT = Path(robustspec.__file__).resolve().parent.parent

json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
recipes = st.dictionaries(st.text(max_size=6), json_values, max_size=5)
keys_strategy = st.from_regex(r"[a-z][a-z0-9-]{0,6}-[0-9a-f]{24}", fullmatch=True)


def build_counts(store: Store) -> Counter[str]:
    """Count builds per key from the build log."""
    return Counter(record["key"] for record in store.builds())


def touch_later(path: Path) -> None:
    """Move the mtime forward so the per-process verification cache sees a changed file."""
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 5_000_000_000))


# -- keys ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(recipes)
def test_content_key_ignores_dict_order(recipe: dict) -> None:
    """Insertion order of the recipe does not change the key."""
    reordered = dict(reversed(list(recipe.items())))
    assert content_key("model", recipe) == content_key("model", reordered)
    key = content_key("model", recipe, ["data-" + "0" * 24], "2")
    assert key.startswith("model-") and len(key) == len("model-") + 24


@settings(max_examples=60, deadline=None)
@given(recipes, recipes)
def test_content_key_differs_for_different_recipes(a: dict, b: dict) -> None:
    """Different recipes give different keys."""
    assume(a != b)
    assert content_key("model", a) != content_key("model", b)


@settings(max_examples=40, deadline=None)
@given(recipes, st.lists(keys_strategy, max_size=3), st.lists(keys_strategy, max_size=3), st.text(), st.text())
def test_content_key_depends_on_parents_and_version(recipe: dict, pa: list, pb: list, va: str, vb: str) -> None:
    """Parents (in order) and version are part of the key."""
    assume(pa != pb)
    assert content_key("eval", recipe, pa) != content_key("eval", recipe, pb)
    assume(va != vb)
    assert content_key("eval", recipe, pa, va) != content_key("eval", recipe, pa, vb)
    assert content_key("eval", recipe) != content_key("evalx", recipe)


def test_canonical_json_shape() -> None:
    """Sorted keys, no spaces, ASCII escapes, tuples as lists, repr floats."""
    assert canonical_json({"b": (1, 0.1), "a": "é"}) == '{"a":"\\u00e9","b":[1,0.1]}'
    assert canonical_json({"x": 1}) != canonical_json({"x": 1.0}) != canonical_json({"x": True})


@pytest.mark.parametrize("bad", [float("nan"), {"a": [1, float("nan")]}, {1: "int key"}, {"s": {1, 2}}])
def test_canonical_json_rejects(bad: object) -> None:
    """NaN, non-string keys and types without a canonical form are refused."""
    with pytest.raises(ArtifactError):
        canonical_json(bad)


@pytest.mark.parametrize("kind", ["", "Model", "../x", "a/b", "a_b", "mödel"])
def test_content_key_rejects_bad_kind(kind: str) -> None:
    """Kinds outside [a-z0-9-]+ are refused."""
    with pytest.raises(ArtifactError):
        content_key(kind, {})


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "/etc/passwd",
        "model-" + "0" * 23,
        "model-" + "g" * 24,
        "Model-" + "0" * 24,
        "../model-" + "0" * 24,
        "model-" + "0" * 24 + "/../../x",
        "model-" + "0" * 24 + "\n",
        "/tmp/model-" + "0" * 24,
    ],
)
def test_path_for_refuses_escaping_keys(tmp_path: Path, key: str) -> None:
    """Only well-formed keys map to paths, and those stay under root."""
    store = Store(tmp_path)
    with pytest.raises(ArtifactError):
        store.path_for(key)
    with pytest.raises(ArtifactError):
        store.get_or_build(key, lambda: 1)


def test_path_for_layout(tmp_path: Path) -> None:
    """A key lives at root/<kind>/<key>.pt."""
    key = content_key("pruned-model", {"ratio": 0.5})
    assert Store(tmp_path).path_for(key) == tmp_path / "pruned-model" / f"{key}.pt"


# -- round trip and validation ---------------------------------------------------------------


def test_round_trip_nested(tmp_path: Path) -> None:
    """Nested dicts/lists of tensors and scalars survive storing; the second call does not build."""
    value = {
        "state": {"conv.weight": torch.randn(3, 2, 3, 3), "bn.num_batches": torch.tensor(7)},
        "history": [0.5, 0.25, {"epoch": 2, "ok": True, "note": None}],
        "half": torch.ones(4, dtype=torch.float16),
        "name": "resnet",
    }
    store = Store(tmp_path)
    key = content_key("model", {"arch": "resnet8"})
    built = store.get_or_build(key, lambda: value, meta={"arch": "resnet8"}, describe="resnet8")
    assert built is value
    store_mod._VERIFIED.clear()  # force the hashing path in a "fresh" process
    loaded = Store(tmp_path).load(key)
    assert loaded.keys() == value.keys()
    for name in ("conv.weight", "bn.num_batches"):
        assert torch.equal(loaded["state"][name], value["state"][name])
    assert loaded["half"].dtype == torch.float16
    assert loaded["history"] == value["history"] and loaded["name"] == "resnet"
    assert store.get_or_build(key, lambda: pytest.fail("rebuilt"))["name"] == "resnet"
    assert build_counts(store) == {key: 1}
    (entry,) = store.entries()
    assert entry["key"] == key and entry["meta"] == {"arch": "resnet8"} and entry["describe"] == "resnet8"
    assert entry["bytes"] == store.path_for(key).stat().st_size and len(entry["sha256"]) == 64
    (record,) = store.builds()
    assert record["kind"] == "model" and record["pid"] == os.getpid() and record["seconds"] >= 0


def test_missing_artifact(tmp_path: Path) -> None:
    """has() is False and load() raises for an unknown key; entries/builds of an empty store are empty."""
    store = Store(tmp_path / "nowhere")
    key = content_key("model", {})
    assert not store.has(key)
    with pytest.raises(ArtifactError, match="missing"):
        store.load(key)
    assert store.entries() == [] and store.builds() == []


def _flip_byte(data: Path, sidecar: Path) -> None:
    """Invert one byte in the middle of the data file."""
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    touch_later(data)


def _truncate(data: Path, sidecar: Path) -> None:
    """Cut the data file in half."""
    raw = data.read_bytes()
    data.write_bytes(raw[: len(raw) // 2])


def _drop_meta(data: Path, sidecar: Path) -> None:
    """Delete the sidecar, leaving a data file without metadata."""
    sidecar.unlink()


def _drop_data(data: Path, sidecar: Path) -> None:
    """Delete the data file, leaving metadata without data."""
    data.unlink()


def _garble_meta(data: Path, sidecar: Path) -> None:
    """Write a torn sidecar."""
    sidecar.write_text('{"key": ')


def _unknown_format(data: Path, sidecar: Path) -> None:
    """A sidecar naming a format this version does not know."""
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "format": "npz"}))


TENSOR = torch.arange(1000, dtype=torch.float32)
#: Stored as JSON (and large enough for _truncate to cut it in the middle of a number).
PLAIN = {"accuracy": 0.5, "outcomes": [True, False] * 200, "name": "resnet"}


@pytest.mark.parametrize("damage", [_flip_byte, _truncate, _drop_meta, _drop_data, _garble_meta, _unknown_format])
@pytest.mark.parametrize("fmt", ["pt", "json"])
def test_damaged_artifact_is_rebuilt_once(tmp_path: Path, damage, fmt: str, caplog: pytest.LogCaptureFixture) -> None:
    """Corrupt, truncated or half-written artifacts of either format are misses: rebuilt exactly once, with
    a warning."""
    store = Store(tmp_path)
    key = content_key("model", {"seed": 1})
    make = (lambda: {"w": TENSOR.clone()}) if fmt == "pt" else (lambda: json.loads(json.dumps(PLAIN)))
    same = (lambda v: torch.equal(v["w"], TENSOR)) if fmt == "pt" else (lambda v: v == PLAIN)
    store.get_or_build(key, make)
    assert store.has(key) and store.data_path(key).name == key + (".pt" if fmt == "pt" else ".value.json")
    damage(store.data_path(key), store.path_for(key).with_suffix(".json"))
    assert not store.has(key)
    with pytest.raises(ArtifactError):
        store.load(key)
    shown: list[str] = []
    with caplog.at_level(logging.WARNING, logger="robustspec.store"), robustspec.progress.sink(shown.append):
        rebuilt = store.get_or_build(key, make, describe="a model")
    assert same(rebuilt)
    if damage is not _drop_data:
        # In the log and on the progress sink (the terminal under pytest), with the key, the store, the reason.
        assert len(shown) == 1 and shown[0] in caplog.text
        assert shown[0].startswith(f"artifact {key} (a model) in {store.root} is corrupt (")
        assert shown[0].endswith("): rebuilding")
        if damage is _flip_byte:
            assert "is corrupt (checksum mismatch): rebuilding" in shown[0]
    for _ in range(2):
        assert same(store.get_or_build(key, lambda: pytest.fail("rebuilt twice")))
    store_mod._VERIFIED.clear()
    assert same(store.load(key))
    assert build_counts(store) == {key: 2}


def test_failing_build_leaves_only_lock_and_retries(tmp_path: Path) -> None:
    """A raising build() is wrapped, cleans up, and the next call builds."""
    store = Store(tmp_path)
    key = content_key("eval", {"x": 1})

    def boom() -> None:
        raise ValueError("out of cheese")

    with pytest.raises(ArtifactError, match="building eval of x failed: out of cheese") as info:
        store.get_or_build(key, boom, describe="eval of x")
    assert isinstance(info.value.__cause__, ValueError)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [f"{key}.lock"]
    assert store.builds() == [] and not store.has(key)

    def own_error() -> None:
        raise DataError("no such domain")

    with pytest.raises(DataError, match="no such domain"):
        store.get_or_build(key, own_error)

    assert store.get_or_build(key, lambda: {"acc": 0.5}) == {"acc": 0.5}
    assert build_counts(store) == {key: 1}


class _Opaque:
    """Not loadable with weights_only=True."""


@pytest.mark.parametrize("value", [_Opaque(), {"model": torch.nn.Linear(2, 2)}, [1, {"deep": _Opaque()}]])
def test_unsaveable_value_is_refused_before_writing(tmp_path: Path, value: object) -> None:
    """A value torch.load(weights_only=True) could not read is rejected and nothing is stored."""
    store = Store(tmp_path)
    key = content_key("eval", {"x": 2})
    with pytest.raises(ArtifactError, match="weights_only"):
        store.get_or_build(key, lambda: value)
    assert not store.has(key) and store.builds() == []
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{key}.lock"]


def test_stale_temps_cleaned_fresh_kept(tmp_path: Path) -> None:
    """Temp files older than an hour are removed when the key is (re)built; recent ones stay."""
    store = Store(tmp_path)
    key = content_key("model", {"t": 1})
    directory = store.path_for(key).parent
    directory.mkdir(parents=True)
    old = directory / f"{key}.pt.tmp-1-deadbeef"
    fresh = directory / f"{key}.json.tmp-2-cafef00d"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    past = time.time() - 2 * 3600
    os.utime(old, (past, past))
    store.get_or_build(key, lambda: 1)
    assert not old.exists() and fresh.exists()


def test_remove_and_clear(tmp_path: Path) -> None:
    """remove() deletes one artifact, clear() all of them and the log; lock files remain."""
    store = Store(tmp_path)
    keys = [content_key("model", {"i": i}) for i in range(3)]
    for i, key in enumerate(keys):
        store.get_or_build(key, lambda i=i: torch.full((2,), float(i)))
    assert [e["key"] for e in store.entries()] == sorted(keys)
    assert store.remove(keys[0]) and not store.remove(keys[0])
    assert not store.has(keys[0]) and store.has(keys[1])
    assert store.clear() == 2
    assert store.entries() == [] and store.builds() == []
    assert all(p.suffix == ".lock" for p in tmp_path.rglob("*") if p.is_file())


# -- concurrency across processes ------------------------------------------------------------

# One fresh interpreter imports torch once (a spawn per child costs seconds of import each) and then
# forks the racing children before touching the store, so each child has its own lock descriptors and
# verification cache. A pipe releases them together; each writes what it got to out-<i>.json.
ZYGOTE = textwrap.dedent(
    """
    import json, os, sys, time, traceback
    from pathlib import Path
    import torch
    from robustspec.store import Store

    root, work = Path(sys.argv[1]), Path(sys.argv[2])
    key_lists = json.loads(sys.argv[3])
    plain = sys.argv[4] == "json"

    def build():
        time.sleep(0.5)
        if plain:  # stored as JSON
            return {"pid": [os.getpid()], "w": [float(i * os.getpid()) for i in range(6)]}
        return {"pid": torch.tensor([os.getpid()]), "w": torch.arange(6.0) * os.getpid()}

    def child(index, keys, gate):
        os.read(gate, 1)  # blocks until the parent closes the write end
        store = Store(root, lock_timeout=60)
        out = {}
        for key in keys:
            value = store.get_or_build(key, build, describe=key)
            out[key] = value if isinstance(value["pid"], list) else {k: v.tolist() for k, v in value.items()}
        (work / f"out-{index}.json").write_text(json.dumps(out))

    gate_r, gate_w = os.pipe()
    pids = []
    for index, keys in enumerate(key_lists):
        pid = os.fork()
        if pid == 0:
            os.close(gate_w)
            status = 0
            try:
                child(index, keys, gate_r)
            except BaseException:
                (work / f"err-{index}.txt").write_text(traceback.format_exc())
                status = 1
            os._exit(status)
        pids.append(pid)
    os.close(gate_r)
    os.close(gate_w)
    failed = [pid for pid in pids if os.waitpid(pid, 0)[1] != 0]
    sys.exit(1 if failed else 0)
    """
)


def _race(tmp_path: Path, key_lists: list[list[str]], fmt: str = "pt") -> list[dict]:
    """Race one forked process per key list on a fresh store; return what each one got."""
    root, work = tmp_path / "store", tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run(
        [sys.executable, "-c", ZYGOTE, str(root), str(work), json.dumps(key_lists), fmt],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    errors = "\n".join(p.read_text() for p in sorted(work.glob("err-*.txt")))
    assert proc.returncode == 0, errors or proc.stderr
    return [json.loads((work / f"out-{i}.json").read_text()) for i in range(len(key_lists))]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the race harness forks")
@pytest.mark.parametrize("fmt", ["pt", "json"])
def test_concurrent_processes_build_once(tmp_path: Path, fmt: str) -> None:
    """Six processes racing on one key: one build, and all see the builder's value (torch or JSON)."""
    key = content_key("model", {"race": 1})
    outputs = _race(tmp_path, [[key]] * 6, fmt)
    store = Store(tmp_path / "store")
    assert build_counts(store) == {key: 1}
    (record,) = store.builds()
    assert all(out[key] == outputs[0][key] for out in outputs)
    assert outputs[0][key]["pid"] == [record["pid"]]
    stored = store.load(key)["w"]
    assert (stored.tolist() if fmt == "pt" else stored) == outputs[0][key]["w"]
    assert store.data_path(key).name == key + (".pt" if fmt == "pt" else ".value.json")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the race harness forks")
def test_concurrent_processes_read_a_legacy_artifact_while_one_rewrites_it(tmp_path: Path) -> None:
    """Six processes racing on a legacy .pt of plain data: no build, all see its value, it ends as JSON."""
    key = content_key("model", {"race": 2})
    legacy = {"pid": [-1], "w": [0.5] * 6}
    write_legacy(Store(tmp_path / "store"), key, legacy)
    outputs = _race(tmp_path, [[key]] * 6, "json")
    store = Store(tmp_path / "store")
    assert store.builds() == [] and all(out[key] == legacy for out in outputs)
    assert store.data_path(key).suffixes == [".value", ".json"] and not store.path_for(key).exists()
    assert store.load(key) == legacy


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the race harness forks")
def test_concurrent_processes_several_keys(tmp_path: Path) -> None:
    """Four processes over three keys in different orders: exactly three builds."""
    keys = [content_key("eval", {"k": i}) for i in range(3)]
    orders = [keys[i:] + keys[:i] for i in range(3)] + [keys[::-1]]
    outputs = _race(tmp_path, orders)
    store = Store(tmp_path / "store")
    assert build_counts(store) == dict.fromkeys(keys, 1)
    assert len({record["pid"] for record in store.builds()}) >= 2  # the builds really were spread out
    for key in keys:
        assert all(out[key] == outputs[0][key] for out in outputs)


def _last_used_days_ago(store: Store, key: str, days: float) -> None:
    t = time.time() - days * 86400
    os.utime(store.path_for(key).with_suffix(".json"), (t, t))


def test_prune_keeps_what_was_used_and_what_it_was_built_from(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    data = content_key("data", {"d": 1})
    model = content_key("model", {"m": 1}, (data,))
    evaluation = content_key("eval", {"e": 1}, (model,))
    unrelated = content_key("model", {"m": 2}, (data,))
    store.get_or_build(data, lambda: torch.zeros(2))
    store.get_or_build(model, lambda: torch.ones(2), parents=(data,))
    store.get_or_build(evaluation, lambda: {"acc": 0.5}, parents=(model,))
    store.get_or_build(unrelated, lambda: torch.ones(3), parents=(data,))
    for key in (data, model, evaluation, unrelated):
        _last_used_days_ago(store, key, 30)
    # A warm run loads the stored evaluation only: that marks it used, not its model.
    before = store.last_used(model)
    assert store.get_or_build(evaluation, lambda: pytest.fail("rebuilt")) == {"acc": 0.5}
    assert store.last_used(evaluation) > time.time() - 60 and store.last_used(model) == before
    assert [e["key"] for e in store.prune(7 * 86400, dry_run=True)] == [unrelated]
    assert store.has(unrelated)
    (gone,) = store.prune(7 * 86400)
    assert gone["key"] == unrelated and gone["bytes"] > 0
    assert not store.has(unrelated) and all(store.has(k) for k in (data, model, evaluation))


def test_prune_removes_old_partial_artifacts_and_load_marks_use(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    key = content_key("data", {"d": 2})
    store.get_or_build(key, lambda: torch.zeros(2))
    _last_used_days_ago(store, key, 3)
    store.load(key)
    assert store.prune(86400) == []
    store.path_for(key).unlink()  # a sidecar without its data file
    _last_used_days_ago(store, key, 3)
    assert [e["key"] for e in store.prune(86400)] == [key]
    assert store._keys_on_disk() == []


def test_prune_keeps_every_upstream_artifact_when_a_kept_one_predates_parent_records(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    model = content_key("model", {"m": 3})
    evaluation = content_key("eval", {"e": 3}, (model,))
    stale_eval = content_key("eval", {"e": 4}, (model,))
    store.get_or_build(model, lambda: torch.ones(2))
    store.get_or_build(evaluation, lambda: {"acc": 0.5}, parents=(model,))
    store.get_or_build(stale_eval, lambda: {"acc": 0.6}, parents=(model,))
    sidecar = store.path_for(evaluation).with_suffix(".json")
    old = json.loads(sidecar.read_text())
    del old["parents"]  # as written before sidecars recorded parents
    sidecar.write_text(json.dumps(old))
    for key in (model, evaluation, stale_eval):
        _last_used_days_ago(store, key, 30)
    store.load(evaluation)
    assert [e["key"] for e in store.prune(86400)] == [stale_eval]
    assert store.has(model)


# -- JSON artifacts, and stores written before them ------------------------------------------


def write_legacy(store: Store, key: str, value: object, **sidecar: object) -> None:
    """Store ``value`` as the store did before JSON artifacts: torch.save, a sidecar without ``format``."""
    path = store.path_for(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(value, buf)
    raw = buf.getvalue()
    path.write_bytes(raw)
    meta = {
        "key": key,
        "kind": key.rsplit("-", 1)[0],
        "describe": "a legacy artifact",
        "created": 1234.5,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "meta": {"model": "m"},
        "parents": [],
        **sidecar,
    }
    path.with_suffix(".json").write_text(json.dumps(meta))


def sidecar_of(store: Store, key: str) -> dict:
    return json.loads(store.path_for(key).with_suffix(".json").read_text())


def same(a: object, b: object) -> bool:
    """Equal, of the same types all the way down (NaN equal to NaN, tensors by value)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def load_in_fresh_interpreter(root: Path, key: str) -> tuple[object, bool]:
    """(value, whether torch got imported) of ``Store(root).load(key)`` in a new Python process."""
    code = (
        "import json, sys\n"
        "from robustspec.store import Store\n"
        "value = Store(sys.argv[1]).get_or_build(sys.argv[2], lambda: sys.exit('rebuilt'))\n"
        "print(json.dumps({'value': value, 'torch': 'torch' in sys.modules}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code, str(root), key], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return out["value"], out["torch"]


def _deep(levels: int) -> list:
    """``[[[...[1]...]]]``, ``levels`` lists deep."""
    value: list = [1]
    for _ in range(levels - 1):
        value = [value]
    return value


def test_plain_value_is_stored_as_json_and_read_without_torch(tmp_path: Path) -> None:
    """Dicts, lists, str, int, finite floats, bool and None: a JSON data file, read back equal (types and
    key order too) by a process that never imports torch."""
    value = {"z": 1, "a": [0.1, -0.0, 1e300, True, None, "é\u2603"], "m": {"n": {"deep": [[], {}]}}, "big": 2**80}
    store = Store(tmp_path)
    key = content_key("eval", {"plain": 1})
    assert store.get_or_build(key, lambda: value, describe="plain", meta={"model": "m"}) is value
    directory = store.path_for(key).parent
    assert sorted(p.name for p in directory.iterdir()) == [f"{key}.json", f"{key}.lock", f"{key}.value.json"]
    meta = sidecar_of(store, key)
    assert meta["format"] == "json" and meta["describe"] == "plain" and meta["meta"] == {"model": "m"}
    data = store.data_path(key)
    assert data == directory / f"{key}.value.json" and json.loads(data.read_text()) == value
    assert meta["bytes"] == data.stat().st_size
    store_mod._VERIFIED.clear()
    assert same(Store(tmp_path).load(key), value)
    (entry,) = store.entries()
    assert entry["path"] == str(data) and entry["format"] == "json"
    loaded, imported_torch = load_in_fresh_interpreter(tmp_path, key)
    assert loaded == value and not imported_torch


@settings(max_examples=40, deadline=None)
@given(json_values | st.tuples(json_values) | st.dictionaries(st.integers(), json_values, max_size=2))
def test_any_value_reads_back_the_same_from_one_format_or_the_other(value: object) -> None:
    """Plain JSON data as JSON, the rest (tuples, int keys, infinities) as .pt: equal either way."""
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        key = content_key("metrics", {"v": 1})
        store.get_or_build(key, lambda: value)
        store_mod._VERIFIED.clear()
        assert same(Store(root).load(key), value)
        plain = store_mod.is_plain_json(value)
        assert store.data_path(key).name == key + (".value.json" if plain else ".pt")
        assert sidecar_of(store, key)["format"] == ("json" if plain else "pt")


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        {"acc": float("inf")},
        [1.0, -float("inf")],
        (1, 2),
        {1: "int key"},
        [True, {"t": (2,)}],
        {"t": torch.ones(2)},
        collections.OrderedDict(a=1),
        _deep(70),
    ],
    ids=["nan", "inf", "-inf", "tuple", "int-key", "nested-tuple", "tensor", "ordered-dict", "deep"],
)
def test_values_json_would_not_read_back_the_same_are_stored_with_torch(tmp_path: Path, value: object) -> None:
    """Non-finite floats, tuples, non-string keys, tensors, dict subclasses, deep nesting: a .pt."""
    assert not store_mod.is_plain_json(value)
    store = Store(tmp_path)
    key = content_key("eval", {"x": 3})
    store.get_or_build(key, lambda: value)
    assert sidecar_of(store, key)["format"] == "pt" and store.path_for(key).exists()
    assert not store.path_for(key).with_name(f"{key}.value.json").exists()
    store_mod._VERIFIED.clear()
    assert same(Store(tmp_path).load(key), value)


def test_is_plain_json_by_exact_type() -> None:
    """Subclasses (bool of int aside, which is its own type here) would read back as their base type."""

    class Text(str):
        pass

    class Number(int):
        pass

    assert store_mod.is_plain_json({"a": [1, 2.5, True, None, "x"]})
    for bad in (Text("x"), Number(1), {Text("k"): 1}, {"k": Number(2)}, b"bytes", {"s": {1, 2}}, 1 + 2j):
        assert not store_mod.is_plain_json(bad), bad


def test_legacy_plain_pt_is_read_and_rewritten_as_json_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A store written before JSON artifacts: a .pt of plain data is read (with torch), rewritten as JSON
    keeping its record (no build), and then read without torch."""
    store = Store(tmp_path)
    key = content_key("metrics", {"legacy": 1})
    value = {"parameters": 1200, "bytes": 4800, "sparsity": 0.25, "quantized": False, "method": "l1"}
    write_legacy(store, key, value)
    assert store.has(key) and store.data_path(key) == store.path_for(key)
    with caplog.at_level(logging.INFO, logger="robustspec.store"):
        assert same(store.get_or_build(key, lambda: pytest.fail("rebuilt")), value)
    assert "rewritten as JSON" in caplog.text
    meta = sidecar_of(store, key)
    assert meta["format"] == "json" and meta["created"] == 1234.5 and meta["describe"] == "a legacy artifact"
    assert meta["meta"] == {"model": "m"} and meta["parents"] == [] and meta["rewritten"] >= meta["created"]
    assert not store.path_for(key).exists() and store.data_path(key).name == f"{key}.value.json"
    assert store.builds() == []
    loaded, imported_torch = load_in_fresh_interpreter(tmp_path, key)
    assert loaded == value and not imported_torch
    rewritten = store.data_path(key).stat().st_mtime_ns
    store_mod._VERIFIED.clear()
    assert same(Store(tmp_path).load(key), value)
    assert store.data_path(key).stat().st_mtime_ns == rewritten  # once


def test_legacy_tensor_pt_stays_as_it_is(tmp_path: Path) -> None:
    """A legacy .pt holding tensors is valid as it is: read, not rebuilt, not rewritten."""
    store = Store(tmp_path)
    key = content_key("model", {"legacy": 2})
    write_legacy(store, key, {"w": TENSOR})
    before = store.path_for(key).with_suffix(".json").read_text()
    assert torch.equal(store.get_or_build(key, lambda: pytest.fail("rebuilt"))["w"], TENSOR)
    assert store.path_for(key).with_suffix(".json").read_text() == before and store.builds() == []


def test_upgrade_turns_a_legacy_layout_into_json(tmp_path: Path) -> None:
    """``upgrade`` maps an old layout (a bool tensor) to the current one (plain data), which is then kept as
    JSON; a current value passes through it unchanged."""
    store = Store(tmp_path)
    key = content_key("eval", {"legacy": 3})
    write_legacy(store, key, {"correct": torch.tensor([True, False, True]), "n": 3})
    calls = []

    def upgrade(v: dict) -> dict:
        calls.append(type(v.get("correct")).__name__)
        return v if "hits" in v else {"n": v["n"], "hits": v["correct"].tolist()}

    current = {"n": 3, "hits": [True, False, True]}
    assert store.get_or_build(key, lambda: pytest.fail("rebuilt"), upgrade=upgrade) == current
    assert sidecar_of(store, key)["format"] == "json" and not store.path_for(key).exists()
    store_mod._VERIFIED.clear()
    assert Store(tmp_path).load(key, upgrade=upgrade) == current
    assert calls == ["Tensor", "NoneType"] and store.builds() == []
    # A build's own value is current: upgrade is not applied to it.
    other = content_key("eval", {"legacy": 4})
    assert store.get_or_build(other, lambda: current, upgrade=lambda v: pytest.fail("upgraded")) == current


def test_a_failing_upgrade_is_an_artifact_error(tmp_path: Path) -> None:
    store = Store(tmp_path)
    key = content_key("eval", {"legacy": 5})
    write_legacy(store, key, {"n": 3})
    with pytest.raises(ArtifactError, match="unreadable layout: 'correct'"):
        store.load(key, upgrade=lambda v: v["correct"])


def test_rewriting_is_skipped_while_another_process_holds_the_lock_or_the_store_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewriting as JSON is best effort: the value is returned as read, the .pt stays valid."""
    store = Store(tmp_path)
    key = content_key("attack", {"legacy": 6})
    write_legacy(store, key, {"robust": 0.5})
    import filelock

    with filelock.FileLock(str(store.path_for(key).with_suffix(".lock"))):  # as another process would
        assert store.load(key) == {"robust": 0.5}
    assert "format" not in sidecar_of(store, key) and store.path_for(key).exists()

    def read_only(*args: object, **kw: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(store_mod.os, "replace", read_only)
    assert store.load(key) == {"robust": 0.5}
    assert "format" not in sidecar_of(store, key) and store.path_for(key).exists()
    assert sorted(p.name for p in store.path_for(key).parent.iterdir()) == [f"{key}.json", f"{key}.lock", f"{key}.pt"]
    monkeypatch.undo()
    assert store.load(key) == {"robust": 0.5} and sidecar_of(store, key)["format"] == "json"


def test_a_reader_whose_data_file_was_rewritten_under_it_reads_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between a reader's sidecar read and its open, another process rewrites the .pt as JSON (and deletes
    the .pt): the reader sees the sidecar changed and reads the new pair, it does not call it corrupt."""
    key = content_key("metrics", {"legacy": 7})
    write_legacy(Store(tmp_path), key, {"bytes": 10})
    reader, other = Store(tmp_path), Store(tmp_path)
    read_meta = Store._read_meta
    raced = []

    def racing(self: Store, k: str):
        out = read_meta(self, k)
        if self is reader and not raced:
            raced.append(k)
            assert other.load(k) == {"bytes": 10}  # rewrites it as JSON
            assert not other.path_for(k).exists()
        return out

    monkeypatch.setattr(Store, "_read_meta", racing)
    assert reader.load(key) == {"bytes": 10} and raced == [key]
    assert sidecar_of(reader, key)["format"] == "json"


def test_a_rewrite_interrupted_after_its_data_file_leaves_the_legacy_pair_valid(tmp_path: Path) -> None:
    """A crash after the JSON data file was moved into place but before the sidecar: the old sidecar still
    names the .pt, which is read; the stray JSON file is overwritten by the next rewrite."""
    store = Store(tmp_path)
    key = content_key("metrics", {"legacy": 8})
    write_legacy(store, key, {"macs": 7})
    stray = store.path_for(key).with_name(f"{key}.value.json")
    stray.write_text('{"macs": 999')  # torn
    assert store.load(key) == {"macs": 7}
    assert json.loads(stray.read_text()) == {"macs": 7} and sidecar_of(store, key)["format"] == "json"
    # ... and one after the sidecar but before the .pt was deleted: the JSON pair is valid, the .pt ignored.
    other = content_key("metrics", {"legacy": 9})
    write_legacy(store, other, {"macs": 8})
    store.load(other)
    store.path_for(other).write_bytes(b"left over")
    store_mod._VERIFIED.clear()
    assert store.load(other) == {"macs": 8} and store._keys_on_disk().count(other) == 1
    assert store.remove(other) and not store.path_for(other).exists() and not store.data_path(other).exists()


def test_inspection_and_maintenance_see_both_formats(tmp_path: Path) -> None:
    """entries, prune, remove and clear treat JSON artifacts, legacy .pt and torch artifacts alike."""
    store = Store(tmp_path / "store")
    model = content_key("model", {"m": 5})
    evaluation = content_key("eval", {"e": 5}, (model,))
    legacy = content_key("eval", {"e": 6}, (model,))
    store.get_or_build(model, lambda: torch.ones(2))
    store.get_or_build(evaluation, lambda: {"acc": 0.5}, parents=(model,))
    write_legacy(store, legacy, {"acc": 0.25}, parents=[model])
    entries = {e["key"]: e for e in store.entries()}
    assert sorted(entries) == sorted([model, evaluation, legacy])
    assert entries[evaluation]["path"].endswith(".value.json") and entries[legacy]["path"].endswith(".pt")
    assert entries[model]["format"] == "pt" and entries[legacy]["format"] == "pt"
    for key in (model, evaluation, legacy):
        _last_used_days_ago(store, key, 30)
    store.load(evaluation)
    gone = store.prune(86400)
    assert [e["key"] for e in gone] == [legacy] and gone[0]["bytes"] > 0
    assert store.has(model) and store.has(evaluation) and not store.has(legacy)
    assert store.remove(evaluation) and not store.data_path(evaluation).exists()
    assert store.clear() == 1 and store.entries() == []
    assert all(p.suffix == ".lock" for p in (tmp_path / "store").rglob("*") if p.is_file())


def test_large_artifacts_are_memory_mapped_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A decoded image tree may exceed memory: from MMAP_BYTES on, a .pt is mapped, its pages read on use."""
    monkeypatch.setattr(store_mod, "MMAP_BYTES", 1 << 16)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)  # 196 KiB
    key = "data-" + "b" * 24
    Store(tmp_path).get_or_build(key, lambda: {"images": images}, meta={}, describe="data")
    loaded = Store(tmp_path).load(key)
    assert torch.equal(loaded["images"], images)
    mapped = lambda k: (
        str(Store(tmp_path).path_for(k).with_suffix(".pt").resolve()) in Path("/proc/self/maps").read_text()
    )  # noqa: E731
    assert mapped(key)
    small = "data-" + "c" * 24
    Store(tmp_path).get_or_build(small, lambda: {"x": torch.zeros(4)}, meta={}, describe="small")
    Store(tmp_path).load(small)
    assert Store(tmp_path).path_for(small).with_suffix(".pt").is_file() and not mapped(small)


# -- faults: a read-only store, a full disk, what killed builds leave ----------------------------


#: What torch.save raised on a full tmpfs (measured), with the kernel's ENOSPC as its context.
TORCH_SHORT_WRITE = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"


def _io_error(code: int, path: str = "/s/data/x.pt") -> OSError:
    return OSError(code, os.strerror(code), path)


def test_file_system_faults_in_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """storage_problem names the cause and the path: a full disk (also behind torch's own error, which
    carries no errno), a read-only file system, a permission; anything else is not its business."""
    import errno

    from robustspec.store import storage_problem

    target = tmp_path / "store" / "model" / "model-x.pt"  # need not exist: its nearest ancestor is asked
    assert storage_problem(_io_error(errno.EROFS), target) == "read-only file system (/s/data/x.pt)"
    assert storage_problem(_io_error(errno.EACCES), target) == "permission denied (/s/data/x.pt)"
    assert storage_problem(PermissionError(errno.EPERM, "no"), target) == f"permission denied ({target})"
    assert storage_problem(ValueError("out of cheese"), target) is None
    assert storage_problem(_io_error(errno.ENOENT), target) is None
    full = storage_problem(_io_error(errno.ENOSPC), target, needed=3 << 20)
    assert full is not None and full.startswith("no space left on /")
    assert full.endswith(" free, the artifact needed about 3.0 MiB)")
    assert storage_problem(_io_error(errno.EDQUOT), target).startswith("no space left on ")  # type: ignore[union-attr]

    # What torch.save raises writing to a full device (here /dev/full: its OSError, torch's RuntimeError
    # as the context) ...
    try:
        with open("/dev/full", "wb") as f:
            torch.save({"w": torch.zeros(100_000)}, f)
            f.flush()
    except (OSError, RuntimeError) as exc:
        from_torch: BaseException = exc
    else:  # pragma: no cover
        pytest.skip("/dev/full accepted the write")
    assert storage_problem(from_torch, target, 400_000).startswith("no space left on ")  # type: ignore[union-attr]
    # ... and on a full tmpfs (measured: torch's RuntimeError on top, the OSError as its context).
    try:
        try:
            raise _io_error(errno.ENOSPC)
        except OSError:
            raise RuntimeError(TORCH_SHORT_WRITE)  # noqa: B904 - as torch does: the OSError is the context
    except RuntimeError as exc:
        on_top = exc
    assert storage_problem(on_top, target).startswith("no space left on ")  # type: ignore[union-attr]
    # torch's error without any errno: the free space decides.
    bare = RuntimeError(TORCH_SHORT_WRITE)
    vfs = os.statvfs(tmp_path)

    class Full:
        f_bavail, f_frsize = 3, 4096

    monkeypatch.setattr(store_mod.os, "statvfs", lambda path: Full)
    assert storage_problem(bare, target, 1 << 20) == (
        f"no space left on {store_mod._mount_point(tmp_path)} (12.0 KiB free, the artifact needed about 1.0 MiB)"
    )
    monkeypatch.setattr(store_mod.os, "statvfs", lambda path: vfs)
    if vfs.f_bavail * vfs.f_frsize > 1 << 30:
        assert storage_problem(bare, target, 1 << 20) is None  # a disk with room: some other failure


#: Run inside a private mount namespace (``unshare -rm``): the store at argv[1] bind-mounted read-only at
#: argv[2], a 64 KiB tmpfs at argv[3]. Imports no torch: the artifacts are JSON.
IN_NAMESPACE = textwrap.dedent(
    """
    import json, subprocess, sys
    from robustspec.errors import ArtifactError
    from robustspec.store import Store

    src, ro, small, keys = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    subprocess.run(["mount", "--bind", src, ro], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", ro], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", small], check=True)

    def fails(store, key, value):
        try:
            store.get_or_build(key, lambda: value, describe="a test artifact")
        except ArtifactError as exc:
            return str(exc)
        return "stored"

    store = Store(ro)
    out = {
        "stored": store.get_or_build(keys["stored"], lambda: 1 / 0),
        "loaded": store.load(keys["stored"]),
        "has": store.has(keys["stored"]),
        "entries": [e["key"] for e in store.entries()],
        "missing": fails(store, keys["missing"], {"n": 1}),
        "corrupt": fails(store, keys["corrupt"], {"n": 2}),
        "no_root": fails(Store(ro + "/sub/store"), keys["missing"], {"n": 3}),
        "swept": [str(p) for p in store.sweep(0)],
        "full": fails(Store(small + "/store"), keys["missing"], {"n": list(range(30_000))}),
    }
    print(json.dumps(out))
    """
)


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _unshare_works(), reason="needs unshare -rm")
def test_read_only_store_and_full_disk_for_real(tmp_path: Path) -> None:
    """A store on a read-only mount serves everything it holds and writes nothing (no lock, no last-use
    time); what it cannot store is an ArtifactError with the store, the key and the cause, as is a build
    on a full tmpfs (ENOSPC from the kernel, no mock). Run in a user and mount namespace of its own."""
    src, ro, small = tmp_path / "src", tmp_path / "ro", tmp_path / "small"
    ro.mkdir(), small.mkdir()
    store = Store(src)
    keys = {name: content_key("eval", {"fault": name}) for name in ("stored", "missing", "corrupt")}
    store.get_or_build(keys["stored"], lambda: {"accuracy": 0.5})
    store.get_or_build(keys["corrupt"], lambda: {"accuracy": 0.25})
    store.data_path(keys["corrupt"]).write_text('{"accuracy":0.75}')
    for lock in src.rglob("*.lock"):
        lock.unlink()  # a cache restored without them
    past = time.time() - 86400
    for p in src.rglob("*"):
        os.utime(p, (past, past))
    before = {str(p.relative_to(src)): p.stat().st_mtime for p in src.rglob("*")}

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", IN_NAMESPACE, str(src), str(ro), str(small), json.dumps(keys)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["stored"] == out["loaded"] == {"accuracy": 0.5} and out["has"]
    assert out["entries"] == [keys["stored"]] and out["swept"] == []
    hint = "; the artifact store must be writable to build: make it writable, or point --robustspec-store"
    read_only = f"read-only file system ({ro}/eval/"
    assert out["missing"].startswith(f"cannot store {keys['missing']} (a test artifact) in {ro}: {read_only}")
    assert hint in out["missing"]
    assert out["corrupt"].startswith(f"cannot store {keys['corrupt']} (a test artifact) in {ro}: {read_only}")
    assert ", and its stored copy is corrupt (checksum mismatch); " in out["corrupt"]
    assert out["no_root"].startswith(f"cannot store {keys['missing']} (a test artifact) in {ro}/sub/store: ")
    assert f"read-only file system ({ro}/sub" in out["no_root"]
    assert out["full"].startswith(f"cannot store {keys['missing']} (a test artifact) in {small}/store: ")
    assert f"no space left on {small} (" in out["full"] and "the artifact needed about 1" in out["full"]
    assert "free some space" in out["full"]
    assert {str(p.relative_to(src)): p.stat().st_mtime for p in src.rglob("*")} == before  # nothing written


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes whatever the mode")
def test_store_without_write_permission(tmp_path: Path) -> None:
    """A store this account may only read (a cache mounted for consumers): reads work, a build it cannot
    store says so before building."""
    store = Store(tmp_path / "store")
    stored, missing = content_key("eval", {"perm": 1}), content_key("eval", {"perm": 2})
    store.get_or_build(stored, lambda: {"n": 1})
    dirs = [store.root, store.root / "eval"]
    for d in dirs:
        d.chmod(0o555)
    try:
        assert store.get_or_build(stored, lambda: pytest.fail("rebuilt")) == {"n": 1}
        with pytest.raises(ArtifactError, match=r"cannot store eval-\w+ in .*: permission denied \(") as info:
            store.get_or_build(missing, lambda: pytest.fail("built although it cannot be stored"))
        assert "must be writable to build" in str(info.value)
    finally:
        for d in dirs:
            d.chmod(0o755)


def test_a_write_that_fails_for_want_of_space_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save on a full disk (its RuntimeError, the OSError behind it) is an ArtifactError naming the
    store and the space; the temp files are gone. (The disk is full by a mock here: the real one is
    test_read_only_store_and_full_disk_for_real, for a JSON artifact.)"""
    import errno

    store = Store(tmp_path)
    key = content_key("model", {"full": 1})

    def save_on_a_full_disk(value: object, f: IO[bytes]) -> None:
        f.write(b"PK" * 1000)
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError(TORCH_SHORT_WRITE)  # noqa: B904 - as torch does: the OSError is the context

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    with pytest.raises(ArtifactError) as info:
        store.get_or_build(key, lambda: {"w": torch.zeros(1 << 18)}, describe="a model")
    message = str(info.value)
    assert message.startswith(f"cannot store {key} (a model) in {tmp_path}: no space left on /")
    assert "the artifact needed about 1.0 MiB); free some space" in message
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{key}.lock"]


def test_sweep_removes_what_killed_builds_left_and_nothing_else(tmp_path: Path) -> None:
    """Lock files of keys without an artifact and temp files, older than the threshold and held by no
    process, go; the lock of a stored artifact, a fresh lock and a held lock stay."""
    import filelock

    store = Store(tmp_path)
    stored, gone, held, fresh = (content_key("model", {"sweep": i}) for i in range(4))
    store.get_or_build(stored, lambda: {"n": 1})
    folder = store.path_for(stored).parent
    leftovers = [folder / f"{gone}.lock", folder / f"{gone}.pt.tmp-123-deadbeef", folder / f"{stored}.json.tmp-9-ab"]
    kept = [folder / f"{stored}.lock", folder / f"{held}.lock", folder / f"{held}.value.json.tmp-7-cd"]
    for p in leftovers + kept:
        p.touch()
    past = time.time() - 2 * 3600
    for p in leftovers + kept:
        os.utime(p, (past, past))
    (folder / f"{fresh}.lock").touch()
    other = filelock.FileLock(str(folder / f"{held}.lock"))  # as another process, building it now
    with other:
        assert sorted(store.sweep(dry_run=True)) == sorted(leftovers) and all(p.exists() for p in leftovers)
        assert sorted(store.sweep()) == sorted(leftovers)
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in kept) and (folder / f"{fresh}.lock").exists()
    assert store.get_or_build(stored, lambda: pytest.fail("rebuilt")) == {"n": 1}
    assert store.get_or_build(gone, lambda: {"n": 2}) == {"n": 2}


def test_a_lock_whose_file_was_deleted_is_not_held(tmp_path: Path) -> None:
    """A process that locked a lock file which was then deleted (or replaced) holds nothing: the store
    sees it and locks again."""
    store = Store(tmp_path)
    key = content_key("model", {"deleted-lock": 1})
    lock = store._acquire(key)
    try:
        assert store._holds_named_file(lock)
        path = Path(lock.lock_file)
        path.unlink()
        assert not store._holds_named_file(lock)
        path.touch()  # another process's new file
        assert not store._holds_named_file(lock)
    finally:
        lock.release()
    again = store._acquire(key, timeout=0)
    assert store._holds_named_file(again)
    again.release()


#: A tiny suite: on an empty read-only store its first build (an evaluation) cannot be stored.
_COLD_SUITE = {
    "specs/datasets.yaml": "tiny: {name: office-synth, classes: 3, image-size: 16, train-per-class: 4, test-per-class: 2}\n",
    "specs/training.yaml": "tiny: {epochs: 1, batch-size: 16}\n",
    "suites/s.yaml": "data: tiny\nsource: amazon\ntrain: tiny\nmodels: [resnet10-mini]\n"
    "expect:\n  - source-accuracy: {min: 0.0}\n  - target-accuracy: {min: 0.0}\n",
}


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or (os.geteuid() == 0 and not _unshare_works()),
    reason="needs another account than root, or unshare -rm to mount the store read-only",
)
def test_plugin_on_a_read_only_store_that_holds_nothing(write_project) -> None:
    """Every item fails with the ArtifactError that says why, none with a raw PermissionError/OSError
    traceback, and nothing is an INTERNALERROR (one pytester run: nothing is built)."""
    project = write_project(_COLD_SUITE)
    store = project.path / "ro-store"
    store.mkdir()
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist"]
    argv += [f"--robustspec-store={store}", "-q"]
    if os.geteuid() != 0:
        store.chmod(0o555)
    else:  # root writes whatever the mode: a read-only bind mount in a mount namespace of its own
        remount = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
        argv = ["unshare", "-rm", "sh", "-c", remount, "sh", str(store), *argv]
    try:
        result = project.run(*argv, timeout=120)
    finally:
        store.chmod(0o755)
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text and "Error: [Errno" not in text, text
    assert text.count("cannot store eval-") >= 3 and "must be writable to build" in text, text
    assert "read-only file system (" in text or "permission denied (" in text
    assert result.ret == 1 and list(store.iterdir()) == []
