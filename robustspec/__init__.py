"""robustspec: robustness test suites for compressed networks.

YAML suites state expectations (minimum target-domain accuracy, maximum drop, ...); the pytest plugin
turns each into test items that build (generate data, train, evaluate) through a shared artifact store.
"""

from .errors import (
    ArtifactError,
    DataError,
    ModelError,
    RegistryError,
    RobustSpecError,
    SpecError,
    SpecErrors,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "RobustSpecError",
    "SpecError",
    "SpecErrors",
    "RegistryError",
    "DataError",
    "ModelError",
    "ArtifactError",
    "load_suite",
    "plan_suite",
    "run",
    "RunResult",
    "CheckResult",
    "Store",
]


def __getattr__(name: str):
    # Lazy: importing robustspec (e.g. as a pytest plugin) must not import torch.
    if name == "load_suite":
        from .spec.loader import load_suite

        return load_suite
    if name == "plan_suite":
        from .plan import plan_suite

        return plan_suite
    if name in ("run", "RunResult", "CheckResult"):
        from . import api

        return getattr(api, name)
    if name == "Store":
        from .store import Store

        return Store
    raise AttributeError(name)
