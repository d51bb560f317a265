"""A model's ``params:`` checked against what its builder really takes, before anything is built.

Each builder has a signature (:class:`Accepts`): the keyword parameters it takes besides ``num_classes``,
with their annotations, which of them it needs, and whether it takes any other keyword (``**kwargs``). A
suite's params are checked against it: an unknown name (with a close match), a missing required one, and
a value the annotation does not allow (YAML gives numbers, strings, booleans and lists) are problems,
each for its key. Annotations are read as far as they can be resolved; one that cannot be (a forward
reference to a missing name) accepts anything, and so does an unannotated parameter.
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["Accepts", "ParamProblem", "accepts_of", "params_problems", "value_problem", "describe"]

#: What robustspec passes itself; a suite naming them is told why they are not params.
RESERVED = {
    "num_classes": "num_classes is set from the data's classes",
    "weights": "pretrained weights go in the model's weights: field (a local file or a torchvision enum)",
    "pretrained": "pretrained weights go in the model's weights: field (never downloaded)",
    "progress": "nothing is downloaded, so there is no progress to show",
}


class ParamProblem(NamedTuple):
    """One problem of a model's params: the param it is about (None: the mapping), and whether it is the
    name (unknown, reserved) rather than the value that is wrong."""

    name: str | None
    message: str
    at_key: bool = False


@dataclass(frozen=True)
class Accepts:
    """The keyword parameters a builder takes (besides ``num_classes``) and what each allows."""

    owner: str  # "mobilenet_v2", "factory mymodels:net", ... (for messages)
    params: dict[str, Any] = field(default_factory=dict)  # name -> annotation (inspect.Parameter.empty: any)
    required: frozenset[str] = frozenset()
    any_keyword: bool = False  # **kwargs: other names cannot be told wrong without building
    fixed: frozenset[str] = frozenset()  # names the builder sets itself (passing them is an error)


def _hints(fn: Any) -> dict[str, Any]:
    """Resolved annotations of ``fn``; each string annotation that cannot be resolved is left out."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    raw = dict(getattr(inspect.unwrap(target), "__annotations__", {}) or {})
    module = sys.modules.get(getattr(target, "__module__", "") or "")
    namespace = dict(vars(module)) if module is not None else {}
    out: dict[str, Any] = {}
    for name, ann in raw.items():
        if isinstance(ann, str):
            try:
                ann = eval(ann, namespace, {})  # noqa: S307 - annotations of imported code, as typing does
            except Exception:  # noqa: BLE001 - unresolvable: the parameter accepts anything
                continue
        out[name] = ann
    return out


