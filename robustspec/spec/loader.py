"""Load a suite file: YAML -> named blocks resolved from ``specs/`` -> validated :class:`Suite`.

Every problem becomes a :class:`SpecError` at ``file:line:col`` with a field path, and all the problems of
a file are raised together as :class:`SpecErrors`: each part of the suite (data, training, each model, each
variant, each expectation, the top-level fields) is validated on its own, so one broken part hides
nothing else, and a part that depends on a broken one is not reported again. Blocks taken from
``specs/*.yaml`` are validated where they are written, so an error in a shared block points into the
shared file. The modules behind it: :mod:`.yaml_loader` (safe YAML with positions), :mod:`.locate`
(errors to positions), :mod:`.resolve` (named blocks), :mod:`.checks` (references, chains, selections).
Nothing here imports torch for the embedded dataset and the zoo's models.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import TypeAdapter

from ..errors import DataError, ModelError, RegistryError, SpecError, SpecErrors
from .checks import SuiteFacts, check_chains, check_refs, check_selections, check_weights, domain_problem
from .locate import Problems
from .resolve import SPEC_KINDS, SpecsDir, find_specs_dir
from .schema import BASELINE, DataParams, ModelSpec, Name, Suite, TrainRecipe
from .yaml_loader import Located, load_yaml_file

__all__ = [
    "LoadedSuite",
    "ParsedExpectation",
    "ParsedStep",
    "load_suite",
    "find_specs_dir",
    "SPEC_KINDS",
    "dataset_domains",
    "domain_problem",
]

_NAME_ADAPTER: TypeAdapter[Any] = TypeAdapter(Name)


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

    kind: str  # the YAML key: prune, distill, quantize, lowrank, sparsify, coral, adabn
    params: Any
    file: str
    line: int
    col: int
    path: tuple
    #: the YAML it was read from, so a problem found later points at the field itself
    where: Located | None = field(default=None, compare=False, repr=False)


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


def dataset_domains(data: DataParams, suite_dir: Path, source: str | None = None) -> tuple[list[str], int]:
    """Domain names and class count of a dataset spec; cheap (directory listing at most)."""
    from ..data import open_dataset

    ds = open_dataset(data, suite_dir, source=source)
    return list(ds.domains), len(ds.classes)


def _datasets() -> Any:
    from ..data import DATASETS

    return DATASETS


def _bare_dataset(name: str) -> Any | None:
    """The parameters a dataset name written bare (``data: office-synth``) stands for: its defaults, when
    the dataset has defaults for every parameter (an image tree needs its root)."""
    from pydantic import ValidationError

    if name not in _datasets():
        return None
    try:
        return _datasets().get(name).Params()
    except ValidationError:
        return None


def _builtin_models() -> list[str]:
    """Model names a suite may write bare: the registry's and torchvision's classification zoo."""
    from ..models.zoo import MODELS, TORCHVISION_CLASSIFIERS

    return sorted(set(MODELS.names()) | set(TORCHVISION_CLASSIFIERS))


@cache
def _field_adapter(key: str) -> tuple[TypeAdapter[Any], Any]:
    """A validator of one top-level field of :class:`Suite`, with its constraints (built once per process)."""
    info = Suite.model_fields[key]
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return TypeAdapter(annotation), annotation


def _default_dataset() -> str:
    from ..data import default_dataset

    return default_dataset()


class _Part:
    """Where one part of the suite is written: its YAML, file and path."""

    __slots__ = ("loc", "file", "path")

    def __init__(self, loc: Located, file: str, path: tuple) -> None:
        self.loc, self.file, self.path = loc, file, path

    def child(self, *parts: Any) -> _Part:
        return _Part(self.loc, self.file, self.path + parts)


class _SuiteReader:
    """Reads one suite file; each method validates one part and reports its problems."""

    def __init__(self, path: Path, specs_dir: Path | None) -> None:
        self.path = path
        self.file = str(path)
        self.problems = Problems()
        self.loc = load_yaml_file(path)  # raises SpecErrors on YAML problems
        self.specs = SpecsDir(self.problems, specs_dir)
        self.weights_at: dict[str, tuple[Located, str, tuple]] = {}
        self.model_variants: dict[str, dict[str, list[ParsedStep]]] = {}
        self.model_lines: dict[str, int] = {}
        #: names of models (or variants blocks) that exist but are broken: references to them are not
        #: reported again, and checks that need their structure are skipped
        self.broken: set[str] = set()
        self.variants_broken = False

    def at(self, path: tuple, message: str, *, key: bool = False) -> None:
        self.problems.at(self.loc, self.file, path, message, key=key)

    @property
    def top(self) -> _Part:
        return _Part(self.loc, self.file, ())

    # -- the whole file ------------------------------------------------------------------------------

    def read(self) -> LoadedSuite:
        data = self.loc.data
        if not isinstance(data, dict):
            raise SpecErrors(
                [SpecError(self.file, *self.loc.where(()), (), "a suite is a mapping with keys " + _TOP_KEYS)]
            )
        aliases = self._check_top_keys(data)
        scalars = self._scalars(data)
        dataset = self._named("datasets", data.get("data", _default_dataset()), self.top.child("data"))
        recipe = self._suite_recipe(data)
        models = self._models(data.get("models"))
        suite_chains = self._variants(data.get("variants"), self.top.child("variants"))
        expectations = self._expectations(data.get("expect"))
        variants = self._merge_variants(models, suite_chains)

        domains: list[str] = []
        classes = 0
        source = scalars.get("source")
        if dataset is not None:
            domains, classes = self._dataset_facts(dataset, source)
        targets = scalars.get("targets") or []
        facts = SuiteFacts(
            domains, source, targets, [m for m in models if m is not None and m.name not in self.broken], variants
        )
        facts.unchecked_models = set(self.broken)
        facts.unchecked_variants = self.variants_broken or suite_chains is None
        check_refs(self.problems, self.loc, self.file, expectations, facts)
        if classes:
            check_chains(self.problems, facts, classes)
            check_weights(self.problems, facts.models, self.weights_at, classes)
            self._expectation_checks(expectations, classes)
        complete = dataset is not None and None not in models and not self.broken and "source" in scalars
        all_targets = targets or [d for d in domains if d != source]
        if complete and suite_chains is not None and not self.problems.errors:
            check_selections(self.problems, self.loc, self.file, expectations, facts, all_targets)
        if self.problems.errors:
            raise SpecErrors(self.problems.errors)

        resolved = {k: data[k] for k in aliases if k in data}
        resolved.update(scalars)
        resolved.update(data=dataset, models=models, expect=list(data["expect"]))
        if recipe is not None:
            resolved["train"] = recipe
        resolved["targets"] = all_targets
        suite = self.problems.validate(Suite, resolved, self.loc, self.file, ())
        if suite is None:
            raise SpecErrors(self.problems.errors)
        return LoadedSuite(self.path, suite, expectations, domains, self.model_lines, variants, classes)

    def _check_top_keys(self, data: dict[str, Any]) -> set[str]:
        aliases = {info.alias or name for name, info in Suite.model_fields.items()}
        for key in data:
            if key not in aliases:
                close = difflib.get_close_matches(str(key), sorted(aliases), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(sorted(aliases))})"
                self.at((key,), f"unknown key {key!r}{hint}", key=True)
        for key in ("source", "models", "expect"):
            if key not in data:
                self.at((), f"missing required key {key!r}")
        return aliases

    def _scalars(self, data: dict[str, Any]) -> dict[str, Any]:
        """``suite``, ``source`` and ``targets``, each validated on its own."""
        out: dict[str, Any] = {}
        values = {
            "suite": data.get("suite", self.path.stem),
            **{k: data[k] for k in ("source", "targets") if k in data},
        }
        for key, value in values.items():
            adapter, annotation = _field_adapter(key)
            checked = self.problems.validate(adapter, value, self.loc, self.file, (key,), annotation)
            if checked is not None:
                out[key] = checked
        return out

    # -- named blocks: data, training recipes, models ----------------------------------------------------

    def _named(self, kind: str, value: Any, where: _Part) -> Any | None:
        """A name (from specs/ or built in) or an inline mapping, validated where it is written."""
        what = {"datasets": "dataset", "training": "training recipe", "models": "model"}[kind]
        if isinstance(value, str):
            block = self.specs.lookup(kind, value)
            if block is not None:
                return self._block(kind, block.value, _Part(block.loc, block.file, block.path), name=value)
            builtin = self._builtin(kind, value, where)
            if builtin is not None:
                return builtin
            label = "the zoo" if kind == "models" else "built in"
            self.problems.at(
                where.loc,
                where.file,
                where.path,
                self.specs.unresolved(kind, value, what, self._builtin_names(kind), label),
            )
            return None
        return self._block(kind, value, where)

    def _builtin_names(self, kind: str) -> list[str]:
        if kind == "models":
            return _builtin_models()
        if kind == "datasets":
            return [name for name in _datasets().names() if _bare_dataset(name) is not None]
        return ["default"]

    def _builtin(self, kind: str, name: str, where: _Part) -> Any | None:
        if kind == "datasets":
            return _bare_dataset(name)
        if kind == "training":
            return TrainRecipe() if name == "default" else None
        if name in _builtin_models() or ":" in name:
            return self._model({"name": name.split(":")[-1], "arch": name}, where)
        return None

    def _block(self, kind: str, value: Any, where: _Part, name: str | None = None) -> Any | None:
        if kind == "datasets":
            return self._data(value, where)
        if kind == "training":
            if not isinstance(value, dict):
                self._wrong_type(where, "a training recipe name or mapping", value)
                return None
            return self.problems.validate(TrainRecipe, value, where.loc, where.file, where.path)
        if not isinstance(value, dict):
            self._wrong_type(where, "a model name or mapping", value)
            return None
        value = dict(value)
        if name is not None:
            value.setdefault("name", name)
        return self._model(value, where)

    def _wrong_type(self, where: _Part, expected: str, value: Any) -> None:
        self.problems.at(where.loc, where.file, where.path, f"expected {expected}, got {type(value).__name__}")

    def _data(self, value: Any, where: _Part) -> Any | None:
        if not isinstance(value, dict):
            self._wrong_type(where, "a dataset name or a mapping", value)
            return None
        from ..data import data_adapter, data_union, dataset_name

        spec = self.problems.validate(data_adapter(), value, where.loc, where.file, where.path, data_union())
        if spec is None:
            return None
        # A dataset's paths are relative to the file they are written in; ~ and $VARS are expanded.
        here = Path(where.file).resolve().parent
        resolve = getattr(_datasets().get(dataset_name(spec)), "resolve", None)
        if callable(resolve):
            return resolve(spec, here)
        paths = {}
        for key in getattr(_datasets().get(dataset_name(spec)), "paths", ()):
            if isinstance(getattr(spec, key), str):
                path = Path(os.path.expandvars(os.path.expanduser(getattr(spec, key))))
                paths[key] = str((here / path).resolve())
        return spec.model_copy(update=paths) if paths else spec

    def _suite_recipe(self, data: dict[str, Any]) -> Any | None:
        if "train" in data:
            return self._named("training", data["train"], self.top.child("train"))
        block = self.specs.lookup("training", "default")
        if block is None:
            return None
        return self._block("training", block.value, _Part(block.loc, block.file, block.path))

    def _model(self, value: dict[str, Any], where: _Part) -> ModelSpec | None:
        """One model: its fields, its own training recipe and variants, its architecture and weights."""
        value = dict(value)
        recipe_ok = True
        if isinstance(value.get("train"), str):
            recipe = self._named("training", value["train"], where.child("train"))
            recipe_ok = recipe is not None
            if recipe_ok:
                value["train"] = recipe
            else:
                value.pop("train")  # reported; the rest of the model is still checked
        if "arch" not in value and isinstance(value.get("name"), str) and value["name"] in _builtin_models():
            value["arch"] = value["name"]
        raw_variants = value.pop("variants", None)
        model = self.problems.validate(ModelSpec, value, where.loc, where.file, where.path)
        chains = self._variants(raw_variants, where.child("variants"))
        if chains is None:
            self.variants_broken = True
        if model is None:
            if isinstance(value.get("name"), str):
                self.broken.add(value["name"])
            return None
        if raw_variants is not None:
            model = model.model_copy(update={"variants": raw_variants})
        arch_ok = self._arch(model, where.child("arch"))
        if model.weights is not None:
            from ..models.weights import resolve_weights

            try:
                wpath = resolve_weights(model.weights, Path(where.file).resolve().parent)
            except ModelError as exc:
                self.problems.at(where.loc, where.file, where.path + ("weights",), str(exc))
            else:
                model = model.model_copy(update={"weights": str(wpath)})
                self.weights_at[model.name] = (where.loc, where.file, where.path + ("weights",))
        if chains is not None:
            self.model_variants[model.name] = chains
        if not arch_ok or not recipe_ok:
            # Kept, so that its variants stay known to the expectations that name them, but nothing that
            # needs its structure is checked.
            self.broken.add(model.name)
        return model

    def _arch(self, model: ModelSpec, where: _Part) -> bool:
        """The architecture resolves, its params fit its builder, and the prune steps of this file can prune it.

        A factory's module is looked for from the file the model is written in and from the suite's
        directory up to the rootdir (:func:`~robustspec.models.factories.search_dirs`); zoo names outside
        the static registry import torchvision to be resolved. Params are checked against the builder's
        signature (:func:`~robustspec.models.zoo.arch_params_problems`), each problem at its key or value.
        A model outside the static registry that a ``prune`` step of this file applies to gets a trial prune
        on a tiny input (:func:`~robustspec.compress.prune.probe_problem`), reported at the first such step.
        A distillation student's factory is imported the same way, for the distill step's own check.
        """
        import json

        from ..models.factories import import_factory, is_factory_ref, search_dirs
        from ..models.zoo import arch_params_problems, resolve_arch

        try:
            arch = resolve_arch(model.arch, search_dirs(where.file, self.file))
        except (ModelError, RegistryError) as exc:
            self.problems.at(where.loc, where.file, where.path, str(exc))
            return False
        spec = where.path[:-1]
        problems = arch_params_problems(arch, model.params)
        for p in problems:
            path = spec + ("params",) + ((p.name,) if p.name is not None else ())
            self.problems.at(where.loc, where.file, path, p.message, key=p.at_key)
        suite_variants = self.loc.data.get("variants") if isinstance(self.loc.data, dict) else None
        prune_steps = []
        for loc, file, base, raw in (
            (where.loc, where.file, spec + ("variants",), model.variants),
            (self.loc, self.file, ("variants",), suite_variants),
        ):
            for vname, chain in raw.items() if isinstance(raw, dict) else ():
                for j, step in enumerate(chain if isinstance(chain, list) else [chain]):
                    if isinstance(step, dict) and "prune" in step:
                        at = base + (vname,) + ((j,) if isinstance(chain, list) else ()) + ("prune",)
                        prune_steps.append((loc, file, at))
                    distill = step.get("distill") if isinstance(step, dict) else None
                    student = distill.get("student") if isinstance(distill, dict) else distill
                    if isinstance(student, str) and is_factory_ref(student):
                        try:  # found like the model's own factory; the distill step reports its problems
                            import_factory(student, search_dirs(file, self.file))
                        except ModelError:
                            pass
        if problems or arch.kind == "zoo":
            return not problems
        if prune_steps:
            from ..compress.prune import probe_problem

            key = json.dumps([model.arch, model.params], sort_keys=True, default=str)
            problem = probe_problem(key, lambda: arch.build(num_classes=10, **model.params))
            if problem is not None:
                loc, file, at = prune_steps[0]
                self.problems.at(loc, file, at, f"model {model.name!r} cannot be pruned: {problem}", key=True)
        return True

    def _models(self, raw: Any) -> list[ModelSpec | None]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.at(("models",), "expected a list of models")
            return [None]
        if not raw:
            self.at(("models",), "a suite needs at least one model")
        models: list[ModelSpec | None] = []
        first: dict[str, int] = {}
        for i, m in enumerate(raw):
            built = self._named("models", m, self.top.child("models", i))
            if built is None and isinstance(m, str):
                self.broken.add(m)
            if built is not None and built.name in first:
                self.at(
                    ("models", i),
                    f"model name {built.name!r} appears twice (first at models[{first[built.name]}]); "
                    "give one of them another name: {name: other, arch: ...}",
                )
                continue
            models.append(built)
            if built is not None:
                first[built.name] = i
                self.model_lines[built.name] = self.loc.where(("models", i))[0]
        return models

    # -- variants ------------------------------------------------------------------------------------

    def _variants(self, raw: Any, where: _Part) -> dict[str, list[ParsedStep]] | None:
        """A ``variants:`` mapping (name -> step or list of steps): the chains that are valid, so each is
        still checked (its chain rules, its references); a broken one is reported and left out, and marks
        the suite's variants as incomplete (a reference to its name is not reported again). None when the
        block is not a mapping."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.problems.at(
                where.loc, where.file, where.path, "expected a mapping of variant name -> compression step(s)"
            )
            return None
        ok = True
        chains: dict[str, list[ParsedStep]] = {}
        for name, chain in raw.items():
            here = where.child(name)
            if name == BASELINE:
                self.problems.at(
                    here.loc,
                    here.file,
                    here.path,
                    f"'{BASELINE}' is the uncompressed model and cannot be redefined as a variant",
                    key=True,
                )
                ok = False
                continue
            if not self.problems.validate_key(_NAME_ADAPTER, name, here.loc, here.file, here.path):
                ok = False
                continue
            steps = self._chain(chain, here)
            if steps is None:
                ok = False
                continue
            chains[str(name)] = steps
        if not ok:
            self.variants_broken = True
        return chains

    def _chain(self, chain: Any, where: _Part) -> list[ParsedStep] | None:
        from ..compress import COMPRESSIONS

        steps = chain if isinstance(chain, list) else [chain]
        if not steps:
            self.problems.at(where.loc, where.file, where.path, "a variant needs at least one compression step")
            return None
        parsed: list[ParsedStep] = []
        ok = True
        for j, step in enumerate(steps):
            here = where.child(j) if isinstance(chain, list) else where
            if not isinstance(step, dict) or len(step) != 1:
                self.problems.at(
                    here.loc,
                    here.file,
                    here.path,
                    "each compression step is a one-key mapping like {quantize: ptsq} "
                    f"(steps: {', '.join(COMPRESSIONS.names())})",
                )
                ok = False
                continue
            ((kind, value),) = step.items()
            spath = here.path + (kind,)
            if kind not in COMPRESSIONS:
                self.problems.at(here.loc, here.file, spath, COMPRESSIONS.unknown_message(kind), key=True)
                ok = False
                continue
            impl = COMPRESSIONS.get(kind)()
            params = self.problems.validate(
                impl.Params, impl.parse(value if value is not None else {}), here.loc, here.file, spath
            )
            if params is None:
                ok = False
                continue
            resolve = getattr(impl, "resolve", None)
            if resolve is not None:  # a step that names files resolves them next to the suite file
                params, found = resolve(params, Path(here.file).resolve().parent)
                for field_name, message in found:
                    self.problems.at(here.loc, here.file, spath + (field_name,), message)
                if found:
                    ok = False
                    continue
            line, col = here.loc.where(spath)
            parsed.append(ParsedStep(kind, params, here.file, line, col, spath, here.loc))
        return parsed if ok else None

    def _merge_variants(
        self, models: list[ModelSpec | None], suite_chains: dict[str, list[ParsedStep]] | None
    ) -> dict[str, dict[str, list[ParsedStep]]]:
        suite_chains = suite_chains or {}
        merged: dict[str, dict[str, list[ParsedStep]]] = {}
        for m in models:
            if m is None:
                continue
            own = self.model_variants.get(m.name, {})
            for clash in sorted(set(own) & set(suite_chains)):
                self.at(
                    ("variants", clash), f"variant {clash!r} is defined both here and in model {m.name!r}", key=True
                )
            merged[m.name] = {**suite_chains, **own}
        return merged

    # -- expectations --------------------------------------------------------------------------------

    def _expectations(self, raw: Any) -> list[ParsedExpectation]:
        from ..expect import EXPECTATIONS

        if raw is None:
            return []
        if not isinstance(raw, list):
            self.at(("expect",), "expected a list of expectations")
            return []
        if not raw:
            self.at(("expect",), "a suite needs at least one expectation")
        parsed: list[ParsedExpectation] = []
        for i, entry in enumerate(raw):
            path = ("expect", i)
            if not isinstance(entry, dict) or len(entry) != 1:
                self.at(path, "each expectation is a one-key mapping like {target-accuracy: {min: 0.5}}")
                continue
            ((kind, params),) = entry.items()
            if kind not in EXPECTATIONS:
                self.at(path + (kind,), EXPECTATIONS.unknown_message(kind), key=True)
                continue
            expectation = EXPECTATIONS.get(kind)()
            value = params if params is not None else {}
            # Some kinds (attack) validate against a model that depends on the value (the attack's own fields).
            model = expectation.params_model(value) if hasattr(expectation, "params_model") else expectation.Params
            validated = self.problems.validate(model, value, self.loc, self.file, path + (kind,))
            if validated is not None:
                parsed.append(ParsedExpectation(kind, validated, i, self.loc.where(path)[0]))
        return parsed

    def _expectation_checks(self, expectations: list[ParsedExpectation], classes: int) -> None:
        from ..expect import EXPECTATIONS

        for e in expectations:
            expectation = EXPECTATIONS.get(e.kind)()
            for message in expectation.check(e.params, classes) if hasattr(expectation, "check") else []:
                self.at(("expect", e.index, e.kind), message)

    # -- the dataset ---------------------------------------------------------------------------------

    def _dataset_facts(self, dataset: Any, source: str | None) -> tuple[list[str], int]:
        try:
            return dataset_domains(dataset, self.path.resolve().parent, source)
        except DataError as exc:
            # A DataError listing many problems (an image tree's bad files) has one message per problem:
            # each is reported on its own, so none is cut by the length limit of a message.
            for message in exc.messages:
                self.at(("data", *exc.field), message)
            return [], 0
        except (RegistryError, ValueError) as exc:
            self.at(("data",), str(exc))
            return [], 0


_TOP_KEYS = ", ".join(info.alias or name for name, info in Suite.model_fields.items())


def load_suite(path: str | os.PathLike, specs_dir: str | os.PathLike | None = None) -> LoadedSuite:
    """Load and validate one suite file; raise :class:`SpecErrors` with every problem found."""
    p = Path(path)
    directory = Path(specs_dir) if specs_dir is not None else find_specs_dir(p.resolve())
    return _SuiteReader(p, directory).read()
