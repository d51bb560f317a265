"""Builds run with a fixed torch thread count, whatever the process's: -n 1 and -n 8 build the same bytes.

Training's weight gradients are float reductions whose order follows the thread count (measured in
docs/store.md, "Reproducibility": ResNet-18 after 2 epochs with 1 and 2 threads differs by up to 6.7 in a
weight and in 85 of 500 test predictions), so the count is fixed per build, and a count other than 1 is
part of the trained model's key. The end-to-end -n 1 / -n 2 comparison is tests/test_plugin.py's
``test_one_and_two_workers_measure_the_same`` (slow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from robustspec.spec.loader import load_suite
from robustspec.store import Store
from robustspec.workspace import Workspace

SUITE = (
    "data: {name: office-synth, classes: 3, image-size: 16, train-per-class: 4, test-per-class: 2}\n"
    "source: amazon\ntrain: {epochs: 1, batch-size: 6}\nmodels: [resnet10-mini]\n"
    "expect:\n  - source-accuracy: {min: 0.0}\n"
)


@pytest.fixture
def loaded(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    return load_suite(path, tmp_path / "specs")


@pytest.fixture
def restore_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def record_threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The torch threads that the data build and the training ran with, by what was built."""
    import torch

    import robustspec.workspace as workspace

    seen: dict[str, int] = {}

    def spy(name: str, fn: Any) -> Any:
        def wrapped(*args: Any, **kw: Any) -> Any:
            seen[name] = torch.get_num_threads()
            return fn(*args, **kw)

        return wrapped

    monkeypatch.setattr(workspace, "split_to_state", spy("data", workspace.split_to_state))
    monkeypatch.setattr(workspace, "train_supervised", spy("model", workspace.train_supervised))
    return seen


def test_builds_run_with_the_fixed_count_and_the_weights_do_not_depend_on_the_process(
    loaded, tmp_path: Path, restore_threads, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    model = loaded.suite.models[0]
    weights, keys = [], []
    seen = record_threads(monkeypatch)
    for process_threads in (2, 1):  # -n 1 on 2 cores, -n 2 (one core a worker)
        seen.clear()
        ws = Workspace(Store(tmp_path / f"store-{process_threads}"), build_threads=1, torch_threads=process_threads)
        net = ws.trained(loaded.suite, model)
        assert seen == {"data": 1, "model": 1}  # both builds, pinned
        assert torch.get_num_threads() == process_threads  # and the process's own count is back
        weights.append({k: v.clone() for k, v in net.state_dict().items()})
        keys.append(ws.model_key(loaded.suite, model))
    assert keys[0] == keys[1]
    assert [k for k in weights[0] if not torch.equal(weights[0][k], weights[1][k])] == []


def test_a_thread_count_other_than_one_is_part_of_the_key(loaded, tmp_path: Path) -> None:
    """Threads decide a trained model, so they are in its key (and its descendants'); 1 keeps the old keys."""
    model, suite = loaded.suite.models[0], loaded.suite
    store = Store(tmp_path / "store")

    def key(**threads: Any) -> str:
        return Workspace(store, **threads).model_key(suite, model)

    default = key()
    assert "threads" not in Workspace(store).model_recipe(suite, model)
    assert key(build_threads=1, torch_threads=2) == default  # the process's count plays no part
    two = key(build_threads=2)
    assert two != default and Workspace(store, build_threads=2).model_recipe(suite, model)["threads"] == 2
    # auto: the process's share of the cores (under xdist, cores // workers): -n 2 on 2 cores is 1 thread.
    assert key(build_threads=None, torch_threads=1) == default
    assert key(build_threads=None, torch_threads=2) == two
    assert Workspace(store, build_threads=None).build_thread_count() >= 1
    # Evaluations and variants hang off the model's key, so they follow it.
    ws1, ws2 = Workspace(store), Workspace(store, build_threads=2)
    assert ws1.eval_key(loaded, model, "baseline", "amazon") != ws2.eval_key(loaded, model, "baseline", "amazon")
    assert ws1.data_key(suite, "amazon") == ws2.data_key(suite, "amazon")  # data do not depend on threads


def test_data_and_corruptions_do_not_depend_on_the_thread_count(restore_threads) -> None:
    """Why data keys carry no thread count: the same bytes with 1 and 2 threads (every corruption)."""
    import torch

    from robustspec.corrupt import CORRUPTIONS
    from robustspec.corrupt.domain import corrupt_split
    from robustspec.data.synthetic import OfficeSynth

    built = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        ds = OfficeSynth(classes=3, image_size=24, train_per_class=2, test_per_class=4)
        splits = {d: ds.build_domain(d) for d in ds.domains}
        test = splits["amazon"]["test"]
        corrupted = {c: corrupt_split(test, c, 5, "test").images for c in CORRUPTIONS.names()}
        built.append(({d: s[k].images for d, s in splits.items() for k in ("train", "test")}, corrupted))
    (data1, corrupt1), (data2, corrupt2) = built
    assert all(torch.equal(data1[d], data2[d]) for d in data1)
    assert [c for c in corrupt1 if not torch.equal(corrupt1[c], corrupt2[c])] == []
