"""``ray`` and ``ray://HOST:PORT``: builds run as Ray tasks on an existing cluster; judging stays here.

``ray`` connects to ``$RAY_ADDRESS``, else to the cluster running on this machine (``ray start --head``);
``ray://HOST:PORT`` is a Ray Client address (the head's port 10001 by default). Ray itself is imported
only when something must be built: a warm run, whose every artifact is stored, never connects.

For the checks about to run (:meth:`RayExecutor.start`), the judging process tries each against the
store without building (:attr:`~robustspec.workspace.Workspace.builds_here` False); those that miss an
artifact are grouped by model and variant, and each group becomes one task that rebuilds the workspace
on a worker (the same store, device and build threads, :class:`~robustspec.executors.base.BuildSpec`)
and judges the group's checks there, which stores every artifact they read. A model not yet trained is
trained by a task of its own that its variants' tasks wait for (Ray holds no worker for a task whose
argument is not ready), so no two tasks train it and the variants build in parallel once it is stored.
:meth:`RayExecutor.prepare` waits for a check's task; the check is then judged here from the store.

A task reserves the recipe's ``resources: {cpus, gpus}`` (default: the build's torch threads, no GPU).
An error of a build comes back as its message (a :class:`~robustspec.errors.RobustSpecError` text), and
a worker that runs another robustspec version, or computes other keys than the judging process (other
library versions), says so and builds nothing.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import signal
import socket
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from ..errors import NotStored, RemoteBuildError, RobustSpecError, UsageError
from ..progress import EVERY_S, Timer, duration, report, sink
from . import EXECUTORS
from .base import BuildSpec, Executor

__all__ = ["RayExecutor", "build_model", "build_subject", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'robustspec[ray]'"
#: HOST:PORT (a name, an IPv4 address or a bracketed IPv6 one).
_ADDRESS = re.compile(r"^(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$")


def ray_installed() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["ray"] is None
        return False


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UsageError(f"the ray executor needs Ray, which cannot be imported here ({exc}): {INSTALL_HINT}") from None
    return ray


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _error_text(exc: BaseException) -> str:
    """A build's error as the judging process shows it: a RobustSpecError's own text; anything else (a
    bug) with its type and where it was raised."""
    if isinstance(exc, RobustSpecError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _where() -> dict[str, Any]:
    return {"node": socket.gethostname(), "pid": os.getpid()}


# -- what runs on a worker ---------------------------------------------------------------------------


def _other_key(ws: Any, check: Any, key: str, expected: dict[str, Any], what: str) -> str | None:
    """None when this worker computes the judging process's key for ``what``; else what differs, before
    anything is built under a key nobody asked for."""
    from .. import __version__

    if expected.get("version") and expected["version"] != __version__:
        return f"this Ray worker runs robustspec {__version__}, the judging process {expected['version']}: install the same"
    if key == expected["key"]:
        return None
    mine, theirs = ws.model_recipe(check.loaded.suite, check.model), expected["recipe"]
    differ = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
    if "libraries" in differ and isinstance(mine.get("libraries"), dict) and isinstance(theirs.get("libraries"), dict):
        libs = mine["libraries"], theirs["libraries"]
        names = sorted(n for n in set(libs[0]) | set(libs[1]) if libs[0].get(n) != libs[1].get(n))
        differ[differ.index("libraries")] = (
            "libraries ("
            + ", ".join(f"{n} {libs[0].get(n) or 'missing'} here, {libs[1].get(n) or 'missing'} there" for n in names)
            + ")"
        )
    return (
        f"this Ray worker computes the key {key} for {what}, the judging process {expected['key']}: the model's "
        f"{', '.join(differ) if differ else 'data or compression steps'} differ (a key holds the versions of the "
        "libraries and of the code that build it): install the same on the cluster"
    )


def build_model(spec: BuildSpec, check: Any, expected: dict[str, Any]) -> dict[str, Any]:
    """Train (or find stored) the model of ``check`` into the store; a Ray task. ``expected``: the
    judging process's key for it, and its recipe."""
    ws = spec.workspace()
    lines: list[str] = []
    timer = Timer()
    what = f"model {check.model.name}"
    key = ws.model_key(check.loaded.suite, check.model)
    error = _other_key(ws, check, key, expected, what)
    if error is None:
        with sink(lines.append):
            try:
                ws.trained(check.loaded.suite, check.model)
            except Exception as exc:  # noqa: BLE001 - every failure goes back as text
                error = _error_text(exc)
    return {"key": key, "what": what, "error": error, "lines": lines, "seconds": timer.seconds, **_where()}


