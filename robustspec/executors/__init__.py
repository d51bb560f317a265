"""Executors: where builds run. ``local`` (the default) builds in the process that judges; ``ray`` sends
builds to a Ray cluster, whose workers write every artifact into the shared store, and the process that
judges (a pytest item on the CI host, :func:`robustspec.run`) reads them from there.

One registry, as for every kind of component (:mod:`robustspec.registry`): a new executor is one module
here (or a plugin's, entry-point group ``robustspec.executors``) that registers a subclass of
:class:`~robustspec.executors.base.Executor` under its name. A value is ``NAME`` or ``NAME://ADDRESS``
(:func:`parse_executor`).
"""

from __future__ import annotations

from ..errors import UsageError
from ..registry import Registry, import_modules
from .base import BuildSpec, Executor

__all__ = ["EXECUTORS", "EXECUTOR_ENV", "BuildSpec", "Executor", "parse_executor"]

#: The environment variable that names the executor (``ray``, ``ray://head:10001``), below the option.
EXECUTOR_ENV = "ROBUSTSPEC_EXECUTOR"

EXECUTORS: Registry[type[Executor]] = Registry("executor")


def parse_executor(value: str) -> Executor:
    """The executor ``value`` names: ``local``, ``ray``, ``ray://HOST:PORT``. A value no executor takes is a
    :class:`~robustspec.errors.UsageError` that says what is expected."""
    text = str(value).strip()
    name, sep, address = text.partition("://")
    if not name:
        raise UsageError(f"expected an executor name like local or ray, got {text!r}")
    if name not in EXECUTORS:
        raise UsageError(EXECUTORS.unknown_message(name))
    return EXECUTORS.get(name).from_address(address if sep else None)


import_modules(__name__)
