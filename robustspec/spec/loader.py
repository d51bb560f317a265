"""Load a suite file: YAML -> named blocks resolved from ``specs/`` -> validated :class:`Suite`.

Every problem becomes a :class:`SpecError` at ``file:line:col`` with a field path, and all the problems of
a file are raised together as :class:`SpecErrors`. Blocks taken from ``specs/*.yaml`` are validated where
they are written, so an error in a shared block points into the shared file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, TypeAdapter, ValidationError

from ..compress import COMPRESSIONS
from ..errors import DataError, ModelError, RegistryError, SpecError, SpecErrors
from ..expect import EXPECTATIONS
from ..models.zoo import MODELS, import_factory
from .schema import BASELINE, DataSpec, FolderData, ModelSpec, Suite, SynthData, TrainRecipe
from .yaml_loader import Located, load_yaml_file

__all__ = ["LoadedSuite", "ParsedExpectation", "load_suite", "find_specs_dir", "SPEC_KINDS"]

#: Files of named building blocks inside ``specs/``: a mapping of name -> definition each.
SPEC_KINDS = {"datasets": "datasets.yaml", "models": "models.yaml", "training": "training.yaml"}

_DATA_ADAPTER: TypeAdapter[Any] = TypeAdapter(DataSpec)


@dataclass(frozen=True)
class ParsedExpectation:
    """One entry of ``expect:``: its kind, validated parameters, position and index."""

    kind: str
    params: Any
    index: int
    line: int


@dataclass(frozen=True)
class ParsedStep:
    """One validated compression step of a variant chain, and where it was written."""

    kind: str  # the YAML key: prune, distill, quantize, lowrank, sparsify
    params: Any
    file: str
    line: int
    col: int
    path: tuple


@dataclass
class LoadedSuite:
    """A validated suite, with where things were written (for item locations)."""

    path: Path
    suite: Suite
    expectations: list[ParsedExpectation]
    domains: list[str]
    model_lines: dict[str, int] = field(default_factory=dict)
    #: model name -> variant name -> steps; suite-level variants apply to every model, model-level to one.
    variants: dict[str, dict[str, list[ParsedStep]]] = field(default_factory=dict)
    classes: int = 0


def find_specs_dir(start: Path) -> Path | None:
    """The nearest ``specs/`` directory at or above ``start`` (a suite file or a directory)."""
    here = start if start.is_dir() else start.parent
    for d in (here, *here.parents):
        candidate = d / "specs"
        if candidate.is_dir():
            return candidate
    return None


class _Collector:
    """Collects errors for one suite file (and the spec files it pulls blocks from)."""

    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    def at(self, loc: Located, file: str, path: tuple, message: str, *, key: bool = False) -> None:
        line, col = (loc.key_positions.get(path) if key else None) or loc.where(path)
        self.errors.append(SpecError(file, line, col, path, message))

    def validation(self, exc: ValidationError, loc: Located, file: str, prefix: tuple, tp: Any = None) -> None:
        """Report every error of ``exc``; ``tp`` is the validated type, used to map locations and suggest keys."""
        # Errors from the members of a plain union (``int | str | ...``) at one place become one message.
        union_msgs: dict[tuple, list[str]] = {}
        union_inputs: dict[tuple, Any] = {}
        for err in exc.errors(include_url=False):
            walked = _map_loc(loc.data, prefix, err["loc"], tp)
            path = walked.path
            kind = err["type"]
            if kind == "extra_forbidden":
                message = f"unknown key {str(path[-1])!r}"
                allowed = walked.allowed
                if allowed:
                    close = difflib.get_close_matches(str(path[-1]), allowed, n=1, cutoff=0.6)
                    message += f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(allowed)})"
                self.at(loc, file, path, message, key=True)
                continue
            if kind == "missing":
                self.at(loc, file, path, f"missing required key {walked.missing!r}")
                continue
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            msg = msg[0].lower() + msg[1:] if msg else msg
            if walked.union:
                union_msgs.setdefault(path, []).append(msg)
                union_inputs[path] = err.get("input")
                continue
            self.at(loc, file, path, msg + _got(kind, err.get("input"), msg), key=walked.key)
        for path, msgs in union_msgs.items():
            if len(msgs) == 1:
                msg = msgs[0]
            else:
                lead = "input should be "
                parts = [m[len(lead) :] if m.startswith(lead) else m for m in msgs]
                msg = lead + ", ".join(parts[:-1]) + " or " + parts[-1]
            self.at(loc, file, path, msg + _got("", union_inputs[path], msg))


def _got(kind: str, got: Any, msg: str) -> str:
    """`` (got X)`` unless the message already shows the input or the input is a whole block."""
    if kind in ("model_type", "dict_type") or isinstance(got, (dict, list)) or f"got {got!r}" in msg:
        return ""
    return f" (got {got!r})"


@dataclass
class _Walked:
    path: tuple  # where in the data the error is
    missing: str | None = None  # for a missing key: its name
    allowed: list[str] = field(default_factory=list)  # keys the innermost model accepts
    union: bool = False  # the location went through a member of a plain union
    key: bool = False  # the error is about a mapping key, not its value


def _strip(tp: Any) -> Any:
    """Remove ``Annotated`` and ``Optional`` wrappers (pydantic adds no location part for either)."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        if get_origin(tp) in (Union, UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _union_member(tp: Any, label: Any) -> tuple[bool, Any, bool]:
    """If ``tp`` is a union, the location part ``label`` names a member: (is_union, tagged member, tagged).

    Tagged unions put the tag in the location; plain unions put a member label (``int``, ``list[int]``),
    whose type is not needed here (the data walk goes on without it).
    """
    tp = _strip(tp)
    if get_origin(tp) not in (Union, UnionType):
        return False, None, False
    for arg in get_args(tp):
        if get_origin(arg) is Annotated:
            for meta in get_args(arg)[1:]:
                if isinstance(meta, Tag) and meta.tag == label:
                    return True, get_args(arg)[0], True
    return True, None, False


