"""Progress of long work (generation, training, evaluation), routed to whoever shows it to a person.

The library calls :func:`report`; the pytest plugin installs a sink (the terminal, or a file that the
xdist controller tails). Without a sink, messages go to the ``robustspec.progress`` logger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["report", "set_sink", "sink", "Timer"]

_log = logging.getLogger("robustspec.progress")
_sink: Callable[[str], None] | None = None


def set_sink(fn: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Install ``fn`` as the progress sink; returns the previous one."""
    global _sink
    old, _sink = _sink, fn
    return old


@contextmanager
def sink(fn: Callable[[str], None]) -> Iterator[None]:
    """Temporarily route progress to ``fn``."""
    old = set_sink(fn)
    try:
        yield
    finally:
        set_sink(old)


def report(message: str) -> None:
    """Show one line of progress."""
    _log.info(message)
    if _sink is not None:
        try:
            _sink(message)
        except Exception:  # a broken terminal must not fail a build
            _log.debug("progress sink failed", exc_info=True)


class Timer:
    """Seconds since creation, for progress lines."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
