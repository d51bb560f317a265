"""A small, safe, position-tracking YAML loader for suite and spec files.

PyYAML's own loaders are unsuitable here: they resolve scalars with YAML 1.1 rules
(``no`` -> False, ``1e-3`` -> str), silently accept duplicate keys, construct tagged
objects, compose recursively (deep nesting -> ``RecursionError``) and expand aliases
without bound (billion laughs). This module only uses PyYAML's *event stream*
(``yaml.parse``) and builds plain Python data from it iteratively, so that

* nothing but dict / list / str / int / float / bool / None is ever constructed;
* every problem becomes a :class:`~robustspec.errors.SpecError` with file, line,
  column and field path, and all problems of a file are reported together;
* the file's size is checked before it is read, and depth, alias uses, the expanded size
  of the document, the length of each value and key and the number of problems reported
  are bounded before any work proportional to them is done (see the ``MAX_*`` caps);
* encoding problems (bytes that are not UTF-8, a UTF-16 file, NUL and other characters
  YAML forbids, a byte order mark inside the file) are reported at their line:col, all
  of them, and the rest of the file is still checked.

Mapping keys are always ``str``: the original text of the key scalar (``1: x`` gives
the key ``'1'``, ``null: x`` gives ``'null'``). Callers validate keys as names.
"""

from __future__ import annotations

import codecs
import math
import os
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import yaml

from robustspec.errors import SpecError, SpecErrors
from robustspec.spec.text import clip, shorten

__all__ = [
    "Located",
    "load_yaml",
    "load_yaml_file",
    "MAX_FILE_BYTES",
    "MAX_SCALAR_CHARS",
    "MAX_KEY_CHARS",
    "MAX_NODES",
    "MAX_ERRORS",
]