def _field_type(model: type[BaseModel], part: Any) -> tuple[bool, Any]:
    for name, info in model.model_fields.items():
        if part in (name, info.alias):
            return True, info.annotation
    return False, None


def _map_loc(data: Any, prefix: tuple, loc: tuple, tp: Any = None) -> _Walked:
    """Follow a pydantic error location through the data and, when known, the validated type.

    Location parts that are not in the data (union tags and member labels, ``[key]``) are skipped; a
    discriminator tag that happens to equal a key of the data (``imagefolder``) is not mistaken for it.
    """
    path = list(prefix)
    node = data
    for p in prefix:
        node = node[p] if isinstance(node, (dict, list)) and _has(node, p) else None
    out = _Walked(())
    owner: type[BaseModel] | None = None
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if tp is not None:
            is_union, member, tagged = _union_member(tp, part)
            if is_union:
                out.union |= not tagged
                tp = member
                continue
            tp = _strip(tp)
        if part == "[key]":
            out.key = True
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            owner = tp
            known, tp = _field_type(tp, part)
            if not known:
                tp = None
        elif tp is not None:
            origin, args = get_origin(tp), get_args(tp)
            if origin in (list, set, frozenset) and args:
                tp = args[0]
            elif origin is tuple and args:
                tp = (
                    args[0]
                    if len(args) == 2 and args[1] is Ellipsis
                    else (args[part] if isinstance(part, int) and part < len(args) else None)
                )
            elif origin is dict and len(args) == 2:
                tp = args[1]
            else:
                tp = None
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        else:
            if last and isinstance(part, str):
                out.missing = part
            node = None
    if owner is not None and loc and isinstance(loc[-1], str):
        if owner.model_fields and not _field_type(owner, loc[-1])[0]:
            out.allowed = sorted(info.alias or name for name, info in owner.model_fields.items())
    out.path = tuple(path)
    return out


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)


def _validate(
    col: _Collector, model: Any, value: Any, loc: Located, file: str, prefix: tuple, tp: Any = None
) -> Any | None:
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(value)
        return model.model_validate(value)
    except ValidationError as exc:
        col.validation(
            exc, loc, file, prefix, tp if tp is not None else (None if isinstance(model, TypeAdapter) else model)
        )
        return None


@lru_cache(maxsize=64)
def _load_blocks_cached(path: str, mtime_ns: int) -> tuple[Located | None, tuple[SpecError, ...]]:
    try:
        return load_yaml_file(path), ()
    except SpecErrors as exc:
        return None, tuple(exc.errors)


