"""A small, safe, position-tracking YAML loader for suite and spec files.

PyYAML's own loaders are unsuitable here: they resolve scalars with YAML 1.1 rules
(``no`` -> False, ``1e-3`` -> str), silently accept duplicate keys, construct tagged
objects, compose recursively (deep nesting -> ``RecursionError``) and expand aliases
without bound (billion laughs). This module only uses PyYAML's *event stream*
(``yaml.parse``) and builds plain Python data from it iteratively, so that

* nothing but dict / list / str / int / float / bool / None is ever constructed;
* every problem becomes a :class:`~robustspec.errors.SpecError` with file, line,
  column and field path, and all problems of a file are reported together;
* depth, alias uses and the expanded size of the document are bounded before any
  work proportional to them is done.

Mapping keys are always ``str``: the original text of the key scalar (``1: x`` gives
the key ``'1'``, ``null: x`` gives ``'null'``). Callers validate keys as names.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from robustspec.errors import SpecError, SpecErrors

__all__ = ["Located", "load_yaml", "load_yaml_file"]


@dataclass(frozen=True)
class Located:
    """Plain data loaded from YAML plus the source position of every node."""

    data: Any
    positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: tuple) -> tuple[int, int]:
        """Return (line, col) of the longest known prefix of ``path``; (0, 0) if none is known."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            prefix = path[:n]
            # Value positions win: an error about a field points at what was written there.
            if prefix in self.positions:
                return self.positions[prefix]
            if prefix in self.key_positions:
                return self.key_positions[prefix]
        return (0, 0)


