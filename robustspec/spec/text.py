"""Bounded echoes of user input in error messages.

A suite file may hold a value of thousands of characters (up to the YAML loader's scalar cap); an error
message that repeats it in full buries the message. Every message that shows what the user wrote goes
through :func:`shorten` (a ``repr``) or :func:`clip` (text already meant for display).
"""

from __future__ import annotations

from typing import Any

__all__ = ["shorten", "clip"]

_ELLIPSIS = "..."  # ASCII: messages are printed to any terminal


def shorten(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to about ``limit`` characters with an ellipsis and the full length when longer.

    ``shorten("abc")`` is ``"'abc'"``; a 5000-character string gives ``'xxx...' (5000 characters)``: the
    quotes stay, the count is the string's own length. Other values are cut in their ``repr`` and the count
    is the length of that ``repr``. Only a prefix of a long string is ever turned into a ``repr``.
    """
    limit = max(limit, 8)
    if isinstance(value, str):
        if len(value) + 2 <= limit:
            text = repr(value)
            if len(text) <= limit:
                return text
        # repr of a prefix: the escapes of a long tail are never built.
        head = repr(value[:limit])
        quote = head[-1]
        body = head[:-1][:limit]
        return f"{body}{_ELLIPSIS}{quote} ({len(value)} characters)"
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}{_ELLIPSIS} ({len(text)} characters)"


def clip(text: str, limit: int = 200) -> str:
    """``text`` itself (no quotes), cut to ``limit`` characters with an ellipsis and its length when longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}{_ELLIPSIS} ({len(text)} characters)"