def _load_blocks(specs_dir: Path | None, kind: str) -> tuple[Located | None, str, tuple[SpecError, ...]]:
    if specs_dir is None:
        return None, "", ()
    p = specs_dir / SPEC_KINDS[kind]
    if not p.is_file():
        return None, str(p), ()
    loc, errs = _load_blocks_cached(str(p), p.stat().st_mtime_ns)
    if loc is not None and loc.data is not None and not isinstance(loc.data, dict):
        return None, str(p), (SpecError(str(p), 1, 1, (), "expected a mapping of name -> definition"),)
    return loc, str(p), errs


class _Resolver:
    """Turns names into definitions, validating each where it is written."""

    def __init__(self, col: _Collector, specs_dir: Path | None, suite_dir: Path) -> None:
        self.col = col
        self.specs_dir = specs_dir
        self.suite_dir = suite_dir
        self.seen_spec_errors: set[str] = set()

    def named(self, kind: str, name: str) -> tuple[Located, str, tuple] | None:
        loc, file, errs = _load_blocks(self.specs_dir, kind)
        if errs and file not in self.seen_spec_errors:
            self.seen_spec_errors.add(file)
            self.col.errors.extend(errs)
        if loc is None or not isinstance(loc.data, dict) or name not in loc.data:
            return None
        return loc, file, (name,)

    def known_names(self, kind: str) -> list[str]:
        loc, _, _ = _load_blocks(self.specs_dir, kind)
        return sorted(loc.data) if loc is not None and isinstance(loc.data, dict) else []

    def block(
        self,
        kind: str,
        value: Any,
        loc: Located,
        file: str,
        path: tuple,
        validate: Callable[[Any, Located, str, tuple], Any],
        builtin: Callable[[str], Any | None],
        what: str,
    ) -> Any | None:
        """Resolve ``value`` (a name or an inline mapping) and validate it."""
        if isinstance(value, str):
            found = self.named(kind, value)
            if found is not None:
                sloc, sfile, spath = found
                return validate(sloc.data[value], sloc, sfile, spath)
            built = builtin(value)
            if built is not None:
                return built
            known = sorted(set(self.known_names(kind) + self._builtin_names(kind)))
            close = difflib.get_close_matches(value, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            where = f"specs/{SPEC_KINDS[kind]}" if self.specs_dir else "specs/ (no specs directory found)"
            self.col.at(loc, file, path, f"unknown {what} {value!r}: not defined in {where} nor built in{hint}")
            return None
        return validate(value, loc, file, path)

    @staticmethod
    def _builtin_names(kind: str) -> list[str]:
        if kind == "models":
            return MODELS.names()
        if kind == "datasets":
            return ["office-synth"]
        return ["default"]


def _parse_variants(
    col: _Collector, loc: Located, file: str, raw: Any, prefix: tuple
) -> dict[str, list[ParsedStep]] | None:
    """Validate a ``variants:`` mapping (name -> step or list of steps); None when anything is wrong."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        col.at(loc, file, prefix, "expected a mapping of variant name -> compression step(s)")
        return None
    ok = True
    chains: dict[str, list[ParsedStep]] = {}
    for name, chain in raw.items():
        if name == BASELINE:
            col.at(
                loc,
                file,
                prefix + (name,),
                f"'{BASELINE}' is the uncompressed model and cannot be redefined as a variant",
                key=True,
            )
            ok = False
            continue
        steps = chain if isinstance(chain, list) else [chain]
        if not steps:
            col.at(loc, file, prefix + (name,), "a variant needs at least one compression step")
            ok = False
            continue
        parsed: list[ParsedStep] = []
        for j, step in enumerate(steps):
            spath = prefix + (name,) + ((j,) if isinstance(chain, list) else ())
            if not isinstance(step, dict) or len(step) != 1:
                col.at(
                    loc,
                    file,
                    spath,
                    f"each compression step is a one-key mapping like {{quantize: ptsq}} (steps: {', '.join(COMPRESSIONS.names())})",
                )
                ok = False
                continue
            ((kind, value),) = step.items()
            if kind not in COMPRESSIONS:
                col.at(loc, file, spath + (kind,), COMPRESSIONS.unknown_message(kind), key=True)
                ok = False
                continue
            impl = COMPRESSIONS.get(kind)()
            params = _validate(
                col, impl.Params, impl.parse(value if value is not None else {}), loc, file, spath + (kind,)
            )
            if params is None:
                ok = False
                continue
            line, c = loc.where(spath + (kind,))
            parsed.append(ParsedStep(kind, params, file, line, c, spath + (kind,)))
        chains[str(name)] = parsed
    return chains if ok else None


def _baseline_parameters(arch: str, params: dict[str, Any], classes: int) -> int:
    """Parameter count of an architecture, built on the meta device (no memory, no time)."""
    import torch

    from ..models.zoo import build_network, zoo_parameters

    if not params:
        known = zoo_parameters(arch, classes)
        if known is not None:
            return known
    with torch.device("meta"):
        net = build_network(arch, classes, dict(params))
    return sum(p.numel() for p in net.parameters())


def _check_chains(
    col: _Collector, models: list[ModelSpec], variants: dict[str, dict[str, list[ParsedStep]]], classes: int
) -> None:
    from ..compress.base import ChainPosition

    for model in models:
        chains = variants.get(model.name, {})
        if not chains:
            continue
        try:
            base = _baseline_parameters(model.arch, model.params, classes)
        except Exception as exc:  # a user factory that fails to build is reported, not raised
            col.errors.append(
                SpecError(col_file(chains), 0, 0, ("models",), f"model {model.name!r} cannot be built: {exc}")
            )
            continue
        for vname, steps in chains.items():
            kinds = tuple(s.kind for s in steps)
            # What each step starts from: the model, a distilled student, or a budget an earlier step set.
            arch, current = model.arch, base
            for i, step in enumerate(steps):
                position = ChainPosition(i, kinds[:i], kinds[i + 1 :])
                for message in COMPRESSIONS.get(step.kind)().check(step.params, position, arch, current):
                    col.errors.append(
                        SpecError(
                            step.file,
                            step.line,
                            step.col,
                            step.path,
                            f"{message} (model {model.name!r}, variant {vname!r})",
                        )
                    )
                student = getattr(step.params, "student", None)
                if student is not None and (":" in student or student in MODELS):
                    try:
                        arch, current = student, _baseline_parameters(student, step.params.student_params, classes)
                    except Exception:
                        pass
                budget = getattr(step.params, "params", None)
                if isinstance(budget, int) and budget < current:
                    current = budget


def domain_problem(name: str, domains: list[str]) -> str | None:
    """Why ``name`` is not a domain of the dataset (with a suggestion), or None; derived names included."""
    if "+" in name:  # a derived domain, amazon+gaussian_noise@3: its base, corruption and severity
        from ..corrupt import domain_problem as derived_problem

        return derived_problem(name, domains)
    if name in domains:
        return None
    close = difflib.get_close_matches(name, domains, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown domain {name!r}{hint} (the dataset has: {_fmt_list(domains)})"


def _check_weights(
    col: _Collector, models: list[ModelSpec], where: dict[str, tuple[Located, str, tuple]], classes: int
) -> None:
    """Each model's weights file fits its architecture (names and shapes; a head of another size is fine)."""
    from ..models.weights import weights_fit_problems

    for model in models:
        if model.weights is None or model.name not in where:
            continue
        l, f, pa = where[model.name]
        try:
            problems = weights_fit_problems(model.weights, model.arch, model.params, classes)
        except Exception as exc:  # noqa: BLE001 - a user factory that fails to build is reported, not raised
            problems = [f"cannot check the weights of model {model.name!r}: {exc}"]
        for message in problems:
            col.at(l, f, pa, message)


def _check_step_targets(
    col: _Collector, variants: dict[str, dict[str, list[ParsedStep]]], domains: list[str], source: str | None
) -> None:
    """Steps that name a target domain (``coral: {target: webcam}``): a domain of the dataset, not the source."""
    seen: set[tuple] = set()
    for chains in variants.values():
        for steps in chains.values():
            for step in steps:
                target = getattr(step.params, "target", None)
                where = (step.file, step.line, step.col)
                if not isinstance(target, str) or where in seen:
                    continue  # suite-level variants appear under every model: report them once
                seen.add(where)
                path = step.path + ("target",)
                problem = domain_problem(target, domains)
                if problem is not None:
                    col.errors.append(SpecError(step.file, step.line, step.col, path, problem))
                elif target == source:
                    message = f"{step.kind} target {target!r} is the source domain: adapt to another domain"
                    col.errors.append(SpecError(step.file, step.line, step.col, path, message))


def col_file(chains: dict[str, list[ParsedStep]]) -> str:
    return next((s.file for steps in chains.values() for s in steps), "")


def _fmt_list(names: list[str]) -> str:
    return ", ".join(names)


def load_suite(path: str | os.PathLike, specs_dir: str | os.PathLike | None = None) -> LoadedSuite:
    """Load and validate one suite file; raise :class:`SpecErrors` with every problem found."""
    p = Path(path)
    file = str(path)
    col = _Collector()
    loc = load_yaml_file(p)  # raises SpecErrors on YAML problems
    data = loc.data
    if not isinstance(data, dict):
        raise SpecErrors(
            [
                SpecError(
                    file, *loc.where(()), (), "a suite is a mapping with keys suite, data, source, models, expect, ..."
                )
            ]
        )
    sdir = Path(specs_dir) if specs_dir is not None else find_specs_dir(p.resolve())
    res = _Resolver(col, sdir, p.resolve().parent)
    model_variants: dict[str, dict[str, list[ParsedStep]]] = {}
    weights_at: dict[str, tuple[Located, str, tuple]] = {}  # model name -> where its weights: is written

    def v_data(value: Any, l: Located, f: str, pa: tuple) -> Any:
        if isinstance(value, dict):
            spec = _validate(col, _DATA_ADAPTER, value, l, f, pa, DataSpec)
            if isinstance(spec, FolderData):
                # Relative roots are relative to the file they are written in; ~ and $VARS are expanded.
                root = Path(os.path.expandvars(os.path.expanduser(spec.imagefolder)))
                spec = spec.model_copy(update={"imagefolder": str((Path(f).resolve().parent / root).resolve())})
            return spec
        col.at(l, f, pa, f"expected a dataset name or a mapping, got {type(value).__name__}")
        return None

    def v_train(value: Any, l: Located, f: str, pa: tuple) -> Any:
        if not isinstance(value, dict):
            col.at(l, f, pa, f"expected a training recipe name or mapping, got {type(value).__name__}")
            return None
        return _validate(col, TrainRecipe, value, l, f, pa)

    def v_model(value: Any, l: Located, f: str, pa: tuple, name: str | None = None) -> Any:
        if not isinstance(value, dict):
            col.at(l, f, pa, f"expected a model name or mapping, got {type(value).__name__}")
            return None
        value = dict(value)
        if name is not None:
            value.setdefault("name", name)
        if isinstance(value.get("train"), str):
            recipe = res.block(
                "training", value["train"], l, f, pa + ("train",), v_train, builtin_train, "training recipe"
            )
            if recipe is None:
                # Still check the rest of the model, so that all its problems are reported at once.
                value.pop("train")
                if "arch" not in value and isinstance(value.get("name"), str) and value["name"] in MODELS:
                    value["arch"] = value["name"]
                _validate(col, ModelSpec, value, l, f, pa)
                return None
            value["train"] = recipe
        if "arch" not in value and isinstance(value.get("name"), str) and value["name"] in MODELS:
            value["arch"] = value["name"]
        model = _validate(col, ModelSpec, value, l, f, pa)
        if model is None:
            return None
        chains = _parse_variants(col, l, f, model.variants or None, pa + ("variants",))
        if chains is None:
            return None
        model_variants[model.name] = chains
        if ":" in model.arch:
            try:
                import_factory(model.arch)
            except ModelError as exc:
                col.at(l, f, pa + ("arch",), str(exc))
                return None
        elif model.arch not in MODELS:
            col.at(l, f, pa + ("arch",), MODELS.unknown_message(model.arch))
            return None
        if model.weights is not None:
            from ..models.weights import resolve_weights

            try:
                wpath = resolve_weights(model.weights, Path(f).resolve().parent)
            except ModelError as exc:
                # The model is kept, so that its variants are still known to the expectations that name them.
                col.at(l, f, pa + ("weights",), str(exc))
                return model
            model = model.model_copy(update={"weights": str(wpath)})
            weights_at[model.name] = (l, f, pa + ("weights",))
        return model

    def builtin_data(name: str) -> Any | None:
        return SynthData() if name == "office-synth" else None

    def builtin_train(name: str) -> Any | None:
        return TrainRecipe() if name == "default" else None

    def builtin_model(name: str) -> Any | None:
        if name in MODELS or ":" in name:
            return v_model({"name": name.split(":")[-1], "arch": name}, loc, file, ("models",))
        return None

    allowed_top = list(Suite.model_fields)
    allowed_aliases = {Suite.model_fields[k].alias or k for k in allowed_top}
    for key in data:
        if key not in allowed_aliases:
            close = difflib.get_close_matches(str(key), sorted(allowed_aliases), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(sorted(allowed_aliases))})"
            col.at(loc, file, (key,), f"unknown key {key!r}{hint}", key=True)

    resolved: dict[str, Any] = {k: v for k, v in data.items() if k in allowed_aliases}
    resolved.setdefault("suite", p.stem)
    ok = True

    dataset = res.block(
        "datasets", data.get("data", "office-synth"), loc, file, ("data",), v_data, builtin_data, "dataset"
    )
    ok &= dataset is not None
    resolved["data"] = dataset

    if "train" in data:
        recipe = res.block("training", data["train"], loc, file, ("train",), v_train, builtin_train, "training recipe")
        ok &= recipe is not None
        resolved["train"] = recipe
    else:
        named_default = res.named("training", "default")
        if named_default is not None:
            sloc, sfile, spath = named_default
            resolved["train"] = v_train(sloc.data["default"], sloc, sfile, spath)
            ok &= resolved["train"] is not None

    models: list[Any] = []
    model_lines: dict[str, int] = {}
    first_model: dict[str, int] = {}
    raw_models = data.get("models")
    if isinstance(raw_models, list):
        for i, m in enumerate(raw_models):
            if isinstance(m, str):
                found = res.named("models", m)
                if found is not None:
                    sloc, sfile, spath = found
                    built = v_model(sloc.data[m], sloc, sfile, spath, name=m)
                else:
                    built = builtin_model(m)
                    if built is None:
                        known = sorted(set(res.known_names("models") + MODELS.names()))
                        close = difflib.get_close_matches(m, known, n=3, cutoff=0.6)
                        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                        col.at(
                            loc, file, ("models", i), f"unknown model {m!r}: not in specs/models.yaml nor the zoo{hint}"
                        )
            else:
                built = v_model(m, loc, file, ("models", i))
            ok &= built is not None
            models.append(built)
            if built is not None:
                if built.name in first_model:
                    col.at(
                        loc,
                        file,
                        ("models", i),
                        f"model name {built.name!r} appears twice (first at models[{first_model[built.name]}]); "
                        "give one of them another name: {name: other, arch: ...}",
                    )
                    ok = False
                    continue
                first_model[built.name] = i
                model_lines[built.name] = loc.where(("models", i))[0]
        resolved["models"] = models
    elif raw_models is not None:
        col.at(loc, file, ("models",), "expected a list of models")
        ok = False

    parsed: list[ParsedExpectation] = []
    raw_expect = data.get("expect")
    if isinstance(raw_expect, list):
        for i, entry in enumerate(raw_expect):
            pa = ("expect", i)
            if not isinstance(entry, dict) or len(entry) != 1:
                col.at(loc, file, pa, "each expectation is a one-key mapping like {target-accuracy: {min: 0.5}}")
                ok = False
                continue
            ((kind, params),) = entry.items()
            if kind not in EXPECTATIONS:
                col.at(loc, file, pa + (kind,), EXPECTATIONS.unknown_message(kind), key=True)
                ok = False
                continue
            exp = EXPECTATIONS.get(kind)()
            value = params if params is not None else {}
            # Some kinds (attack) validate against a model that depends on the value (the attack's own fields).
            model_cls = exp.params_model(value) if hasattr(exp, "params_model") else exp.Params
            validated = _validate(col, model_cls, value, loc, file, pa + (kind,))
            if validated is None:
                ok = False
                continue
            parsed.append(ParsedExpectation(kind, validated, i, loc.where(pa)[0]))
        resolved["expect"] = list(raw_expect)
    elif raw_expect is not None:
        col.at(loc, file, ("expect",), "expected a list of expectations")
        ok = False

    raw_variants = data.get("variants")
    suite_chains = _parse_variants(col, loc, file, raw_variants, ("variants",))
    ok &= suite_chains is not None
    suite_chains = suite_chains or {}
    variants_by_model: dict[str, dict[str, list[ParsedStep]]] = {}
    for m in models:
        if m is None:
            continue
        own = model_variants.get(m.name, {})
        for clash in sorted(set(own) & set(suite_chains)):
            col.at(
                loc,
                file,
                ("variants", clash),
                f"variant {clash!r} is defined both here and in model {m.name!r}",
                key=True,
            )
        variants_by_model[m.name] = {**suite_chains, **own}

    # Validate the rest (top-level scalars, names, presence) against the Suite model.
    suite = None
    if ok and not col.errors:
        try:
            suite = Suite.model_validate(resolved)
        except ValidationError as exc:
            col.validation(exc, loc, file, (), Suite)
    else:
        # Still report problems in the simple top-level fields alongside the others.
        probe = {k: v for k, v in data.items() if k in ("suite", "source", "targets")}
        for key, model_field in (("suite", "suite"), ("source", "source"), ("targets", "targets")):
            if key in probe:
                try:
                    annotation = Suite.model_fields[model_field].annotation
                    TypeAdapter(annotation).validate_python(probe[key])
                except ValidationError as exc:
                    col.validation(exc, loc, file, (key,), annotation)
        for key in ("source", "models", "expect"):
            if key not in data:
                col.at(loc, file, (), f"missing required key {key!r}")

    domains: list[str] = []
    if dataset is not None:
        source = data.get("source") if isinstance(data.get("source"), str) else None
        targets = (
            [t for t in data.get("targets") or [] if isinstance(t, str)]
            if isinstance(data.get("targets"), list)
            else []
        )
        all_variants = sorted({v for chains in variants_by_model.values() for v in chains})
        domains, classes = _check_domains(
            col,
            loc,
            file,
            dataset,
            source,
            targets,
            parsed,
            [m.name for m in models if m is not None],
            all_variants,
        )
        if domains:
            _check_step_targets(col, variants_by_model, domains, source)
        if classes:
            _check_chains(col, [m for m in models if m is not None], variants_by_model, classes)
            _check_weights(col, [m for m in models if m is not None], weights_at, classes)
            for e in parsed:
                exp = EXPECTATIONS.get(e.kind)()
                for message in exp.check(e.params, classes) if hasattr(exp, "check") else []:
                    col.at(loc, file, ("expect", e.index, e.kind), message)
    if col.errors:
        raise SpecErrors(col.errors)
    assert suite is not None
    targets = suite.targets or [d for d in domains if d != suite.source]
    suite = suite.model_copy(update={"targets": targets})
    return LoadedSuite(p, suite, parsed, domains, model_lines, variants_by_model, classes)


