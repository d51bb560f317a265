"""The model zoo: torchvision's classification models, timm's when installed, and user factories.

An ``arch:`` is one of

- a name of the static registry :data:`MODELS`: torchvision's ResNet-18 ... 152 (the research's models) and
  the narrow ``resnet10-mini`` / ``resnet10-small`` for quick suites. Listing and checking these imports
  nothing heavy, so a suite that uses only them is validated without torch;
- any other classification model of torchvision's zoo by its name (``mobilenet_v2``, ``efficientnet_b0``,
  ``regnet_x_400mf``, ``convnext_tiny``, ``vit_b_16``, ...; ``torchvision.models.list_models(module=
  torchvision.models)``), or as ``torchvision:<name>``: torchvision is imported only to resolve such a name;
- ``timm:<name>`` (``timm.create_model(name, pretrained=False)``) when timm is installed;
- ``package.module:function``, a user factory ``fn(num_classes, **params)`` found as
  :mod:`robustspec.models.factories` says (next to the suite, up to the rootdir).

Every builder is called with ``weights=None`` / ``pretrained=False``: nothing is ever downloaded (local
weights are loaded by :mod:`robustspec.models.weights`). Each arch's ``params:`` are checked against the
builder's real signature (:func:`arch_params_problems`; for torchvision builders, which take ``**kwargs``,
the model class's ``__init__``).
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from ..errors import ModelError, RegistryError
from ..registry import Registry
from .factories import import_factory, is_factory_ref
from .signature import Accepts, ParamProblem, accepts_of, params_problems

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "MODELS",
    "Arch",
    "arch_params_problems",
    "build_network",
    "import_factory",
    "classifier_head",
    "head_module",
    "linear_layers",
    "on_meta",
    "meta_network",
    "resolve_arch",
    "torchvision_names",
    "zoo_parameters",
]

#: Architectures by name. Each entry is ``fn(num_classes: int, **params) -> nn.Module``; its signature is
#: what ``params:`` are checked against.
MODELS: Registry[Callable[..., nn.Module]] = Registry("model")

TORCHVISION_PREFIX = "torchvision:"
TIMM_PREFIX = "timm:"


def _torchvision_resnet(depth: int) -> Callable[..., nn.Module]:
    # The keyword parameters of torchvision's ResNet (what its builders pass on), spelled out so that
    # checking params needs no torchvision; tests/test_models.py compares them with the real signature.
    def build(
        num_classes: int,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: list[bool] | None = None,
    ) -> nn.Module:
        # Imported here: torchvision.models costs ~1 s to import, and collection only needs the names.
        from torchvision.models import resnet as tv_resnet

        given = {
            "zero_init_residual": zero_init_residual,
            "groups": groups,
            "width_per_group": width_per_group,
            "replace_stride_with_dilation": replace_stride_with_dilation,
        }
        # weights=None: nothing is ever downloaded; local weights are loaded by robustspec.models.weights.
        return getattr(tv_resnet, f"resnet{depth}")(weights=None, num_classes=num_classes, **given)

    build.__doc__ = f"torchvision's ResNet-{depth}."
    build.__name__ = f"resnet{depth}"
    return build


for _depth in (18, 34, 50, 101, 152):
    MODELS.register(f"resnet{_depth}")(_torchvision_resnet(_depth))


def narrow_resnet(
    num_classes: int,
    widths: tuple[int, int, int, int] = (16, 32, 64, 128),
    layers: tuple[int, int, int, int] = (1, 1, 1, 1),
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


def resnet10_mini(num_classes: int) -> nn.Module:
    """A narrow ResNet-10 (widths 16-128, 0.3 M parameters). Other widths: ``robustspec.models.zoo:narrow_resnet``."""
    return narrow_resnet(num_classes, (16, 32, 64, 128), (1, 1, 1, 1))


def resnet10_small(num_classes: int) -> nn.Module:
    """A narrow ResNet-10 (widths 32-256, 1.2 M parameters). Other widths: ``robustspec.models.zoo:narrow_resnet``."""
    return narrow_resnet(num_classes, (32, 64, 128, 256), (1, 1, 1, 1))


MODELS.register("resnet10-mini")(resnet10_mini)
MODELS.register("resnet10-small")(resnet10_small)


# --- torchvision's zoo and timm, resolved lazily ----------------------------------------------------------

#: Builder defaults robustspec changes: GoogLeNet and Inception-v3 return their auxiliary logits in
#: training mode by default (a tuple, which a classifier's loss cannot take); ``aux_logits: true`` is still
#: a param. ``init_weights`` spelled out keeps torchvision from warning.
TORCHVISION_DEFAULTS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


#: The classification models of torchvision 0.29's zoo (``list_models(module=torchvision.models)``), so
#: validation can accept and suggest their names without importing torchvision; a test keeps it equal to
#: the installed torchvision's list, and :func:`torchvision_names` stays the authority when building.
TORCHVISION_CLASSIFIERS: tuple[str, ...] = (
    "alexnet",
    "convnext_base",
    "convnext_large",
    "convnext_small",
    "convnext_tiny",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_l",
    "efficientnet_v2_m",
    "efficientnet_v2_s",
    "googlenet",
    "inception_v3",
    "maxvit_t",
    "mnasnet0_5",
    "mnasnet0_75",
    "mnasnet1_0",
    "mnasnet1_3",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "regnet_x_16gf",
    "regnet_x_1_6gf",
    "regnet_x_32gf",
    "regnet_x_3_2gf",
    "regnet_x_400mf",
    "regnet_x_800mf",
    "regnet_x_8gf",
    "regnet_y_128gf",
    "regnet_y_16gf",
    "regnet_y_1_6gf",
    "regnet_y_32gf",
    "regnet_y_3_2gf",
    "regnet_y_400mf",
    "regnet_y_800mf",
    "regnet_y_8gf",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "resnext50_32x4d",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
    "squeezenet1_0",
    "squeezenet1_1",
    "swin_b",
    "swin_s",
    "swin_t",
    "swin_v2_b",
    "swin_v2_s",
    "swin_v2_t",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "vit_b_16",
    "vit_b_32",
    "vit_h_14",
    "vit_l_16",
    "vit_l_32",
    "wide_resnet101_2",
    "wide_resnet50_2",
)


@cache
def torchvision_names() -> tuple[str, ...]:
    """Every classification model of torchvision's zoo (imports torchvision)."""
    import torchvision.models as tvm

    return tuple(tvm.list_models(module=tvm))


