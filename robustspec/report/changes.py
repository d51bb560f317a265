"""What changed between a baseline item and this run's, in words: the change under review.

Every item records the recipe of what it measured (the ``recipe`` property: data, the trained model with
its factory's source and library versions, the variant's steps, and the check's own parameters). When an
item's content keys or recipe differ from its baseline entry's, the item is still compared: that
difference is what the pull request changed, and it is shown beside the numbers::

    variant fp-half: prune.ratio 0.2 → 0.5
    model resnet18: factory source changed (mymodels.py)
    model resnet18: torch 2.13.0 → 2.14.1
    check: min 0.9 → 0.8
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..fingerprint import describe_source_change

__all__ = ["RECIPE_PROPERTY", "content_keys", "describe_changes", "recipe_of"]

#: The item property holding the JSON recipe of what the item measured.
RECIPE_PROPERTY = "recipe"


def content_keys(props: Mapping[str, Any]) -> dict[str, str]:
    """The item's artifact and evaluation keys (``artifact_key``, ``eval_key[<domain>]``)."""
    return {
        k: str(v) for k, v in props.items() if k == "artifact_key" or (k.startswith("eval_key[") and k.endswith("]"))
    }


def recipe_of(props: Mapping[str, Any]) -> dict[str, Any] | None:
    """The item's recipe (the ``recipe`` property, JSON), or None when it has none."""
    raw = props.get(RECIPE_PROPERTY)
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _diff(old: Any, new: Any, path: str = "") -> list[str]:
    """``path old → new`` for every leaf that differs (mappings are walked, lists compared whole)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += _diff(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))
        return out
    if old == new:
        return []
    return [f"{path or 'value'} {_show(old)} → {_show(new)}"]


def _libraries(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    old, new = old or {}, new or {}
    return [
        f"{k} {old.get(k) or 'absent'} → {new.get(k) or 'absent'}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


def _model_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out = []
    if old.get("code") != new.get("code"):
        out.append(describe_source_change(old.get("code"), new.get("code")))
    out += _libraries(old.get("libraries"), new.get("libraries"))
    rest = {k: v for k, v in old.items() if k not in ("code", "libraries")}
    out += _diff(rest, {k: v for k, v in new.items() if k not in ("code", "libraries")})
    return out


def _step_changes(old: list[Any], new: list[Any]) -> list[str]:
    kinds_old = [s.get("step") for s in old if isinstance(s, Mapping)]
    kinds_new = [s.get("step") for s in new if isinstance(s, Mapping)]
    if kinds_old != kinds_new:
        return [f"steps {', '.join(map(str, kinds_old)) or 'none'} → {', '.join(map(str, kinds_new)) or 'none'}"]
    out = []
    for kind, a, b in zip(kinds_new, old, new):
        out += _diff(a.get("params"), b.get("params"), str(kind))
        out += [f"{kind} on {text}" for text in _libraries(a.get("libraries"), b.get("libraries"))]
    return out


def describe_changes(old_props: Mapping[str, Any], new_props: Mapping[str, Any]) -> list[str]:
    """What differs between what the baseline item and this item measured; empty when nothing does.

    Thresholds are part of it (``check: min 0.9 → 0.8``): a loosened gate is a change a reviewer must see.
    """
    old_keys, new_keys = content_keys(old_props), content_keys(new_props)
    keys_differ = any(old_keys[k] != new_keys[k] for k in set(old_keys) & set(new_keys))
    old, new = recipe_of(old_props), recipe_of(new_props)
    if old is None or new is None:
        if keys_differ:
            return ["artifact keys differ (the baseline records no recipe: it predates recipe records)"]
        return []
    model = str(new_props.get("model") or old_props.get("model") or "model")
    variant = str(new_props.get("variant") or old_props.get("variant") or "variant")
    out = [f"data: {c}" for c in _diff(old.get("data"), new.get("data"))]
    out += [f"model {model}: {c}" for c in _model_changes(old.get("model") or {}, new.get("model") or {})]
    out += [f"variant {variant}: {c}" for c in _step_changes(old.get("steps") or [], new.get("steps") or [])]
    out += [f"check: {c}" for c in _diff(old.get("check"), new.get("check"))]
    if keys_differ and not out:
        out.append("robustspec's builder version changed (same recipe, new content key)")
    return out
