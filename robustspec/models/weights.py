"""Local weight files: loaded with ``torch.load(weights_only=True)``, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError

__all__ = ["load_local_weights", "weights_fingerprint"]


def weights_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Cheap identity of a weights file for content keys: resolved path, size and modification time."""
    st = Path(path).stat()
    return {"path": str(Path(path).resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _unwrap(obj: Any) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError("the weights file does not hold a state dict (a mapping of names to tensors)")
    prefixes = ("module.", "model.", "net.")
    for prefix in prefixes:
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    return obj


def load_local_weights(net: nn.Module, path: str | os.PathLike, *, head: str = "fc") -> list[str]:
    """Load a state dict into ``net``; a classifier head of another size is skipped (it is trained anew).

    Returns the names of the skipped keys. Any other missing, unexpected or mis-shaped key is a
    :class:`ModelError` that lists them.
    """
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-weights pickles
        raise ModelError(f"cannot read weights file {path}: {exc}") from exc
    state = _unwrap(raw)
    own = net.state_dict()
    skipped = [k for k in state if k.startswith(head + ".") and k in own and state[k].shape != own[k].shape]
    for k in skipped:
        del state[k]
    missing = [k for k in own if k not in state and k not in skipped and not (k.startswith(head + ".") and skipped)]
    unexpected = [k for k in state if k not in own]
    shape = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
        if shape:
            parts.append(f"shape mismatches {shape[:5]}")
        raise ModelError(f"weights file {path} does not fit the architecture: " + "; ".join(parts))
    net.load_state_dict(state, strict=False)
    return skipped
