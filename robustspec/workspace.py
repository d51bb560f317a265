"""Builds what checks need (data, trained models, evaluations) through the artifact store, once each.

Artifact graph and content keys::

    data(dataset recipe, domain)                       -> uint8 images + labels, train and test
    model(arch, params, weights, normalisation, recipe) <- data(source)
    eval(test split)                                    <- model, data(domain)
    eval(validation split)                              <- model, data(domain)     (robustspec search)

    variant step(kind, params)                          <- model, or the previous step of its chain
    candidate(step, recipe)                             <- the step's parent       (a search's candidates)
    metrics(parameters, bytes, MACs)                    <- model or variant

A key hashes the canonical recipe, the parents' keys and the builder's version, so changing a threshold
changes no key, changing a recipe rebuilds that artifact and what depends on it only, and variants whose
chains share a prefix share the prefix's artifacts.

torch is imported only where something is built or a model is restored (the build closures, the
``trained``/``model``/``splits`` loaders): keys, and every stored number a check reads (evaluations,
metrics, attacks: JSON artifacts), need none, so a warm run that only judges stored numbers never
imports it. Evaluations store each image's correctness as :func:`~robustspec.outcomes.encode_outcomes`'s
string and its true and predicted class (:func:`~robustspec.outcomes.encode_classes`), from which the
per-class numbers (:class:`~robustspec.confusion.Confusion`) are read without torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .compress import COMPRESSIONS
from .compress.base import StepContext
from .compress.search import VALIDATION_FRACTION  # the source images robustspec search scores on
from .confusion import Confusion
from .data import open_dataset, split_from_state, split_to_state
from .errors import ArtifactError, NotStored, StructuralError
from .evaluate import predict
from .expect import Accuracy
from .expect.adaptation import UNADAPTED_SUFFIX, without_adaptation
from .fingerprint import CORE_LIBRARIES, library_versions, source_fingerprint
from .metrics import is_program, is_quantized, macs, nonzero_parameters, parameter_count, stored_bytes
from .models import build_network
from .models.weights import load_local_weights, weights_digest
from .outcomes import decode_classes, decode_outcomes, encode_classes, encode_outcomes
from .progress import Timer, report
from .spec.loader import LoadedSuite, ParsedStep
from .spec.schema import BASELINE, ModelSpec, Suite, TrainRecipe
from .store import Store, content_key
from .train import train_supervised

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .data.base import DomainDataset, Split

__all__ = ["Workspace", "BUILDER_VERSIONS", "eval_value", "requested_device"]

#: Bump one of these when the code that builds that kind of artifact changes its output.
#: eval 2: each image's true and predicted class are stored too (version 1 kept correctness only, from
#: which the predicted classes cannot be recovered, so its evaluations are rebuilt, not converted).
BUILDER_VERSIONS = {
    "data": "1",
    "model": "1",
    "eval": "2",
    "variant": "1",
    "metrics": "2",
    "attack": "4",
    "candidate": "1",
}

#: The fields of an evaluation artifact (JSON).
EVAL_FIELDS = ("n", "correct", "outcomes", "classes", "labels", "predicted")


def eval_value(stored: Any, items: str) -> dict[str, Any]:
    """An evaluation artifact, checked: ``{"n", "correct", "outcomes", "classes", "labels", "predicted"}``.

    ``outcomes`` is :func:`~robustspec.outcomes.encode_outcomes` of each test image's correctness, for
    ``items``; ``classes`` the number of classes; ``labels`` and ``predicted`` each image's true and
    predicted class (:func:`~robustspec.outcomes.encode_classes`), in the split's order. Evaluations of an
    older layout live under keys of an older builder version and are never read; a value without these
    fields under a current key is a broken artifact (a ValueError, reported with its key).
    """
    if not isinstance(stored, dict) or any(k not in stored for k in EVAL_FIELDS):
        raise ValueError("not an evaluation with predicted classes: remove it to rebuild it")
    n, classes = stored["n"], stored["classes"]
    decoded = decode_outcomes(stored["outcomes"])
    labels, predicted = decode_classes(stored["labels"], n, classes), decode_classes(stored["predicted"], n, classes)
    if decoded is None or decoded[0] != items or len(decoded[1]) != n or labels is None or predicted is None:
        raise ValueError(f"its outcomes and classes are not those of {n} test images of {items}")
    if any(ok != (t == p) for ok, t, p in zip(decoded[1], labels, predicted)) or sum(decoded[1]) != stored["correct"]:
        raise ValueError("its outcomes disagree with its true and predicted classes")
    return stored


#: Device nodes of the accelerators torch's ``cuda`` may drive (NVIDIA, WSL's GPU, ROCm): with none of
#: them, ``auto`` is the CPU, and that is known without importing torch.
_ACCELERATOR_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/dxg", "/dev/kfd")


def requested_device(name: Any) -> Any:
    """``name``, or for ``"auto"`` on a machine without an accelerator's device nodes, ``"cpu"``; else
    ``auto`` stays to be resolved by torch when something is built."""
    if isinstance(name, str) and name == "auto" and not any(os.path.exists(p) for p in _ACCELERATOR_NODES):
        return "cpu"
    return name


@dataclass
class Workspace:
    """One per process: a store, a device, and in-memory memos so nothing is loaded twice.

    ``device`` is what to build and evaluate on: a ``torch.device`` or its name, ``"auto"`` for cuda when
    present (:func:`requested_device`). It becomes a ``torch.device`` when torch is first needed, and
    ``torch_threads`` (the process's intra-op threads) is applied then: not at start-up, so a process
    that only reads stored numbers never imports torch.
    """

    store: Store
    device: Any = "cpu"
    #: Torch threads while building. Training's float reductions depend on the thread count (measured in
    #: docs/store.md, "Reproducibility"), so every build runs with exactly :meth:`build_thread_count`
    #: threads, whatever ``-n`` is, and a count other than 1 is part of the trained model's key (and so of
    #: every artifact built from it). None (``auto``): the process's share of the cores.
    build_threads: int | None = 1
    #: The process's torch threads, set when torch is first needed (None: torch's default).
    torch_threads: int | None = None
    #: False where an executor builds elsewhere (:mod:`robustspec.executors`): an artifact missing from the
    #: store is then :class:`NotStored`, never built in this process.
    builds_here: bool = True
    _torch_ready: bool = field(default=False, repr=False)
    _datasets: dict[str, DomainDataset] = field(default_factory=dict)
    _splits: dict[str, dict[str, Split]] = field(default_factory=dict)
    _models: dict[str, nn.Module] = field(default_factory=dict)
    _evals: dict[str, dict[str, Any]] = field(default_factory=dict)
    _metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    _accuracies: dict[str, Accuracy] = field(default_factory=dict)
    #: Keys by the identity of the (immutable, loaded once) suite and model objects they were computed
    #: for; each entry holds those objects, so an id is not reused while its entry lives.
    _keys: dict[tuple[Any, ...], tuple[Any, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.device = requested_device(self.device)

    # -- keys (cheap; no data is touched) ----------------------------------------------------------------

    def dataset(self, suite: Suite) -> DomainDataset:
        spec_key = suite.data.model_dump_json()
        if spec_key not in self._datasets:
            self._datasets[spec_key] = open_dataset(suite.data, source=suite.source)
        return self._datasets[spec_key]

    def _memo(self, what: str, objects: tuple[Any, ...], extra: tuple[Any, ...], compute: Any) -> Any:
        """``compute()`` once per (what, the objects' identities, extra) in this workspace."""
        memo_key = (what, *map(id, objects), *extra)
        hit = self._keys.get(memo_key)
        if hit is None:
            hit = self._keys[memo_key] = (objects, compute())
        return hit[1]

    def data_key(self, suite: Suite, domain: str) -> str:
        """A domain's data; a derived domain (``amazon+gaussian_noise@3``) is a child of its base's data."""
        return self._memo("data", (suite,), (domain,), lambda: self._data_key(suite, domain))

    def _data_key(self, suite: Suite, domain: str) -> str:
        from .corrupt.domain import SEED, VERSION, parse_domain

        base, corruption, severity = parse_domain(domain)
        if corruption is not None:
            recipe = {"corruption": corruption, "severity": severity, "seed": SEED}
            return content_key("data", recipe, (self.data_key(suite, base),), VERSION)
        ds = self.dataset(suite)
        # A dataset that can say what decides one domain keys it by that alone (imagefolder: a target's
        # split is not the source's data); else by the whole dataset's recipe and the domain's name.
        domain_recipe = getattr(ds, "domain_recipe", None)
        recipe = domain_recipe(domain) if callable(domain_recipe) else {"dataset": ds.recipe(), "domain": domain}
        return content_key("data", recipe, (), BUILDER_VERSIONS["data"])

    def split_counts(self, suite: Suite, domain: str) -> dict[str, Any] | None:
        """How a domain is split, ``{"protocol", "train", "test"}``, when its dataset says (no torch, no
        image read); a derived domain (``webcam+fog@3``) is split as its base."""
        from .corrupt.domain import parse_domain

        counts = getattr(self.dataset(suite), "split_counts", None)
        return counts(parse_domain(domain)[0]) if callable(counts) else None

    def build_thread_count(self) -> int:
        """The torch threads every build runs with (known without torch): ``build_threads``, or for ``auto``
        the process's share of the cores (``torch_threads``, else every core the process may run on)."""
        if self.build_threads is not None:
            return self.build_threads
        if self.torch_threads is not None:
            return self.torch_threads
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def model_recipe(self, suite: Suite, model: ModelSpec) -> dict[str, Any]:
        """Everything that decides a trained model: recipe, the factory's source, weights' bytes, libraries,
        and the build's torch threads unless 1 (the default's keys are as they always were)."""
        recipe: TrainRecipe = model.train or suite.train
        threads = self.build_thread_count()
        return {
            "arch": model.arch,
            "params": model.params,
            "weights": weights_digest(model.weights) if model.weights else None,
            "normalize": model.normalize.model_dump(mode="json"),
            "classes": len(self.dataset(suite).classes),
            "source": suite.source,
            # resources (what a build asks of a Ray cluster) decide where it runs, not what it builds.
            "train": recipe.model_dump(mode="json", exclude={"resources"}),
            "code": source_fingerprint(model.arch.split(":")[0]) if ":" in model.arch else None,
            "libraries": library_versions(*CORE_LIBRARIES),
            **({"threads": threads} if threads != 1 else {}),
        }

    def model_key(self, suite: Suite, model: ModelSpec) -> str:
        return content_key(
            "model", self.model_recipe(suite, model), (self.data_key(suite, suite.source),), BUILDER_VERSIONS["model"]
        )

    @staticmethod
    def steps(loaded: LoadedSuite, model: ModelSpec, variant: str) -> list[ParsedStep]:
        """A variant's chain; derived names resolve too (``<variant>~unadapted``: without adaptation steps)."""
        if variant == BASELINE:
            return []
        if variant.endswith(UNADAPTED_SUFFIX):
            return without_adaptation(Workspace.steps(loaded, model, variant[: -len(UNADAPTED_SUFFIX)]))
        return loaded.variants[model.name][variant]

    def step_keys(self, loaded: LoadedSuite, model: ModelSpec, variant: str) -> list[str]:
        """Keys along the chain: the trained model's, then one per step."""
        return list(self._memo("steps", (loaded, model), (variant,), lambda: self._step_keys(loaded, model, variant)))

    def _step_keys(self, loaded: LoadedSuite, model: ModelSpec, variant: str) -> list[str]:
        keys = [self.model_key(loaded.suite, model)]
        for step in self.steps(loaded, model, variant):
            recipe = self.step_recipe(step)
            keys.append(content_key("variant", recipe, (keys[-1],), BUILDER_VERSIONS["variant"]))
        return keys

    @staticmethod
    def step_recipe(step: ParsedStep) -> dict[str, Any]:
        """A step's kind, canonical parameters and the versions of the libraries it runs on."""
        impl = COMPRESSIONS.get(step.kind)()
        # Optional hooks: libraries that depend on the parameters; a file's content instead of its path.
        has = lambda hook: callable(getattr(impl, hook, None))  # noqa: E731
        libraries = impl.libraries_for(step.params) if has("libraries_for") else getattr(impl, "libraries", ())
        return {
            "step": step.kind,
            "params": impl.key_params(step.params) if has("key_params") else step.params.model_dump(mode="json"),
            "libraries": library_versions(*CORE_LIBRARIES, *libraries),
        }

    def subject_recipe(self, loaded: LoadedSuite, model: ModelSpec, variant: str) -> dict[str, Any]:
        """What built one model/variant, for saying in words what changed against a baseline."""
        return {
            "data": self.dataset(loaded.suite).recipe(),
            "model": self.model_recipe(loaded.suite, model),
            "steps": [self.step_recipe(step) for step in self.steps(loaded, model, variant)],
        }

    def variant_key(self, loaded: LoadedSuite, model: ModelSpec, variant: str) -> str:
        return self.step_keys(loaded, model, variant)[-1]

    def eval_parents(self, loaded: LoadedSuite, model: ModelSpec, variant: str, domain: str) -> tuple[str, str]:
        return self.variant_key(loaded, model, variant), self.data_key(loaded.suite, domain)

    def eval_key(self, loaded: LoadedSuite, model: ModelSpec, variant: str, domain: str) -> str:
        def compute() -> str:
            parents = self.eval_parents(loaded, model, variant, domain)
            return content_key("eval", {"split": "test", "domain": domain}, parents, BUILDER_VERSIONS["eval"])

        return self._memo("eval", (loaded, model), (variant, domain), compute)

    # -- torch, on first need -------------------------------------------------------------------------

    def use_torch(self) -> Any:
        """torch, imported now if it was not; the first call also sets the process's threads and resolves
        ``device`` (``auto``: cuda when present)."""
        import torch

        if not self._torch_ready:
            if self.torch_threads is not None:
                torch.set_num_threads(self.torch_threads)
            device = self.device
            if isinstance(device, str) and device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            self.device = torch.device(device)
            self._torch_ready = True
        return torch

    @property
    def torch_device(self) -> torch.device:
        """``device`` resolved (imports torch)."""
        self.use_torch()
        return self.device

    # -- artifacts (built once across processes, loaded once per process) ------------------------------

    def _get_or_build(
        self,
        key: str,
        build: Any,
        *,
        meta: dict[str, Any],
        describe: str,
        parents: tuple[str, ...] = (),
        upgrade: Any = None,
    ) -> Any:
        if not self.builds_here and not self.store.has(key):
            raise NotStored(key, describe, self.store)

        def pinned() -> Any:
            torch = self.use_torch()
            before = torch.get_num_threads()
            torch.set_num_threads(self.build_thread_count())  # the count the model key holds
            try:
                return build()
            finally:
                torch.set_num_threads(before)

        return self.store.get_or_build(key, pinned, meta=meta, describe=describe, parents=parents, upgrade=upgrade)

    def splits(self, suite: Suite, domain: str) -> dict[str, Split]:
        key = self.data_key(suite, domain)
        if key not in self._splits:
            ds = self.dataset(suite)
            from .corrupt.domain import corrupt_split, parse_domain

            base, corruption, severity = parse_domain(domain)

            def build() -> dict[str, Any]:
                timer = Timer()
                if corruption is not None:
                    # Seeded per corruption, severity and split: the same images in every process.
                    clean = self.splits(suite, base)
                    report(f"corrupting {base!r}: {corruption} at severity {severity}")
                    state = split_to_state({k: corrupt_split(v, corruption, severity, k) for k, v in clean.items()})
                    report(
                        f"generated {domain!r}: {sum(len(v['labels']) for v in state.values())} images ({timer.seconds:.1f}s)"
                    )
                    return state
                report(f"generating data: {ds.recipe().get('dataset')} domain {domain!r}")
                state = split_to_state(ds.build_domain(domain))
                report(
                    f"generated {domain!r}: {sum(len(v['labels']) for v in state.values())} images ({timer.seconds:.1f}s)"
                )
                return state

            parents = (self.data_key(suite, base),) if corruption is not None else ()
            self.use_torch()
            state = self._get_or_build(key, build, meta={"domain": domain}, describe=f"data {domain}", parents=parents)
            self._splits[key] = split_from_state(state)
        return self._splits[key]

    def validation(self, suite: Suite, domain: str) -> Split:
        """Images to score on that are no domain's test split (``robustspec search``): for the source
        domain, and a domain derived from it, the images the search step holds out of its train split
        (:func:`~robustspec.compress.search.carve_validation`); for every other domain, its train split."""
        from .compress.search import carve_validation
        from .corrupt.domain import parse_domain

        if self.scored_whole(suite, domain):
            raise ArtifactError(
                f"{domain!r} is scored on all its images (splits: whole): it has no validation images apart "
                "from its test images"
            )
        train = self.splits(suite, domain)["train"]
        if parse_domain(domain)[0] == suite.source:
            return carve_validation(train, VALIDATION_FRACTION)[1]
        return train

    def scored_whole(self, suite: Suite, domain: str) -> bool:
        """Whether ``domain`` (or the domain it derives from) is a target scored on every image: its train
        split is then its test split (no torch, no image read)."""
        from .corrupt.domain import parse_domain

        base = parse_domain(domain)[0]
        return base != suite.source and (self.split_counts(suite, base) or {}).get("protocol") == "whole"

    def new_network(self, suite: Suite, model: ModelSpec) -> nn.Module:
        from .models.wrapper import Normalized

        classes = len(self.dataset(suite).classes)
        net = build_network(model.arch, classes, dict(model.params))
        return Normalized(net, model.normalize.mean, model.normalize.std)

    def trained(self, suite: Suite, model: ModelSpec) -> nn.Module:
        key = self.model_key(suite, model)
        if key in self._models:
            return self._models[key]
        recipe = model.train or suite.train
        torch = self.use_torch()

        def build() -> dict[str, Any]:
            data = self.splits(suite, suite.source)["train"]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(recipe.seed)
                wrapped = self.new_network(suite, model)
            if model.weights:
                skipped = load_local_weights(wrapped.net, model.weights)
                if skipped:
                    report(
                        f"{model.name}: new classifier head for {len(self.dataset(suite).classes)} classes ({', '.join(skipped)})"
                    )
            report(f"training {model.name} on {suite.source!r}: {len(data)} images, {recipe.epochs} epochs")
            stats = train_supervised(wrapped, data, recipe, device=self.torch_device, label=model.name)
            return {
                "state_dict": {k: v.detach().cpu() for k, v in wrapped.state_dict().items()},
                "stats": stats,
                "parameters": parameter_count(wrapped),
            }

        state = self._get_or_build(
            key,
            build,
            meta={"model": model.name, "arch": model.arch},
            describe=f"model {model.name}",
            parents=(self.data_key(suite, suite.source),),
        )
        net = self.new_network(suite, model)
        net.load_state_dict(state["state_dict"])
        net.to(self.torch_device).eval()
        self._models[key] = net
        return net

    def step_context(self, loaded: LoadedSuite, model: ModelSpec, variant: str) -> StepContext:
        suite = loaded.suite

        def new_network(arch: str, params: dict[str, Any]) -> nn.Module:
            from .models.wrapper import Normalized

            net = build_network(arch, len(self.dataset(suite).classes), params)
            return Normalized(net, model.normalize.mean, model.normalize.std)

        return StepContext(
            train=self.splits(suite, suite.source)["train"],
            num_classes=len(self.dataset(suite).classes),
            device=self.torch_device,
            recipe=model.train or suite.train,
            baseline=lambda: self.trained(suite, model),
            new_network=new_network,
            label=f"{model.name}/{variant}",
            domain_train=lambda domain: self.splits(suite, domain)["train"],
            held_out=lambda: self.splits(suite, suite.source)["test"],
            class_names=lambda: list(self.dataset(suite).classes),
        )

    def model(self, loaded: LoadedSuite, model: ModelSpec, variant: str) -> nn.Module:
        """The trained model, or the compressed variant: each step built once and restored from the store."""
        steps = self.steps(loaded, model, variant)
        keys = self.step_keys(loaded, model, variant)
        module = self.trained(loaded.suite, model)
        for i, step in enumerate(steps):
            key = keys[i + 1]
            if key in self._models:
                module = self._models[key]
                continue
            impl = COMPRESSIONS.get(step.kind)()
            ctx = self.step_context(loaded, model, variant)
            ctx.cache = self._step_cache(step, keys[i], model.name, variant)
            parent = module

            def build(impl=impl, step=step, parent=parent, ctx=ctx, key=key) -> dict[str, Any]:
                timer = Timer()
                try:
                    result = impl.apply(parent, step.params, ctx)
                except StructuralError as exc:
                    # Decided by what the key holds: stored, so no process and no later run retries it.
                    report(f"{ctx.label}: {step.kind} failed ({timer.seconds:.0f}s): stored, not retried")
                    return {"failed": str(exc)}
                report(f"{ctx.label}: {step.kind} done ({timer.seconds:.0f}s)")
                self._models[key] = result.model.eval()
                return {"state": result.state, "info": result.info}

            stored = self._get_or_build(
                key,
                build,
                meta={"model": model.name, "variant": variant, "step": step.kind},
                describe=f"{model.name}/{variant} {step.kind}",
                parents=(keys[i],),
            )
            if "failed" in stored:
                raise StructuralError(
                    f"{stored['failed']} (a stored failure: its key decides it, so it is not retried; "
                    f"remove artifact {key} from the store to try again)"
                )
            if key not in self._models:
                self._models[key] = impl.restore(parent, step.params, stored["state"], ctx).eval()
            module = self._models[key]
        return module

    def _step_cache(self, step: ParsedStep, parent_key: str, model_name: str, variant: str) -> Any:
        """A step's :attr:`StepContext.cache`: what it builds along the way (a search's candidates) as
        artifacts keyed by the recipe it gives, its kind and libraries, and its parent's key."""
        libraries = self.step_recipe(step)["libraries"]

        def cache(recipe: dict[str, Any], build: Any, describe: str = "") -> Any:
            key = content_key(
                "candidate",
                {"step": step.kind, "recipe": recipe, "libraries": libraries},
                (parent_key,),
                BUILDER_VERSIONS["candidate"],
            )
            return self._get_or_build(
                key,
                build,
                meta={"model": model_name, "variant": variant, "step": step.kind},
                describe=f"{model_name}/{variant} {step.kind} {describe}".rstrip(),
                parents=(parent_key,),
            )

        return cache

    def chain_modules(self, loaded: LoadedSuite, model: ModelSpec, variant: str) -> list[nn.Module]:
        """The trained model, then each step's output, the variant last (all built or restored)."""
        last = self.model(loaded, model, variant)
        keys = self.step_keys(loaded, model, variant)
        if len(keys) == 1:  # the baseline: the trained model is the variant
            return [last]
        return [self.trained(loaded.suite, model), *(self._models[k] for k in keys[1:-1]), last]

    def step_info(self, loaded: LoadedSuite, model: ModelSpec, variant: str) -> dict[str, Any]:
        """What the steps of a variant reported (ratio found, sparsity, ...), merged in chain order."""
        info: dict[str, Any] = {}
        keys = self.step_keys(loaded, model, variant)
        self.model(loaded, model, variant)
        for step, key in zip(self.steps(loaded, model, variant), keys[1:]):
            for k, v in self.store.load(key)["info"].items():
                info[f"{step.kind}.{k}"] = v
        return info

    def metrics(self, loaded: LoadedSuite, model: ModelSpec, variant: str) -> dict[str, Any]:
        """Parameters, stored bytes and MACs of a model or variant (an artifact of its own)."""
        parents = (self.variant_key(loaded, model, variant),)
        key = self._memo(
            "metrics",
            (loaded, model),
            (variant,),
            lambda: content_key("metrics", {}, parents, BUILDER_VERSIONS["metrics"]),
        )
        if key not in self._metrics:

            def build() -> dict[str, Any]:
                net = self.model(loaded, model, variant)
                size = self.dataset(loaded.suite).image_size
                quantized = is_quantized(net)
                out = {
                    "parameters": parameter_count(net),
                    "nonzero_parameters": parameter_count(net) if quantized else nonzero_parameters(net),
                    "bytes": stored_bytes(net),
                    "macs": macs(net, size) if not quantized and not is_program(net) else 0,
                    "quantized": int(quantized),
                }
                if is_program(net) or (quantized and variant != BASELINE):
                    # int8 kernels and runtimes are not counted by FlopCounterMode, and a program holds no
                    # parameters torch sees: both are the float network's it was made from.
                    from .attacks.planning import float_parent

                    parent = float_parent(self.chain_modules(loaded, model, variant))
                    out["macs"] = macs(parent, size)
                    if is_program(net):
                        # A loaded file may hold another network than its suite model: its own count first.
                        own = [m.parameters_count for m in net.modules() if getattr(m, "parameters_count", None)]
                        count = sum(own) if own else parameter_count(parent)
                        out["parameters"] = out["nonzero_parameters"] = count
                from .models.programs import input_gradients

                if is_program(net) and not quantized and not input_gradients(net):
                    out["input_gradients"] = 0  # a float runtime's file: attacked as an int8 model is
                out.update(self.step_info(loaded, model, variant) if variant != BASELINE else {})
                return {k: v for k, v in out.items() if isinstance(v, (int, float, str, bool))}

            self._metrics[key] = self._get_or_build(
                key,
                build,
                meta={"model": model.name, "variant": variant},
                describe=f"metrics {model.name}/{variant}",
                parents=parents,
            )
        return self._metrics[key]

    def attack(
        self,
        loaded: LoadedSuite,
        model: ModelSpec,
        variant: str,
        params: Any,
        transfer_from: str | None = None,
        split: str = "test",
    ) -> dict[str, Any]:
        """One attack evaluation (an artifact): robust accuracy, success rate, norms, flags, mode.

        ``transfer_from`` names another variant of the same model (a float one) to attack instead; its
        adversarials are scored on this variant (the transfer half of the gradient-masking check). An int8
        model attacked with gradients uses its float parent (``mode`` transfer; ``worst-case`` is keyed and
        built as transfer, the judge combines the modes) or a fake-quant copy (``mode: white-box``).
        """
        from .expect.attack import attack_settings

        suite = loaded.suite
        domain = params.domain or suite.source
        settings = attack_settings(params)
        parents = (self.variant_key(loaded, model, variant), self.data_key(suite, domain))
        from .attacks import ATTACKS

        libraries = getattr(ATTACKS.get(params.name), "libraries", ())
        recipe: dict[str, Any] = {
            "attack": settings,
            "domain": domain,
            "split": split,
            "libraries": library_versions(*CORE_LIBRARIES, *libraries),
        }
        if transfer_from is not None:
            parents += (self.variant_key(loaded, model, transfer_from),)
            recipe["transfer_from"] = transfer_from
        key = content_key("attack", recipe, parents, BUILDER_VERSIONS["attack"])
        if key not in self._evals:

            def build() -> dict[str, Any]:
                from .attacks import ATTACKS
                from .attacks.evaluate import evaluate_attack
                from .attacks.planning import plan_attack

                modules = self.chain_modules(loaded, model, variant)
                transfer = None if transfer_from is None else (transfer_from, self.model(loaded, model, transfer_from))
                plan = plan_attack(
                    modules,
                    self.steps(loaded, model, variant),
                    self.step_context(loaded, model, variant),
                    mode=params.mode,
                    gradient_free=bool(getattr(ATTACKS.get(params.name), "gradient_free", False)),
                    transfer=transfer,
                )
                images = self.splits(suite, domain)["test"] if split == "test" else self.validation(suite, domain)
                device = self.torch_device  # evaluate_attack runs each model where it can (int8: CPU)
                result = evaluate_attack(
                    modules[-1],
                    params.name,
                    params,
                    images.images,
                    images.labels,
                    n=params.samples,
                    seed=params.seed,
                    device=device,
                    surrogate=plan.surrogate,
                    mode=plan.mode,
                    label=f"attack {params.name} on {model.name}/{variant}"
                    + (f" from {transfer_from}" if transfer_from else ""),
                )
                out = result.as_dict()
                out["robust"] = encode_outcomes(
                    result.robust, f"{self.data_key(suite, domain)}.{split}.seed{params.seed}"
                )
                out["mode"] = plan.mode
                return {k: v for k, v in out.items() if v is not None and isinstance(v, (int, float, str, bool, list))}

            self._evals[key] = self._get_or_build(
                key,
                build,
                meta={
                    "model": model.name,
                    "variant": variant,
                    "attack": params.name,
                    "transfer_from": transfer_from,
                    **({"split": split} if split != "test" else {}),
                },
                describe=f"attack {params.name} on {model.name}/{variant}"
                + (f" from {transfer_from}" if transfer_from else ""),
                parents=parents,
            )
        return self._evals[key]

    def accuracy(self, loaded: LoadedSuite, model: ModelSpec, variant: str, domain: str) -> Accuracy:
        suite = loaded.suite
        key = self.eval_key(loaded, model, variant, domain)
        items = self.data_key(suite, domain)
        names = tuple(self.dataset(suite).classes)
        classes = len(names)
        if key not in self._evals:

            def build() -> dict[str, Any]:
                net = self.model(loaded, model, variant)
                split = self.splits(suite, domain)["test"]
                timer = Timer()
                labels = [int(v) for v in split.labels.tolist()]
                seen = f"evaluating {model.name}/{variant} on {domain!r}"
                predicted = [int(v) for v in predict(net, split.images, device=self.torch_device, label=seen).tolist()]
                ok = [t == p for t, p in zip(labels, predicted)]
                report(
                    f"evaluated {model.name}/{variant} on {domain!r}: {sum(ok) / max(len(ok), 1):.3f} ({timer.seconds:.1f}s)"
                )
                return {
                    "n": len(ok),
                    "correct": sum(ok),
                    "outcomes": encode_outcomes(ok, items),
                    "classes": classes,
                    "labels": encode_classes(labels, classes),
                    "predicted": encode_classes(predicted, classes),
                }

            parents = self.eval_parents(loaded, model, variant, domain)
            self._evals[key] = self._get_or_build(
                key,
                build,
                meta={"model": model.name, "variant": variant, "domain": domain},
                describe=f"eval {model.name}/{variant}/{domain}",
                parents=parents,
                upgrade=lambda stored: eval_value(stored, items),
            )
        if key not in self._accuracies:
            ev = self._evals[key]
            decoded = decode_outcomes(ev["outcomes"])
            if decoded is None or decoded[0] != items or len(decoded[1]) != ev["n"]:
                raise ArtifactError(f"evaluation {key} in {self.store.root} holds no outcomes of {items}'s test images")
            if ev["classes"] != classes:
                raise ArtifactError(
                    f"evaluation {key} in {self.store.root} is of {ev['classes']} classes; the data has {classes}"
                )
            outcomes = tuple(decoded[1])
            labels = decode_classes(ev["labels"], ev["n"], classes) or []
            confusion = Confusion.of(labels, decode_classes(ev["predicted"], ev["n"], classes) or [], names)
            self._accuracies[key] = Accuracy(
                sum(outcomes), len(outcomes), outcomes=outcomes, items=items, classes=confusion
            )
        return self._accuracies[key]

    def encoded_outcomes(self, loaded: LoadedSuite, model: ModelSpec, variant: str, domain: str) -> str:
        """:func:`~robustspec.outcomes.encode_outcomes` of :meth:`accuracy`'s outcomes: as stored."""
        self.accuracy(loaded, model, variant, domain)
        return self._evals[self.eval_key(loaded, model, variant, domain)]["outcomes"]


@dataclass
class SubjectMeasurements:
    """The :class:`~robustspec.expect.base.Measurements` of one model and variant, through a workspace."""

    workspace: Workspace
    loaded: LoadedSuite
    model_spec: ModelSpec
    variant: str

    @property
    def source(self) -> str:
        return self.loaded.suite.source

    def accuracy(self, domain: str, variant: str | None = None) -> Accuracy:
        return self.workspace.accuracy(self.loaded, self.model_spec, variant or self.variant, domain)

    def metrics(self, variant: str | None = None) -> dict[str, Any]:
        return self.workspace.metrics(self.loaded, self.model_spec, variant or self.variant)

    def attack(self, params: Any, variant: str | None = None, transfer_from: str | None = None) -> dict[str, Any]:
        return self.workspace.attack(self.loaded, self.model_spec, variant or self.variant, params, transfer_from)
