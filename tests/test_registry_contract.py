"""Every entry of every registry keeps its kind's contract: one test per entry, ids like ``attack:pgd-linf``.

The contracts are the protocols in robustspec/{compress,attacks,expect,corrupt,data}/base.py; a component
an installed package adds through an entry point (docs/extending.md) is collected here too and held to
the same contract. Nothing here builds a model or runs an attack: these are the facts validation and
collection rely on (parameter models, class variables, methods), checked without torch where the code
allows it.
"""

from __future__ import annotations

import inspect
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from robustspec.attacks import ATTACKS
from robustspec.attacks.base import AttackParams, Loss, Norm
from robustspec.compress import COMPRESSIONS
from robustspec.corrupt import CORRUPTIONS
from robustspec.data import DATASETS, data_tag
from robustspec.executors import EXECUTORS, Executor
from robustspec.expect import EXPECTATIONS
from robustspec.models import MODELS
from robustspec.runtimes import RUNTIMES
from robustspec.spec.schema import DataParams, ExpectationBase, Strict

REGISTRIES = {
    "model": MODELS,
    "compression": COMPRESSIONS,
    "attack": ATTACKS,
    "expectation": EXPECTATIONS,
    "dataset": DATASETS,
    "corruption": CORRUPTIONS,
    "runtime": RUNTIMES,
    "executor": EXECUTORS,
}

ENTRIES = [pytest.param(kind, name, id=f"{kind}:{name}") for kind, reg in REGISTRIES.items() for name in reg.names()]


def _doc(obj: Any) -> str:
    return inspect.getdoc(obj) or ""


def _strict_params(params: Any, base: type) -> None:
    """A Strict pydantic model (unknown keys are errors, hyphenated YAML keys) of the kind's base, with a schema."""
    assert isinstance(params, type) and issubclass(params, BaseModel), params
    assert issubclass(params, Strict) and issubclass(params, base), f"{params.__name__} is not a {base.__name__}"
    assert params.model_config.get("extra") == "forbid"
    assert params.model_json_schema(by_alias=True)["type"] == "object"
    for field, info in params.model_fields.items():
        assert "_" not in (info.alias or field), f"{field}: YAML keys are hyphenated"


def _int(cls: Any, attr: str, default: int) -> int:
    value = getattr(cls, attr, default)
    assert isinstance(value, int) and not isinstance(value, bool), (attr, value)
    return value


# --- one kind each ---------------------------------------------------------------------------------------


def _model(name: str, factory: Any) -> None:
    assert callable(factory)
    params = inspect.signature(factory).parameters
    assert "num_classes" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()), (
        "a model factory takes num_classes"
    )
    assert _doc(factory), "a model factory says what it builds"


def _compression(name: str, cls: Any) -> None:
    _strict_params(cls.Params, Strict)
    for method in ("parse", "check", "apply", "restore"):
        assert callable(getattr(cls, method, None)), f"a compression step has {method}()"
    libraries = getattr(cls, "libraries", ())
    assert isinstance(libraries, tuple) and all(isinstance(x, str) for x in libraries)
    assert isinstance(getattr(cls, "adapts", False), bool)
    assert cls().parse({}) == {}, "parse() passes a mapping through"


def _attack(name: str, cls: Any) -> None:
    _strict_params(cls.Params, AttackParams)
    assert cls.norm in get_args(Norm)
    assert isinstance(cls.bounded, bool) and isinstance(cls.gradient_free, bool)
    assert getattr(cls, "loss", "ce") in get_args(Loss)
    assert _int(cls, "version", 1) >= 1
    assert _int(cls, "order", 100) >= 0
    libraries = getattr(cls, "libraries", ())
    assert isinstance(libraries, tuple) and all(isinstance(x, str) for x in libraries)
    for method in ("check", "run"):
        assert callable(getattr(cls, method, None)), f"an attack has {method}()"
    reference = getattr(cls, "masking_reference", ())
    if reference:
        # The masking check runs it as {name, eps, queries[, norm]} (robustspec.expect.attack.blackbox_for).
        assert cls.gradient_free and cls.bounded, "a masking reference is a bounded gradient-free attack"
        assert set(reference) <= set(get_args(Norm))
        fields = {info.alias or f for f, info in cls.Params.model_fields.items()}
        assert {"eps", "queries"} <= fields
        if len(reference) > 1:
            assert "norm" in fields and set(reference) <= set(get_args(cls.Params.model_fields["norm"].annotation))
    if hasattr(cls, "not_a_masking_reference"):
        assert cls.gradient_free and isinstance(cls.not_a_masking_reference, str)
    # The defaults (and eps, where it is required) pass check(); check() also catches what validation
    # would have, for parameters built without it.
    from robustspec.attacks.evaluate import attack_defaults_ok

    eps = cls.Params.model_fields["eps"]
    assert attack_defaults_ok(name, {"eps": 4 / 255} if eps.is_required() else {}, 10) == []
    assert cls().check(cls.Params.model_construct(eps=-0.5), 10), "check() rejects a negative eps"