#: The event parser: libyaml's (C) when PyYAML was built with it, else PyYAML's own; same events and marks.
_EVENT_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Largest suite or spec file read, in bytes (checked with ``fstat`` before reading). The repository's
#: largest suite is under 10 KB; PyYAML's pure-Python scanner reads about 1 MB per second, so a rejected
#: file never costs more than about a second.
MAX_FILE_BYTES = 1 << 20
#: Longest scalar (value) in characters. Names, paths and numbers are far shorter; a longer value is a
#: pasted blob, and is never echoed back in full.
MAX_SCALAR_CHARS = 1 << 16
#: Longest mapping key in characters: keys end up in every error's field path.
MAX_KEY_CHARS = 256
#: Most nodes (scalars, lists, mappings) of one document, alias expansions included. The repository's
#: largest suite has about 1,000.
MAX_NODES = 20_000
#: Most problems reported for one file; the rest are left for the next run.
MAX_ERRORS = 100


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
        return None, f"integer of {len(text)} digits is too long ({clip(text, 20)})"
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
    anchor_pos: tuple[int, int]
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

    def __init__(
        self,
        filename: str,
        max_depth: int,
        max_nodes: int,
        max_aliases: int,
        max_scalar: int = MAX_SCALAR_CHARS,
        max_key: int = MAX_KEY_CHARS,
        max_errors: int = MAX_ERRORS,
    ) -> None:
        self.filename = filename
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.max_aliases = max_aliases
        self.max_scalar = max_scalar
        self.max_key = max_key
        self.max_errors = max_errors
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
            if self.aliases:
                message = (
                    f"document too large (alias expansion): more than {self.max_nodes} nodes once its aliases "
                    "are expanded (each *alias is a copy of its anchor)"
                )
            else:
                message = f"document too large: more than {self.max_nodes} nodes (values, lists and mappings)"
            raise self.fatal(pos, path, message)

    def check_tag(self, event: Any, path: tuple) -> None:
        if event.tag is not None:
            self.error(
                _mark(event.start_mark),
                path,
                f"tags are not allowed (found {clip(_show_tag(event.tag), 80)}); write a plain value instead",
            )

    def set_key(self, top: _Frame, text: str, pos: tuple[int, int], plain: bool) -> None:
        if len(text) > self.max_key:
            # The key would be part of the path of every error under it: report it once, drop its value.
            self.error(
                pos,
                top.path,
                f"a mapping key of {len(text)} characters is longer than the {self.max_key} allowed: "
                f"{shorten(text, 40)}",
            )
            top.key = _COMPLEX
            return
        path = top.path + (text,)
        if plain and text == "<<":
            self.error(pos, path, "merge keys are not supported ('<<'); write the fields out")
        elif text in top.seen:
            self.error(pos, path, f"duplicate key {shorten(text)} (first defined at line {top.seen[text]})")
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
        if len(self.errors) >= self.max_errors:
            raise self.fatal(
                _mark(event.start_mark),
                self.current_path(),
                f"more than {self.max_errors} problems: the rest of the file is not checked; fix these first",
            )
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
        text: str | None = event.value
        if len(event.value) > self.max_scalar:
            # Reported before anything else looks at it; the value is dropped, never echoed in full.
            what = "mapping key" if is_key else "value"
            self.error(
                pos,
                path,
                f"a {what} of {len(event.value)} characters is longer than the {self.max_scalar} allowed: "
                f"{shorten(event.value, 40)}",
            )
            text = None
        elif is_key:
            path = self.stack[-1].path + (event.value,)
        self.check_tag(event, path)
        value: Any = text
        if text is not None and plain and event.tag is None:
            # Resolved even for keys: an anchored key may be reused as a value through an alias.
            value, problem = _resolve_plain(text)
            if problem:
                self.error(pos, path, problem)
        if is_key:
            if text is None:
                self.stack[-1].key = _COMPLEX
            else:
                self.set_key(self.stack[-1], text, pos, plain)
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
                key_text=text,
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
            anchor_pos=pos,
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
        name = clip(event.anchor, 80)
        # The innermost node being built under this anchor name: an alias inside it is the node itself.
        own = next((f for f in reversed(self.stack) if f.anchor == event.anchor), None)
        anchor = None if own is not None else self.anchors.get(event.anchor)
        if anchor is None:
            if own is not None:
                line, col = own.anchor_pos
                message = (
                    f"alias *{name} refers to itself: it is inside the node anchored &{name} "
                    f"(line {line}, column {col}), and an anchor cannot be used inside its own node"
                )
            else:
                message = f"alias *{name} refers to an anchor that is not defined before it"
            self.error(pos, path, message)
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
                if isinstance(anchor.value, (dict, list)):
                    self.error(pos, path, f"a mapping key must be a plain value, but *{name} is a collection")
                top.key = _COMPLEX  # else: a value too long, already reported where it is written
            else:
                self.set_key(top, anchor.key_text, pos, plain=False)
            return
        if len(self.stack) + anchor.height > self.max_depth:
            raise self.fatal(pos, path, f"nesting is deeper than {self.max_depth} levels (through *{name})")
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


# --------------------------------------------------------------------------- characters and encoding

#: YAML line breaks, as PyYAML's reader counts them (so that our positions agree with its marks).
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
#: Characters PyYAML's reader refuses (its NON_PRINTABLE class), and U+FEFF: a byte order mark is
#: allowed only at the very start (PyYAML would otherwise keep it, invisibly, inside a key or value).
_BAD_CHAR = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_REPLACEMENT = "\ufffd"