def build_subject(
    spec: BuildSpec, checks: Sequence[Any], trained: dict[str, Any] | None, expected: dict[str, Any]
) -> dict[str, Any]:
    """Judge ``checks`` (one model and variant) on a workspace like the judging process's, which stores
    every artifact they read; a Ray task. Each check's error is returned as text, by its index.
    ``trained``: what the task that trained the model returned (None: it was stored); ``expected``: the
    judging process's key for the variant, and the model's recipe."""
    from ..judging import judge

    ws = spec.workspace()
    lines: list[str] = []
    timer = Timer()
    c0 = checks[0]
    what = f"{c0.model.name}/{c0.variant}"
    key = ws.variant_key(c0.loaded, c0.model, c0.variant)
    error = trained["error"] if trained is not None else None  # not trained again by every variant
    error = error or _other_key(ws, c0, key, expected, what)
    errors: dict[int, str] = {i: error for i in range(len(checks))} if error else {}
    if not error:
        with sink(lines.append):
            for i, c in enumerate(checks):
                try:
                    judge(ws, c)
                except Exception as exc:  # noqa: BLE001 - every failure goes back as text
                    errors[i] = _error_text(exc)
    return {
        "key": key,
        "what": what,
        "checks": len(checks),
        "errors": errors,
        "lines": lines,
        "seconds": timer.seconds,
        "trained": trained,
        **_where(),
    }


# -- the judging process's side ----------------------------------------------------------------------


