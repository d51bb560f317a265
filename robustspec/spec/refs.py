"""Cross-references declared by the parameter models themselves, not guessed from field names.

A field that names something of the suite carries a :class:`Ref` in its ``Annotated`` metadata::

    domains: list[TargetDomainRef] | None = None      # each one a domain of the dataset, not the source
    versus: VariantRef | None = None                  # a variant of the suite (or baseline)

:func:`iter_refs` walks a validated model and yields every such value with its path, so the loader checks
all of them against the suite in one place (:mod:`robustspec.spec.checks`), whatever the component, and a
new component's references are checked without touching the loader. Pydantic ignores the marker when
validating (the type aliases in :mod:`robustspec.spec.schema` add a description for the JSON Schema).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

__all__ = ["Choices", "Ref", "RefKind", "iter_refs"]

RefKind = Literal["domain", "target-domain", "model", "variant"]

_DESCRIPTIONS = {
    "domain": "a domain of the suite's dataset, or a derived one like amazon+gaussian_noise@3",
    "target-domain": "a domain of the suite's dataset other than the source, or a derived one",
    "model": "the name of a model of this suite",
    "variant": "the name of a variant of this suite, or baseline",
}


@dataclass(frozen=True)
class Ref:
    """Marks a string field as a name of the suite's ``kind`` (checked after validation)."""

    kind: RefKind

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self.kind]


def _refs_in(tp: Any) -> tuple[Ref | None, Any]:
    """(the Ref on ``tp`` if any, ``tp`` without Annotated)."""
    ref = None
    while get_origin(tp) is Annotated:
        args = get_args(tp)
        ref = ref or next((m for m in args[1:] if isinstance(m, Ref)), None)
        tp = args[0]
    return ref, tp


def _walk(tp: Any, value: Any, path: tuple) -> Iterator[tuple[tuple, Ref, str]]:
    if value is None:
        return
    ref, tp = _refs_in(tp)
    if ref is not None and isinstance(value, str):
        yield path, ref, value
        return
    origin = get_origin(tp)
    if origin in (Union, UnionType):
        for arg in get_args(tp):
            if arg is type(None):
                continue
            _, bare = _refs_in(arg)
            base = get_origin(bare) or bare
            if isinstance(base, type) and isinstance(value, base):
                yield from _walk(arg, value, path)
                return
        return
    if origin in (list, tuple, set, frozenset) and isinstance(value, (list, tuple)):
        args = get_args(tp)
        for i, item in enumerate(value):
            arg = (
                args[0]
                if args and (origin is not tuple or args[-1] is Ellipsis)
                else (args[i] if i < len(args) else Any)
            )
            yield from _walk(arg, item, path + (i,))
        return
    if origin is dict and isinstance(value, dict):
        args = get_args(tp)
        for key, item in value.items():
            yield from _walk(args[1] if len(args) == 2 else Any, item, path + (key,))
        return
    if isinstance(value, BaseModel):
        yield from iter_refs(value, path)


def iter_refs(model: BaseModel, path: tuple = ()) -> Iterator[tuple[tuple, Ref, str]]:
    """Every (path, ref, name) in a validated model; paths use the YAML (aliased) keys."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        key = info.alias or name
        field_ref = next((m for m in info.metadata if isinstance(m, Ref)), None)
        if field_ref is not None and isinstance(value, str):
            yield path + (key,), field_ref, value
            continue
        yield from _walk(info.annotation, value, path + (key,))


@dataclass(frozen=True)
class Choices:
    """Marks a string field whose values are a registry's names: the JSON Schema lists them (``enum``).

    ``names`` is called when the schema is generated, so the registry may be filled after the model is
    defined (entry points included); validation itself stays with the field's own validator.
    """

    names: Callable[[], list[str]]

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        schema["enum"] = list(self.names())
        return schema
