"""Where a problem is: pydantic errors mapped back to ``file:line:col`` and the YAML path.

:class:`Problems` collects every problem of one suite file (and of the ``specs/`` files it pulls blocks
from) as :class:`~robustspec.errors.SpecError`; :meth:`Problems.validate` validates a value and reports
each pydantic error where it was written, with close-match suggestions for unknown keys.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, TypeAdapter, ValidationError

from ..errors import SpecError
from .text import clip, shorten
from .yaml_loader import Located

#: Longest message of one problem, in characters.
MAX_MESSAGE = 500

__all__ = ["Problems"]


class Problems:
    """Every problem of one suite file (and of the spec files it pulls blocks from), in order."""

    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    def at(self, loc: Located, file: str, path: tuple, message: str, *, key: bool = False) -> None:
        line, col = (loc.key_positions.get(path) if key else None) or loc.where(path)
        # Paths hold the user's keys: each part is bounded, and so is the message (messages shorten the
        # values they echo; this is the guard for any that does not).
        path = tuple(p if not isinstance(p, str) or len(p) <= 80 else clip(p, 60) for p in path)
        self.errors.append(SpecError(file, line, col, path, clip(message, MAX_MESSAGE)))

    def validate(self, model: Any, value: Any, loc: Located, file: str, prefix: tuple, tp: Any = None) -> Any | None:
        """``model`` (a pydantic model or a TypeAdapter of ``tp``) validates ``value``; None after reporting."""
        try:
            if isinstance(model, TypeAdapter):
                return model.validate_python(value)
            return model.model_validate(value)
        except ValidationError as exc:
            if tp is None and not isinstance(model, TypeAdapter):
                tp = model
            self.validation(exc, loc, file, prefix, tp)
            return None

    def validate_key(self, adapter: TypeAdapter[Any], key: Any, loc: Located, file: str, path: tuple) -> bool:
        """A mapping key (a variant name) validated by ``adapter``; a problem is reported at the key itself."""
        try:
            adapter.validate_python(key)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                msg = err["msg"]
                msg = msg[0].lower() + msg[1:] if msg else msg
                self.at(loc, file, path, f"{msg} (got {shorten(key)})", key=True)
            return False
        return True

    def validation(self, exc: ValidationError, loc: Located, file: str, prefix: tuple, tp: Any = None) -> None:
        """Report every error of ``exc``; ``tp`` is the validated type, used to map locations and suggest keys."""
        # Errors from the members of a plain union (``int | str | ...``) at one place become one message.
        union_msgs: dict[tuple, list[str]] = {}
        union_inputs: dict[tuple, Any] = {}
        for err in exc.errors(include_url=False):
            walked = _map_loc(loc.data, prefix, err["loc"], tp)
            path = walked.path
            kind = err["type"]
            if kind == "extra_forbidden":
                message = f"unknown key {str(path[-1])!r}"
                allowed = walked.allowed
                if allowed:
                    close = difflib.get_close_matches(str(path[-1]), allowed, n=1, cutoff=0.6)
                    message += f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(allowed)})"
                self.at(loc, file, path, message, key=True)
                continue
            if kind == "missing":
                self.at(loc, file, path, f"missing required key {walked.missing!r}")
                continue
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            msg = msg[0].lower() + msg[1:] if msg else msg
            # What was written, not what a before-validator made of it (1, not 1.0).
            got = walked.written if walked.written is not None and not walked.key else err.get("input")
            if walked.union:
                union_msgs.setdefault(path, []).append(msg)
                union_inputs[path] = got
                continue
            self.at(loc, file, path, msg + _got(kind, got, msg), key=walked.key)
        for path, msgs in union_msgs.items():
            if len(msgs) == 1:
                msg = msgs[0]
            else:
                lead = "input should be "
                parts = list(dict.fromkeys(m[len(lead) :] if m.startswith(lead) else m for m in msgs))
                msg = lead + (", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0])
            self.at(loc, file, path, msg + _got("", union_inputs[path], msg))


def _got(kind: str, got: Any, msg: str) -> str:
    """`` (got X)`` unless the message already shows the input or the input is a whole block."""
    if kind in ("model_type", "dict_type") or isinstance(got, (dict, list)) or "got " in msg:
        return ""
    return f" (got {shorten(got)})"


@dataclass
class _Walked:
    path: tuple  # where in the data the error is
    missing: str | None = None  # for a missing key: its name
    allowed: list[str] = field(default_factory=list)  # keys the innermost model accepts
    union: bool = False  # the location went through a member of a plain union
    key: bool = False  # the error is about a mapping key, not its value
    written: Any = None  # the scalar written there, when the location was found in the data


def _strip(tp: Any) -> Any:
    """Remove ``Annotated`` and ``Optional`` wrappers (pydantic adds no location part for either)."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        if get_origin(tp) in (Union, UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _union_member(tp: Any, label: Any) -> tuple[bool, Any, bool]:
    """If ``tp`` is a union, the location part ``label`` names a member: (is_union, tagged member, tagged).

    Tagged unions put the tag in the location; plain unions put a member label (``int``, ``list[int]``),
    whose type is not needed here (the data walk goes on without it).
    """
    tp = _strip(tp)
    if get_origin(tp) not in (Union, UnionType):
        return False, None, False
    for arg in get_args(tp):
        if get_origin(arg) is Annotated:
            for meta in get_args(arg)[1:]:
                if isinstance(meta, Tag) and meta.tag == label:
                    return True, get_args(arg)[0], True
    return True, None, False


def _field_type(model: type[BaseModel], part: Any) -> tuple[bool, Any]:
    for name, info in model.model_fields.items():
        if part in (name, info.alias):
            return True, info.annotation
    return False, None


def _map_loc(data: Any, prefix: tuple, loc: tuple, tp: Any = None) -> _Walked:
    """Follow a pydantic error location through the data and, when known, the validated type.

    Location parts that are not in the data (union tags and member labels, ``[key]``) are skipped; a
    discriminator tag that happens to equal a key of the data (``imagefolder``) is not mistaken for it.
    """
    path = list(prefix)
    node = data
    for p in prefix:
        node = node[p] if isinstance(node, (dict, list)) and _has(node, p) else None
    out = _Walked(())
    owner: type[BaseModel] | None = None
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if tp is not None:
            is_union, member, tagged = _union_member(tp, part)
            if is_union:
                out.union |= not tagged
                tp = member
                continue
            tp = _strip(tp)
        if part == "[key]":
            out.key = True
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            owner = tp
            known, tp = _field_type(tp, part)
            if not known:
                tp = None
        elif tp is not None:
            origin, args = get_origin(tp), get_args(tp)
            if origin in (list, set, frozenset) and args:
                tp = args[0]
            elif origin is tuple and args:
                tp = (
                    args[0]
                    if len(args) == 2 and args[1] is Ellipsis
                    else (args[part] if isinstance(part, int) and part < len(args) else None)
                )
            elif origin is dict and len(args) == 2:
                tp = args[1]
            else:
                tp = None
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        else:
            if last and isinstance(part, str):
                out.missing = part
            node = None
    if owner is not None and loc and isinstance(loc[-1], str):
        if owner.model_fields and not _field_type(owner, loc[-1])[0]:
            out.allowed = sorted(info.alias or name for name, info in owner.model_fields.items())
    out.path = tuple(path)
    if not isinstance(node, (dict, list)):
        out.written = node
    return out


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)
