"""A check item: judge one expectation on one model, variant and target, record its numbers, conclude.

The numbers become ``user_properties`` (JUnit XML, results file); :func:`robustspec.pytest.gate.conclude`
then compares with the baseline and applies the verdict (:mod:`robustspec.verdict`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ..errors import CheckFailed, RobustSpecError
from .executor import executor_for
from .gate import conclude
from .progress import ensure_sink
from .state import plugin_state


class CheckItem(pytest.Item):
    """One expectation on one model, variant and domain."""

    def __init__(self, *, check: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.check = check
        self.add_marker("robustspec")

    def runtest(self) -> None:
        from ..judging import judge

        ensure_sink(self.config)
        ws = plugin_state(self.config).get_workspace()
        # Another executor (ray) builds elsewhere: on return, what the check reads is stored.
        executor_for(self.config).prepare(ws, self.check, device=self.config.getoption("robustspec_device"))
        judged = judge(ws, self.check)
        # Appended directly (not record_property): reaches the JUnit XML under xdist without xunit2 warnings.
        self.user_properties.extend(judged.properties)
        conclude(self, judged.outcome)  # baseline comparison and verdict; raises CheckFailed (or a subclass) to fail

    def _where(self) -> str:
        """``suite.yaml:LINE`` of the expectation, relative to where pytest was started when inside it."""
        path = str(self.check.loaded.path)
        try:
            rel = os.path.relpath(self.check.loaded.path.resolve(), self.config.invocation_params.dir)
            path = path if rel.startswith("..") else rel
        except ValueError:  # another drive
            pass
        return f"{path}:{self.check.line}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CheckFailed):
            return f"{self._where()}: {excinfo.value}"
        if isinstance(excinfo.value, RobustSpecError):
            return f"{self._where()}: could not run {self.name}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        # Not the node id's tail: pytest turns every "." of a matching tail into "::" in -v lines, which
        # would show the variant fp-11.19m as "fp-11::19m".
        return self.path, self.check.line - 1, f"{self.check.model.name} {self.check.variant} {self.name}"
