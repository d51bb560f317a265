"""The executor interface, and what a build process needs to make the judging process's workspace."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import UsageError

__all__ = ["BuildSpec", "Executor"]


@dataclass(frozen=True)
class BuildSpec:
    """What a build process elsewhere needs to make the judging process's workspace (it is pickled).

    ``device`` is the device as asked for (``auto`` is resolved where the build runs); ``build_threads`` the
    judging process's resolved count, so a worker computes the same keys and the same numbers. ``paths``:
    the judging process's ``sys.path``; a worker appends those of them it has (a shared filesystem), after
    its own, so a model factory in the project (``models/net.py:build``, found there through the rootdir's
    conftest) imports on the worker too, and is fingerprinted alike.
    """

    store: Any
    device: Any
    build_threads: int
    paths: tuple[str, ...] = ()
    #: The judging process's robustspec version: a worker of another refuses to build.
    version: str = ""

    @classmethod
    def of(cls, ws: Any, device: Any = None) -> BuildSpec:
        from .. import __version__

        paths = tuple(os.path.abspath(p or os.curdir) for p in sys.path)
        return cls(ws.store, ws.device if device is None else device, ws.build_thread_count(), paths, __version__)

    def workspace(self) -> Any:
        from ..workspace import Workspace

        for path in self.paths:
            if path not in sys.path and os.path.isdir(path):
                sys.path.append(path)
        return Workspace(self.store, self.device, build_threads=self.build_threads, torch_threads=self.build_threads)


class Executor:
    """Where builds run; the judging process calls, in order:

    - :meth:`start` once with the checks it is about to judge (a cluster can build them in parallel);
    - :meth:`prepare` before judging each check: on return, every artifact the check reads is stored
      (or the build's error is raised, a :class:`~robustspec.errors.RobustSpecError`);
    - :meth:`close` at the end.

    ``local`` builds in the judging process, so all three do nothing. An executor that builds elsewhere
    sets ``builds_here`` False: the judging workspace then never builds (a missing artifact is
    :class:`~robustspec.errors.NotStored`).
    """

    name: ClassVar[str] = "local"
    builds_here: ClassVar[bool] = True
    #: Whether the executor takes ``NAME://ADDRESS``.
    takes_address: ClassVar[bool] = False

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    @classmethod
    def from_address(cls, address: str | None) -> Executor:
        """The executor for ``NAME`` (``address`` None) or ``NAME://ADDRESS``; a bad address, or a missing
        library, is a :class:`~robustspec.errors.UsageError`."""
        if address is not None and not cls.takes_address:
            raise UsageError(f"executor {cls.name!r} takes no address, got {cls.name}://{address}")
        return cls(address)

    def describe(self) -> str:
        return self.name if self.address is None else f"{self.name}://{self.address}"

    def connect(self) -> None:
        """Reach whatever runs the builds; a :class:`~robustspec.errors.UsageError` when it cannot."""

    def start(self, ws: Any, checks: Sequence[Any], *, device: Any = None) -> None:
        """Begin building what ``checks`` need (``device``: the device as asked for, before ``auto`` is resolved)."""

    def prepare(self, ws: Any, check: Any, *, device: Any = None) -> None:
        """Return once every artifact ``check`` reads is in ``ws``'s store."""

    def close(self) -> None:
        """Release what :meth:`connect` took."""
