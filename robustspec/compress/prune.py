"""L1-norm filter pruning (Li, Kadav, Durdanovic, Samet and Graf 2017, "Pruning Filters for Efficient ConvNets").

Each convolution's output filters are ranked by the L1 norm of their weights and the weakest are removed:
the channels really disappear, so the pruned network is smaller and faster, not merely sparse.

Why Torch-Pruning: in a ResNet, the output channels of every block of a stage are tied by the residual
additions (and the downsampling shortcut), and removing a filter also removes the matching input
channels of the next convolutions and the BatchNorm entries in between. Torch-Pruning traces the network
once into a dependency graph and prunes each coupled group as a whole, so residual ties stay consistent.
Its ``MagnitudeImportance(p=1, group_reduction="first", normalizer=None)`` is Li et al.'s criterion: the
L1 norm of the group's first (root) convolution's filters. The classifier is never pruned.

Budgets: ``ratio`` removes that fraction of the filters of every prunable group. ``params`` (a parameter
budget such as ``11.19M``) searches the one global ratio whose pruned network has that many parameters,
within ``tolerance`` (relative). The parameter count falls monotonically with the ratio, roughly as
``(1 - ratio)^2`` (up to the ratio at which the narrowest layer would lose its last channel: Torch-Pruning
then leaves that group whole), so the search keeps a bracket ``[lo, hi]`` inside (0, 0.95) below that
ratio and probes where the
square root of the count, interpolated linearly between the bracket ends, meets the target (bisection
when that guess lands near an end); each probe prunes a fresh copy. It usually lands within 1% in two or
three probes and stops after at most 12. When the count jumps past the target between two nearly equal
ratios (many groups losing a channel at once: RegNet's 16-channel groups), the groups that jump are split
between the two ratios and the split bisected.

Any model: MobileNets, EfficientNets, RegNets, ConvNeXts and ViTs prune as they are (Torch-Pruning follows
depthwise and grouped convolutions, squeeze-and-excitation, layer scales, class tokens); attention keeps
its heads consistent (:func:`_attention`, :func:`_qkv_heads`). What Torch-Pruning cannot follow (a channel
shuffle, channels padded in code) is an :class:`~robustspec.errors.ArtifactError` naming the layer
(:func:`_tp_failure`, :func:`_check_forward`): found at collection by a trial prune on a tiny input
(:func:`probe_problem`), else when built, once per process.

What is stored is Torch-Pruning's pruning history (which channels of which layer, as plain lists) and a
plain state_dict; ``restore`` replays the history on a copy of the parent and loads the weights, so
everything loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import ArtifactError, StructuralError
from ..metrics import parameter_count
from ..models.zoo import head_module, on_meta
from ..progress import Progress, Timer, report
from ..spec.schema import Count, Int, Real, Strict, parse_count
from ..train.supervised import train_supervised
from . import COMPRESSIONS
from .base import ChainPosition, StepContext, StepResult

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["parse_count", "format_count", "PruneParams", "Prune", "MAX_RATIO", "MAX_PROBES"]

_log = logging.getLogger(__name__)

#: The search never removes more than this fraction of any group's filters.
MAX_RATIO = 0.95
#: Probes of the budget search (each prunes a fresh copy).
MAX_PROBES = 12
#: A budget below this fraction of the model's parameters is rejected at collection.
MIN_BUDGET_FRACTION = 0.02


def format_count(n: int) -> str:
    """``11190000`` -> ``"11.19M"``; ``51200`` -> ``"51.2k"``."""
    if abs(n) >= 10**6:
        return f"{n / 1e6:.2f}M"
    if abs(n) >= 10**3:
        return f"{n / 1e3:.1f}k"
    return str(n)


def budget_problems(budget: int, baseline_params: int) -> list[str]:
    """Why a parameter budget is out of reach for a model of ``baseline_params`` (known at collection)."""
    if baseline_params <= 0:
        return []
    text, base = format_count(budget), format_count(baseline_params)
    if budget >= baseline_params:
        return [f"budget {text} is not below the model's {base} parameters"]
    if budget < MIN_BUDGET_FRACTION * baseline_params:
        return [
            f"budget {text} is below {MIN_BUDGET_FRACTION:.0%} of the model's {base} parameters: "
            "so small that layers would vanish"
        ]
    return []


def finetune_after_pruning(model: nn.Module, data: Any, epochs: int, ctx: StepContext, label: str) -> None:
    """Fine-tune ``model`` in place for ``epochs`` on ``data`` with the suite's recipe at a tenth of its rate."""
    o = ctx.recipe.optimizer
    recipe = ctx.recipe.model_copy(update={"epochs": epochs, "optimizer": o.model_copy(update={"lr": o.lr / 10})})
    train_supervised(model, data, recipe, device=ctx.device, label=label)


