"""Compression search (robustspec.compress.search): deterministic, within budget, artifacts reused, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from robustspec.compress import COMPRESSIONS
from robustspec.compress.base import StepContext
from robustspec.compress.search import Search, SearchParams, carve_validation, propose, search_dimensions
from robustspec.data.base import Split
from robustspec.errors import SpecErrors
from robustspec.metrics import parameter_count
from robustspec.models import Normalized, build_network
from robustspec.spec.loader import load_suite
from robustspec.spec.schema import TrainRecipe
from robustspec.store import Store, content_key

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = 5


class MemoryCache:
    """A StepContext.cache in memory, counting builds."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.builds = 0

    def __call__(self, recipe: dict[str, Any], build: Any, describe: str = "") -> Any:
        key = content_key("candidate", recipe)
        if key not in self.values:
            self.builds += 1
            self.values[key] = build()
        return self.values[key]


def make_ctx(cache: Any = None) -> StepContext:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(CLASSES).repeat(8)
    ctx = StepContext(
        train=Split(images, labels),
        num_classes=CLASSES,
        device=torch.device("cpu"),
        recipe=TrainRecipe(epochs=1, batch_size=16),
        baseline=lambda: pytest.fail("search must not ask for the baseline"),
        new_network=lambda *_: pytest.fail("search must not build a new network"),
        label="test",
    )
    if cache is not None:
        ctx.cache = cache
    return ctx


def make_model() -> Normalized:
    torch.manual_seed(0)
    return Normalized(build_network("resnet10-mini", CLASSES)).eval()


def params(**kw: Any) -> SearchParams:
    base = {"params": "150k", "trials": 6, "population": 3, "top-k": 2, "finetune": 0, "tolerance": 0.05}
    return SearchParams.model_validate({**base, **kw})


def test_registered_and_validated() -> None:
    assert COMPRESSIONS.get("search") is Search
    p = SearchParams.model_validate({"params": "4.51M"})
    assert (p.method, p.space, p.budget, p.trials) == ("evolution", "stages", ("params", 4_510_000), 16)
    assert SearchParams.model_validate({"size-mb": 18}).budget == ("size-mb", 18_000_000)
    for bad, fragment in [
        ({}, "give one budget"),
        ({"params": "1M", "macs": "2M"}, "not params and macs"),
        ({"params": "1M", "method": "grid"}, "'random' or 'evolution'"),
        ({"params": "1M", "space": "layers"}, "'stages' or 'groups'"),
        ({"params": "1M", "trials": 0}, "greater than or equal to 1"),
        ({"params": "1M", "validation": 1.0}, "less than 1"),
        ({"params": 0}, "greater than 0"),
    ]:
        with pytest.raises(ValidationError, match=fragment):
            SearchParams.model_validate(bad)


def test_dimensions_by_stage() -> None:
    groups = [("conv1", 16), ("layer1.0.conv1", 16), ("layer2.0.conv1", 32), ("layer2.0.downsample.0", 32)]
    groups += [("layer3.0.conv1", 64), ("layer4.0.conv1", 64)]
    assert search_dimensions(groups, "stages") == [
        ("conv1", [0]),
        ("layer1", [1]),
        ("layer2", [2, 3]),
        ("layer3", [4]),
        ("layer4", [5]),
    ]
    assert [d for d, _ in search_dimensions(groups, "groups")] == [g for g, _ in groups]
    # Fewer than four stages: the largest is split by its next name part (RegNet, MobileNet).
    regnet = [("stem.0", 8), *((f"trunk_output.block{b}.{i}.a", 8) for b in range(1, 5) for i in range(2))]
    assert [d for d, _ in search_dimensions(regnet, "stages")] == [
        "stem",
        *(f"trunk_output.block{b}" for b in range(1, 5)),
    ]
    mobilenet = [(f"features.{i}.conv.0", 8) for i in range(1, 7)]
    assert [d for d, _ in search_dimensions(mobilenet, "stages")] == [f"features.{i}" for i in range(1, 7)]


def test_validation_split_is_stratified_and_fixed() -> None:
    split = make_ctx().train
    fit, val = carve_validation(split, 0.25)
    assert len(fit) + len(val) == len(split) and len(val) == 10
    assert torch.bincount(val.labels).tolist() == [2] * CLASSES
    again = carve_validation(split, 0.25)[1]
    assert torch.equal(again.images, val.images)


def test_proposals_are_a_prefix_of_longer_searches() -> None:
    scored = [
        {"index": i, "shape": propose("evolution", 3, i, 5, 3, []), "proxy": 0.1 * i, "proxy_loss": 1.0}
        for i in range(4)
    ]
    assert scored[0]["shape"] == [1.0] * 5  # trial 0: uniform pruning
    assert propose("evolution", 3, 4, 5, 3, scored) == propose("evolution", 3, 4, 5, 3, scored)
    assert propose("random", 3, 2, 5, 3, []) == propose("random", 3, 2, 5, 3, scored[:2])


