"""What a compression step is: parameters, a check of its place in a chain, apply, and restore.

A variant is a chain of steps (``[{prune: ...}, {quantize: ptsq}]``). Each step's output is its own
artifact in the store, keyed by the step's canonical parameters and its parent's key, so chains that
share a prefix share work. A step stores only plain tensors and JSON-able structure; ``restore``
rebuilds the module from the parent's restored module and that state (``torch.load(weights_only=True)``
all the way down, never a pickled module).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..data.base import Split
from ..errors import ArtifactError
from ..spec.schema import Strict, TrainRecipe

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["AdaptationStep", "ChainPosition", "CompressionStep", "StepContext", "StepResult"]


def _no_domains(domain: str) -> Split:
    raise ArtifactError(f"this step context gives no access to other domains (asked for {domain!r})")


def _no_store(recipe: dict[str, Any], build: Callable[[], Any], describe: str = "") -> Any:
    return build()


@dataclass
class StepContext:
    """What a step may use while it runs: source data, the baseline (a teacher), a device and a recipe."""

    train: Split  # the source domain's train split (calibration, fine-tuning, distillation)
    num_classes: int
    device: torch.device
    recipe: TrainRecipe  # the suite's training recipe (fine-tuning and distillation start from it)
    baseline: Callable[[], nn.Module]  # the trained uncompressed model of the same suite model (lazy)
    new_network: Callable[[str, dict[str, Any]], nn.Module]  # (arch, params) -> untrained Normalized network
    label: str = "variant"
    domain_train: Callable[[str], Split] = _no_domains  # domain name -> its train split, loaded on demand (adaptation)
    held_out: Callable[[], Split] = lambda: _no_domains("held-out")  # the source test split (runtime agreement)
    class_names: Callable[[], list[str]] | None = None  # the dataset's class names, in label order
    #: (recipe, build, describe) -> build()'s value, as an artifact of its own keyed by the recipe, the step's
    #: kind and the step's parent (a search's candidates): built once, across runs and xdist workers. Without a
    #: store (a step applied by hand), it just builds.
    cache: Callable[..., Any] = _no_store


@dataclass
class StepResult:
    """A compressed model and what must be stored to restore it."""

    model: nn.Module
    state: dict[str, Any]  # tensors / lists / str / numbers only; passed back to ``restore``
    info: dict[str, Any] = field(default_factory=dict)  # numbers worth reporting (ratio found, sparsity, ...)


@dataclass(frozen=True)
class ChainPosition:
    """Where a step sits in its chain, for chain rules such as 'quantize last'."""

    index: int
    previous: tuple[str, ...]  # YAML keys of the steps before this one
    following: tuple[str, ...]  # YAML keys of the steps after this one
    num_classes: int | None = None  # the suite's dataset's class count, when known


class CompressionStep(Protocol):
    """One kind of compression, registered under its YAML key in ``COMPRESSIONS``."""

    Params: ClassVar[type[Strict]]
    #: Distributions besides torch whose version decides the step's output (enters its content key). A
    #: step whose libraries depend on its parameters defines ``libraries_for(params)`` instead.
    libraries: ClassVar[tuple[str, ...]]

    def parse(self, value: Any) -> Any:
        """Shorthand forms to a mapping before validation (``quantize: ptsq`` -> ``{method: ptsq}``)."""

    def check(self, params: Any, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        """Problems knowable at collection (cheap), as messages; empty when fine."""

    def apply(self, parent: nn.Module, params: Any, ctx: StepContext) -> StepResult:
        """Compress a copy of ``parent`` (never modify it in place)."""

    def restore(self, parent: nn.Module, params: Any, state: dict[str, Any], ctx: StepContext) -> nn.Module:
        """Rebuild the compressed module from the restored parent and the stored state."""


class AdaptationStep:
    """What the steps that adapt a model to a target domain share (``coral``, ``adabn``).

    ``adapts`` makes ``adaptation-gain`` apply to chains with the step; a bare word is the target
    (``coral: webcam``); adaptation changes weights, not structure, so the stored state is the adapted
    copy's state_dict and ``restore`` loads it into a copy of the restored parent.
    """

    adapts: ClassVar[bool] = True

    def parse(self, value: Any) -> Any:
        return {"target": value} if isinstance(value, str) else value

    @staticmethod
    def weights_state(model: nn.Module) -> dict[str, Any]:
        return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}

    def restore(self, parent: nn.Module, params: Any, state: dict[str, Any], ctx: StepContext) -> nn.Module:
        model = copy.deepcopy(parent)
        model.load_state_dict(state["state_dict"])
        return model.eval()
