"""The JSON Schema of suite files, generated from the pydantic models that validate them.

The models in :mod:`robustspec.spec.schema` describe a *resolved* suite. A suite as written may name its
dataset, training recipe and models instead of writing them out, and its variants and expectations are
one-key mappings whose parameter models live with each registered component. :func:`written_suite_model`
builds the model of the written form from those same parameter models and the registries, so the schema
cannot drift from validation: a new compression step, expectation kind or attack appears in it with its
fields, descriptions and bounds. Cross-file facts (a name defined in ``specs/``, a domain of the dataset)
are beyond JSON Schema; ``robustspec validate`` checks those.

Editors: VS Code (the YAML extension) and JetBrains IDEs read a ``# yaml-language-server: $schema=...``
first line or a file-pattern mapping; see docs/suites.md.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, TypeAdapter, create_model

from .. import __version__
from .schema import DataSpec, DomainName, ModelSpec, Name, Strict, TrainRecipe

__all__ = ["SCHEMA_ID", "SCHEMA_DIALECT", "suite_json_schema", "written_suite_model"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: The schema's identifier: the package version decides what it accepts.
SCHEMA_ID = f"urn:robustspec:suite-schema:{__version__}"

_FACTORY = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


class _OneKey(Strict):
    """A one-key mapping (``{prune: {...}}``, ``{target-accuracy: {...}}``)."""

    model_config = ConfigDict(populate_by_name=True)


def _first_line(doc: str | None, default: str) -> str:
    lines = [line.strip() for line in (doc or "").strip().splitlines() if line.strip()]
    return lines[0] if lines else default


def _one_key(prefix: str, key: str, tp: Any, doc: str | None) -> type:
    ident = prefix + "_" + "".join(c if c.isalnum() else "_" for c in key)
    return create_model(
        ident,
        __base__=_OneKey,
        __doc__=_first_line(doc, key),
        value=(tp, Field(alias=key)),
    )


def _step_type() -> Any:
    from ..compress import COMPRESSIONS

    members = []
    for kind in COMPRESSIONS.names():
        impl = COMPRESSIONS.get(kind)
        params: Any = impl.Params
        # A step whose parse() turns a bare word into a mapping also takes that word (`quantize: ptsq`).
        if impl().parse("x") != "x":
            params = Union[params, Annotated[str, Field(description="shorthand: " + kind + " with its main field")]]  # noqa: UP007
        members.append(_one_key("Step", kind, params, impl.__doc__))
    step = Union[tuple(members)]  # noqa: UP007
    return Annotated[
        step | Annotated[list[step], Field(min_length=1)],
        Field(description="a compression step, or a chain of them"),
    ]  # noqa: UP007


def _expectation_type() -> Any:
    from ..expect import EXPECTATIONS

    members = []
    for kind in EXPECTATIONS.names():
        expectation = EXPECTATIONS.get(kind)
        # A kind whose parameters depend on the value (attack: the named attack's own fields) says so.
        schema_params = getattr(expectation(), "schema_params", None)
        params = schema_params() if schema_params is not None else expectation.Params
        members.append(_one_key("Expect", kind, params, expectation.__doc__))
    return Union[tuple(members)]  # noqa: UP007


def _zoo_names() -> list[str]:
    from ..models.zoo import MODELS, TORCHVISION_CLASSIFIERS

    return sorted(set(MODELS.names()) | set(TORCHVISION_CLASSIFIERS))


@cache
def written_suite_model() -> type:
    """The pydantic model of a suite as written (names or inline blocks), from the registered components."""
    variant_name = Annotated[Name, Field(json_schema_extra={"not": {"const": "baseline"}})]
    variants = dict[variant_name, _step_type()]
    arch = Union[  # noqa: UP007
        Annotated[Literal[tuple(_zoo_names())], Field(description="a model of the zoo")],
        Annotated[str, Field(pattern=_FACTORY, description="a factory: package.module:function")],
    ]
    model = create_model(
        "Model",
        __base__=ModelSpec,
        __doc__=ModelSpec.__doc__,
        arch=(arch | None, Field(None, description="zoo name or package.module:function (default: the name)")),
        train=(
            Name | TrainRecipe | None,
            Field(None, description="a training recipe for this model only: a name (specs/training.yaml) or a mapping"),
        ),
        variants=(variants, Field(default_factory=dict, description="compression variants of this model only")),
    )
    from ..data import default_dataset

    return create_model(
        "Suite",
        __base__=Strict,
        __doc__="A robustspec suite file: a dataset, a source domain, models, their variants and expectations.",
        suite=(Name | None, Field(None, description="the suite's name (default: the file name)")),
        data=(
            Name | DataSpec,
            Field(
                default_dataset(),
                description=f"a dataset name (specs/datasets.yaml or {default_dataset()}) or a mapping",
            ),
        ),
        source=(DomainName, Field(description="the domain models are trained on")),
        targets=(
            list[DomainName],
            Field(default_factory=list, description="domains to test on (default: every other)"),
        ),
        train=(
            Name | TrainRecipe,
            Field("default", description="a training recipe name (specs/training.yaml or default) or a mapping"),
        ),
        models=(
            list[Name | model],
            Field(min_length=1, description="model names (specs/models.yaml or the zoo) or mappings"),
        ),
        variants=(variants, Field(default_factory=dict, description="compression chains of every model, by name")),
        expect=(
            list[_expectation_type()],
            Field(min_length=1, description="expectations, each a one-key mapping like {target-accuracy: {min: 0.5}}"),
        ),
    )


_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def _spell_out_bounds(node: Any) -> None:
    """Pydantic writes bounds set over a before-validator (``Annotated[Real, Field(gt=0)]``) under their
    Python names (``gt``); JSON Schema spells them ``exclusiveMinimum`` and the like."""
    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, dict):
            if n.get("type") in ("number", "integer"):
                for short, long in _BOUNDS.items():
                    if short in n:
                        n[long] = n.pop(short)
            todo.extend(n.values())
        elif isinstance(n, list):
            todo.extend(n)


def suite_json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of suite files, for editors and for other tools."""
    schema = TypeAdapter(written_suite_model()).json_schema(by_alias=True, mode="validation")
    _spell_out_bounds(schema)
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, "title": "robustspec suite", **schema}
