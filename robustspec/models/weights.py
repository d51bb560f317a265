"""Pretrained weights: local state-dict files and torchvision weights enums, loaded, never downloaded.

A suite's ``weights:`` is either a path (relative to the file it is written in) or a torchvision enum
such as ``ResNet50_Weights.IMAGENET1K_V2`` (also ``torchvision:ResNet50_Weights.IMAGENET1K_V2`` and
``ResNet50_Weights.DEFAULT``). An enum stands for the file torchvision itself would cache,
``<torch.hub.get_dir()>/checkpoints/<basename of the enum's url>`` (``TORCH_HOME`` moves it); when that
file is not there, :func:`resolve_weights` says where to put it and where to fetch it from.

Files are read with ``torch.load(weights_only=True)``. Whether a file fits an architecture is decided by
one function, :func:`fit_problems`, used both when loading (:func:`load_local_weights`) and at collection
(:func:`weights_fit_problems`, which memory-maps the file and builds the architecture on the meta device,
so it costs tens of milliseconds even for ResNet-152). A classifier head of another size is not a problem:
it is skipped and trained anew, sized to the data's classes.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..errors import ModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "fit_problems",
    "is_weights_enum",
    "load_local_weights",
    "resolve_weights",
    "weights_digest",
    "weights_fingerprint",
    "weights_fit_problems",
]

TORCHVISION_PREFIX = "torchvision:"
_ENUM = re.compile(r"^(?:torchvision:)?([A-Za-z_]\w*Weights)\.([A-Za-z_]\w*)$")
#: Without the prefix, only what cannot be a file name: enum members are upper case (``IMAGENET1K_V2``).
_BARE_ENUM = re.compile(r"^[A-Za-z_]\w*Weights\.[A-Z][A-Z0-9_]*$")
#: Wrappers that training scripts put around a state dict, unwrapped in this order.
_NESTED = ("state_dict", "model_state_dict", "model")
#: Prefixes that wrappers (DataParallel, Lightning, ...) add to every key.
_PREFIXES = ("module.", "model.", "net.")


# --- where the file is ---------------------------------------------------------------------------------


def is_weights_enum(ref: str) -> bool:
    """True for ``torchvision:X_Weights.Y`` and ``X_Weights.UPPER_CASE``; anything else is a path."""
    return ref.startswith(TORCHVISION_PREFIX) or _BARE_ENUM.match(ref) is not None


@lru_cache(maxsize=1)
def _weights_enums() -> dict[str, Any]:
    """Every torchvision weights enum class by name (the modules torchvision's own ``get_weight`` searches)."""
    import inspect

    import torchvision.models as tvm
    from torchvision.models._api import WeightsEnum

    modules = [tvm] + [
        m for _, m in inspect.getmembers(tvm, inspect.ismodule) if (m.__file__ or "").endswith("__init__.py")
    ]
    found: dict[str, Any] = {}
    for module in modules:
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, WeightsEnum) and value is not WeightsEnum:
                found.setdefault(name, value)
    return found