def accepts_of(fn: Any, owner: str, *, skip: tuple[str, ...] = ("num_classes",)) -> Accepts:
    """The :class:`Accepts` of a function or class (its ``__init__``), from ``inspect.signature``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return Accepts(owner, any_keyword=True)
    hints = _hints(fn)
    params: dict[str, Any] = {}
    required: set[str] = set()
    any_keyword = False
    for name, p in sig.parameters.items():
        if p.kind is p.VAR_KEYWORD:
            any_keyword = True
            continue
        if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY) or name in skip or name == "self":
            continue
        params[name] = hints.get(name, inspect.Parameter.empty)
        if p.default is p.empty:
            required.add(name)
    return Accepts(owner, params, frozenset(required), any_keyword)


def describe(ann: Any) -> str:
    """An annotation in words: ``int``, ``list of int``, ``float or None``."""
    if ann is inspect.Parameter.empty or ann is Any:
        return "anything"
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable, collections.abc.MutableSequence):
        inner = [a for a in args if a is not Ellipsis]
        if origin is tuple and inner and Ellipsis not in args:
            return f"a list of {len(inner)} ({', '.join(describe(a) for a in inner)})"
        return "a list" + (f" of {describe(inner[0])}" if inner else "")
    if ann is type(None):
        return "None"
    if origin is collections.abc.Callable or ann is collections.abc.Callable:
        return "a callable"
    if origin is type:
        return "a class"
    if isinstance(ann, type):
        return ann.__name__
    return str(ann).replace("typing.", "")


def value_problem(ann: Any, value: Any) -> str | None:
    """Why ``value`` (from YAML) does not fit annotation ``ann``, or None when it does (or cannot be told)."""
    if ann is inspect.Parameter.empty or ann is Any or isinstance(ann, (str, typing.TypeVar)):
        return None
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Annotated:
        return value_problem(args[0], value)
    if origin in (typing.Union, types.UnionType):
        problems = [value_problem(a, value) for a in args]
        if any(p is None for p in problems):
            return None
        writable = [a for a, p in zip(args, problems) if a is not type(None) and not p.startswith("takes ")]
        if not writable:  # Optional[Callable]: None is the default, and nothing else can be written
            return next(p for a, p in zip(args, problems) if a is not type(None))
        return f"expects {' or '.join(describe(a) for a in writable)}"
    if origin is typing.Literal:
        return None if any(value == a and type(value) is type(a) for a in args) else f"expects {describe(ann)}"
    sequence = origin in (
        list,
        tuple,
        collections.abc.Sequence,
        collections.abc.Iterable,
        collections.abc.MutableSequence,
    ) or ann in (list, tuple)
    if sequence:
        if not isinstance(value, (list, tuple)):
            return f"expects {describe(ann)}"
        inner = [a for a in args if a is not Ellipsis]
        if origin is tuple and inner and Ellipsis not in args:
            if len(value) != len(inner):
                return f"expects {describe(ann)}, got {len(value)} values"
            pairs = list(zip(inner, value))
        else:
            pairs = [(inner[0], v) for v in value] if inner else []
        for a, v in pairs:
            if value_problem(a, v) is not None:
                return f"expects {describe(ann)}"
        return None
    if ann is type(None) or ann is None:
        return None if value is None else "expects None"
    if ann is bool:
        return None if isinstance(value, bool) else "expects a boolean (true or false)"
    if ann is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "expects a whole number"
    if ann is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "expects a number"
    if ann is str:
        return None if isinstance(value, str) else "expects a string"
    if ann in (dict, collections.abc.Mapping) or origin in (dict, collections.abc.Mapping):
        return None if isinstance(value, dict) else "expects a mapping"
    if ann is object:
        return None
    # Callables, modules, config classes: nothing a suite can write.
    return f"takes {describe(ann)}, which a suite cannot give (params are numbers, strings, booleans and lists)"


def params_problems(accepts: Accepts, params: dict[str, Any]) -> list[ParamProblem]:
    """Each problem of ``params`` against ``accepts`` (unknown, reserved, fixed names; wrong values; missing)."""
    problems: list[ParamProblem] = []
    for name, value in params.items():
        if name in accepts.fixed:
            problems.append(ParamProblem(name, f"{accepts.owner} sets {name!r} itself: it cannot be a param", True))
        elif name in RESERVED and name not in accepts.params:
            problems.append(ParamProblem(name, f"{name!r} is not a param of {accepts.owner}: {RESERVED[name]}", True))
        elif name in accepts.params:
            why = value_problem(accepts.params[name], value)
            if why is not None:
                problems.append(ParamProblem(name, f"param {name!r} of {accepts.owner} {why}, got {_shown(value)}"))
        elif not accepts.any_keyword:
            known = sorted(accepts.params)
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) if len(name) <= 100 else []
            hint = f"; did you mean {close[0]!r}?" if close else ""
            takes = f"it takes {', '.join(known)}" if known else "it takes no params"
            problems.append(
                ParamProblem(name, f"unknown param {_shown(name)} of {accepts.owner}{hint} ({takes})", True)
            )
    missing = sorted(accepts.required - set(params))
    if missing:
        problems.append(ParamProblem(None, f"{accepts.owner} needs params {', '.join(missing)}"))
    return problems


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:50] + "..."