class _Lines:
    """(line, col) of a character offset, 1-based, counting line breaks the way PyYAML does."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in _BREAK.finditer(text)]

    def at(self, offset: int) -> tuple[int, int]:
        i = bisect_right(self.starts, offset) - 1
        return (i + 1, offset - self.starts[i] + 1)


def _char_problem(char: str) -> str:
    code = ord(char)
    if code == 0:
        return "a NUL character (U+0000) cannot appear in YAML; is this a binary file, or UTF-16? Save it as UTF-8 text"
    if code == 0xFEFF:
        return (
            "a byte order mark (U+FEFF, invisible) can only be the first character of a file; delete it "
            "(was another file pasted in here?)"
        )
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate (U+{code:04X}) is not a character; the text was decoded wrongly"
    if code in (0xFFFE, 0xFFFF):
        return f"U+{code:04X} is not a character and cannot appear in YAML"
    return f"the control character {char!r} (U+{code:04X}) cannot appear in YAML; delete it"


def _scan_characters(text: str, filename: str, lines: _Lines, limit: int) -> tuple[str, list[SpecError]]:
    """Report every character YAML forbids at its line:col; return the text with each replaced by U+FFFD.

    The replacement keeps every other position where it was, so the rest of the file is still checked.
    """
    errors: list[SpecError] = []
    bad: list[int] = []
    for m in _BAD_CHAR.finditer(text):
        offset = m.start()
        if offset == 0 and text[0] == "\ufeff":
            continue  # a BOM at the start is not content (PyYAML skips it too)
        bad.append(offset)
        if len(errors) < limit:
            line, col = lines.at(offset)
            errors.append(SpecError(filename, line, col, (), _char_problem(m.group())))
    if not bad:
        return text, errors
    chars = list(text) if len(bad) > 64 else None
    if chars is not None:
        for offset in bad:
            chars[offset] = _REPLACEMENT
        return "".join(chars), errors
    out = text
    for offset in bad:
        out = out[:offset] + _REPLACEMENT + out[offset + 1 :]
    return out, errors


_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian)"),
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian)"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian)"),
)


def _decode(raw: bytes, filename: str, limit: int) -> tuple[str | None, list[SpecError]]:
    """Decode UTF-8 (one leading BOM dropped), reporting each bad byte sequence at its line:col.

    Returns (text, errors); text is None when the file is not UTF-8 text at all (UTF-16, UTF-32), in which
    case the one error says so and nothing else is checked. Bad sequences become U+FFFD in the text.
    """
    for bom, name in _BOMS:
        if raw.startswith(bom):
            shown = " ".join(f"{b:02X}" for b in bom)
            message = f"file is {name} text (it starts with the byte order mark {shown}); save it as UTF-8"
            return None, [SpecError(filename, 1, 1, (), message)]
    if b"\x00" in raw[:4] and raw[:4].strip(b"\x00"):
        message = (
            "file looks like UTF-16 or UTF-32 text, or a binary file (NUL bytes between its first characters); "
            "a suite or spec file is UTF-8 text"
        )
        return None, [SpecError(filename, 1, 1, (), message)]
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]  # a BOM written by some editors is not content
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    view = memoryview(raw)
    pieces: list[str] = []
    found: list[tuple[int, bytes, str]] = []  # (character offset in the text, bytes, reason)
    offset = 0  # characters decoded so far
    pos = 0  # bytes consumed so far
    while pos < len(raw):
        try:
            pieces.append(str(view[pos:], "utf-8"))
            break
        except UnicodeDecodeError as exc:
            good = str(view[pos : pos + exc.start], "utf-8")
            pieces += [good, _REPLACEMENT]
            offset += len(good)
            found.append((offset, raw[pos + exc.start : pos + exc.end], exc.reason))
            offset += 1
            pos += exc.end
            if len(found) >= limit:
                pieces.append(str(view[pos:], "utf-8", "replace"))
                break
    text = "".join(pieces)
    lines = _Lines(text)
    errors = []
    for at, bad, reason in found:
        line, col = lines.at(at)
        shown = " ".join(f"0x{b:02X}" for b in bad)
        message = (
            f"file is not valid UTF-8: byte {shown} ({reason}); save the file as UTF-8 "
            "(it may have been written as Latin-1 or Windows-1252)"
        )
        errors.append(SpecError(filename, line, col, (), message))
    return text, errors


# --------------------------------------------------------------------------- public API


def _syntax_error(builder: _Builder, exc: yaml.MarkedYAMLError) -> None:
    """Turn a PyYAML scanner/parser error into a SpecError without traceback noise."""
    mark = exc.problem_mark or exc.context_mark
    problem = clip(exc.problem, 200) if exc.problem else None
    context = clip(exc.context, 200) if exc.context else None
    message = problem or context or "invalid YAML"
    if problem and context:
        where = ""
        if exc.context_mark is not None:
            line, col = _mark(exc.context_mark)
            where = f" at line {line}, column {col}"
        message = f"{problem} ({context}{where})"
    builder.error(_mark(mark), builder.current_path(), f"YAML syntax error: {message}")


def _reader_error(builder: _Builder, lines: _Lines, exc: yaml.reader.ReaderError) -> None:
    """Report a character PyYAML refuses to read (the character scan normally finds these first)."""
    char = exc.character if isinstance(exc.character, str) else chr(exc.character)
    builder.error(lines.at(max(0, exc.position)), (), _char_problem(char))


def _too_large(filename: str, size: int, limit: int, unit: str) -> SpecErrors:
    message = (
        f"file too large: {size} {unit}, more than the {limit} ({limit / 1024:g} KiB) a suite or spec file "
        "may have; is this the right file?"
    )
    return SpecErrors(errors=[SpecError(filename, 1, 1, (), message)])


def load_yaml(
    text: str,
    filename: str,
    *,
    max_depth: int = 50,
    max_nodes: int = MAX_NODES,
    max_aliases: int = 100,
    max_chars: int = MAX_FILE_BYTES,
    max_scalar: int = MAX_SCALAR_CHARS,
    max_key: int = MAX_KEY_CHARS,
    max_errors: int = MAX_ERRORS,
) -> Located:
    """Parse one YAML document safely into plain data with positions; raise SpecErrors on any problem."""
    return _load(text, filename, [], max_depth, max_nodes, max_aliases, max_chars, max_scalar, max_key, max_errors)


def _load(
    text: str,
    filename: str,
    early: list[SpecError],
    max_depth: int,
    max_nodes: int,
    max_aliases: int,
    max_chars: int,
    max_scalar: int,
    max_key: int,
    max_errors: int,
) -> Located:
    if len(text) > max_chars:
        raise _too_large(filename, len(text), max_chars, "characters")
    lines = _Lines(text)
    text, bad_chars = _scan_characters(text, filename, lines, max_errors)
    early = (early + bad_chars)[:max_errors]

    def parse(loader: Any) -> tuple[_Builder, bool]:
        """Feed the events of ``loader``'s parser to a new builder: (builder, the parser raised)."""
        builder = _Builder(filename, max_depth, max_nodes, max_aliases, max_scalar, max_key, max_errors)
        builder.errors.extend(early)
        try:
            # Only the loader's reader/scanner/parser run; its composer and constructor (recursive,
            # YAML 1.1, unbounded aliases) are never called.
            for event in yaml.parse(text, Loader=loader):
                builder.feed(event)
        except _Fatal:
            pass
        except yaml.MarkedYAMLError as exc:
            _syntax_error(builder, exc)
            return builder, True
        except yaml.reader.ReaderError as exc:
            _reader_error(builder, lines, exc)
            return builder, True
        except yaml.YAMLError as exc:  # pragma: no cover - PyYAML has no other error kinds today
            builder.error((0, 0), builder.current_path(), f"YAML error: {clip(str(exc), 200)}")
            return builder, True
        return builder, False

    # libyaml's parser (when PyYAML has it) is about 10x faster; a file it rejects is parsed again by
    # PyYAML's own, whose messages show the offending character and whose depth limit is ours.
    builder, raised = parse(_EVENT_LOADER)
    if raised and _EVENT_LOADER is not yaml.SafeLoader:
        builder, _ = parse(yaml.SafeLoader)
    if builder.errors:
        raise SpecErrors(errors=builder.errors)
    return builder.result()


