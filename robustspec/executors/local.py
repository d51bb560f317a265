"""``local``: every build runs in the process that judges, as it always has (the default)."""

from __future__ import annotations

from . import EXECUTORS
from .base import Executor


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """Builds in the judging process: nothing to start, prepare or close."""

    name = "local"