def test_search_is_deterministic_within_budget_and_restores() -> None:
    parent = make_model()
    p = params(finetune=1)
    first = Search().apply(parent, p, make_ctx(MemoryCache()))
    second = Search().apply(parent, p, make_ctx(MemoryCache()))
    assert first.info["candidates"] == second.info["candidates"]
    assert all(torch.equal(v, second.state["state_dict"][k]) for k, v in first.state["state_dict"].items())
    n = parameter_count(first.model)
    assert n == first.info["parameters"] <= 150_000
    assert all(c["measure"] <= 150_000 for c in first.info["candidates"] if c["proxy"] is not None)
    assert n >= 150_000 * 0.95
    assert sorted(first.info["stage_ratios"]) == sorted(first.info["dimensions"])
    assert first.info["stages"].startswith("conv1 ") and first.info["scores"].startswith("#0 [1,1,1,1,1] ")
    assert first.info["channels"].count("/") == len(first.info["widths"])
    restored = Search().restore(parent, p, first.state, make_ctx())
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(restored(x), first.model(x))


def test_rerun_and_wider_search_reuse_candidates() -> None:
    parent, cache = make_model(), MemoryCache()
    Search().apply(parent, params(trials=4, method="random"), make_ctx(cache))
    built = cache.builds
    assert built == 4
    Search().apply(parent, params(trials=4, method="random"), make_ctx(cache))
    assert cache.builds == built  # a rerun builds nothing
    Search().apply(parent, params(trials=6, method="random"), make_ctx(cache))
    assert cache.builds == built + 2  # a wider search builds only its new candidates


def test_evolution_with_more_trials_is_never_worse() -> None:
    parent, cache = make_model(), MemoryCache()
    few = Search().apply(parent, params(trials=4), make_ctx(cache)).info
    many = Search().apply(parent, params(trials=8), make_ctx(cache)).info
    assert many["candidates"][:4] == few["candidates"]
    assert many["best_proxy"] >= few["best_proxy"]


def test_unreachable_budget_is_a_structural_error() -> None:
    from robustspec.errors import StructuralError

    with pytest.raises(StructuralError, match="not below"):
        Search().apply(make_model(), params(params="1M"), make_ctx())


SUITE = """\
data: {{name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 8}}
source: amazon
train: {{epochs: 1, batch-size: 16}}
models: [resnet10-mini]
variants:
  found: {step}
expect:
  - source-accuracy: {{min: 0.0}}
"""


@pytest.mark.parametrize(
    "step, where, fragment",
    [
        pytest.param(
            "{search: {params: 400k}}",
            "6:19",
            "budget 400.0k is not below the model's 309.8k parameters",
            id="budget-above-the-model",
        ),
        pytest.param(
            "{search: {params: 100, trials: 2, population: 2}}", "6:19", "below 2%", id="budget-below-2-percent"
        ),
        pytest.param(
            "{search: {params: 150k, method: grid}}",
            "6:42",
            "search.method: input should be 'random' or 'evolution'",
            id="unknown-method",
        ),
        pytest.param(
            "{search: {params: 150k, space: layers}}",
            "6:41",
            "search.space: input should be 'stages' or 'groups'",
            id="unknown-space",
        ),
        pytest.param(
            "{search: {params: 150k, trials: 0}}",
            "6:42",
            "search.trials: input should be greater than or equal to 1",
            id="no-trials",
        ),
        pytest.param(
            "{search: {params: 150k, trials: 2, top-k: 3, population: 2}}",
            "6:19",
            "top-k 3 is more than the 2 trials",
            id="top-k-above-trials",
        ),
    ],
)
def test_bad_search_is_a_located_error(tmp_path: Path, step: str, where: str, fragment: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(step=step))
    with pytest.raises(SpecErrors) as info:
        load_suite(path)
    text = str(info.value)
    assert f"s.yaml:{where}" in text and fragment in text, text


@pytest.mark.slow  # trains a tiny model
def test_search_variant_through_the_store(tmp_path: Path) -> None:
    """A suite's search variant is built once: a second workspace on the same store builds nothing, and a
    chain continues after it."""
    from robustspec.workspace import Workspace

    path = tmp_path / "s.yaml"
    path.write_text(
        SUITE.format(step="{search: {params: 150k, trials: 3, population: 2, top-k: 1, tolerance: 0.05}}").replace(
            "variants:\n",
            "variants:\n  found-sparse: [{search: {params: 150k, trials: 3, population: 2, top-k: 1, "
            "tolerance: 0.05}}, {sparsify: {sparsity: 0.5}}]\n",
        )
    )
    loaded = load_suite(path)
    model = loaded.suite.models[0]
    store = Store(tmp_path / "store")
    ws = Workspace(store)
    metrics = ws.metrics(loaded, model, "found")
    assert metrics["parameters"] <= 150_000 and metrics["search.trials"] == 3
    ws.metrics(loaded, model, "found-sparse")
    kinds = [b["kind"] for b in store.builds()]
    assert kinds.count("candidate") == 3 + 1  # three scored, one fine-tuned
    builds = len(kinds)
    again = Workspace(Store(tmp_path / "store"))
    assert again.metrics(loaded, model, "found") == metrics
    again.accuracy(loaded, model, "found", "amazon")
    assert len(store.builds()) == builds + 1  # only the new evaluation


@pytest.mark.parametrize("axis", ["macs", "size-mb"])
def test_other_budgets_are_met_from_below(axis: str) -> None:
    from robustspec.metrics import macs, stored_bytes

    parent = make_model()
    measure = (lambda m: macs(m, 32)) if axis == "macs" else stored_bytes
    budget = int(measure(parent) * 0.5)
    value = budget if axis == "macs" else budget / 1e6
    result = Search().apply(parent, params(params=None, **{axis: value}, trials=3), make_ctx(MemoryCache()))
    assert 0.95 * budget <= measure(result.model) <= budget
    assert result.info["measure"] == measure(result.model)
