"""Sharding (issue #15, part 2): the partition (robustspec.shard), the option, and ``robustspec merge``.

Everything here is pure or reads tiny files, except one ``--collect-only`` run of pytester, in process (no
torch, no build): the partition it applies must be the one computed here from the same suites.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robustspec.cli import main
from robustspec.plan import plan_suite
from robustspec.report.results import load_document, make_document, write_document
from robustspec.shard import assign, parse_shard, plan, subtree_seconds
from robustspec.spec.loader import load_suite
from robustspec.store import Store, content_key

# --- assign: greedy longest-processing-time ------------------------------------------------------------

weights = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
groups_st = st.dictionaries(st.text(min_size=1, max_size=6), weights, max_size=30)


@given(groups_st, st.integers(min_value=1, max_value=8))
def test_assign_puts_every_group_in_exactly_one_shard_within_the_lpt_bound(groups: dict[str, float], n: int) -> None:
    out = assign(groups, n)
    assert set(out) == set(groups) and all(1 <= s <= n for s in out.values())
    loads = [sum(w for g, w in groups.items() if out[g] == s) for s in range(1, n + 1)]
    assert max(loads) <= min(loads) + max(groups.values(), default=0.0) + 1e-6 * max(1.0, max(loads))


@given(groups_st, st.integers(min_value=1, max_value=8))
def test_assign_is_deterministic_whatever_the_order_of_the_groups(groups: dict[str, float], n: int) -> None:
    reversed_groups = dict(reversed(list(groups.items())))
    assert assign(groups, n) == assign(reversed_groups, n) == assign(dict(groups), n)


@given(groups_st)
def test_one_shard_holds_everything(groups: dict[str, float]) -> None:
    assert set(assign(groups, 1).values()) <= {1}


def test_assign_heaviest_first_onto_the_least_loaded_shard() -> None:
    assert assign({"a": 5, "b": 4, "c": 3, "d": 3}, 2) == {"a": 1, "b": 2, "c": 2, "d": 1}
    assert assign({"x": 1, "y": 1, "z": 1}, 5) == {"x": 1, "y": 2, "z": 3}  # shards 4, 5 stay empty
    with pytest.raises(ValueError, match="at least 1"):
        assign({"a": 1}, 0)
    with pytest.raises(ValueError, match="finite number >= 0"):
        assign({"a": float("nan")}, 2)


# --- parsing I/N ----------------------------------------------------------------------------------------


def test_parse_shard() -> None:
    assert parse_shard("2/3") == (2, 3) and parse_shard(" 1/1 ") == (1, 1)
    for bad, words in [
        ("3/2", "shard 3 of 2 does not exist: I must be between 1 and 2, got '3/2'"),
        ("0/2", "shard 0 of 2 does not exist"),
        ("a/b", "expected I/N, two whole numbers such as 1/3, got 'a/b'"),
        ("2", "expected I/N"),
        ("-1/2", "expected I/N"),
        ("1/0", "at least 1"),
    ]:
        with pytest.raises(ValueError) as info:
            parse_shard(bad)
        assert words in str(info.value), bad


class _Config:
    """What PluginState reads of a pytest Config."""

    def __init__(self, shard: str | None = None, ini: str = "", balance: str | None = None) -> None:
        self.options = {"robustspec_shard": shard, "robustspec_shard_balance": balance}
        self.ini = {"robustspec_shard": ini, "robustspec_shard_balance": "times", "robustspec_build_threads": "1"}

    def getoption(self, name: str) -> Any:
        return self.options.get(name)

    def getini(self, name: str) -> Any:
        return self.ini[name]


def test_shard_comes_from_the_option_else_the_environment_else_the_ini(monkeypatch: pytest.MonkeyPatch) -> None:
    from robustspec.pytest.state import PluginState

    monkeypatch.delenv("ROBUSTSPEC_SHARD", raising=False)
    assert PluginState(_Config()).shard is None  # type: ignore[arg-type]
    assert PluginState(_Config(ini="2/2")).shard == (2, 2)  # type: ignore[arg-type]
    monkeypatch.setenv("ROBUSTSPEC_SHARD", "1/2")
    assert PluginState(_Config(ini="2/2")).shard == (1, 2)  # type: ignore[arg-type]
    assert PluginState(_Config("3/4", ini="2/2")).shard == (3, 4)  # type: ignore[arg-type]
    monkeypatch.setenv("ROBUSTSPEC_SHARD", "x")
    with pytest.raises(pytest.UsageError, match=r"^ROBUSTSPEC_SHARD: expected I/N"):
        PluginState(_Config())  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["3/2", "0/2", "a/b"])
def test_bad_shard_is_a_usage_error(bad: str) -> None:
    from robustspec.pytest.state import PluginState

    with pytest.raises(pytest.UsageError, match=rf"^--robustspec-shard: .*got '{bad}'$"):
        PluginState(_Config(bad))  # type: ignore[arg-type]
    with pytest.raises(pytest.UsageError, match="--robustspec-shard-balance: expected times or items, got 'fast'"):
        PluginState(_Config("1/2", balance="fast"))  # type: ignore[arg-type]


# --- plan: groups never split, build times when every group has one ----------------------------------------


def test_plan_keeps_groups_whole_and_weighs_build_times_only_when_every_group_has_one() -> None:
    entries = [("s.yaml::a::v::c1", "model-a"), ("s.yaml::a::v::c2", "model-a"), ("s.yaml::a::w::c1", "model-a")]
    entries += [("s.yaml::b::v::c1", "model-b"), ("t.yaml::c::v::c1", "model-c"), ("t.yaml::c::v::c2", "model-c")]
    by_items = plan(entries, 2)
    assert by_items.balance == "items"
    assert by_items.groups == {"s.yaml::a::v::c1": 1, "t.yaml::c::v::c1": 2, "s.yaml::b::v::c1": 2}
    assert {by_items.shards[i] for i, k in entries if k == "model-a"} == {1}
    assert by_items.load(1) == by_items.load(2) == 3
    timed = plan(entries, 2, {"model-a": 1.0, "model-b": 90.0, "model-c": 2.0})
    assert timed.balance == "build-times" and timed.groups["s.yaml::b::v::c1"] == 1
    assert timed.load(1) == 90.0 and timed.load(2) == 3.0
    assert timed.digest != by_items.digest
    partial = plan(entries, 2, {"model-a": 1.0, "model-b": 90.0})  # model-c never built here: item counts
    assert partial.balance == "items" and partial.digest == by_items.digest
    assert plan(list(reversed(entries)), 2).digest == by_items.digest
    assert plan(entries, 1).shards == dict.fromkeys((i for i, _ in entries), 1)


def test_subtree_seconds_sums_the_builds_below_each_model(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    data = content_key("data", {"d": 1})
    models = [content_key("model", {"m": m}, (data,)) for m in (1, 2, 3)]
    variant = content_key("variant", {"v": 1}, (models[0],))
    evals = [content_key("eval", {"e": 1}, (variant, data)), content_key("eval", {"e": 2}, (models[1], data))]
    store.get_or_build(data, lambda: {"x": 0})
    for key, parents in [(models[0], (data,)), (models[1], (data,)), (variant, (models[0],))]:
        store.get_or_build(key, lambda: {"x": 1}, parents=parents)
    for key, parent in zip(evals, (variant, models[1])):
        store.get_or_build(key, lambda: {"x": 2}, parents=(parent, data))
    # The log's seconds, made round; models[0] rebuilt once (its latest build counts), models[2] never built;
    # evals[1] trained models[1] inside its own build (one process, 1000-1020 within 996-1021): 5 s its own.
    chosen = {data: 100.0, models[0]: 10.0, variant: 3.0, evals[0]: 0.5}
    lines = [{"key": k, "seconds": s} for k, s in chosen.items()] + [{"key": models[0], "seconds": 12.0}]
    lines += [{"key": models[1], "seconds": 20.0, "pid": 7, "time": 1020.0}]
    lines += [{"key": evals[1], "seconds": 25.0, "pid": 7, "time": 1021.0}]
    (store.root / "builds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + "torn{\n")
    assert subtree_seconds(store, models) == {models[0]: 15.5, models[1]: 25.0}
    assert subtree_seconds(Store(tmp_path / "empty"), models) == {}


# --- the plugin: one collect-only run, partitioned as computed here ---------------------------------------

SUITE = "data: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 8, seed: 0}\n"
SUITE += "source: amazon\ntrain: {epochs: 1, batch-size: 16}\nmodels: [%s]\n"
SUITE += "expect:\n  - source-accuracy: {min: 0.0}\n  - target-accuracy: {min: 0.0}\n"


def test_collect_only_keeps_one_shard_grouped_by_trained_model(
    write_project: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"suites/a.yaml": SUITE % "resnet10-mini, resnet10-small", "suites/b.yaml": SUITE % "resnet10-mini"}
    pytester = write_project(files)
    store = tmp_path / "store"
    # What the plugin must do, computed in this process: b's model is a's (one key), so one group.
    from robustspec.workspace import Workspace

    workspace = Workspace(Store(store))
    entries = []
    for rel in sorted(files):
        loaded = load_suite(pytester.path / rel)
        for check in plan_suite(loaded):
            nodeid = "::".join((rel, *check.nodeid_parts))
            entries.append((nodeid, workspace.model_key(loaded.suite, check.model)))
    assert len({k for i, k in entries if "resnet10-mini" in i}) == 1
    expected = plan(entries, 2)
    assert expected.load(1) == 6 and expected.load(2) == 3
    shard2 = sorted(i for i, s in expected.shards.items() if s == 2)
    assert shard2 and all("resnet10-small" in i for i in shard2)

    monkeypatch.setenv("ROBUSTSPEC_SHARD", "1/3")  # the option wins
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--robustspec-store={store}",
        "--collect-only", "-q", "--robustspec-shard", "2/2", "-o", "robustspec_shard=1/2",
    )  # fmt: skip
    text = result.stdout.str()
    assert result.ret == 0, text + result.stderr.str()
    assert sorted(line for line in text.splitlines() if line.startswith("suites/")) == shard2
    assert f"{len(shard2)}/{len(entries)} tests collected ({len(entries) - len(shard2)} deselected)" in text
    assert not (store / "builds.jsonl").exists()


# --- robustspec merge -------------------------------------------------------------------------------------


def _item(iid: str, measured: float, status: str = "pass", duration: float = 0.1) -> dict[str, Any]:
    props = {"measured": measured, "status": status, "suite": "s", "model": iid.split("::")[1]}
    props |= {"variant": "baseline", "artifact_key": f"model-{iid.split('::')[1]}"}
    return {"id": iid, "status": status, "outcome": "passed", "duration": duration, "properties": props}


def _write(path: Path, items: list[dict[str, Any]], commit: str | None = "abc", **extra: Any) -> str:
    env = {"python": "3.11", "device": "cpu", "workers": 2, "cpus": 2 if "1" in path.name else 4}
    write_document(path, make_document(items, env, commit, {"exitstatus": 0, **extra}))
    return str(path)


def test_merge_joins_shards_for_compare_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan1 = {"index": 1, "count": 2, "plan": "p"}
    one = _write(tmp_path / "shard1.json", [_item("s.yaml::a::baseline::c", 0.9)], shard=plan1)
    two = _write(
        tmp_path / "shard2.json",
        [_item("s.yaml::b::baseline::c", 0.5, "fail"), _item("s.yaml::a::baseline::c", 0.9, duration=7.0)],
        shard={**plan1, "index": 2},
        exitstatus=1,
    )
    out = tmp_path / "merged.json"
    assert main(["merge", str(out), one, two, one]) == 0
    captured = capsys.readouterr()
    assert "merged 2 items from 3 files" in captured.out and captured.err == ""
    doc = load_document(out)
    assert [i["id"] for i in doc["items"]] == ["s.yaml::a::baseline::c", "s.yaml::b::baseline::c"]
    assert doc["summary"] == {"items": 2, "pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0}
    assert doc["git_commit"] == "abc" and doc["exitstatus"] == 1 and "shard" not in doc
    assert doc["environment"] == {"python": "3.11", "device": "cpu", "workers": 6, "cpus": [2, 4]}
    assert set(doc["artifacts"]) == {"s/a/baseline", "s/b/baseline"}
    assert [m["shard"]["index"] for m in doc["merged_from"]] == [1, 2, 1]
    assert main(["compare", str(out), str(out)]) == 0


def test_merge_refuses_an_id_with_two_different_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = _write(tmp_path / "shard1.json", [_item("s.yaml::a::baseline::c", 0.9)])
    two = _write(tmp_path / "shard2.json", [_item("s.yaml::a::baseline::c", 0.8)], commit="def")
    out = tmp_path / "merged.json"
    assert main(["merge", str(out), one, two]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustspec merge: error: item 's.yaml::a::baseline::c' is in ")
    assert "shard1.json and " in err and "shard2.json with different results (properties.measured differ)" in err
    assert "Traceback" not in err and not out.exists()


def test_merge_warns_about_commits_and_refuses_shards_split_differently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _write(tmp_path / "shard1.json", [_item("s.yaml::a::baseline::c", 0.9)])
    two = _write(tmp_path / "shard2.json", [_item("s.yaml::b::baseline::c", 0.8)], commit="def")
    out = tmp_path / "merged.json"
    assert main(["merge", str(out), one, two]) == 0
    assert "warning: the files come from different git commits" in capsys.readouterr().err
    assert load_document(out)["git_commit"] is None
    a = _write(tmp_path / "a1.json", [_item("s.yaml::a::baseline::c", 0.9)], shard={"index": 1, "count": 3})
    b = _write(tmp_path / "b2.json", [], shard={"index": 2, "count": 3, "plan": "other"})
    assert main(["merge", str(out), a, b]) == 2
    assert "were split differently (their shard plans differ)" in capsys.readouterr().err
    c = _write(tmp_path / "c2.json", [], shard={"index": 2, "count": 3})
    assert main(["merge", str(out), a, c]) == 0
    assert "warning: shard 3 of 3 not among the files: their items are missing" in capsys.readouterr().err
    assert main(["merge", str(out), str(tmp_path / "nope.json")]) == 2