def _did_you_mean(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _resolve_enum(ref: str) -> Path:
    import torch

    match = _ENUM.match(ref)
    if match is None:
        raise ModelError(f"torchvision weights are written 'ResNet50_Weights.IMAGENET1K_V2', got {ref!r}")
    enum_name, member = match.groups()
    enums = _weights_enums()
    enum = enums.get(enum_name)
    if enum is None:
        raise ModelError(f"unknown torchvision weights enum {enum_name!r}{_did_you_mean(enum_name, sorted(enums))}")
    members = list(enum.__members__)
    if member not in members:
        raise ModelError(
            f"{enum_name} has no member {member!r}{_did_you_mean(member, members)} (members: {', '.join(members)})"
        )
    weights = enum[member]
    name = f"{enum_name}.{member}" + (f" (= {weights.name})" if weights.name != member else "")
    url = weights.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if not path.is_file():
        raise ModelError(
            f"torchvision weights {name} are not in the torch hub cache: put the file at {path} "
            f"(fetch it on a machine with internet from {url}; the directory follows TORCH_HOME). "
            "robustspec never downloads weights."
        )
    return path


def resolve_weights(ref: str | os.PathLike, base_dir: str | os.PathLike | None = None) -> Path:
    """The file a ``weights:`` value stands for: a torchvision enum's cached file, or a path under ``base_dir``.

    Raises :class:`ModelError` when the enum is unknown, its file is not cached, or the file is missing.
    Importing torchvision happens here, and only for enums. An existing file wins over an unprefixed name
    that merely looks like an enum.
    """
    text = os.fspath(ref)
    if text.startswith(TORCHVISION_PREFIX):
        return _resolve_enum(text)
    path = Path(os.path.expandvars(os.path.expanduser(text)))
    if base_dir is not None:
        path = Path(base_dir) / path
    path = path.resolve()
    if path.is_file():
        return path
    if is_weights_enum(text):
        return _resolve_enum(text)
    raise ModelError(f"weights file not found: {path}")


def weights_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Cheap identity of a weights file for content keys: resolved path, size and modification time.

    An enum is fingerprinted as the file it resolves to, so ``DEFAULT``, its alias and the path share a key.
    """
    resolved = resolve_weights(path)
    st = resolved.stat()
    return {"path": str(resolved), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def weights_digest(path: str | os.PathLike) -> dict[str, Any]:
    """Content identity of a weights file for content keys: its SHA-256 and size, not where it lies.

    A fresh clone (new mtimes) or another checkout directory keeps the key; an edited file changes it.
    Hashed once per process per (path, size, mtime).
    """
    fp = weights_fingerprint(path)
    return {"sha256": _sha256(fp["path"], fp["bytes"], fp["mtime_ns"]), "bytes": fp["bytes"]}


@lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- does it fit ---------------------------------------------------------------------------------------


def _unwrap(obj: Any) -> dict[str, torch.Tensor]:
    import torch

    for key in _NESTED:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError("the weights file does not hold a state dict (a mapping of names to tensors)")
    for prefix in _PREFIXES:
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def _read(path: str | os.PathLike, *, mmap: bool) -> dict[str, torch.Tensor]:
    import torch

    try:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if not mmap or "zipfile" not in str(exc):
                raise
            raw = torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-1.6) format: no mmap
    except ModelError:
        raise
    except Exception as exc:  # pickle errors, truncated files, non-weights pickles
        raise ModelError(f"cannot read weights file {path}: {exc}") from exc
    return _unwrap(raw)


def head_name(net: nn.Module) -> str:
    """The classifier head's name (``fc`` for ResNets, ``classifier.1`` for MobileNet-v2, ``heads.head`` for
    a ViT, ...): see :func:`~robustspec.models.zoo.head_module`."""
    from .zoo import head_module

    head = head_module(net)
    return head[0] if head is not None else "fc"


def _listed(keys: list[str], limit: int = 10) -> str:
    return f"{keys[:limit]}{f' ... ({len(keys)} in all)' if len(keys) > limit else ''}"


def fit_problems(
    state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], head: str
) -> tuple[list[str], list[str]]:
    """Compare a file's state dict with a network's: ``(skipped head keys, problems)``.

    Head keys (``<head>.*``) that differ only in their class count (the first dimension) are skipped, not
    problems. Missing ``num_batches_tracked`` buffers (older checkpoints) are not problems either. Works on
    meta tensors: only names and shapes count.
    """
    prefix = head + "."
    skipped = [
        k
        for k in state
        if k.startswith(prefix)
        and k in own
        and state[k].shape != own[k].shape
        and state[k].shape[1:] == own[k].shape[1:]
    ]
    missing = [
        k
        for k in own
        if k not in state and not k.endswith(".num_batches_tracked") and not (k.startswith(prefix) and skipped)
    ]
    unexpected = [k for k in state if k not in own]
    shape = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in state
        if k in own and k not in skipped and state[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listed(unexpected)}")
    if shape:
        problems.append(f"shape mismatches {_listed(shape, 5)}")
    return skipped, problems


def load_local_weights(net: nn.Module, path: str | os.PathLike, *, head: str | None = None) -> list[str]:
    """Load a weights file (or a torchvision enum's cached file) into ``net``.

    A classifier head of another size is skipped (it is trained anew); returns the skipped keys. Any other
    missing, unexpected or mis-shaped key is a :class:`ModelError` that lists them.
    """
    file = resolve_weights(path)
    state = _read(file, mmap=False)
    skipped, problems = fit_problems(state, net.state_dict(), head or head_name(net))
    if problems:
        raise ModelError(f"weights file {file} does not fit the architecture: " + "; ".join(problems))
    for k in skipped:
        del state[k]
    net.load_state_dict(state, strict=False)
    return skipped


def weights_fit_problems(path: str | os.PathLike, arch: str, params: Mapping[str, Any], classes: int) -> list[str]:
    """Why a weights file does not fit ``arch`` (empty if it does); cheap enough for collection.

    The file is memory-mapped (no tensor data is read) and the network is built on the meta device.
    Results are cached per (file fingerprint, arch, params, classes).
    """
    fp = weights_fingerprint(path)
    key = json.dumps(
        [fp["path"], fp["bytes"], fp["mtime_ns"], arch, dict(params), classes], sort_keys=True, default=str
    )
    return list(_fit_problems_cached(key))


@lru_cache(maxsize=64)
def _fit_problems_cached(key: str) -> tuple[str, ...]:
    from .zoo import meta_network

    path, _, _, arch, params, classes = json.loads(key)
    try:
        state = _read(path, mmap=True)
    except ModelError as exc:
        return (str(exc),)
    net = meta_network(arch, classes, params)
    _, problems = fit_problems(state, net.state_dict(), head_name(net))
    if problems:
        return (f"weights file {path} does not fit {arch}: " + "; ".join(problems),)
    return ()
