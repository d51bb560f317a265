"""Models: the zoo, the normalising wrapper and local weights."""

from .wrapper import IMAGENET_MEAN, IMAGENET_STD, Normalized
from .zoo import MODELS, build_network, count_parameters, import_factory

__all__ = [
    "MODELS",
    "Normalized",
    "build_network",
    "count_parameters",
    "import_factory",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]