class _Task:
    """One submitted task, its result fetched once."""

    def __init__(self, ref: Any, what: str, key: str) -> None:
        self.ref, self.what, self.key = ref, what, key
        self.timer = Timer()
        self.result: dict[str, Any] | None = None
        self.failure: str | None = None


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Builds as Ray tasks on an existing cluster, into the store the cluster shares with this process."""

    name = "ray"
    builds_here = False
    takes_address = True

    def __init__(self, address: str | None = None) -> None:
        super().__init__(address)
        self._connected = False
        self._initialized_here = False
        self._connect_error: str | None = None
        self._remote: dict[Any, Any] = {}
        self._trains: dict[str, Any] = {}  # model key -> the ref of the task that trains it
        self._pending: dict[int, tuple[_Task, int]] = {}  # id(check) -> its task and index there
        self._checks: dict[int, Any] = {}  # keeps the checks alive, so their ids are not reused
        self._tasks: list[_Task] = []
        self._replayed: set[str] = set()

    @classmethod
    def from_address(cls, address: str | None) -> Executor:
        if address is not None and not _ADDRESS.match(address):
            raise UsageError(
                f"expected ray (the cluster of $RAY_ADDRESS, else of this machine) or ray://HOST:PORT "
                f"(a Ray Client address, port 10001 by default), got ray://{address}"
            )
        if not ray_installed():
            raise UsageError(f"the ray executor needs Ray, which is not installed: {INSTALL_HINT}")
        return cls(address)

    def where(self) -> str:
        if self.address is not None:
            return f"ray://{self.address}"
        return os.environ.get("RAY_ADDRESS") or "the Ray cluster of this machine"

    def connect(self) -> None:
        if self._connected:
            return
        if self._connect_error is not None:
            raise UsageError(self._connect_error)
        ray = _ray()
        if not ray.is_initialized():
            address = f"ray://{self.address}" if self.address is not None else (os.environ.get("RAY_ADDRESS") or "auto")
            try:
                _reachable(address)  # Ray waits for an address nothing listens on for minutes
                _init_keeping_sigterm(ray, address)
            except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, grpc errors ...
                self._connect_error = (
                    f"cannot reach {self.where()}: {_first_line(exc)} (start a cluster with `ray start --head`, "
                    "or name one: --robustspec-executor ray://HOST:PORT, or RAY_ADDRESS=HOST:PORT)"
                )
                raise UsageError(self._connect_error) from None
            self._initialized_here = True
        self._connected = True
        try:
            resources = ray.cluster_resources()
            size = f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs"
        except Exception:  # noqa: BLE001 - only a progress line depends on it
            size = "size unknown"
        report(f"ray: connected to {self.where()} ({size})")

    def _task(self, fn: Any) -> Any:
        if fn not in self._remote:
            self._remote[fn] = _ray().remote(fn)
        return self._remote[fn]

    def _submit(self, fn: Any, resources: dict[str, float], what: str, *args: Any) -> Any:
        return (
            self._task(fn)
            .options(name=f"robustspec {what}", max_retries=1, num_cpus=resources["cpus"], num_gpus=resources["gpus"])
            .remote(*args)
        )

    @staticmethod
    def _needs_build(ws: Any, check: Any) -> bool:
        """Whether judging ``check`` misses an artifact (tried here, nothing built)."""
        from ..judging import judge

        try:
            judge(ws, check)
        except NotStored:
            return True
        except Exception:  # noqa: BLE001 - judged again when the item runs, which reports it
            return False
        return False

    def start(self, ws: Any, checks: Sequence[Any], *, device: Any = None) -> None:
        ws.builds_here = False
        todo = [c for c in checks if id(c) not in self._pending and self._needs_build(ws, c)]
        if not todo:
            return  # everything is stored: no connection
        self.connect()
        spec = BuildSpec.of(ws, device)
        groups: dict[str, list[Any]] = {}
        for c in todo:
            groups.setdefault(ws.variant_key(c.loaded, c.model, c.variant), []).append(c)
        for key, group in groups.items():
            c0 = group[0]
            resources = _resources(c0, spec)
            model_key = ws.model_key(c0.loaded.suite, c0.model)
            recipe = ws.model_recipe(c0.loaded.suite, c0.model)
            trained = self._trains.get(model_key)
            if trained is None and not ws.store.has(model_key):
                expected = {"key": model_key, "recipe": recipe, "version": spec.version}
                trained = self._trains[model_key] = self._submit(
                    build_model, resources, f"model {c0.model.name}", spec, c0, expected
                )
            what = f"{c0.model.name}/{c0.variant}"
            args = (spec, list(group), trained, {"key": key, "recipe": recipe, "version": spec.version})
            task = _Task(self._submit(build_subject, resources, what, *args), what, key)
            self._tasks.append(task)
            for i, c in enumerate(group):
                self._pending[id(c)] = (task, i)
                self._checks[id(c)] = c
        names = ", ".join(t.what for t in self._tasks[-len(groups) :])
        report(f"ray: building {len(groups)} model/variant{'s' if len(groups) != 1 else ''} on the cluster: {names}")

    def prepare(self, ws: Any, check: Any, *, device: Any = None) -> None:
        ws.builds_here = False
        if id(check) not in self._pending:
            self.start(ws, [check], device=device)
        entry = self._pending.get(id(check))
        if entry is None:
            return  # stored already
        task, index = entry
        result = self._wait(task)
        error = result["errors"].get(index)
        if error is not None:
            raise RemoteBuildError(f"{error} (on Ray node {result['node']}, pid {result['pid']})")

    def _wait(self, task: _Task) -> dict[str, Any]:
        if task.result is None and task.failure is None:
            ray = _ray()
            while not ray.wait([task.ref], timeout=EVERY_S)[0]:
                report(f"ray: {task.what} building on the cluster ({duration(task.timer.seconds)}){self._others(task)}")
            try:
                task.result = ray.get(task.ref)
            except Exception as exc:  # noqa: BLE001 - a worker that died, a task that could not start ...
                cause = getattr(exc, "cause", None)
                task.failure = (
                    f"the Ray task building {task.what} failed: {_first_line(cause if cause is not None else exc)}"
                )
            else:
                self._replay(task.result)
        if task.failure is not None:
            raise RemoteBuildError(task.failure)
        assert task.result is not None
        return task.result

    def _others(self, task: _Task) -> str:
        """``; 3 more running or queued: a/b, c/d, e/f``: the other tasks not finished yet."""
        others = [t for t in self._tasks if t is not task and t.result is None and t.failure is None]
        if not others:
            return ""
        done, _ = _ray().wait([t.ref for t in others], num_returns=len(others), timeout=0)
        finished = set(done)  # object refs hash by their id
        left = [t.what for t in others if t.ref not in finished]
        if not left:
            return ""
        return f"; {len(left)} more running or queued: {', '.join(left[:4])}{', ...' if len(left) > 4 else ''}"

    def _replay(self, result: dict[str, Any]) -> None:
        """The worker's progress lines, then where it ran."""
        trained = result.get("trained")
        if trained is not None and trained["key"] not in self._replayed:
            self._replayed.add(trained["key"])
            self._replay_one(trained)
        self._replay_one(result)

    @staticmethod
    def _replay_one(result: dict[str, Any]) -> None:
        who = f"ray {result['node']} pid {result['pid']}"
        for line in result["lines"]:
            report(f"{who}: {line}")
        if "errors" in result:  # a model/variant: some of its checks may have failed
            failed, n = len(result["errors"]), result["checks"]
            done, note = (
                ("failed", "") if failed == n else ("built", f" ({failed} of {n} checks failed)" if failed else "")
            )
        else:  # a trained model
            done, note = ("failed" if result["error"] else "built"), ""
        report(f"{who}: {done} {result['what']} in {duration(result['seconds'])}{note}")

    def close(self) -> None:
        if not self._connected:
            return
        ray = _ray()
        unfinished = [t.ref for t in self._tasks if t.result is None and t.failure is None]
        for ref in [*unfinished, *self._trains.values()]:  # an interrupted session leaves the cluster idle
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - finished meanwhile, or the cluster is gone
                pass
        if self._initialized_here:
            ray.shutdown()
        self._connected = False


