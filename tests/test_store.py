"""Tests of the content-addressed artifact store, including builds raced by several processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import robustspec
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


def _flip_byte(path: Path) -> None:
    """Invert one byte in the middle of the file."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    touch_later(path)


def _truncate(path: Path) -> None:
    """Cut the file in half."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_meta(path: Path) -> None:
    """Delete the sidecar, leaving a data file without metadata."""
    path.with_suffix(".json").unlink()


def _drop_data(path: Path) -> None:
    """Delete the data file, leaving metadata without data."""
    path.unlink()


def _garble_meta(path: Path) -> None:
    """Write a torn sidecar."""
    path.with_suffix(".json").write_text('{"key": ')


@pytest.mark.parametrize("damage", [_flip_byte, _truncate, _drop_meta, _drop_data, _garble_meta])
def test_damaged_artifact_is_rebuilt_once(tmp_path: Path, damage, caplog: pytest.LogCaptureFixture) -> None:
    """Corrupt, truncated or half-written artifacts are misses: rebuilt exactly once, with a warning."""
    store = Store(tmp_path)
    key = content_key("model", {"seed": 1})
    tensor = torch.arange(1000, dtype=torch.float32)
    store.get_or_build(key, lambda: {"w": tensor})
    assert store.has(key)
    damage(store.path_for(key))
    assert not store.has(key)
    with pytest.raises(ArtifactError):
        store.load(key)
    with caplog.at_level(logging.WARNING, logger="robustspec.store"):
        rebuilt = store.get_or_build(key, lambda: {"w": tensor.clone()})
    assert torch.equal(rebuilt["w"], tensor)
    if damage is not _drop_data:
        assert "corrupt or partial" in caplog.text
    for _ in range(2):
        assert torch.equal(store.get_or_build(key, lambda: pytest.fail("rebuilt twice"))["w"], tensor)
    store_mod._VERIFIED.clear()
    assert torch.equal(store.load(key)["w"], tensor)
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

    def build():
        time.sleep(0.5)
        return {"pid": torch.tensor([os.getpid()]), "w": torch.arange(6.0) * os.getpid()}

    def child(index, keys, gate):
        os.read(gate, 1)  # blocks until the parent closes the write end
        store = Store(root, lock_timeout=60)
        out = {}
        for key in keys:
            value = store.get_or_build(key, build, describe=key)
            out[key] = {"pid": value["pid"].tolist(), "w": value["w"].tolist()}
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


def _race(tmp_path: Path, key_lists: list[list[str]]) -> list[dict]:
    """Race one forked process per key list on a fresh store; return what each one got."""
    root, work = tmp_path / "store", tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run(
        [sys.executable, "-c", ZYGOTE, str(root), str(work), json.dumps(key_lists)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    errors = "\n".join(p.read_text() for p in sorted(work.glob("err-*.txt")))
    assert proc.returncode == 0, errors or proc.stderr
    return [json.loads((work / f"out-{i}.json").read_text()) for i in range(len(key_lists))]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the race harness forks")
def test_concurrent_processes_build_once(tmp_path: Path) -> None:
    """Six processes racing on one key: one build, and all see the builder's value."""
    key = content_key("model", {"race": 1})
    outputs = _race(tmp_path, [[key]] * 6)
    store = Store(tmp_path / "store")
    assert build_counts(store) == {key: 1}
    (record,) = store.builds()
    assert all(out[key] == outputs[0][key] for out in outputs)
    assert outputs[0][key]["pid"] == [record["pid"]]
    assert torch.equal(store.load(key)["w"], torch.tensor(outputs[0][key]["w"]))


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