def _torchvision_builder(name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, **params: Any) -> nn.Module:
        import torchvision.models as tvm

        kwargs = {**TORCHVISION_DEFAULTS.get(name, {}), **params}
        return tvm.get_model_builder(name)(weights=None, num_classes=num_classes, **kwargs)

    build.__name__ = name
    return build


def _torchvision_accepts(name: str) -> Accepts:
    """A torchvision builder's own keywords and its model class's ``__init__`` (what its ``**kwargs`` reach)."""
    import inspect

    import torchvision.models as tvm

    builder = tvm.get_model_builder(name)
    own = accepts_of(builder, name, skip=("num_classes", "weights", "progress"))
    cls = inspect.signature(builder).return_annotation
    if not inspect.isclass(cls):
        return own
    init = accepts_of(cls, name)
    any_keyword = init.any_keyword
    if any_keyword:
        # ConvNeXt's and MobileNetV3's __init__ take **kwargs and drop them: only a class that uses them
        # takes other names.
        try:
            any_keyword = inspect.getsource(cls.__init__).count("kwargs") > 1
        except (OSError, TypeError):
            pass
    # The class's required parameters (block, layers, ...) are the builder's to give.
    return Accepts(name, {**init.params, **own.params}, frozenset(), any_keyword)


def _timm_builder(name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, **params: Any) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=num_classes, **params)

    build.__name__ = name
    return build


def _timm_problem(name: str) -> str | None:
    if importlib.util.find_spec("timm") is None:
        return (
            f"arch 'timm:{name}' needs the package timm, which is not installed "
            "(pip install timm; robustspec never downloads its pretrained weights)"
        )
    import timm

    if timm.is_model(name):
        return None
    close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6) if len(name) <= 100 else []
    hint = f"; did you mean {', '.join(repr('timm:' + c) for c in close)}?" if close else ""
    return f"timm has no model {_short(name)}{hint} (timm.list_models() lists them)"


def _short(name: str) -> str:
    return repr(name) if len(name) <= 80 else f"{name[:60]!r}... ({len(name)} characters)"


