"""The generated JSON Schema and the loader agree: on every suite of the repository and every YAML example
of the docs, both accept; on invalid suites, both reject.

The docs' examples are the ```yaml blocks of README.md and docs/*.md. Every such block is one of:

- a **suite**, complete as written: it is validated as it is, by the JSON Schema and by the loader
  (``load_suite`` on the block's own text, written to a file in a temporary directory). What an example
  names outside itself is made there, not changed in it: an image tree at a relative ``imagefolder`` path,
  the list files of ``splits:``, a stand-in of each ``load:`` file in its format. Only two things are
  substituted, for the loader alone: an absolute ``imagefolder`` path (``/data/office31``) becomes a tree
  made in the temporary directory, and ``weights:`` of a model are left out (a real state dict of a
  ResNet-50 is not made here);
- a **specs file**, first line ``# specs/<kind>.yaml`` (``datasets``, ``models`` or ``training``): written
  as that file, and each block it defines is checked where a suite names it;
- **not a suite**, first line ``# not a suite: <why>``: YAML that no suite check applies to (a plugin's
  suite, another tool's file); it must still parse.

Other YAML fences (```yml, ```yaml with a title) are an error, so that no example slips past these checks.
Text that is not meant to be checked goes in a plain or ```text fence.
"""

from __future__ import annotations

import copy
import json
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

#: A small complete suite: what the schema cases below change, and where a specs block is used.
MINIMAL: dict[str, Any] = {
    "source": "amazon",
    "models": ["resnet18"],
    "expect": [{"source-accuracy": {"min": 0.5}}],
}

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_SPECS = re.compile(r"#\s*specs/(datasets|models|training)\.yaml\s*$")
_NOT_A_SUITE = re.compile(r"#\s*not a suite:\s*\S")


def _blocks() -> list[tuple[str, str, str]]:
    """Every fenced block of the docs: (where, info string, text)."""
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            line = text[: m.start()].count("\n") + 1
            out.append((f"{doc.relative_to(ROOT)}:{line}", m.group(1).strip(), m.group(2)))
    return out


def _kind(text: str) -> str:
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if _SPECS.match(first):
        return "specs"
    if _NOT_A_SUITE.match(first):
        return "not a suite"
    return "suite"


def _yaml_blocks(kind: str) -> list[Any]:
    return [pytest.param(text, id=where) for where, info, text in _blocks() if info == "yaml" and _kind(text) == kind]


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = suite_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _image_tree(root: Path, domains: list[str]) -> None:
    from PIL import Image

    for domain in domains:
        for c, cls in enumerate(("mug", "pen")):
            folder = root / domain / "images" / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(4):  # distinct images: the same bytes in train and test are an error
                Image.new("RGB", (8, 8), (40 * i, 80 + 40 * c, 120)).save(folder / f"{i}.png")


