"""The one exception tree of robustspec.

::

    RobustSpecError                 base of everything robustspec raises on purpose
    ├── SpecError                   one problem in a suite or spec file, with file:line:col and field path
    ├── SpecErrors                  several SpecError from one file, reported together
    ├── RegistryError               unknown or duplicate component name
    ├── DataError                   a dataset cannot be read (missing path, mismatched classes, ...)
    ├── ModelError                  a model cannot be built or its weights do not fit
    ├── ArtifactError               the artifact store cannot build or read an artifact
    │   ├── StructuralError         (also a ModelError) a build its key decides fails: stored, not retried
    │   └── NotStored               a process that builds nothing (another executor builds) misses an artifact
    ├── RemoteBuildError            a build sent to another machine (the ray executor's) failed there
    ├── AttackCheckError            an attack broke its contract (eps-ball, [0, 1], NaN) or cannot run
    ├── ResultsError                a results or baseline file cannot be read
    ├── SuiteError                  a suite file cannot be collected for a reason that is not a SpecError
    ├── UsageError                  a command line (``robustspec ...``) that cannot be carried out: exit 2
    └── CheckFailed                 a check item's verdict fails it (one line with the numbers, no traceback)
        ├── BaselineRegression      the measured value regressed against the baseline beyond the tolerance
        └── CheckFlagged            the attack looks gradient-masked (``on-masking: fail``)

    RobustSpecWarning (UserWarning) an expectation with ``severity: warn`` failed, or a baseline is stale
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "RobustSpecError",
    "SpecError",
    "SpecErrors",
    "RegistryError",
    "DataError",
    "ModelError",
    "ArtifactError",
    "StructuralError",
    "NotStored",
    "RemoteBuildError",
    "AttackCheckError",
    "ResultsError",
    "SuiteError",
    "UsageError",
    "CheckFailed",
    "BaselineRegression",
    "CheckFlagged",
    "RobustSpecWarning",
    "format_path",
]


class RobustSpecError(Exception):
    """Base class of every error robustspec raises on purpose."""


def format_path(path: tuple[str | int, ...]) -> str:
    """Render a field path like ``models[1].train.epochs``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<document>"


@dataclass
class SpecError(RobustSpecError):
    """One problem in a suite or spec file.

    Rendered as ``file:line:col: field.path: message``. ``line`` and ``col`` are 1-based; 0 means unknown.
    """

    file: str
    line: int
    col: int
    path: tuple[str | int, ...]
    message: str

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else f"{self.file}"
        return f"{where}: {format_path(self.path)}: {self.message}"

    def __hash__(self) -> int:
        return hash((self.file, self.line, self.col, self.path, self.message))


@dataclass
class SpecErrors(RobustSpecError):
    """All the problems found in one file, reported at once, sorted by position."""

    errors: list[SpecError] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.errors = sorted(set(self.errors), key=lambda e: (e.file, e.line, e.col, format_path(e.path), e.message))
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class RegistryError(RobustSpecError, LookupError):
    """An unknown component name (with close-match suggestions) or a name registered twice."""


class DataError(RobustSpecError):
    """A dataset cannot be read: a missing path or domain, class lists that differ, no images.

    ``field``: where under ``data:`` the cause is written (``("splits", "webcam", "test")``), so the
    suite loader reports the error at that line and column; empty for the whole ``data:`` mapping.
    ``messages``: the problems one by one, when the error lists many (every bad file of an image tree);
    the loader reports each on its own, so none is cut by the length limit of one message.
    """

    def __init__(self, message: str, *, field: tuple[str | int, ...] = (), messages: list[str] | None = None) -> None:
        super().__init__(message)
        self.field = tuple(field)
        self.messages = list(messages) if messages else [message]


class ModelError(RobustSpecError):
    """A model cannot be built, or a weights file does not fit its architecture."""


class ArtifactError(RobustSpecError):
    """The artifact store cannot build or read an artifact."""


class StructuralError(ModelError, ArtifactError):
    """A build that fails for reasons its key decides (the network's structure, the step's parameters, the
    libraries' versions): Torch-Pruning cannot follow a layer, torch.export cannot trace a network. The
    failure is stored under the artifact's key, so it is reported again without being retried."""


class NotStored(ArtifactError):
    """An artifact that a workspace which builds nothing (its executor builds elsewhere: ``ray``) needs and
    the store does not hold: the executor's workers did not write it into a store this process reads."""

    def __init__(self, key: str, describe: str, store: object) -> None:
        self.key, self.describe = key, describe
        super().__init__(
            f"{describe or 'artifact'} ({key}) is not in the store {getattr(store, 'root', store)}, and this "
            "process builds nothing: its executor's workers build it into the store, which must be one they share"
        )


class RemoteBuildError(RobustSpecError):
    """A build that failed on another machine (a Ray worker): the error's text there, and where it ran."""


class AttackCheckError(RobustSpecError):
    """An attack returned images that break its contract (outside [0, 1] or the eps-ball, NaN/inf), or cannot run."""


class ResultsError(RobustSpecError):
    """A results or baseline file cannot be read, or is not a robustspec results document."""


class SuiteError(RobustSpecError):
    """A suite file cannot be collected for a reason other than its content (shown as a collection error)."""


class UsageError(RobustSpecError):
    """A ``robustspec`` command line that cannot be carried out (exit status 2)."""


class CheckFailed(RobustSpecError):
    """A check item's verdict fails it: raised by the pytest gate, shown as one line with the numbers."""


class BaselineRegression(CheckFailed):
    """The measured value moved the wrong way against the baseline by more than the tolerance."""


class CheckFlagged(CheckFailed):
    """An attack check is flagged (suspected gradient masking) and its expectation says ``on-masking: fail``."""


class RobustSpecWarning(UserWarning):
    """A problem reported without failing: an expectation with ``severity: warn`` not met, a stale baseline."""