def _init_keeping_sigterm(ray: Any, address: str) -> None:
    """``ray.init``, leaving the process's SIGTERM handling as it was: Ray's own turns a SIGTERM into
    SystemExit, which pytest reports as an internal error instead of ending."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    finally:
        if main and before is not None:
            signal.signal(signal.SIGTERM, before)


#: Seconds to wait for a cluster's address to take a connection.
CONNECT_TIMEOUT_S = 10.0


def _reachable(address: str) -> None:
    """Raise ConnectionError unless ``HOST:PORT`` (or ``ray://HOST:PORT``) takes a TCP connection; ``auto``
    and other forms are left to Ray."""
    hostport = address.removeprefix("ray://")
    if not _ADDRESS.match(hostport):
        return
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConnectionError(f"nothing takes connections at {hostport} ({exc.strerror or exc})") from None


def _resources(check: Any, spec: BuildSpec) -> dict[str, float]:
    """What a build of ``check``'s model reserves: the recipe's ``resources``, else the build's threads."""
    recipe = check.model.train or check.loaded.suite.train
    asked = getattr(recipe, "resources", None)
    cpus = asked.cpus if asked is not None and asked.cpus is not None else spec.build_threads
    gpus = asked.gpus if asked is not None and asked.gpus is not None else 0
    return {"cpus": float(cpus), "gpus": float(gpus)}
