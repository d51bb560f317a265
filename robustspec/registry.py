"""One generic registry, used once per kind of component (datasets, models, expectations, ...)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to components of one kind; unknown names fail with close-match suggestions."""

    def __init__(self, kind: str, not_provided: dict[str, str] | None = None) -> None:
        """``not_provided``: names users will try that are deliberately missing, with the reason."""
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._not_provided = dict(not_provided or {})

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@DATASETS.register("office-synth")``. Registering a name twice is an error."""

        def decorate(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise RegistryError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        shown = repr(name) if len(name) <= 80 else f"{name[:60]!r}... ({len(name)} characters)"
        if name in self._not_provided:
            return f"{self.kind} {shown} is not provided: {self._not_provided[name]}"
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.6) if len(name) <= 100 else []
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {shown}{hint} (known: {', '.join(sorted(self._entries))})"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)
