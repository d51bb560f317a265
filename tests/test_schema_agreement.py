"""The generated JSON Schema and the loader agree: on every suite of the repository and every YAML snippet
of the docs (completed into a suite), both accept; on invalid suites, both reject.

Snippets are the docs' ```yaml blocks. One that is a whole suite is checked as it is; one that is part of
a suite (``variants:`` and ``expect:``, a ``models:`` list) is completed with the keys it lacks from a small
suite; a ``# specs/<kind>.yaml`` block is checked as the blocks it defines. Image trees that snippets name
are made in a temporary directory, so the loader sees the domains it would see on real data.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from robustspec.errors import SpecErrors
from robustspec.spec.json_schema import SCHEMA_ID, suite_json_schema
from robustspec.spec.loader import load_suite
from robustspec.spec.yaml_loader import load_yaml, load_yaml_file

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SUITES = sorted((ROOT / "suites").glob("*.yaml"))

#: What a partial snippet is completed with (its own keys win).
COMPLETION: dict[str, Any] = {
    "source": "amazon",
    "models": ["resnet18"],
    "expect": [{"source-accuracy": {"min": 0.5}}],
}


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = suite_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _snippets() -> list[Any]:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in re.finditer(r"```yaml\n(.*?)```", text, re.S):
            line = text[: m.start()].count("\n") + 1
            out.append(pytest.param(m.group(1), id=f"{doc.relative_to(ROOT)}:{line}"))
    return out


def _image_tree(root: Path, domains: list[str]) -> None:
    from PIL import Image

    for domain in domains:
        for c, cls in enumerate(("mug", "pen")):
            folder = root / domain / "images" / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(4):  # distinct images: the same bytes in train and test are an error
                Image.new("RGB", (8, 8), (40 * i, 80 + 40 * c, 120)).save(folder / f"{i}.png")


def _complete(text: str, tmp_path: Path) -> dict[str, Any]:
    data = load_yaml(text, "snippet.yaml").data
    assert isinstance(data, dict), "a YAML snippet in the docs is a mapping"
    first = text.lstrip().splitlines()[0]
    kind = re.match(r"#\s*specs/(\w+)\.yaml", first)
    if kind is not None:  # named blocks: each is checked where a suite would use it
        if kind.group(1) == "training":
            return {**COMPLETION, "train": next(iter(data.values()))}
        if kind.group(1) == "models":
            return {**COMPLETION, "models": [{"name": n, **v} for n, v in data.items()]}
        return {**COMPLETION, "data": next(iter(data.values()))}
    suite = {**COMPLETION, **data}
    folder = suite.get("data", {}).get("imagefolder") if isinstance(suite.get("data"), dict) else None
    if folder is not None:
        root = tmp_path / "images"
        _image_tree(root, ["amazon", "webcam", "dslr"])
        suite["data"] = {**suite["data"], "imagefolder": str(root)}
        for split in (suite["data"].get("splits") or {}).values():
            if isinstance(split, dict) and "train" in split:  # list files: half of each class each
                for name, images in (("train", (0, 1)), ("test", (2, 3))):
                    lines = [f"{cls}/{i}.png" for cls in ("mug", "pen") for i in images]
                    (tmp_path / split[name]).write_text("\n".join(lines) + "\n")
    for model in suite["models"]:
        if isinstance(model, dict) and "weights" in model:
            model.pop("weights")  # local weights files are the data docs' own example, not made here
    for chain in (suite.get("variants") or {}).values():
        for step in chain if isinstance(chain, list) else [chain]:
            if isinstance(step, dict) and "load" in step:  # the team's own files: stand-ins of their format
                load = step["load"] if isinstance(step["load"], dict) else {"file": step["load"]}
                step["load"] = {**load, "file": str(_stand_in(tmp_path, Path(load["file"]).name))}
    return suite


def _stand_in(folder: Path, name: str) -> Path:
    """A file that passes the loader's checks of its format: a 10-class ONNX classifier, ExecuTorch's
    flatbuffer identifier, a zip archive."""
    import zipfile

    path = folder / name
    if name.endswith(".onnx"):
        from onnx import TensorProto, helper, save_model

        graph = helper.make_graph(
            [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["f"])]
            + [helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)],
            "stand-in",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 32, 32])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
            [helper.make_tensor("w", TensorProto.FLOAT, [10, 3], [0.0] * 30)],
        )
        save_model(helper.make_model(graph), path)
    elif name.endswith(".pte"):
        path.write_bytes(b"\x00\x00\x00\x00ET12" + bytes(32))
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/version", "1")
    return path


def _write(suite: dict[str, Any], path: Path) -> Path:
    import json

    path.write_text(json.dumps(suite), encoding="utf-8")  # JSON is YAML
    return path


@pytest.mark.parametrize("path", SUITES, ids=[p.name for p in SUITES])
def test_repository_suites_are_valid_for_both(validator: Any, path: Path) -> None:
    errors = [e.message for e in validator.iter_errors(load_yaml_file(path).data)]
    assert errors == []
    load_suite(path)


@pytest.mark.parametrize("text", _snippets())
def test_doc_snippets_are_valid_for_both(validator: Any, text: str, tmp_path: Path) -> None:
    suite = _complete(text, tmp_path)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(suite)]
    assert errors == [], "the JSON Schema rejects a docs snippet"
    try:
        load_suite(_write(suite, tmp_path / "suite.yaml"))
    except SpecErrors as exc:
        pytest.fail(f"the loader rejects a docs snippet:\n{exc}")


VALID = [
    pytest.param({"targets": ["webcam", "amazon+gaussian_noise@3"]}, id="derived-target"),
    pytest.param({"expect": [{"source-accuracy": {"min": "90%", "confidence": "95%"}}]}, id="fractions-as-text"),
    pytest.param(
        {"variants": {"p": {"prune": {"params": "4.51M"}}}, "expect": [{"max-params": {"max": "4.6M"}}]},
        id="counts-as-text",
    ),
    pytest.param({"models": [{"name": "m", "arch": "resnet10-mini", "train": "default"}]}, id="model-named-recipe"),
    pytest.param({"variants": {"q": {"quantize": "ptsq"}, "c": {"coral": "webcam"}}}, id="step-shorthands"),
    pytest.param(
        {
            "variants": {"c": [{"prune": {"ratio": 0.3}}, {"quantize": "ptsq"}]},
            "expect": [{"attack": {"name": "fgsm", "eps": "1/255", "max-degradation": 0.9}}],
        },
        id="chain-and-attack",
    ),
]

INVALID = [
    pytest.param({"max-size": 1}, id="unknown-top-key"),
    pytest.param({"expect": [{"source-accuracy": {"min": 1.5}}]}, id="probability-above-1"),
    pytest.param({"expect": [{"source-accuracy": {"min": "lots"}}]}, id="number-as-bad-text"),
    pytest.param({"expect": [{"target-acuracy": {"min": 0.5}}]}, id="unknown-expectation"),
    pytest.param(
        {"expect": [{"attack": {"name": "pgd-linff", "eps": 0.1, "max-degradation": 0.5}}]}, id="unknown-attack"
    ),
    pytest.param(
        {"expect": [{"attack": {"name": "fgsm", "eps": 0.1, "steps": 3, "max-degradation": 0.5}}]},
        id="field-of-another-attack",
    ),
    pytest.param({"variants": {"baseline": {"quantize": "ptsq"}}}, id="variant-named-baseline"),
    pytest.param({"variants": {"v": {"prune": {"ratio": 0.3}, "quantize": "ptsq"}}}, id="two-key-step"),
    pytest.param({"variants": {"v": {"prnue": {"ratio": 0.3}}}}, id="unknown-step"),
    pytest.param(
        {"expect": [{"corruption": {"corruptions": ["gaussian_nose"], "max-mce": 1.2}}]}, id="unknown-corruption"
    ),
    pytest.param({"models": [{"name": "m", "arch": "resnet81"}]}, id="unknown-arch"),
    pytest.param({"train": {"epochs": 3, "epoch": 4}}, id="unknown-train-key"),
    pytest.param({"models": []}, id="no-models"),
]


@pytest.mark.parametrize("change", VALID)
def test_both_accept(validator: Any, change: dict[str, Any], tmp_path: Path) -> None:
    suite = {**COMPLETION, **change}
    assert [e.message for e in validator.iter_errors(suite)] == []
    load_suite(_write(suite, tmp_path / "suite.yaml"))


@pytest.mark.parametrize("change", INVALID)
def test_both_reject(validator: Any, change: dict[str, Any], tmp_path: Path) -> None:
    suite = {**COMPLETION, **change}
    assert list(validator.iter_errors(suite)) != []
    with pytest.raises(SpecErrors):
        load_suite(_write(suite, tmp_path / "suite.yaml"))


def test_the_schema_has_an_id_and_the_registered_names(validator: Any) -> None:
    from robustspec.models.zoo import MODELS

    schema = suite_json_schema()
    assert schema["$id"] == SCHEMA_ID
    text = str(schema)
    for name in MODELS.names():
        assert repr(name) in text