@dataclass(frozen=True)
class Arch:
    """A resolved ``arch:``: where it comes from, its builder, and what params the builder takes."""

    ref: str  # as written in the suite
    kind: str  # "zoo" (the static registry), "torchvision", "timm" or "factory"
    build: Callable[..., nn.Module]
    name: str  # the registry / torchvision / timm name, or the factory reference

    def accepts(self) -> Accepts:
        if self.kind == "torchvision":
            return _torchvision_accepts(self.name)
        if self.kind == "timm":
            return Accepts(f"timm:{self.name}", any_keyword=True)
        return accepts_of(self.build, f"factory {self.ref}" if self.kind == "factory" else self.name)


def _takes_num_classes(fn: Callable[..., Any]) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return "num_classes" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _unknown(arch: str) -> str:
    names = torchvision_names()
    known = MODELS.names()
    options = sorted(set(known) | set(names))
    close = difflib.get_close_matches(arch, options, n=3, cutoff=0.6) if len(arch) <= 100 else []
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"unknown model {_short(arch)}{hint} (known: {', '.join(known)}; every torchvision classification "
        "model by its name, e.g. mobilenet_v2, efficientnet_b0, convnext_tiny, vit_b_16; timm:<name> with timm "
        "installed; or a factory package.module:function)"
    )


def resolve_arch(arch: str, search: Iterable[Any] = ()) -> Arch:
    """What ``arch`` names, imported as far as needed.

    Raises :class:`RegistryError` for a name of no zoo (with close matches) and :class:`ModelError` when
    timm is missing or a factory does not import.

    ``search``: the directories a factory module is looked for in (:func:`~.factories.search_dirs`).
    Names of :data:`MODELS` import nothing; others import torchvision, timm or the factory's module.
    """
    if arch in MODELS:
        return Arch(arch, "zoo", MODELS.get(arch), arch)
    if arch.startswith(TIMM_PREFIX):
        name = arch[len(TIMM_PREFIX) :]
        problem = _timm_problem(name)
        if problem is not None:
            raise ModelError(problem)
        return Arch(arch, "timm", _timm_builder(name), name)
    if arch.startswith(TORCHVISION_PREFIX):
        name = arch[len(TORCHVISION_PREFIX) :]
        if name not in torchvision_names():
            raise RegistryError(_unknown(name).replace("unknown model", "torchvision has no classification model", 1))
        return Arch(arch, "torchvision", _torchvision_builder(name), name)
    if ":" in arch:
        return Arch(arch, "factory", import_factory(arch, search), arch)
    if not re.fullmatch(r"[A-Za-z_][\w\-.]*", arch):
        raise RegistryError(_unknown(arch) if len(arch) <= 100 else f"unknown model {_short(arch)}")
    if arch in torchvision_names():
        return Arch(arch, "torchvision", _torchvision_builder(arch), arch)
    raise RegistryError(_unknown(arch))


def build_network(
    arch: str, num_classes: int, params: Mapping[str, Any] | None = None, search: Iterable[Any] = ()
) -> nn.Module:
    """Build an untrained network by zoo name, torchvision or timm name, or ``package.module:function``."""
    from torch import nn

    params = dict(params or {})
    if arch in MODELS:
        fn = MODELS.get(arch)
    elif ":" in arch and is_factory_ref(arch):
        fn = import_factory(arch, search)
    else:
        fn = resolve_arch(arch, search).build
    try:
        net = fn(num_classes=num_classes, **params)
    except TypeError as exc:
        raise ModelError(f"model {arch!r} does not accept these parameters {sorted(params)}: {exc}") from exc
    if not isinstance(net, nn.Module):
        raise ModelError(f"model factory {arch!r} returned {type(net).__name__}, not a torch.nn.Module")
    return net


