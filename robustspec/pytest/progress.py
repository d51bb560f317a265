"""Progress lines of long builds (:mod:`robustspec.progress`) on the terminal, from xdist workers too.

Without xdist the sink writes to the terminal, past output capture. Under xdist each worker appends to a
file in a scratch directory (never inside the store, which may be read-only) and the controller tails
those files; a directory a killed controller left there is deleted by the next one once it is an hour old
(:func:`sweep_stale_directories`). Lines are shown at the default verbosity and above, not with
``-q``/``-qq`` or ``--robustspec-quiet``; a line never splices into pytest's own line of dots
(:func:`write_progress_line`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .. import progress
from .state import verbosity

__all__ = ["write_progress_line", "ensure_sink", "sweep_stale_directories", "PREFIX"]

PREFIX = "[robustspec] "
_key = pytest.StashKey["_Progress"]()


def write_progress_line(tr: Any, message: str) -> None:
    """Write one progress line on a line of its own.

    ``ensure_newline`` ends a line pytest began with a file path; xdist's dots are written without one
    (pytest does not record that the line is open), so the terminal writer's column tells.
    """
    tr.ensure_newline()
    writer = getattr(tr, "_tw", None)
    if getattr(writer, "width_of_current_line", 0):
        tr.write("\n")
    tr.write_line(PREFIX + message)


def _shown(config: pytest.Config) -> bool:
    return not config.getoption("robustspec_quiet") and verbosity(config) >= 0


class _Progress:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.installed = False
        self.previous: Any = None
        self.directory: Path | None = None
        self.tail_stop = threading.Event()
        self.tail_thread: threading.Thread | None = None

    def write(self, message: str, capturing: bool = True) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            return
        with self.lock:
            capman = self.config.pluginmanager.get_plugin("capturemanager") if capturing else None
            if capman is not None:
                with capman.global_and_fixture_disabled():
                    write_progress_line(tr, message)
            else:
                write_progress_line(tr, message)

    def sink(self) -> Any:
        workerinput = getattr(self.config, "workerinput", None)
        if workerinput is not None:
            if not workerinput.get("robustspec_progress"):
                return None
            worker = workerinput.get("workerid", "gw")
            path = Path(workerinput["robustspec_progress"]) / f"{worker}.log"

            def to_file(message: str) -> None:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(f"[{worker}] {message}\n")

            return to_file
        return self.write if _shown(self.config) else None

    def install(self) -> None:
        if not self.installed:
            self.installed = True
            self.previous = progress.set_sink(self.sink())

    def start_tailing(self) -> None:
        sweep_stale_directories()
        self.directory = root = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-"))
        offsets: dict[Path, int] = {}

        def tail() -> None:
            while True:
                stopping = self.tail_stop.wait(1.0)
                for p in sorted(root.glob("*.log")):
                    try:
                        with open(p, encoding="utf-8") as f:
                            f.seek(offsets.get(p, 0))
                            chunk = f.read()
                    except OSError:
                        continue
                    # Only whole lines; a line being written is picked up next time.
                    cut = chunk.rfind("\n") + 1
                    offsets[p] = offsets.get(p, 0) + len(chunk[:cut].encode("utf-8"))
                    for line in chunk[:cut].splitlines():
                        self.write(line, capturing=False)  # the controller runs no tests: nothing to suspend
                if stopping:
                    return

        self.tail_thread = threading.Thread(target=tail, name="robustspec-progress", daemon=True)
        self.tail_thread.start()

    def stop(self) -> None:
        if self.tail_thread is not None:
            self.tail_stop.set()
            self.tail_thread.join(timeout=5)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        if self.installed:
            progress.set_sink(self.previous)
            self.installed = False


_DIR_PREFIX = "robustspec-progress-"
_DIR_RE = re.compile(re.escape(_DIR_PREFIX) + r"(\d+)-\w+")
#: A progress directory of a controller that is gone is deleted once it is this old.
STALE_SECONDS = 3600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another account's process (or a number no process has): leave it
    return True


def sweep_stale_directories(older_than: float = STALE_SECONDS) -> list[Path]:
    """Delete the progress directories that killed xdist controllers left in the temp directory: those
    named after a process that no longer runs, older than ``older_than`` seconds; return them."""
    cutoff = time.time() - older_than
    gone = []
    for path in Path(tempfile.gettempdir()).glob(_DIR_PREFIX + "*"):
        m = _DIR_RE.fullmatch(path.name)
        try:
            stale = m is not None and path.is_dir() and path.stat().st_mtime < cutoff and not _alive(int(m.group(1)))
        except OSError:
            continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
    return gone


def ensure_sink(config: pytest.Config) -> None:
    """Route progress to the terminal (or the worker's file) from now on; called when a check item runs."""
    state = config.stash.get(_key, None)
    if state is not None:
        state.install()


def _uses_xdist(config: pytest.Config) -> bool:
    try:
        return bool(config.getoption("numprocesses")) and config.getoption("dist", "no") != "no"
    except ValueError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    state = config.stash[_key] = _Progress(config)
    if getattr(config, "workerinput", None) is None and _uses_xdist(config) and _shown(config):
        state.start_tailing()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: tell each worker where to write its progress lines."""
    state = node.config.stash.get(_key, None)
    if state is not None and state.directory is not None:
        node.workerinput["robustspec_progress"] = str(state.directory)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_key, None)
    if state is not None:
        state.stop()