def load_yaml_file(
    path: str | os.PathLike,
    *,
    max_bytes: int = MAX_FILE_BYTES,
    max_depth: int = 50,
    max_nodes: int = MAX_NODES,
    max_aliases: int = 100,
    max_scalar: int = MAX_SCALAR_CHARS,
    max_key: int = MAX_KEY_CHARS,
    max_errors: int = MAX_ERRORS,
) -> Located:
    """Read a UTF-8 file and load it like :func:`load_yaml`.

    The size is checked (``fstat``) before anything is read, and at most ``max_bytes + 1`` bytes are ever
    read (a pipe or a growing file reports no size). An unreadable file is a SpecError at line 0; a file too
    large or not UTF-8 text is one at 1:1; each byte sequence that is not UTF-8 is one at its line:col.
    """
    filename = os.fspath(path)
    try:
        with open(filename, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise _too_large(filename, size, max_bytes, "bytes")
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SpecErrors(errors=[SpecError(filename, 0, 0, (), f"cannot read file: {reason}")]) from None
    if len(raw) > max_bytes:
        raise _too_large(filename, len(raw), max_bytes, "bytes or more")
    text, early = _decode(raw, filename, max_errors)
    if text is None:
        raise SpecErrors(errors=early)
    return _load(text, filename, early, max_depth, max_nodes, max_aliases, max_bytes, max_scalar, max_key, max_errors)
