"""Training: supervised training on the source domain."""

from .supervised import train_supervised

__all__ = ["train_supervised"]