# --------------------------------------------------------------------------- scalars

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT_DEC = re.compile(r"[-+]?[0-9]+")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+")
_INT_OCT = re.compile(r"0o[0-7]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"([-+]?)\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")


def _resolve_plain(text: str) -> tuple[Any, str | None]:
    """Resolve a plain (unquoted) scalar with YAML-1.2-core-like rules; returns (value, error)."""
    if text in _NULLS:
        return None, None
    if text in _BOOLS:
        return _BOOLS[text], None
    try:
        # Ints are tried before floats because the float pattern also matches "42".
        if _INT_DEC.fullmatch(text):
            return int(text, 10), None
        if _INT_HEX.fullmatch(text):
            return int(text[2:], 16), None
        if _INT_OCT.fullmatch(text):
            return int(text[2:], 8), None
    except ValueError:
        # Python refuses to convert integers with thousands of digits (int_max_str_digits).
        return None, f"integer {text[:20]}... is too long"
    if _FLOAT.fullmatch(text):
        return float(text), None
    m = _INF.fullmatch(text)
    if m:
        return (-math.inf if m.group(1) == "-" else math.inf), None
    if _NAN.fullmatch(text):
        return math.nan, None
    return text, None


def _show_tag(tag: str) -> str:
    """Render a resolved tag the way it was probably written (``!!str`` rather than the URI)."""
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


# --------------------------------------------------------------------------- builder


class _ComplexKey(str):
    """Path element standing for a mapping key that was itself a mapping or sequence.

    It is a ``str`` so that error paths still render; nodes under it are never attached
    to the result and their positions are dropped.
    """


_COMPLEX = _ComplexKey("<complex key>")
_NO_KEY = object()  # a mapping frame waiting for its next key


class _Fatal(Exception):
    """Stop building: a limit was exceeded and the error is already recorded."""


@dataclass
class _Anchor:
    value: Any
    count: int  # nodes in the subtree, alias expansions included
    height: int  # nesting levels of collections in the subtree (0 for scalars)
    positions: list[tuple[tuple, tuple[int, int]]]  # relative path -> position
    key_positions: list[tuple[tuple, tuple[int, int]]]  # relative path -> key position
    key_text: str | None  # original text if the anchored node is a scalar (usable as key)


@dataclass
class _Frame:
    container: dict | list
    path: tuple
    is_key: bool  # this collection is being used as a mapping key (an error)
    anchor: str | None
    start_nodes: int
    log_start: int
    key_log_start: int
    height: int = 1
    key: Any = _NO_KEY  # mappings: pending key (str or _COMPLEX) or _NO_KEY
    seen: dict[str, int] = field(default_factory=dict)  # mappings: key -> line of first definition

    @property
    def is_map(self) -> bool:
        return isinstance(self.container, dict)


def _mark(mark: Any) -> tuple[int, int]:
    """Convert a PyYAML mark (0-based) to (line, col) 1-based; (0, 0) when absent."""
    if mark is None:
        return (0, 0)
    return (mark.line + 1, mark.column + 1)


def _copy_tree(value: Any) -> Any:
    """Deep-copy nested dicts/lists iteratively so alias expansions share no mutable state."""
    if not isinstance(value, (dict, list)):
        return value
    root: dict | list = type(value)()
    todo = [(value, root)]
    while todo:
        src, dst = todo.pop()
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for k, v in items:
            new = v
            if isinstance(v, (dict, list)):
                new = type(v)()
                todo.append((v, new))
            if isinstance(dst, dict):
                dst[k] = new
            else:
                dst.append(new)
    return root


class _Builder:
    """Consumes PyYAML events and builds plain data, positions and errors without recursion."""

    def __init__(self, filename: str, max_depth: int, max_nodes: int, max_aliases: int) -> None:
        self.filename = filename
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.max_aliases = max_aliases
        self.errors: list[SpecError] = []
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        # Positions are logged in order so that a finished anchored subtree can take its slice.
        self.pos_log: list[tuple[tuple, tuple[int, int]]] = []
        self.key_log: list[tuple[tuple, tuple[int, int]]] = []
        self.nodes = 0
        self.aliases = 0
        self.documents = 0
        self.root: Any = None

    # ---- errors

    def error(self, pos: tuple[int, int], path: tuple, message: str) -> None:
        self.errors.append(SpecError(self.filename, pos[0], pos[1], tuple(path), message))

    def fatal(self, pos: tuple[int, int], path: tuple, message: str) -> _Fatal:
        self.error(pos, path, message)
        return _Fatal()

    def current_path(self) -> tuple:
        """Path of the innermost field being built, for errors raised by the parser."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.is_map and top.key is not _NO_KEY:
            return top.path + (top.key,)
        return top.path

    # ---- node placement

    def slot(self) -> tuple[bool, tuple]:
        """Return (is_key, path) for the node that is about to start."""
        if not self.stack:
            return False, ()
        top = self.stack[-1]
        if top.is_map:
            if top.key is _NO_KEY:
                return True, top.path
            return False, top.path + (top.key,)
        return False, top.path + (len(top.container),)

    def count(self, n: int, pos: tuple[int, int], path: tuple) -> None:
        self.nodes += n
        if self.nodes > self.max_nodes:
            raise self.fatal(pos, path, f"document too large (alias expansion?): more than {self.max_nodes} nodes")

    def check_tag(self, event: Any, path: tuple) -> None:
        if event.tag is not None:
            self.error(
                _mark(event.start_mark),
                path,
                f"tags are not allowed (found {_show_tag(event.tag)}); write a plain value instead",
            )

    def set_key(self, top: _Frame, text: str, pos: tuple[int, int], plain: bool) -> None:
        path = top.path + (text,)
        if plain and text == "<<":
            self.error(pos, path, "merge keys are not supported ('<<'); write the fields out")
        elif text in top.seen:
            self.error(pos, path, f"duplicate key {text!r} (first defined at line {top.seen[text]})")
        else:
            top.seen[text] = pos[0]
        self.key_log.append((path, pos))
        top.key = text

    def attach(self, value: Any, height: int) -> None:
        """Put a finished value node into its parent (or make it the document root)."""
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.height = max(top.height, 1 + height)
        if top.is_map:
            if not isinstance(top.key, _ComplexKey):
                top.container[top.key] = value
            top.key = _NO_KEY
        else:
            top.container.append(value)

    # ---- events

    def feed(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.ScalarEvent):
            self.scalar(event)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self.start(event)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            self.end()
        elif isinstance(event, yaml.AliasEvent):
            self.alias(event)
        elif isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.fatal(
                    _mark(event.start_mark),
                    (),
                    "expected a single YAML document, but found another one ('---'); put everything in one document",
                )
        # StreamStart/End and DocumentEnd carry nothing we need.

    def scalar(self, event: yaml.ScalarEvent) -> None:
        is_key, path = self.slot()
        pos = _mark(event.start_mark)
        self.count(1, pos, path)
        plain = event.style in (None, "")
        if is_key:
            path = self.stack[-1].path + (event.value,)
        self.check_tag(event, path)
        value: Any = event.value
        if plain and event.tag is None:
            # Resolved even for keys: an anchored key may be reused as a value through an alias.
            value, problem = _resolve_plain(event.value)
            if problem:
                self.error(pos, path, problem)
        if is_key:
            self.set_key(self.stack[-1], event.value, pos, plain)
        else:
            self.pos_log.append((path, pos))
            self.attach(value, 0)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(
                value=value,
                count=1,
                height=0,
                positions=[((), pos)],
                key_positions=[],
                key_text=event.value,
            )

    def start(self, event: yaml.MappingStartEvent | yaml.SequenceStartEvent) -> None:
        is_key, path = self.slot()
        pos = _mark(event.start_mark)
        kind = "mapping" if isinstance(event, yaml.MappingStartEvent) else "sequence"
        if is_key:
            self.error(pos, path, f"a mapping key must be a plain value, not a {kind}")
            path = path + (_COMPLEX,)
        start_nodes = self.nodes
        self.count(1, pos, path)
        if len(self.stack) + 1 > self.max_depth:
            raise self.fatal(pos, path, f"nesting is deeper than {self.max_depth} levels")
        self.check_tag(event, path)
        frame = _Frame(
            container={} if kind == "mapping" else [],
            path=path,
            is_key=is_key,
            anchor=event.anchor,
            start_nodes=start_nodes,
            log_start=len(self.pos_log),
            key_log_start=len(self.key_log),
        )
        self.pos_log.append((path, pos))
        self.stack.append(frame)

    def end(self) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            cut = len(frame.path)
            self.anchors[frame.anchor] = _Anchor(
                value=frame.container,
                count=self.nodes - frame.start_nodes,
                height=frame.height,
                positions=[(p[cut:], q) for p, q in self.pos_log[frame.log_start :]],
                key_positions=[(p[cut:], q) for p, q in self.key_log[frame.key_log_start :]],
                key_text=None,
            )
        if frame.is_key:
            parent = self.stack[-1]
            parent.key = _COMPLEX
        else:
            self.attach(frame.container, frame.height)

    def alias(self, event: yaml.AliasEvent) -> None:
        is_key, path = self.slot()
        pos = _mark(event.start_mark)
        self.aliases += 1
        if self.aliases > self.max_aliases:
            raise self.fatal(pos, path, f"too many aliases (more than {self.max_aliases})")
        anchor = self.anchors.get(event.anchor)
        if anchor is None:
            # An alias inside its own anchor lands here too: anchors register when complete.
            self.error(pos, path, f"alias *{event.anchor} refers to an anchor that is not defined before it")
            if is_key:
                self.stack[-1].key = _COMPLEX
            else:
                self.pos_log.append((path, pos))
                self.attach(None, 0)
            return
        self.count(anchor.count, pos, path)
        if is_key:
            top = self.stack[-1]
            if anchor.key_text is None:
                self.error(pos, path, f"a mapping key must be a plain value, but *{event.anchor} is a collection")
                top.key = _COMPLEX
            else:
                self.set_key(top, anchor.key_text, pos, plain=False)
            return
        if len(self.stack) + anchor.height > self.max_depth:
            raise self.fatal(pos, path, f"nesting is deeper than {self.max_depth} levels (through *{event.anchor})")
        # The alias itself is where the user wrote this value; inner nodes point into the anchor.
        self.pos_log.append((path, pos))
        self.pos_log.extend((path + rel, q) for rel, q in anchor.positions if rel)
        self.key_log.extend((path + rel, q) for rel, q in anchor.key_positions)
        self.attach(_copy_tree(anchor.value), anchor.height)

    def result(self) -> Located:
        def keep(p: tuple) -> bool:
            return not any(isinstance(part, _ComplexKey) for part in p)

        positions = {p: q for p, q in self.pos_log if keep(p)}
        key_positions = {p: q for p, q in self.key_log if keep(p)}
        if not positions:
            positions[()] = (1, 1)  # empty file: callers report "empty" at the top of the file
        return Located(self.root, positions, key_positions)


# --------------------------------------------------------------------------- public API


def _syntax_error(builder: _Builder, exc: yaml.MarkedYAMLError) -> None:
    """Turn a PyYAML scanner/parser error into a SpecError without traceback noise."""
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or exc.context or "invalid YAML"
    if exc.problem and exc.context:
        where = ""
        if exc.context_mark is not None:
            line, col = _mark(exc.context_mark)
            where = f" at line {line}, column {col}"
        message = f"{exc.problem} ({exc.context}{where})"
    builder.error(_mark(mark), builder.current_path(), f"YAML syntax error: {message}")


def _reader_error(builder: _Builder, text: str, exc: yaml.reader.ReaderError) -> None:
    """Report a character PyYAML refuses to read (control characters and the like)."""
    pos = max(0, min(exc.position, len(text)))
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    char = exc.character if isinstance(exc.character, str) else chr(exc.character)
    builder.error((line, col), (), f"{exc.reason}: character {char!r} (U+{ord(char):04X}) cannot appear in YAML")


def load_yaml(
    text: str,
    filename: str,
    *,
    max_depth: int = 50,
    max_nodes: int = 100_000,
    max_aliases: int = 100,
) -> Located:
    """Parse one YAML document safely into plain data with positions; raise SpecErrors on any problem."""
    builder = _Builder(filename, max_depth, max_nodes, max_aliases)
    try:
        # SafeLoader is used only for its reader/scanner/parser; its composer and
        # constructor (recursive, YAML 1.1, unbounded aliases) are never called.
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            builder.feed(event)
    except _Fatal:
        pass
    except yaml.MarkedYAMLError as exc:
        _syntax_error(builder, exc)
    except yaml.reader.ReaderError as exc:
        _reader_error(builder, text, exc)
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML has no other error kinds today
        builder.error((0, 0), builder.current_path(), f"YAML error: {exc}")
    if builder.errors:
        raise SpecErrors(errors=builder.errors)
    return builder.result()


def load_yaml_file(path: str | os.PathLike) -> Located:
    """Read a UTF-8 file and load it with :func:`load_yaml`; unreadable files raise SpecErrors (line 0)."""
    filename = os.fspath(path)
    try:
        with open(filename, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SpecErrors(errors=[SpecError(filename, 0, 0, (), f"cannot read file: {reason}")]) from None
    try:
        # utf-8-sig: a BOM written by some editors is not content.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"file is not valid UTF-8 (bad byte at offset {exc.start}); save it as UTF-8"
        raise SpecErrors(errors=[SpecError(filename, 0, 0, (), message)]) from None
    return load_yaml(text, filename)