def replay_pruning(parent: nn.Module, history: Any, state_dict: Mapping[str, Any], example: torch.Tensor) -> nn.Module:
    """A copy of ``parent`` pruned by a stored pruning history, with ``state_dict`` loaded (``restore``)."""
    model = prune_by_history(parent, history, example)
    model.load_state_dict(state_dict)
    return model.eval()


def prune_by_history(parent: nn.Module, history: Any, example: torch.Tensor) -> nn.Module:
    """A copy of ``parent`` pruned by a stored pruning history (its weights: the parent's kept channels)."""
    import torch_pruning as tp

    model = copy.deepcopy(parent).eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BARE_PARAMETERS)
        graph = tp.DependencyGraph().build_dependency(model.net, example_inputs=example)
        graph.load_pruning_history(_plain_history(history))
    del graph
    _sync_widths(model.net)
    return model.eval()


def prunable_groups(parent: nn.Module, example: torch.Tensor) -> list[tuple[str, int]]:
    """The channel groups Torch-Pruning prunes together, as (the name of the group's root layer, its
    width), in the order of the network's modules; the classifier's group is never among them."""
    import torch_pruning as tp
    from torch import nn

    net = copy.deepcopy(parent.net).eval()
    names = {id(m): n for n, m in net.named_modules()}
    order = {n: i for i, (n, _) in enumerate(net.named_modules())}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BARE_PARAMETERS)
        graph = tp.DependencyGraph().build_dependency(net, example_inputs=example)
        groups = graph.get_all_groups(ignored_layers=[_classifier(net)], root_module_types=[nn.Conv2d, nn.Linear])
        found = []
        for group in groups:
            root = group[0].dep.target.module
            width = getattr(root, "out_channels", None) or getattr(root, "out_features", None)
            if id(root) in names and isinstance(width, int):
                found.append((names[id(root)], width))
    del graph
    return sorted(found, key=lambda g: order[g[0]])


def ratio_ceiling(width: int) -> float:
    """The largest ratio that leaves a group of ``width`` channels at least one (Torch-Pruning leaves a group
    whole when the ratio would remove all), at most :data:`MAX_RATIO`."""
    return min(MAX_RATIO, 1.0 - 1.001 / width) if width > 1 else 0.0


def bracket_search(
    probe: Any, lo: float, n_lo: float, hi: float, n_hi: float, target: int, tolerance: float, *, at_most: bool = False
) -> tuple[tuple[float, Any, int] | None, tuple[float, Any], tuple[float, Any]]:
    """The ratio ``r`` in ``(lo, hi)`` whose ``probe(r) -> (payload, count)`` is ``target`` within ``tolerance``
    (relative), for a count falling about as ``(1 - r)^2``; ``n_hi`` may be an estimate.

    sqrt(count) is interpolated linearly inside the bracket (bisection when the guess lands near an end), for
    at most :data:`MAX_PROBES` probes. Returns the best probe ``(r, payload, count)`` (the closest, or with
    ``at_most`` the closest at or below ``target``: None when no probe was) and the final bracket's ends
    ``(ratio, payload of the probe there, or None)``.
    """
    best: tuple[float, Any, int] | None = None
    lo_payload: Any = None
    hi_payload: Any = None

    def better(n: int) -> bool:
        if at_most:
            return n <= target and (best is None or n > best[2])
        return best is None or abs(n - target) < abs(best[2] - target)

    for i in range(MAX_PROBES):
        # The count falls about as (1 - r)^2: interpolate sqrt(count) linearly inside the bracket.
        s_lo, s_hi, s_t = math.sqrt(n_lo), math.sqrt(max(n_hi, 0.0)), math.sqrt(target)
        r = lo + (hi - lo) * (s_lo - s_t) / (s_lo - s_hi) if s_lo > s_hi else (lo + hi) / 2
        margin = 0.05 * (hi - lo)
        if i > 0 and not lo + margin <= r <= hi - margin:
            r = (lo + hi) / 2
        r = min(max(r, lo + 1e-4), hi - 1e-4)
        payload, n = probe(r)
        if better(n):
            best = (r, payload, n)
        if (target * (1 - tolerance) <= n <= target) if at_most else abs(n - target) <= tolerance * target:
            break
        if n > target:
            lo, n_lo, lo_payload = r, n, payload
        else:
            hi, n_hi, hi_payload = r, n, payload
        if hi - lo < 1e-4:
            break
    return best, (lo, lo_payload), (hi, hi_payload)


