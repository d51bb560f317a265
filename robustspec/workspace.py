"""Builds what checks need (data, trained models, evaluations) through the artifact store, once each.

Artifact graph and content keys::

    data(dataset recipe, domain)                       -> uint8 images + labels, train and test
    model(arch, params, weights, normalisation, recipe) <- data(source)
    eval(test split)                                    <- model, data(domain)

A key hashes the canonical recipe, the parents' keys and the builder's version, so changing a threshold
changes no key, and changing a recipe rebuilds that artifact and what depends on it only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import open_dataset, split_from_state, split_to_state
from .data.base import DomainDataset, Split
from .evaluate import correctness
from .expect import Accuracy
from .models import Normalized, build_network, count_parameters
from .models.weights import load_local_weights, weights_fingerprint
from .progress import Timer, report
from .spec.schema import BASELINE, ModelSpec, Suite, TrainRecipe
from .store import Store, content_key
from .train import train_supervised

__all__ = ["Workspace", "BUILDER_VERSIONS"]

#: Bump one of these when the code that builds that kind of artifact changes its output.
BUILDER_VERSIONS = {"data": "1", "model": "1", "eval": "1"}


@dataclass
class Workspace:
    """One per process: a store, a device, and in-memory memos so nothing is loaded twice."""

    store: Store
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: Torch threads while building. Float reductions depend on the thread count, so a fixed count keeps
    #: results identical whatever ``-n`` is; None uses the process's setting (faster, not reproducible).
    build_threads: int | None = 1
    _datasets: dict[str, DomainDataset] = field(default_factory=dict)
    _splits: dict[str, dict[str, Split]] = field(default_factory=dict)
    _models: dict[str, nn.Module] = field(default_factory=dict)
    _evals: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- keys (cheap; no data is touched) ----------------------------------------------------------------

    def dataset(self, suite: Suite) -> DomainDataset:
        spec_key = suite.data.model_dump_json()
        if spec_key not in self._datasets:
            self._datasets[spec_key] = open_dataset(suite.data)
        return self._datasets[spec_key]

    def data_key(self, suite: Suite, domain: str) -> str:
        return content_key("data", {"dataset": self.dataset(suite).recipe(), "domain": domain}, (), BUILDER_VERSIONS["data"])

    def model_recipe(self, suite: Suite, model: ModelSpec) -> dict[str, Any]:
        recipe: TrainRecipe = model.train or suite.train
        return {
            "arch": model.arch,
            "params": model.params,
            "weights": weights_fingerprint(model.weights) if model.weights else None,
            "normalize": model.normalize.model_dump(mode="json"),
            "classes": len(self.dataset(suite).classes),
            "source": suite.source,
            "train": recipe.model_dump(mode="json"),
        }

    def model_key(self, suite: Suite, model: ModelSpec) -> str:
        return content_key("model", self.model_recipe(suite, model), (self.data_key(suite, suite.source),), BUILDER_VERSIONS["model"])

    def eval_key(self, suite: Suite, model: ModelSpec, variant: str, domain: str) -> str:
        if variant != BASELINE:
            raise NotImplementedError(f"variant {variant!r}: compression variants are not available in this version")
        parents = (self.model_key(suite, model), self.data_key(suite, domain))
        return content_key("eval", {"split": "test", "domain": domain}, parents, BUILDER_VERSIONS["eval"])

    # -- artifacts (built once across processes, loaded once per process) ------------------------------

    def _get_or_build(self, key: str, build: Any, *, meta: dict[str, Any], describe: str) -> Any:
        def pinned() -> Any:
            if self.build_threads is None:
                return build()
            before = torch.get_num_threads()
            torch.set_num_threads(self.build_threads)
            try:
                return build()
            finally:
                torch.set_num_threads(before)

        return self.store.get_or_build(key, pinned, meta=meta, describe=describe)

    def splits(self, suite: Suite, domain: str) -> dict[str, Split]:
        key = self.data_key(suite, domain)
        if key not in self._splits:
            ds = self.dataset(suite)

            def build() -> dict[str, Any]:
                timer = Timer()
                report(f"generating data: {ds.recipe().get('dataset')} domain {domain!r}")
                state = split_to_state(ds.build_domain(domain))
                report(f"generated {domain!r}: {sum(len(v['labels']) for v in state.values())} images ({timer.seconds:.1f}s)")
                return state

            state = self._get_or_build(key, build, meta={"domain": domain}, describe=f"data {domain}")
            self._splits[key] = split_from_state(state)
        return self._splits[key]

    def new_network(self, suite: Suite, model: ModelSpec) -> nn.Module:
        classes = len(self.dataset(suite).classes)
        net = build_network(model.arch, classes, dict(model.params))
        return Normalized(net, model.normalize.mean, model.normalize.std)

    def trained(self, suite: Suite, model: ModelSpec) -> nn.Module:
        key = self.model_key(suite, model)
        if key in self._models:
            return self._models[key]
        recipe = model.train or suite.train

        def build() -> dict[str, Any]:
            data = self.splits(suite, suite.source)["train"]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(recipe.seed)
                wrapped = self.new_network(suite, model)
            if model.weights:
                skipped = load_local_weights(wrapped.net, model.weights)
                if skipped:
                    report(f"{model.name}: new classifier head for {len(self.dataset(suite).classes)} classes ({', '.join(skipped)})")
            report(f"training {model.name} on {suite.source!r}: {len(data)} images, {recipe.epochs} epochs")
            stats = train_supervised(wrapped, data, recipe, device=self.device, label=model.name)
            return {
                "state_dict": {k: v.detach().cpu() for k, v in wrapped.state_dict().items()},
                "stats": stats,
                "parameters": count_parameters(wrapped),
            }

        state = self._get_or_build(key, build, meta={"model": model.name, "arch": model.arch}, describe=f"model {model.name}")
        net = self.new_network(suite, model)
        net.load_state_dict(state["state_dict"])
        net.to(self.device).eval()
        self._models[key] = net
        return net

    def accuracy(self, suite: Suite, model: ModelSpec, variant: str, domain: str) -> Accuracy:
        key = self.eval_key(suite, model, variant, domain)
        if key not in self._evals:

            def build() -> dict[str, Any]:
                net = self.trained(suite, model)
                split = self.splits(suite, domain)["test"]
                timer = Timer()
                ok = correctness(net, split, device=self.device)
                report(f"evaluated {model.name}/{variant} on {domain!r}: {ok.float().mean():.3f} ({timer.seconds:.1f}s)")
                return {"correct": ok, "n": len(split)}

            self._evals[key] = self._get_or_build(key, build, meta={"model": model.name, "variant": variant, "domain": domain}, describe=f"eval {model.name}/{variant}/{domain}")
        ev = self._evals[key]
        return Accuracy(int(ev["correct"].sum()), int(ev["n"]))