def _stand_in(path: Path) -> Path:
    """A file that passes the loader's checks of its format: a 10-class ONNX classifier, ExecuTorch's
    flatbuffer identifier, a zip archive."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".onnx"):
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
    elif path.name.endswith(".pte"):
        path.write_bytes(b"\x00\x00\x00\x00ET12" + bytes(32))
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/version", "1")
    return path


def _suite_file(text: str, suite: dict[str, Any], folder: Path) -> Path:
    """The example as a suite file in ``folder/suites/``, with what it names made around it (module
    docstring); its own text unless a substitution was needed, then the substituted data as JSON."""
    here = folder / "suites"
    here.mkdir(parents=True, exist_ok=True)
    run = copy.deepcopy(suite)
    data = run.get("data")
    if isinstance(data, dict) and "imagefolder" in data:
        root = Path(data["imagefolder"])
        if root.is_absolute():
            root = folder / "images"
            data["imagefolder"] = str(root)
        _image_tree(here / root, ["amazon", "webcam", "dslr"])
        for split in (data.get("splits") or {}).values():
            if isinstance(split, dict) and "train" in split:  # list files: half of each class each
                for name, images in (("train", (0, 1)), ("test", (2, 3))):
                    lines = [f"{cls}/{i}.png" for cls in ("mug", "pen") for i in images]
                    (here / split[name]).write_text("\n".join(lines) + "\n")
    for model in run["models"]:
        if isinstance(model, dict):
            model.pop("weights", None)
    for chain in (run.get("variants") or {}).values():
        for step in chain if isinstance(chain, list) else [chain]:
            if isinstance(step, dict) and "load" in step:  # the team's own file: a stand-in of its format
                load = step["load"]
                _stand_in(here / (load["file"] if isinstance(load, dict) else load))
    path = here / "example.yaml"
    path.write_text(text if run == suite else json.dumps(run), encoding="utf-8")  # JSON is YAML
    return path


def _write(suite: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(suite), encoding="utf-8")
    return path


@pytest.mark.parametrize("path", SUITES, ids=[p.name for p in SUITES])
def test_repository_suites_are_valid_for_both(validator: Any, path: Path) -> None:
    errors = [e.message for e in validator.iter_errors(load_yaml_file(path).data)]
    assert errors == []
    load_suite(path)


def test_every_yaml_example_is_a_suite_a_specs_file_or_marked() -> None:
    blocks = _blocks()
    odd = [
        f"{where}: ```{info}"
        for where, info, _ in blocks
        if info != "yaml" and info.lower().startswith(("yaml", "yml"))
    ]
    assert odd == [], "a YAML block these tests would not check: fence it ```yaml (see the module docstring)"
    kinds = {(where.split(":")[0], _kind(text)) for where, info, text in blocks if info == "yaml"}
    assert ("README.md", "suite") in kinds  # the README's example is checked like the docs'
    assert {kind for _, kind in kinds} == {"suite", "specs", "not a suite"}


@pytest.mark.parametrize("text", _yaml_blocks("suite"))
def test_doc_suites_are_valid_as_written(validator: Any, text: str, tmp_path: Path) -> None:
    suite = load_yaml(text, "example.yaml").data
    assert isinstance(suite, dict), "a suite is a mapping"
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(suite)]
    assert errors == [], "the JSON Schema rejects a docs example as written"
    try:
        load_suite(_suite_file(text, suite, tmp_path))
    except SpecErrors as exc:
        pytest.fail(f"the loader rejects a docs example as written:\n{exc}")


@pytest.mark.parametrize("text", _yaml_blocks("specs"))
def test_doc_specs_files_are_valid_where_a_suite_names_them(validator: Any, text: str, tmp_path: Path) -> None:
    kind = _SPECS.match(text.lstrip().splitlines()[0]).group(1)  # type: ignore[union-attr]
    blocks = load_yaml(text, f"{kind}.yaml").data
    assert isinstance(blocks, dict) and blocks, "a specs file maps names to blocks"
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / f"{kind}.yaml").write_text(text, encoding="utf-8")
    for name, block in blocks.items():
        inline, named = {
            "training": ({"train": block}, {"train": name}),
            "models": ({"models": [{"name": name, **block}]}, {"models": [name]}),
            "datasets": ({"data": block}, {"data": name}),
        }[kind]
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors({**MINIMAL, **inline})]
        assert errors == [], f"the JSON Schema rejects {kind} block {name!r}"
        try:
            load_suite(_write({**MINIMAL, **named}, tmp_path / "suite.yaml"), specs_dir=tmp_path / "specs")
        except SpecErrors as exc:
            pytest.fail(f"the loader rejects {kind} block {name!r}:\n{exc}")


@pytest.mark.parametrize("text", _yaml_blocks("not a suite"))
def test_doc_yaml_that_is_not_a_suite_parses(text: str) -> None:
    load_yaml(text, "example.yaml")


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
    suite = {**MINIMAL, **change}
    assert [e.message for e in validator.iter_errors(suite)] == []
    load_suite(_write(suite, tmp_path / "suite.yaml"))


@pytest.mark.parametrize("change", INVALID)
def test_both_reject(validator: Any, change: dict[str, Any], tmp_path: Path) -> None:
    suite = {**MINIMAL, **change}
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
