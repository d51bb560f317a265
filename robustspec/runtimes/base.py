"""What a runtime is: a file format, the libraries it runs on, export to bytes and load from bytes."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Protocol

from ..errors import StructuralError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..models.programs import RuntimeProgram

__all__ = ["Runtime", "export_problem", "quiet_import", "quiet_stderr", "traced"]


class Runtime(Protocol):
    """One runtime, registered in ``RUNTIMES`` under the ``export: {format: ...}`` name it serves."""

    #: The file's suffix (``.pte``, ``.onnx``).
    suffix: ClassVar[str]
    #: Distributions whose versions decide the exported file and what it computes (enter the step's key).
    libraries: ClassVar[tuple[str, ...]]

    def export(self, net: nn.Module, example: torch.Tensor, batch: int) -> bytes:
        """The deployable file of ``net`` (float or pt2e-converted; normalised input) for inputs like
        ``example``, at ``batch`` images per call where the format fixes the batch."""

    def load(self, data: bytes, *, quantized: bool, batch: int) -> RuntimeProgram:
        """A module that runs the file ``data`` (exported at ``batch``) in this runtime, at any batch size."""


def quiet_import(*modules: str) -> None:
    """Import ``modules`` with the notes they print on import silenced: torchao's registration of an enum
    with torch's pytree (a warning logged by ``torch.utils._pytree``), executorch's "experimental API"
    warning, and the cpuinfo lines of the native runtime. Later imports are cached and print nothing."""
    import importlib
    import logging
    import warnings

    logger = logging.getLogger("torch.utils._pytree")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), quiet_stderr():
            warnings.simplefilter("ignore")
            for name in modules:
                importlib.import_module(name)
    finally:
        logger.setLevel(level)


def export_problem(error: BaseException) -> str:
    """A one-paragraph reason why ``torch.export`` could not trace a model (its first lines)."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:400]}{'…' if len(text) > 400 else ''}"


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence what native runtime code prints on file descriptor 2 (cpuinfo's notes), for this block only."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def traced(
    net: nn.Module, example: torch.Tensor, *, max_batch: int | None = None, dynamic: bool = True
) -> torch.export.ExportedProgram:
    """``torch.export`` of ``net``, with a dynamic batch dimension (up to ``max_batch``) unless ``dynamic``
    is False (the example's batch, then), or a clear error."""
    import torch

    if dynamic and example.shape[0] == 1:  # an example of one image would fix the batch at 1
        example = example.expand(2, *example.shape[1:]).clone()
    try:
        if not dynamic:
            return torch.export.export(net, (example,))
        batch = torch.export.Dim("batch", min=1, max=max_batch) if max_batch else torch.export.Dim("batch", min=1)
        return torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
    except Exception as e:  # torch.export raises many kinds (Unsupported, UserError, GuardOnDataDependent...)
        raise StructuralError(f"torch.export cannot trace {type(net).__name__}: {export_problem(e)}") from None
