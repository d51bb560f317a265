"""The model zoo: torchvision ResNets (the research's models), small ResNets for quick suites, user factories."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from ..registry import Registry

if TYPE_CHECKING:
    from torch import nn

__all__ = ["MODELS", "build_network", "import_factory", "count_parameters", "classifier_head"]

#: Architectures by name. Each entry is ``fn(num_classes: int, **params) -> nn.Module``.
MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def _torchvision_resnet(depth: int) -> Callable[..., nn.Module]:
    def build(num_classes: int, **kw: Any) -> nn.Module:
        # Imported here: torchvision.models costs ~1 s to import, and collection only needs the names.
        from torchvision.models import resnet as tv_resnet

        # weights=None: nothing is ever downloaded; local weights are loaded by robustspec.models.weights.
        return getattr(tv_resnet, f"resnet{depth}")(weights=None, num_classes=num_classes, **kw)

    build.__doc__ = f"torchvision's ResNet-{depth}."
    return build


for _depth in (18, 34, 50, 101, 152):
    MODELS.register(f"resnet{_depth}")(_torchvision_resnet(_depth))


def narrow_resnet(
    num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128), layers: tuple[int, ...] = (1, 1, 1, 1)
) -> nn.Module:
    """A torchvision ResNet (BasicBlock) with narrower stages: same module structure, a fraction of the cost.

    Being a plain ``torchvision.models.ResNet``, it works with everything that works on ResNet-18.
    """
    from torch import nn
    from torchvision.models import resnet as tv_resnet

    if len(widths) != 4 or len(layers) != 4:
        raise ModelError("a narrow ResNet needs four widths and four layer counts")
    net = tv_resnet.ResNet(tv_resnet.BasicBlock, list(layers), num_classes=num_classes)
    net.inplanes = widths[0]
    net.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(widths[0])
    net.layer1 = net._make_layer(tv_resnet.BasicBlock, widths[0], layers[0])
    net.layer2 = net._make_layer(tv_resnet.BasicBlock, widths[1], layers[1], stride=2)
    net.layer3 = net._make_layer(tv_resnet.BasicBlock, widths[2], layers[2], stride=2)
    net.layer4 = net._make_layer(tv_resnet.BasicBlock, widths[3], layers[3], stride=2)
    net.fc = nn.Linear(widths[3], num_classes)
    for m in net.modules():  # same initialisation as torchvision's constructor
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return net


MODELS.register("resnet10-mini")(lambda num_classes, **kw: narrow_resnet(num_classes, (16, 32, 64, 128), (1, 1, 1, 1)))
MODELS.register("resnet10-small")(
    lambda num_classes, **kw: narrow_resnet(num_classes, (32, 64, 128, 256), (1, 1, 1, 1))
)

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def import_factory(ref: str) -> Callable[..., nn.Module]:
    """Resolve ``package.module:function`` (imported, never evaluated)."""
    if not _FACTORY.match(ref):
        raise ModelError(f"a model factory is written 'package.module:function', got {ref!r}")
    module_name, attr = ref.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"cannot import module {module_name!r} for factory {ref!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ModelError(f"module {module_name!r} has no callable {attr!r}")
    return fn


def build_network(arch: str, num_classes: int, params: dict[str, Any] | None = None) -> nn.Module:
    """Build an untrained network by zoo name or ``package.module:function`` factory."""
    from torch import nn

    params = dict(params or {})
    fn = import_factory(arch) if ":" in arch else MODELS.get(arch)
    try:
        net = fn(num_classes=num_classes, **params)
    except TypeError as exc:
        raise ModelError(f"model {arch!r} does not accept these parameters {sorted(params)}: {exc}") from exc
    if not isinstance(net, nn.Module):
        raise ModelError(f"model factory {arch!r} returned {type(net).__name__}, not a torch.nn.Module")
    return net


#: Parameters of each zoo architecture as ``body + per_class * classes`` (the classifier is the only part
#: that depends on the class count). Collection uses it to check budgets without importing torchvision;
#: tests/test_models.py checks it against real builds.
ZOO_PARAMETERS: dict[str, tuple[int, int]] = {
    "resnet18": (11_176_512, 513),
    "resnet34": (21_284_672, 513),
    "resnet50": (23_508_032, 2049),
    "resnet101": (42_500_160, 2049),
    "resnet152": (58_143_808, 2049),
    "resnet10-mini": (309_456, 129),
    "resnet10-small": (1_230_240, 257),
}


def zoo_parameters(arch: str, num_classes: int) -> int | None:
    """Parameter count of a zoo architecture without building it; None for anything else."""
    entry = ZOO_PARAMETERS.get(arch)
    return None if entry is None else entry[0] + entry[1] * num_classes


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def classifier_head(net: nn.Module, *, linear: bool = False) -> tuple[str, nn.Module] | None:
    """The network's classifier as (name, module): its ``fc`` (a ResNet's head, also when low-rank
    factorization made it two layers; with ``linear=True`` only when it is an ``nn.Linear``), else its last
    ``nn.Linear``; None when it has none."""
    from torch import nn

    fc = getattr(net, "fc", None)
    if isinstance(fc, nn.Linear if linear else nn.Module):
        return "fc", fc
    last = None
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            last = (name, module)
    return last