def dataset_domains(data: SynthData | FolderData, suite_dir: Path) -> tuple[list[str], int]:
    """Domain names and class count of a dataset spec; cheap (directory listing at most)."""
    from ..data import open_dataset

    ds = open_dataset(data, suite_dir)
    return list(ds.domains), len(ds.classes)


def _check_domains(
    col: _Collector,
    loc: Located,
    file: str,
    dataset: Any,
    source: str | None,
    targets: list[str],
    parsed: list[ParsedExpectation],
    model_names: list[str],
    variant_names: list[str],
) -> tuple[list[str], int]:
    try:
        domains, classes = dataset_domains(dataset, Path(file).resolve().parent)
    except (DataError, RegistryError, ValueError) as exc:
        col.at(loc, file, ("data",), str(exc))
        return [], 0

    def check(name: str, path: tuple) -> None:
        problem = domain_problem(name, domains)
        if problem is not None:
            col.at(loc, file, path, problem)

    if source is not None:
        check(source, ("source",))
    for i, t in enumerate(targets):
        check(t, ("targets", i))
        if t == source:
            col.at(loc, file, ("targets", i), f"target domain {t!r} is the source domain")
    known_v = [BASELINE, *variant_names]
    for e in parsed:
        base = ("expect", e.index, e.kind)
        if isinstance(getattr(e.params, "domain", None), str):
            check(e.params.domain, base + ("domain",))
        for j, d in enumerate(getattr(e.params, "domains", None) or []):
            check(d, base + ("domains", j))
            if d == source and e.kind in ("target-accuracy", "drop-vs-source"):
                col.at(loc, file, base + ("domains", j), f"{d!r} is the source domain; use source-accuracy for it")
        for j, n in enumerate(getattr(e.params, "models", None) or []):
            if n not in model_names:
                col.at(
                    loc, file, base + ("models", j), f"unknown model {n!r} (the suite has: {_fmt_list(model_names)})"
                )
        for j, n in enumerate(getattr(e.params, "variants", None) or []):
            if n not in known_v:
                col.at(
                    loc, file, base + ("variants", j), f"unknown variant {n!r} (the suite has: {_fmt_list(known_v)})"
                )
        versus = getattr(e.params, "versus", None)
        if versus is not None and versus not in known_v:
            col.at(loc, file, base + ("versus",), f"unknown variant {versus!r} (the suite has: {_fmt_list(known_v)})")
    return domains, classes
