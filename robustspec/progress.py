"""Progress of long work (generation, training, evaluation), routed to whoever shows it to a person.

The library calls :func:`report`; the pytest plugin installs a sink (the terminal, or a file that the
xdist controller tails). Without a sink, messages go to the ``robustspec.progress`` logger.

Loops that may run long (training batches, attack batches, corruption batches) report through a
:class:`Progress`: time-based, so a loop that finishes within ``every_s`` seconds says nothing, and a
long one says where it is at most once every ``every_s`` seconds, with its rate and an ETA.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["EVERY_S", "Progress", "Timer", "duration", "report", "set_sink", "sink"]

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


#: Seconds between two lines of one :class:`Progress` (unless it is given another ``every_s``).
EVERY_S = 10.0


def duration(seconds: float) -> str:
    """``7s``, ``3m05s``, ``1h02m``: a time for a progress line."""
    s = max(int(round(seconds)), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Progress of ``total`` units of work, reported at most once every ``every_s`` seconds.

    ::

        with Progress(len(rows), "attack pgd-linf on resnet18/int8", unit="images") as p:
            for batch in batches:
                ...
                p.update(len(batch), info=lambda: f"{fooled} fooled")

    A line reads ``label: 37/128 images, 12 fooled (3.1 images/s, 12s, ETA 29s)``. :meth:`update` counts
    work done, :meth:`tick` only reports if a line is due (a hook inside a unit of work: the ETA then comes
    from the units finished so far). ``info`` is a string or a function returning one, called only when
    a line is written, so a hot loop pays one clock read per call and nothing else.

    The last line (leaving the ``with`` block without an exception, or :meth:`close`) reads ``label:
    128/128 images in 41s (3.1 images/s)``. ``final``: ``"slow"`` (default) writes it only if the work
    took at least ``every_s`` seconds or an interim line was written, so a quick step stays quiet;
    ``"always"`` always writes it; ``"never"`` leaves the summary to the caller. :meth:`line` writes a
    line of the caller's (an epoch's summary) and restarts the rate limit, so the two do not crowd.
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        unit: str = "",
        every_s: float | None = None,
        final: str = "slow",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if final not in ("slow", "always", "never"):
            raise ValueError(f"final must be slow, always or never, got {final!r}")
        self.total = max(int(total), 0)
        self.label = label
        self.unit = unit
        self.every_s = EVERY_S if every_s is None else float(every_s)
        self.final = final
        self.clock = clock
        self.done = 0
        self.lines = 0
        self.start = clock()
        self._due = self.start + self.every_s
        self._closed = False

    # -- numbers ------------------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    def rate(self, elapsed: float | None = None) -> float | None:
        """Units per second so far (None before the first unit)."""
        elapsed = self.elapsed if elapsed is None else elapsed
        return self.done / elapsed if self.done and elapsed > 0 else None

    def eta(self, elapsed: float | None = None) -> float | None:
        """Seconds left at the rate so far (None before the first unit)."""
        elapsed = self.elapsed if elapsed is None else elapsed
        if not self.done:
            return None
        return elapsed / self.done * max(self.total - self.done, 0)

    def _rate_text(self, elapsed: float) -> str:
        rate = self.rate(elapsed)
        if rate is None:
            return ""
        unit = f" {self.unit}" if self.unit else ""
        return f"{rate:.3g}{unit}/s" if rate >= 0.1 else f"{rate * 60:.3g}{unit}/min"

    # -- reporting ----------------------------------------------------------------------------------

    def update(self, n: int = 1, info: str | Callable[[], str] | None = None) -> None:
        """``n`` more units done; a line if one is due."""
        self.done += n
        now = self.clock()
        if now >= self._due:
            self._interim(now, info)

    def tick(self, info: str | Callable[[], str] | None = None) -> None:
        """A line if one is due, counting nothing (called from inside a long unit)."""
        now = self.clock()
        if now >= self._due:
            self._interim(now, info)

    def _interim(self, now: float, info: str | Callable[[], str] | None) -> None:
        elapsed = now - self.start
        timing = [t for t in (self._rate_text(elapsed), duration(elapsed)) if t]
        eta = self.eta(elapsed)
        if eta is not None and self.done < self.total:
            timing.append(f"ETA {duration(eta)}")
        self._write(f"{self._count()}{_info(info)} ({', '.join(timing)})", now)

    def _count(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.label}: {self.done}/{self.total}{unit}"

    def _write(self, text: str, now: float) -> None:
        report(text)
        self.lines += 1
        self._due = now + self.every_s

    def line(self, text: str) -> None:
        """Write ``text`` now (the caller's own line) and restart the rate limit."""
        self._write(text, self.clock())

    def close(self, info: str | Callable[[], str] | None = None) -> None:
        """The last line (see ``final``); closing twice writes it once."""
        if self._closed:
            return
        self._closed = True
        now = self.clock()
        elapsed = now - self.start
        if self.final == "never" or (self.final == "slow" and not self.lines and elapsed < self.every_s):
            return
        rate = self._rate_text(elapsed)
        self._write(f"{self._count()}{_info(info)} in {duration(elapsed)}" + (f" ({rate})" if rate else ""), now)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True  # the error says what happened; no summary of work that did not finish


def _info(info: str | Callable[[], str] | None) -> str:
    if info is None:
        return ""
    text = info() if callable(info) else info
    return f", {text}" if text else ""