class PruneParams(Strict):
    """``prune: {ratio: 0.3}`` or ``prune: {params: 11.19M, finetune: 2}``."""

    method: Literal["l1-filter"] = "l1-filter"
    ratio: Real | None = Field(None, description="fraction of each group's filters to remove, in (0, 1)")
    params: Count | None = Field(
        None, description="parameter budget (11.19M, 500k, 4510000); the ratio is searched to hit it"
    )
    finetune: Int = Field(0, ge=0, le=1000, description="fine-tuning epochs after pruning (lr: the recipe's / 10)")
    tolerance: Real = Field(0.01, gt=0.0, lt=1.0, description="relative tolerance on the parameter budget")

    @field_validator("ratio")
    @classmethod
    def _ratio_open(cls, v: float | None) -> float | None:
        if v is not None:
            if not v > 0.0:
                raise ValueError("must be > 0")
            if not v < 1.0:
                raise ValueError("must be < 1")
        return v

    @field_validator("params")
    @classmethod
    def _params_positive(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError("must be > 0")
        return v

    @model_validator(mode="after")
    def _one_budget(self) -> PruneParams:
        if self.ratio is not None and self.params is not None:
            raise ValueError("give either ratio or params, not both")
        if self.ratio is None and self.params is None:
            raise ValueError("give ratio: (0..1) or params: (a parameter budget like 11.19M)")
        return self


def _example_inputs(model: nn.Module, ctx: StepContext) -> torch.Tensor:
    import torch

    h, w = ctx.train.images.shape[-2:]
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    return torch.zeros(1, 3, int(h), int(w), device=device)


def _classifier(net: nn.Module) -> nn.Module:
    """The layer that outputs the class scores: never pruned (its outputs are the classes)."""
    head = head_module(net)
    if head is None:
        raise ArtifactError("cannot prune: the network has no nn.Linear or nn.Conv2d classifier to keep")
    return head[1]


def _plain_history(history: Any) -> list[list[Any]]:
    """Torch-Pruning's history as ``[[name, is_out_channel, [int, ...]], ...]`` (safe for weights_only)."""
    return [[str(name), bool(out), [int(i) for i in idxs]] for name, out, idxs in history]


def _attention(net: nn.Module) -> dict[nn.Module, int]:
    """Each ``nn.MultiheadAttention`` and its head count, as the channel groups of its output: Torch-Pruning
    then removes the same offsets from every head's slice of the embedding (importance averaged over the
    heads), so each head keeps its own dimensions and ``embed_dim`` stays a multiple of ``num_heads``.

    (Its ``num_heads`` option is for attention built from a qkv ``nn.Linear``, timm's: with
    ``nn.MultiheadAttention`` it finds no downstream root and skips the group, leaving the embedding whole.)
    """
    from torch import nn

    return {m: m.num_heads for m in net.modules() if isinstance(m, nn.MultiheadAttention)}


def _is_qkv_attention(m: nn.Module) -> bool:
    """Attention that computes q, k and v with one ``qkv`` Linear and reshapes it by ``num_heads`` and
    ``head_dim`` (timm's ``Attention``, and the many models written like it)."""
    from torch import nn

    qkv, heads, dim = getattr(m, "qkv", None), getattr(m, "num_heads", None), getattr(m, "head_dim", None)
    return (
        isinstance(qkv, nn.Linear)
        and isinstance(heads, int)
        and isinstance(dim, int)
        and qkv.out_features == 3 * heads * dim
    )


def _qkv_heads(net: nn.Module) -> dict[nn.Module, int]:
    """Each qkv Linear of :func:`_is_qkv_attention` modules and its head count: Torch-Pruning's
    ``num_heads`` then removes the same dimensions from every head of q, k and v (``prune_head_dims``)."""
    return {m.qkv: m.num_heads for m in net.modules() if _is_qkv_attention(m)}


def _sync_widths(net: nn.Module) -> None:
    """Width attributes that a model's forward reads and Torch-Pruning does not know: torchvision's
    ``VisionTransformer.hidden_dim`` (its input reshape) becomes the pruned embedding width, and a qkv
    attention's ``head_dim`` (and timm's ``attn_dim``) the pruned head width."""
    for m in net.modules():
        if type(m).__name__ == "VisionTransformer" and hasattr(m, "hidden_dim") and hasattr(m, "conv_proj"):
            m.hidden_dim = m.conv_proj.out_channels
        qkv, heads = getattr(m, "qkv", None), getattr(m, "num_heads", None)
        if isinstance(getattr(m, "head_dim", None), int) and hasattr(qkv, "out_features") and isinstance(heads, int):
            if qkv.out_features % (3 * heads) == 0:
                m.head_dim = qkv.out_features // (3 * heads)
                if isinstance(getattr(m, "attn_dim", None), int):
                    m.attn_dim = heads * m.head_dim


#: Torch-Pruning's warning about bare parameters (ViT's class token and position embedding): they are
#: pruned on their last dimension, the embedding's, which is right for them.
_BARE_PARAMETERS = r"(?s).*prune the last non-singleton dimension"


def _prune_net(
    net: nn.Module, ratio: float, example: torch.Tensor, overrides: Mapping[str, float] | None = None
) -> list[list[Any]]:
    """Prune ``net`` in place (Li et al.'s criterion, the classifier kept); its pruning history.

    ``overrides``: another ratio for the groups rooted at these layers (by name). An exception
    Torch-Pruning raises is turned into an :class:`ArtifactError` that names the layer.
    """
    import torch_pruning as tp

    heads, qkv_heads = _attention(net), _qkv_heads(net)
    try:
        with warnings.catch_warnings():
            # ViT's class token and position embedding are bare parameters: pruned on their last dimension,
            # the embedding's, which is what Torch-Pruning warns about.
            warnings.filterwarnings("ignore", message=_BARE_PARAMETERS)
            # No torch.no_grad() here: Torch-Pruning traces the graph through autograd's grad_fn.
            pruner = tp.pruner.BasePruner(
                net,
                example,
                importance=tp.importance.MagnitudeImportance(p=1, group_reduction="first", normalizer=None),
                pruning_ratio=ratio,
                pruning_ratio_dict={net.get_submodule(n): r for n, r in (overrides or {}).items()} or None,
                ignored_layers=[_classifier(net)],
                # Given afresh each time: BasePruner adds to its (shared, mutable) default dicts.
                in_channel_groups={},
                out_channel_groups=dict(heads),
                num_heads=dict(qkv_heads),
                prune_num_heads=False,
                prune_head_dims=True,
            )
            pruner.step()
        _sync_widths(net)
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever Torch-Pruning trips over is named with its layer
        raise ArtifactError(_tp_failure(exc, net)) from exc
    history = _plain_history(pruner.pruning_history())
    del pruner
    return history


def _prune_copy(
    parent: nn.Module, ratio: float, example: torch.Tensor, overrides: Mapping[str, float] | None = None
) -> tuple[nn.Module, list[list[Any]]]:
    """A pruned deep copy of ``parent`` (a Normalized wrapper) and its pruning history; the copy's forward
    is checked layer by layer (:func:`_check_forward`)."""
    model = copy.deepcopy(parent).eval()  # eval: tracing must not touch BatchNorm running statistics
    history = _prune_net(model.net, ratio, example, overrides)
    problem = _check_forward(model.net, example, parent.net)
    if problem is not None:
        raise ArtifactError(problem)
    return model.eval(), history


# --- when Torch-Pruning cannot follow a network ----------------------------------------------------------


def _tp_version() -> str:
    from ..fingerprint import library_versions

    return f"Torch-Pruning {library_versions('torch-pruning')['torch-pruning'] or '?'}"


def _tp_failure(exc: BaseException, net: nn.Module) -> str:
    """Torch-Pruning's exception in words, with the layer of the model where it happened.

    Its dependency graph's nodes sit in the local variables of the frames that raised; from the innermost
    such node, the graph is walked back (then forward) to the nearest node that is a layer of ``net``.
    """
    names = {id(m): n for n, m in net.named_modules() if n}
    where, op = None, None
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            if hasattr(value, "inputs") and hasattr(value, "outputs") and hasattr(value, "module"):
                op = op or getattr(value, "name", None)
                where = _nearest_layer(value, names)
                if where is not None:
                    break
        if where is not None:
            break
    site = frames[-1].f_code.co_name if frames else "?"
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if where is not None:
        block = _enclosing_block(net, where[0])
        place = f" in block {block[0]!r} ({block[1]}), after its layer {where[0][len(block[0]) + 1 :]!r} ({where[1]})"
        place = place if block[0] else f" after layer {where[0]!r} ({where[1]})"
    else:
        place = ""
    reshape = "reshape" in site or "reshape" in (op or "").lower()
    what = "a reshape of the channel dimension (a channel shuffle)" if reshape else f"operation {op}" if op else ""
    return f"{_tp_version()} cannot map the channels through {what or 'this network'}{place} ({text} in its {site})"


def _enclosing_block(net: nn.Module, name: str) -> tuple[str, str]:
    """The nearest module above layer ``name`` that is not a plain container (Sequential, ModuleList)."""
    from torch import nn

    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        m = net.get_submodule(prefix)
        if not isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return prefix, type(m).__name__
    return "", type(net).__name__


def _nearest_layer(node: Any, names: dict[int, str]) -> tuple[str, str] | None:
    """The nearest node of Torch-Pruning's graph, inputs first, whose module is a named layer of the net."""
    seen: set[int] = set()
    for direction in ("inputs", "outputs"):
        queue = [node]
        while queue:
            n = queue.pop(0)
            if id(n) in seen and n is not node:
                continue
            seen.add(id(n))
            module = getattr(n, "module", None)
            if module is not None and id(module) in names:
                return names[id(module)], type(module).__name__
            queue.extend(getattr(n, direction, []) or [])
            if len(seen) > 10_000:
                return None
    return None


def _expected_width(module: nn.Module, x: torch.Tensor) -> tuple[int, int, str] | None:
    """(expected, got, what) for a layer whose input width does not match its weights; None when it does."""
    from torch import nn

    if isinstance(module, nn.Conv2d) and x.dim() == 4 and x.shape[1] != module.in_channels:
        return module.in_channels, int(x.shape[1]), "input channels"
    if isinstance(module, nn.Linear) and x.shape[-1] != module.in_features:
        return module.in_features, int(x.shape[-1]), "input features"
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and x.dim() >= 2 and x.shape[1] != module.num_features:
        return module.num_features, int(x.shape[1]), "channels"
    if type(module) is nn.LayerNorm:  # subclasses (ConvNeXt's LayerNorm2d) permute first
        n = len(module.normalized_shape)
        if tuple(x.shape[-n:]) != tuple(module.normalized_shape):
            return int(module.normalized_shape[-1]), int(x.shape[-1]), "features"
    return None


def _channel_changers(net: nn.Module, example: torch.Tensor) -> list[tuple[str, str, str]]:
    """Parameter-free leaf modules that change the channel count of a 4-d tensor (padding or slicing
    channels in code, which Torch-Pruning's graph cannot map), from one forward of the unpruned net."""
    import torch

    found: list[tuple[str, str, str]] = []
    handles = []

    def hook(name: str):
        def record(module: nn.Module, args: tuple, out: Any) -> None:
            x = args[0] if args else None
            if (
                isinstance(x, torch.Tensor)
                and isinstance(out, torch.Tensor)
                and x.dim() == 4
                and out.dim() == 4
                and x.shape[1] != out.shape[1]
                and x.numel() != out.numel()  # a permute keeps the elements; padding or slicing does not
            ):
                found.append((name, type(module).__name__, f"{x.shape[1]} -> {out.shape[1]}"))

        return record

    for name, m in net.named_modules():
        if name and not list(m.children()) and not list(m.parameters(recurse=False)):
            handles.append(m.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            net(example)
    except Exception:  # noqa: BLE001 - only a hint; the unpruned net's own failures are not this check's
        pass
    finally:
        for h in handles:
            h.remove()
    return found


def _check_forward(net: nn.Module, example: torch.Tensor, original: nn.Module | None = None) -> str | None:
    """Why the pruned ``net`` does not run on ``example`` (its forward raises, or gives non-finite or
    differently shaped scores than ``original``), with the first layer whose input width does not match its
    weights (Torch-Pruning removed channels on one side of it only), else the layer whose forward raised;
    None when it runs. ``original`` (the unpruned net) also lets the message name the likely cause."""
    import torch

    mismatch: list[tuple[str, nn.Module, tuple[int, int, str]]] = []
    stack: list[str] = []
    failed: list[str] = []
    handles = []

    def pre(name: str):
        def check(module: nn.Module, args: tuple) -> None:
            stack.append(name)
            x = args[0] if args else None
            if not mismatch and isinstance(x, torch.Tensor):
                got = _expected_width(module, x)
                if got is not None:
                    mismatch.append((name, module, got))

        return check

    def post(module: nn.Module, args: tuple, out: Any) -> None:
        if stack:
            stack.pop()

    for name, m in net.named_modules():
        if name:
            handles.append(m.register_forward_pre_hook(pre(name)))
            handles.append(m.register_forward_hook(post))
    error: BaseException | None = None
    try:
        with torch.no_grad():
            out = net(example)
            want = original(example) if original is not None else out
        if isinstance(out, torch.Tensor) and not torch.isfinite(out).all():
            error = ValueError("the pruned network's output is not finite")
        elif isinstance(out, torch.Tensor) and isinstance(want, torch.Tensor) and out.shape != want.shape:
            error = ValueError(f"the pruned network outputs {tuple(out.shape)}, not {tuple(want.shape)}")
    except Exception as exc:  # noqa: BLE001 - reported with the layer it happened in
        error = exc
        failed.extend(stack[-1:])
    finally:
        for h in handles:
            h.remove()
    if error is None:
        return None  # a width mismatch the forward does not trip over is the hooks' misreading, not a fault
    if mismatch:
        name, module, (expected, got, what) = mismatch[0]
        text = (
            f"after pruning, layer {name!r} ({type(module).__name__}) expects {expected} {what} but gets {got}: "
            f"{_tp_version()} cannot follow how its channels arrive"
        )
    else:
        layer = f" in layer {failed[0]!r}" if failed else ""
        text = f"after pruning, the forward fails{layer}: {type(error).__name__}: {error}"
    if original is not None:
        changers = _channel_changers(original, example)
        if changers:
            names = ", ".join(repr(n) for n, _, _ in changers[:2]) + (" ..." if len(changers) > 2 else "")
            kinds = ", ".join(f"{k}: {c}" for _, k, c in changers[:2])
            text += (
                f"; likely cause: {names} ({kinds} channels) change the channel count without parameters "
                "(channel padding in code, which Torch-Pruning does not trace; a 1x1 convolution would prune)"
            )
    return text


#: Failed prunes of this process by :func:`_failure_key` (the structure and the step's parameters), with
#: why: a network Torch-Pruning cannot follow, or a budget out of reach, fails once, not again for every
#: item that needs it (the outcome depends on shapes and parameters only, not on the weights). The store
#: keeps only what was built; this memo is the step's own, per process (each xdist worker fails once).
_FAILED: dict[str, str] = {}


def _failure_key(parent: nn.Module, params: PruneParams, example: torch.Tensor) -> str:
    """What decides whether pruning fails: the module tree, every tensor's shape, the params, the input."""
    import hashlib

    shapes = [(k, tuple(v.shape)) for k, v in parent.state_dict().items()]
    text = repr(parent) + repr(shapes) + params.model_dump_json() + repr(tuple(example.shape))
    return hashlib.sha256(text.encode()).hexdigest()


#: The trial prune at collection: this ratio, on the first of these square input sizes the network takes,
#: for networks up to this many parameters (bigger ones are checked when built).
PROBE_RATIO = 0.3
PROBE_SIZES = (32, 64, 224)
PROBE_MAX_PARAMETERS = 10_000_000
_PROBED: dict[str, str | None] = {}


def probe_problem(key: str, build: Any) -> str | None:
    """Why Torch-Pruning cannot prune the network ``build()`` makes, from a trial prune on a tiny input.

    Cheap enough for collection: the network is counted on the meta device first and skipped (None) above
    :data:`PROBE_MAX_PARAMETERS`; the trial runs on a 1x3xSxS input of the first size in :data:`PROBE_SIZES`
    that the unpruned network takes, and is remembered per process by ``key``. None when it prunes (or
    when it cannot be tried: the build then checks).
    """
    if key in _PROBED:
        return _PROBED[key]
    import torch

    from ..models.wrapper import Normalized

    problem: str | None = None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only contend (10x slower on a busy machine)
    try:
        size = parameter_count(on_meta(build))
        if size <= PROBE_MAX_PARAMETERS:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = Normalized(build()).eval()
            example = None
            for s in PROBE_SIZES:
                x = torch.zeros(1, 3, s, s)
                try:
                    with torch.no_grad():
                        model(x)
                except Exception:  # noqa: BLE001 - too small for this network: try the next size
                    continue
                example = x
                break
            if example is not None:
                try:
                    _prune_copy(model, PROBE_RATIO, example)
                except ArtifactError as exc:
                    shape = "x".join(map(str, example.shape))
                    problem = f"{exc} (trial prune: ratio {PROBE_RATIO}, {shape} input)"
    except Exception:  # noqa: BLE001 - a network that does not build here is the build's to report
        problem = None
    finally:
        torch.set_num_threads(threads)
    _PROBED[key] = problem
    return problem


@COMPRESSIONS.register("prune")
class Prune:
    """``prune: {ratio: 0.3}`` or ``prune: {params: 11.19M, finetune: 2}`` (L1 filter pruning)."""

    Params = PruneParams
    #: Distributions whose version enters this step's content key (their code decides its output).
    libraries = ("torch-pruning",)

    def parse(self, value: Any) -> Any:
        return value  # a mapping passes through; anything else is left for validation to reject

    def check(self, params: PruneParams, position: ChainPosition, arch: str, baseline_params: int) -> list[str]:
        problems = []
        if "quantize" in position.previous:
            problems.append("a quantized model cannot be pruned: put prune before quantize")
        if params.params is not None:
            problems += budget_problems(params.params, baseline_params)
        return problems

    def apply(self, parent: nn.Module, params: PruneParams, ctx: StepContext) -> StepResult:
        example = _example_inputs(parent, ctx)
        key = _failure_key(parent, params, example)
        if key in _FAILED:
            raise StructuralError(
                f"cannot prune {ctx.label}: {_FAILED[key]} (failed before in this process: not retried)"
            )
        timer = Timer()
        try:
            if params.ratio is not None:
                ratio = float(params.ratio)
                model, history = _prune_copy(parent, ratio, example)
                n = parameter_count(model)
                report(f"pruning {ctx.label}: ratio {ratio:.3f} -> {format_count(n)} parameters ({timer.seconds:.1f}s)")
            else:
                ratio, model, history, n = self._search(
                    parent, int(params.params), float(params.tolerance), example, ctx.label
                )
                report(
                    f"pruning {ctx.label}: ratio {ratio:.3f} -> {format_count(n)} parameters "
                    f"(target {format_count(int(params.params))}, {timer.seconds:.1f}s)"
                )
        except ArtifactError as exc:
            _FAILED[key] = str(exc)
            raise StructuralError(f"cannot prune {ctx.label}: {exc}") from exc
        if params.finetune > 0:
            finetune_after_pruning(model, ctx.train, params.finetune, ctx, f"{ctx.label} (fine-tuning after pruning)")
        model.eval()
        state = {
            "history": history,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "ratio": ratio,
        }
        return StepResult(model, state, info={"ratio": ratio, "parameters": n})

    def _search(
        self, parent: nn.Module, target: int, tolerance: float, example: torch.Tensor, label: str
    ) -> tuple[float, nn.Module, list[list[Any]], int]:
        """The ratio whose pruned copy of ``parent`` has ``target`` parameters within ``tolerance``."""
        from torch import nn

        base = parameter_count(parent)
        if target >= base:
            raise ArtifactError(f"the budget {format_count(target)} is not below its {format_count(base)} parameters")
        # Bracket: count(lo) > target > count(hi); count(hi) is estimated until probed. Torch-Pruning
        # keeps int(channels * (1 - r)) channels and leaves a group whole when that would be 0, so the
        # count is monotone only while the narrowest layer keeps one channel: stay below that ratio.
        head = _classifier(parent.net)
        widths = [m.out_channels for m in parent.modules() if isinstance(m, nn.Conv2d) and m is not head]
        widths += [m.out_features for m in parent.modules() if isinstance(m, nn.Linear) and m is not head]
        lo, n_lo = 0.0, base
        hi = min([MAX_RATIO] + [1.0 - 1.001 / w for w in widths if w > 1])
        # Each probe prunes a copy (seconds for a large network): a line when the search runs long.
        progress = Progress(MAX_PROBES, f"pruning {label}: ratio search", unit="probes", final="never")

        def probe(r: float) -> tuple[tuple[nn.Module, list[list[Any]]], int]:
            model, history = _prune_copy(parent, r, example)
            n = parameter_count(model)
            _log.debug("pruning %s: ratio %.4f -> %d parameters (target %d)", label, r, n, target)
            progress.update(1, f"ratio {r:.4f} -> {format_count(n)} (target {format_count(target)})")
            return (model, history), n

        found, (lo, lo_probe), (hi, hi_probe) = bracket_search(
            probe, lo, n_lo, hi, base * (1.0 - hi) ** 2, target, tolerance
        )
        best = None if found is None else (found[0], found[1][0], found[1][1], found[2])
        lo_history = None if lo_probe is None else lo_probe[1]
        hi_history = None if hi_probe is None else hi_probe[1]
        assert best is not None
        r, model, history, n = best
        if abs(n - target) > tolerance * target and lo_history is not None and hi_history is not None:
            refined = self._split(parent, lo, hi, lo_history, hi_history, target, tolerance, example, label)
            if refined is not None and abs(refined[3] - target) < abs(n - target):
                r, model, history, n = refined
        if abs(n - target) > tolerance * target:
            raise ArtifactError(
                f"{format_count(target)} ({target}) parameters are out of reach within {tolerance:.1%}: "
                f"the closest reachable count is {format_count(n)} ({n}) at ratio {r:.3f}"
            )
        return r, model, history, n

    def _split(
        self,
        parent: nn.Module,
        lo: float,
        hi: float,
        lo_history: list[list[Any]],
        hi_history: list[list[Any]],
        target: int,
        tolerance: float,
        example: torch.Tensor,
        label: str,
    ) -> tuple[float, nn.Module, list[list[Any]], int] | None:
        """When one ratio cannot hit the budget because many groups lose a channel at once between ``lo``
        and ``hi`` (RegNet's grouped convolutions all have 16-channel groups): the first ``k`` of those
        groups take ``hi``, the rest ``lo``; the count falls monotonically in ``k``, which is bisected.

        Only tried when the plain search fails, so every budget one ratio meets is met as before.
        """
        before = {name: len(idxs) for name, out, idxs in lo_history if out}
        after = {name: len(idxs) for name, out, idxs in hi_history if out}
        jumping = [name for name in after if after[name] != before.get(name, 0)]
        k_lo, k_hi = 0, len(jumping)
        best: tuple[float, nn.Module, list[list[Any]], int] | None = None
        for probe in range(MAX_PROBES):
            if k_hi - k_lo <= 1:
                break
            k = (k_lo + k_hi) // 2
            model, history = _prune_copy(parent, lo, example, {name: hi for name in jumping[:k]})
            n = parameter_count(model)
            _log.debug(
                "pruning %s: split probe %d, %d of %d groups at %.4f -> %d", label, probe + 1, k, len(jumping), hi, n
            )
            if best is None or abs(n - target) < abs(best[3] - target):
                best = (lo, model, history, n)
            if abs(n - target) <= tolerance * target:
                break
            if n > target:
                k_lo = k
            else:
                k_hi = k
        return best

    def restore(self, parent: nn.Module, params: PruneParams, state: Mapping[str, Any], ctx: StepContext) -> nn.Module:
        return replay_pruning(parent, state["history"], state["state_dict"], _example_inputs(parent, ctx))
