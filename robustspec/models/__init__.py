"""Models: the zoo, the normalising wrapper and local weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .zoo import MODELS, build_network, import_factory

if TYPE_CHECKING:
    from .wrapper import IMAGENET_MEAN, IMAGENET_STD, Normalized

__all__ = [
    "MODELS",
    "Normalized",
    "build_network",
    "import_factory",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

#: Re-exported from :mod:`.wrapper` on first access: the wrapper is an ``nn.Module``, so importing it
#: imports torch, which validating a suite must not.
_FROM_WRAPPER = ("IMAGENET_MEAN", "IMAGENET_STD", "Normalized")


def __getattr__(name: str) -> Any:
    if name in _FROM_WRAPPER:
        from . import wrapper

        return getattr(wrapper, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
