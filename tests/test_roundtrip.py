"""A resolved suite written back to YAML loads to the same suite (specs round-trip)."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustspec.plan import plan_suite
from robustspec.spec.loader import load_suite
from robustspec.spec.schema import AugmentSpec, ModelSpec, OptimizerSpec, Suite, SynthData, TrainRecipe

names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def recipes(draw) -> TrainRecipe:
    return TrainRecipe(
        epochs=draw(st.integers(0, 50)),
        batch_size=draw(st.integers(1, 512)),
        optimizer=OptimizerSpec(
            name=draw(st.sampled_from(["sgd", "adam", "adamw"])),
            lr=draw(st.floats(1e-5, 1.0)),
            momentum=draw(st.floats(0.0, 0.99)),
            weight_decay=draw(st.floats(0.0, 0.1)),
        ),
        schedule=draw(st.sampled_from(["onecycle", "cosine", "constant"])),
        augment=AugmentSpec(crop_pad=draw(st.integers(0, 8)), flip=draw(st.booleans()), jitter=draw(unit)),
        seed=draw(st.integers(0, 2**31)),
    )


@st.composite
def suites(draw) -> Suite:
    domains = ["amazon", "webcam", "dslr"]
    source = draw(st.sampled_from(domains))
    others = [d for d in domains if d != source]
    targets = draw(st.lists(st.sampled_from(others), unique=True))
    model_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    models = [
        ModelSpec(
            name=n,
            arch=draw(st.sampled_from(["resnet18", "resnet10-mini", "resnet50"])),
            train=draw(st.none() | recipes()),
        )
        for n in model_names
    ]
    expect = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["source-accuracy", "target-accuracy", "drop-vs-source"]))
        params: dict = {"max" if kind == "drop-vs-source" else "min": draw(unit)}
        if kind != "source-accuracy" and draw(st.booleans()):
            params["domains"] = draw(st.lists(st.sampled_from(others), min_size=1, unique=True))
        if draw(st.booleans()):
            params["confidence"] = draw(st.sampled_from([0.9, 0.95, 0.99]))
        if draw(st.booleans()):
            params["models"] = draw(st.lists(st.sampled_from(model_names), min_size=1, unique=True))
        expect.append({kind: params})
    data = SynthData(
        classes=draw(st.integers(2, 16)), image_size=draw(st.integers(16, 64)), seed=draw(st.integers(0, 99))
    )
    return Suite(
        suite=draw(names),
        data=data,
        source=source,
        targets=targets,
        train=draw(recipes()),
        models=models,
        expect=expect,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suites())
def test_dump_then_load_gives_the_same_suite(tmp_path, suite: Suite) -> None:
    path = tmp_path / "suites" / "s.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(suite.model_dump(by_alias=True, mode="json"), sort_keys=False))
    loaded = load_suite(path, specs_dir=tmp_path / "no-specs")
    expected_targets = suite.targets or [d for d in ["amazon", "webcam", "dslr"] if d != suite.source]
    assert loaded.suite == suite.model_copy(update={"targets": expected_targets})
    # Planning is deterministic: the same suite always gives the same item names in the same order.
    assert [c.nodeid_parts for c in plan_suite(loaded)] == [
        c.nodeid_parts for c in plan_suite(load_suite(path, tmp_path / "no-specs"))
    ]