def on_meta(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with its parameters on the meta device: shapes without memory or initialisation time.

    A builder that computes its layout from tensor values (torchvision's RegNets: ``.tolist()`` of a
    width schedule) cannot run under ``torch.device("meta")``; it is run again with only ``torch.empty``
    (how layers allocate their parameters) sent to the meta device.
    """
    import torch

    try:
        with torch.device("meta"):
            return build()
    except NotImplementedError:
        with _empty_on_meta():
            return build()


def _empty_on_meta() -> Any:
    """A torch function mode that sends ``torch.empty`` to the meta device (the class needs torch)."""
    import torch
    from torch.overrides import TorchFunctionMode

    class EmptyOnMeta(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            kwargs = dict(kwargs or {})
            if func in (torch.empty, torch.empty_strided) and kwargs.get("device") is None:
                kwargs["device"] = "meta"
            return func(*args, **kwargs)

    return EmptyOnMeta()


def meta_network(
    arch: str, num_classes: int, params: Mapping[str, Any] | None = None, search: Iterable[Any] = ()
) -> nn.Module:
    """:func:`build_network` on the meta device (:func:`on_meta`): for parameter counts and state-dict shapes."""
    return on_meta(lambda: build_network(arch, num_classes, params, search))


_MULTIPLE = re.compile(r"multiple values for (?:keyword )?argument '(\w+)'")
_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def arch_params_problems(arch: Arch, params: Mapping[str, Any], *, classes: int = 10) -> list[ParamProblem]:
    """``params`` checked against the builder's signature: each problem, with the param it is about.

    Static for the registry and for factories with a closed signature (nothing is imported beyond what
    resolving ``arch`` did). Where ``**kwargs`` hide what a builder takes (torchvision's builders set some
    keywords themselves, timm's pass them on) and params are given, the model is also built once on the
    meta device (:func:`on_meta`: no memory, no initialisation), and what the builder refuses is reported
    for the param it names.
    """
    accepts = arch.accepts()
    problems = params_problems(accepts, dict(params))
    if arch.kind == "factory" and not _takes_num_classes(arch.build):
        problems.append(
            ParamProblem(None, f"{accepts.owner} must take num_classes: it is called as fn(num_classes=..., **params)")
        )
    if problems or not params or (arch.kind in ("zoo", "factory") and not accepts.any_keyword):
        return problems
    try:
        on_meta(lambda: arch.build(num_classes=classes, **dict(params)))
    except TypeError as exc:
        text = str(exc)
        m = _MULTIPLE.search(text)
        if m and m.group(1) in params:
            return [ParamProblem(m.group(1), f"{accepts.owner} sets {m.group(1)!r} itself: it cannot be a param", True)]
        m = _UNEXPECTED.search(text)
        if m and m.group(1) in params:
            return [ParamProblem(m.group(1), f"unknown param {m.group(1)!r} of {accepts.owner} ({text})", True)]
        return [ParamProblem(None, f"{accepts.owner} does not take these params: {text}")]
    except Exception as exc:  # noqa: BLE001 - a value the builder rejects (a ValueError, an assertion)
        return [ParamProblem(None, f"{accepts.owner} cannot be built with these params: {type(exc).__name__}: {exc}")]
    return []


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


def linear_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``nn.Linear`` layers of ``net`` in registration order, but those inside attention modules
    (``MultiheadAttention.out_proj``: attention uses its weight directly, it is no layer of its own)."""
    from torch import nn

    inside = {
        id(m) for mha in net.modules() if isinstance(mha, nn.MultiheadAttention) for m in mha.modules() if m is not mha
    }
    return [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear) and id(m) not in inside]


def classifier_head(net: nn.Module, *, linear: bool = False) -> tuple[str, nn.Module] | None:
    """The network's classifier as (name, module): its ``fc`` (a ResNet's, RegNet's or ShuffleNet's head,
    also when low-rank factorization made it two layers; with ``linear=True`` only when it is an
    ``nn.Linear``), else its last ``nn.Linear`` outside attention modules (MobileNet's and EfficientNet's
    ``classifier[-1]``, ConvNeXt's ``classifier[2]``, ViT's ``heads.head``); None when it has none."""
    from torch import nn

    fc = getattr(net, "fc", None)
    if isinstance(fc, nn.Linear if linear else nn.Module):
        return "fc", fc
    found = linear_layers(net)
    return found[-1] if found else None


def head_module(net: nn.Module) -> tuple[str, nn.Module] | None:
    """The layer that outputs the class scores: :func:`classifier_head`'s ``nn.Linear``, else (SqueezeNet)
    the last ``nn.Conv2d``; a head of another class count in a weights file is replaced there."""
    from torch import nn

    head = classifier_head(net, linear=True)
    if head is not None:
        return head
    convs = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None