def _expectation(name: str, cls: Any) -> None:
    _strict_params(cls.Params, ExpectationBase)
    for method in ("expand", "judge"):
        assert callable(getattr(cls, method, None)), f"an expectation has {method}()"
    for method in ("params_model", "schema_params", "check", "expand_chain"):
        assert callable(getattr(cls, method, None)) or not hasattr(cls, method), method


def _dataset(name: str, cls: Any) -> None:
    _strict_params(cls.Params, DataParams)
    assert inspect.ismethod(cls.from_params), "from_params is a classmethod"
    for method in ("recipe", "build_domain"):
        assert callable(getattr(cls, method, None)), f"a dataset has {method}()"
    fields = {info.alias or f: info for f, info in cls.Params.model_fields.items()}
    # A data mapping selects its dataset (robustspec.data.base): a field named after it, or name: <it>.
    by_name = "name" in fields and fields["name"].default == name and get_args(fields["name"].annotation) == (name,)
    assert name in fields or by_name, f"{cls.Params.__name__} carries the dataset's name"
    selector = {name: "x"} if name in fields else {"name": name}
    assert data_tag(selector) == name
    paths = getattr(cls, "paths", ())
    assert isinstance(paths, tuple) and set(paths) <= set(cls.Params.model_fields)
    assert isinstance(getattr(cls, "default", False), bool)
    try:
        defaults = cls.Params()
    except Exception:  # noqa: BLE001 - a dataset with a required parameter has no bare name
        return
    assert data_tag(defaults) == name and data_tag(defaults.model_dump(by_alias=True)) == name
    ds = cls.from_params(defaults)  # cheap: nothing is generated or read
    assert ds.domains and ds.classes and ds.image_size > 0


def _corruption(name: str, fn: Any) -> None:
    assert callable(fn)
    assert fn.name == name
    assert isinstance(fn.family, str) and fn.family
    assert isinstance(fn.standard, bool)


def _runtime(name: str, cls: Any) -> None:
    assert isinstance(cls.suffix, str) and cls.suffix.startswith(".") and len(cls.suffix) > 1
    libraries = cls.libraries
    assert isinstance(libraries, tuple) and libraries and all(isinstance(x, str) for x in libraries)
    for method in ("export", "load"):
        assert callable(getattr(cls, method, None)), f"a runtime has {method}()"
    assert {"batch"} <= set(inspect.signature(cls.export).parameters)
    assert {"quantized", "batch"} <= set(inspect.signature(cls.load).parameters)
    assert _doc(cls), "a runtime says what it runs"


def _executor(name: str, cls: Any) -> None:
    assert isinstance(cls, type) and issubclass(cls, Executor), f"an executor is an Executor: {cls!r}"
    assert cls.name == name, "its name is the one it is registered under"
    assert isinstance(cls.builds_here, bool) and isinstance(cls.takes_address, bool)
    for method in ("from_address", "connect", "start", "prepare", "close"):
        assert callable(getattr(cls, method, None)), f"an executor has {method}()"
    assert {"device"} <= set(inspect.signature(cls.prepare).parameters)


CONTRACTS = {
    "model": _model,
    "compression": _compression,
    "attack": _attack,
    "expectation": _expectation,
    "dataset": _dataset,
    "corruption": _corruption,
    "runtime": _runtime,
    "executor": _executor,
}


@pytest.mark.parametrize("kind, name", ENTRIES)
def test_entry_keeps_its_kinds_contract(kind: str, name: str) -> None:
    component = REGISTRIES[kind].get(name)
    if kind != "model":
        assert _doc(component), f"{kind} {name} has a docstring (the schema and the docs show its first line)"
    CONTRACTS[kind](name, component)


# --- across entries --------------------------------------------------------------------------------------


def test_every_kind_has_a_contract_and_an_entry_point_group() -> None:
    assert set(CONTRACTS) == set(REGISTRIES)
    assert {reg.group for reg in REGISTRIES.values()} == {
        "robustspec.models",
        "robustspec.compressions",
        "robustspec.attacks",
        "robustspec.expectations",
        "robustspec.datasets",
        "robustspec.corruptions",
        "robustspec.runtimes",
        "robustspec.executors",
    }
    for kind, reg in REGISTRIES.items():
        assert reg.kind == kind and reg.names(), kind


def test_one_masking_reference_per_norm_and_one_default_dataset() -> None:
    claims = [n for _, cls in ATTACKS.items() for n in getattr(cls, "masking_reference", ())]
    assert len(claims) == len(set(claims)), claims
    assert sum(bool(getattr(cls, "default", False)) for _, cls in DATASETS.items()) == 1


def test_built_in_components_are_marked_built_in() -> None:
    for kind, reg in REGISTRIES.items():
        for name in reg.names():
            origin = reg.origin(name)
            assert reg.builtin(name) == (origin or "").startswith("module robustspec"), (kind, name, origin)
