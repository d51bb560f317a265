"""Bad suites give SpecErrors at the exact file:line:col, with the field path and a helpful message."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from robustspec.errors import SpecError, SpecErrors, format_path
from robustspec.spec.loader import load_suite
from robustspec.spec.yaml_loader import load_yaml

REPO_SPECS = Path(__file__).resolve().parents[1] / "specs"
DOMAINS = ["amazon", "webcam", "dslr"]

GOOD = """\
suite: t
data: office-synth
source: amazon
train: fast
models: [mini]
expect:
  - source-accuracy: {min: 0.5}
"""


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    """A directory with a copy of the repository's specs/ and room for one suite file."""
    shutil.copytree(REPO_SPECS, tmp_path / "specs")
    return tmp_path


def errors_of(directory: Path, text: str) -> list[SpecError]:
    path = directory / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecErrors) as info:
        load_suite(path)
    errs = info.value.errors
    assert errs and all(isinstance(e, SpecError) for e in errs)
    return errs


def find(errs: list[SpecError], line: int, col: int, path: str, fragment: str) -> SpecError:
    """The error at line:col with this field path whose message contains ``fragment``."""
    for e in errs:
        if (e.line, e.col, format_path(e.path)) == (line, col, path) and fragment in e.message:
            return e
    pytest.fail(f"no error at {line}:{col} {path!r} containing {fragment!r}; got:\n" + "\n".join(map(str, errs)))


def suite_with(*lines: str) -> str:
    """The good suite with some of its top-level lines replaced or added (matched by key)."""
    out = GOOD.splitlines()
    for line in lines:
        key = line.split(":", 1)[0]
        idx = next((i for i, old in enumerate(out) if old.split(":", 1)[0] == key), None)
        if idx is None:
            out.insert(len(out) - 2, line)  # before `expect:`
        elif key == "expect":
            out[idx:] = line.splitlines()
        else:
            out[idx] = line
    return "\n".join(out) + "\n"


#: (id, suite text, line, col, field path, message fragment)
CASES = [
    ("yaml-syntax", "source: amazon\nmodels: [mini\nexpect: []\n", 3, 7, "models", "YAML syntax error"),
    ("yaml-unclosed-quote", 'source: "amazon\nmodels: [mini]\n', 3, 1, "source", "YAML syntax error"),
    (
        "duplicate-key",
        suite_with("source: amazon") + "source: webcam\n",
        8,
        1,
        "source",
        "duplicate key 'source' (first defined at line 3)",
    ),
    (
        "unknown-top-key",
        suite_with("sourcee: webcam"),
        6,
        1,
        "sourcee",
        "unknown key 'sourcee'; did you mean 'source'?",
    ),
    (
        "unknown-top-key-no-match",
        suite_with("colour: red"),
        6,
        1,
        "colour",
        "(allowed: data, expect, models, source, suite",
    ),
    (
        "unknown-key-in-data",
        suite_with("data: {classes: 5, colour: red}"),
        2,
        20,
        "data.colour",
        "unknown key 'colour' (allowed: classes, image-size",
    ),
    (
        "unknown-key-in-data-close",
        suite_with("data: {classes: 5, image-sise: 32}"),
        2,
        20,
        "data.image-sise",
        "did you mean 'image-size'?",
    ),
    (
        "unknown-key-in-train",
        suite_with("train: {epochs: 2, epoch: 3}"),
        4,
        20,
        "train.epoch",
        "unknown key 'epoch'; did you mean 'epochs'?",
    ),
    (
        "unknown-key-in-optimizer",
        suite_with("train: {optimizer: {nme: sgd}}"),
        4,
        21,
        "train.optimizer.nme",
        "did you mean 'name'?",
    ),
    (
        "unknown-key-in-model",
        suite_with("models:\n  - {name: m, arch: resnet10-mini, wieghts: x.pt}"),
        6,
        36,
        "models[0].wieghts",
        "unknown key 'wieghts'; did you mean 'weights'?",
    ),
    (
        "unknown-key-in-params",
        suite_with("expect:\n  - source-accuracy: {min: 0.5, mni: 0.1}"),
        7,
        33,
        "expect[0].source-accuracy.mni",
        "unknown key 'mni'; did you mean 'min'?",
    ),
    ("wrong-type-epochs", suite_with("train: {epochs: ten}"), 4, 17, "train.epochs", "valid integer (got 'ten')"),
    (
        "negative-epochs",
        suite_with("train: {epochs: -1}"),
        4,
        17,
        "train.epochs",
        "greater than or equal to 0 (got -1)",
    ),
    (
        "min-above-one",
        suite_with("expect:\n  - source-accuracy: {min: 1.5}"),
        7,
        28,
        "expect[0].source-accuracy.min",
        "less than or equal to 1 (got 1.5)",
    ),
    (
        "confidence-one",
        suite_with("expect:\n  - target-accuracy: {min: 0.2, confidence: 1}"),
        7,
        45,
        "expect[0].target-accuracy.confidence",
        "less than 1 (got 1)",
    ),
    (
        "max-not-a-number",
        suite_with("expect:\n  - drop-vs-source: {max: lots}"),
        7,
        27,
        "expect[0].drop-vs-source.max",
        "fraction like 4/255",
    ),
    (
        "attack-on-masking-unknown",
        suite_with("expect:\n  - attack: {name: fgsm, eps: 4/255, min-accuracy: 0.1, on-masking: ignore}"),
        7,
        69,
        "expect[0].attack.on-masking",
        "input should be 'fail' or 'warn' (got 'ignore')",
    ),
    (
        "missing-min",
        suite_with("expect:\n  - source-accuracy: {}"),
        7,
        22,
        "expect[0].source-accuracy",
        "missing required key 'min'",
    ),
    (
        "unknown-model",
        suite_with("models: [resnet19]"),
        5,
        10,
        "models[0]",
        "unknown model 'resnet19': not in specs/models.yaml nor the zoo; did you mean 'resnet18'",
    ),
    (
        "unknown-arch",
        suite_with("models:\n  - {name: m, arch: resnet5O}"),
        6,
        21,
        "models[0].arch",
        "did you mean 'resnet50'",
    ),
    (
        "unknown-dataset",
        suite_with("data: office-synht"),
        2,
        7,
        "data",
        "unknown dataset 'office-synht': not defined in specs/datasets.yaml nor built in; did you mean 'office-synth'?",
    ),
    (
        "unknown-recipe",
        suite_with("train: fsat"),
        4,
        8,
        "train",
        "unknown training recipe 'fsat': not defined in specs/training.yaml nor built in; did you mean 'fast'?",
    ),
    (
        "unknown-recipe-in-model",
        suite_with("models:\n  - {name: m, arch: resnet10-mini, train: quick}"),
        6,
        43,
        "models[0].train",
        "unknown training recipe 'quick'",
    ),
    (
        "unknown-source-domain",
        suite_with("source: amazn"),
        3,
        9,
        "source",
        "unknown domain 'amazn'; did you mean 'amazon'? (the dataset has: amazon, webcam, dslr)",
    ),
    (
        "unknown-target-domain",
        suite_with("targets: [webcam, dslrr]"),
        6,
        19,
        "targets[1]",
        "unknown domain 'dslrr'; did you mean 'dslr'?",
    ),
    (
        "unknown-expectation-domain",
        suite_with("expect:\n  - target-accuracy: {min: 0.2, domains: [dslr, webcan]}"),
        7,
        49,
        "expect[0].target-accuracy.domains[1]",
        "unknown domain 'webcan'; did you mean 'webcam'?",
    ),
    (
        "target-is-source",
        suite_with("targets: [webcam, amazon]"),
        6,
        19,
        "targets[1]",
        "target domain 'amazon' is the source domain",
    ),
    (
        "unknown-expectation-kind",
        suite_with("expect:\n  - target-acuracy: {min: 0.2}"),
        7,
        5,
        "expect[0].target-acuracy",
        "unknown expectation 'target-acuracy'; did you mean 'target-accuracy'",
    ),
    (
        "expectation-two-keys",
        suite_with("expect:\n  - {source-accuracy: {min: 0.5}, drop-vs-source: {max: 0.5}}"),
        7,
        5,
        "expect[0]",
        "one-key mapping",
    ),
    ("expectation-scalar", suite_with("expect:\n  - source-accuracy"), 7, 5, "expect[0]", "one-key mapping"),
    (
        "python-tag",
        suite_with("expect:\n  - source-accuracy: {min: !!python/object/apply:os.system [echo]}"),
        7,
        28,
        "expect[0].source-accuracy.min",
        "tags are not allowed (found !!python/object/apply:os.system)",
    ),
    (
        "python-expression",
        suite_with("expect:\n  - source-accuracy: {min: \"__import__('os')\"}"),
        7,
        28,
        "expect[0].source-accuracy.min",
        "expected a number, a fraction like 4/255 or a percentage like 90%",
    ),
    (
        "weights-missing",
        suite_with("models:\n  - {name: m, arch: resnet10-mini, weights: nope.pt}"),
        6,
        45,
        "models[0].weights",
        "weights file not found",
    ),
    (
        "duplicate-model-name",
        suite_with("models: [mini, resnet18, mini]"),
        5,
        26,
        "models[2]",
        "model name 'mini' appears twice (first at models[0])",
    ),
    (
        "baseline-variant",
        suite_with("variants: {baseline: []}"),
        6,
        12,
        "variants.baseline",
        "'baseline' is the uncompressed model",
    ),
    (
        "imagefolder-test-fraction",
        suite_with("data: {imagefolder: ., test-fraction: 1.0}"),
        2,
        39,
        "data.test-fraction",
        "strictly between 0 and 1 (got 1.0)",
    ),
    (
        "model-params-union",
        suite_with("models:\n  - {name: m, arch: resnet10-mini, params: {a: {b: 1}}}"),
        6,
        48,
        "models[0].params.a",
        "input should be a valid integer, a valid number, a valid string",
    ),
    (
        "regression-confidence-one",
        suite_with("expect:\n  - source-accuracy: {min: 0.5, regression: {max-drop: 0.02, confidence: 1}}"),
        7,
        74,
        "expect[0].source-accuracy.regression.confidence",
        "less than 1",
    ),
    (
        "regression-confidence-zero",
        suite_with("expect:\n  - source-accuracy: {min: 0.5, regression: {confidence: 0}}"),
        7,
        58,
        "expect[0].source-accuracy.regression.confidence",
        "greater than 0",
    ),
    ("bad-suite-name", suite_with("suite: 'bad name!'"), 1, 8, "suite", "should match pattern"),
    ("not-a-mapping", "- source: amazon\n", 1, 1, "<document>", "a suite is a mapping"),
]


@pytest.mark.parametrize(("text", "line", "col", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_suite_points_at_the_problem(
    suite_dir: Path, text: str, line: int, col: int, path: str, fragment: str
) -> None:
    errs = errors_of(suite_dir, text)
    err = find(errs, line, col, path, fragment)
    assert err.file == str(suite_dir / "suite.yaml")
    assert str(err).startswith(f"{err.file}:{line}:{col}: {path}: ")


def test_good_suite_loads(suite_dir: Path) -> None:
    path = suite_dir / "suite.yaml"
    path.write_text(GOOD)
    loaded = load_suite(path)
    assert loaded.suite.targets == ["webcam", "dslr"]
    assert loaded.suite.train.epochs == 4  # `fast` from specs/training.yaml


def test_dangerous_values_are_never_evaluated(suite_dir: Path) -> None:
    marker = suite_dir / "pwned"
    expression = f"min: \"__import__('os').system('touch {marker}')\""
    errs = errors_of(suite_dir, suite_with(f"expect:\n  - source-accuracy: {{{expression}}}"))
    find(errs, 7, 28, "expect[0].source-accuracy.min", "expected a number")
    tag = f"min: !!python/object/apply:os.system ['touch {marker}']"
    errs = errors_of(suite_dir, suite_with(f"expect:\n  - source-accuracy: {{{tag}}}"))
    find(errs, 7, 28, "expect[0].source-accuracy.min", "tags are not allowed")
    assert not marker.exists()


@pytest.mark.parametrize(("written", "value"), [("4/255", 4 / 255), ("90%", 0.9), ("0.25", 0.25), ("1", 1.0)])
def test_fraction_strings_parse(suite_dir: Path, written: str, value: float) -> None:
    path = suite_dir / "suite.yaml"
    path.write_text(suite_with(f"expect:\n  - source-accuracy: {{min: {written}}}"))
    (exp,) = load_suite(path).expectations
    assert exp.params.min == pytest.approx(value)


def test_error_in_a_spec_file_points_into_it(suite_dir: Path) -> None:
    training = suite_dir / "specs" / "training.yaml"
    training.write_text("fast:\n  epochs: 4\n  batch-size: 0\n  schedule: linear\n")
    errs = errors_of(suite_dir, GOOD)
    spec_file = str(suite_dir.resolve() / "specs" / "training.yaml")
    assert all(e.file == spec_file for e in errs), errs
    find(errs, 3, 15, "fast.batch-size", "greater than or equal to 1 (got 0)")
    find(errs, 4, 13, "fast.schedule", "'onecycle', 'cosine' or 'constant' (got 'linear')")
    assert len(errs) == 2


def test_error_in_a_named_model_points_into_models_yaml(suite_dir: Path) -> None:
    (suite_dir / "specs" / "models.yaml").write_text("mini:\n  arch: resnet10-mini\n  train: nope\n  colour: red\n")
    errs = errors_of(suite_dir, GOOD)
    models_file = str(suite_dir.resolve() / "specs" / "models.yaml")
    assert {e.file for e in errs} == {models_file}
    find(errs, 3, 10, "mini.train", "unknown training recipe 'nope'")
    find(errs, 4, 3, "mini.colour", "unknown key 'colour'")  # reported although the recipe failed


def test_several_errors_are_reported_at_once(suite_dir: Path) -> None:
    text = """\
suite: t
source: amazon
colour: red
train: {epochs: ten}
models: [resnet19]
expect:
  - source-accuracy: {min: 1.5}
  - nope: {}
  - target-accuracy: {min: 0.2, confidence: 0}
"""
    errs = errors_of(suite_dir, text)
    got = [(e.line, e.col, format_path(e.path)) for e in errs]
    assert got == [
        (3, 1, "colour"),
        (4, 17, "train.epochs"),
        (5, 10, "models[0]"),
        (7, 28, "expect[0].source-accuracy.min"),
        (8, 5, "expect[1].nope"),
        (9, 45, "expect[2].target-accuracy.confidence"),
    ], "\n".join(map(str, errs))


# --------------------------------------------------------------------------- property: errors land on the value

_prob = st.integers(0, 100).map(lambda n: n / 100)
_open = st.integers(1, 99).map(lambda n: n / 100)

#: Invalid replacements per kind of leaf.
_INVALID = {
    "probability": ["x", 7.0, -0.5, True],  # [0, 1], written as a fraction (booleans rejected)
    "unit": ["x", 7.0, -0.5],  # [0, 1], a plain float (pydantic takes true as 1.0)
    "below-one": ["x", 7.0, 1, -0.5],  # [0, 1)
    "open": ["x", 7.0, 0, 1],  # (0, 1)
    "count": ["x", -1, 1001, 2.5],
}


@st.composite
def valid_suites(draw: st.DrawFn) -> tuple[dict, list[tuple[tuple, str]]]:
    """A valid suite as plain data, and the paths of its threshold leaves with their kind."""
    leaves: list[tuple[tuple, str]] = []
    source = draw(st.sampled_from(DOMAINS))
    others = [d for d in DOMAINS if d != source]
    suite: dict = {"suite": "prop", "data": "office-synth", "source": source}
    if draw(st.booleans()):
        suite["targets"] = draw(st.lists(st.sampled_from(others), min_size=1, unique=True))
    if draw(st.booleans()):
        suite["train"] = draw(st.sampled_from(["fast", "default"]))
    else:
        suite["train"] = {
            "epochs": draw(st.integers(0, 20)),
            "label-smoothing": draw(_open),
            "optimizer": {"name": "sgd", "momentum": draw(_open)},
            "augment": {"jitter": draw(_prob)},
        }
        leaves += [
            (("train", "epochs"), "count"),
            (("train", "label-smoothing"), "below-one"),
            (("train", "optimizer", "momentum"), "below-one"),
            (("train", "augment", "jitter"), "unit"),
        ]
    suite["models"] = draw(
        st.lists(st.sampled_from(["mini", "resnet10-mini", "resnet18"]), min_size=1, max_size=3, unique=True)
    )
    expect = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["source-accuracy", "target-accuracy", "drop-vs-source"]))
        field = "max" if kind == "drop-vs-source" else "min"
        params: dict = {field: draw(_prob)}
        leaves.append((("expect", i, kind, field), "probability"))
        if draw(st.booleans()):
            params["confidence"] = draw(_open)
            leaves.append((("expect", i, kind, "confidence"), "open"))
        if kind != "source-accuracy" and draw(st.booleans()):
            params["domains"] = draw(st.lists(st.sampled_from(others), min_size=1, unique=True))
        expect.append({kind: params})
    suite["expect"] = expect
    return suite, leaves


def _set(data: dict, path: tuple, value: object) -> None:
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@pytest.fixture(scope="module")
def prop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Module-scoped (hypothesis runs many examples per test call): specs/ plus room for suite files."""
    d = tmp_path_factory.mktemp("prop")
    shutil.copytree(REPO_SPECS, d / "specs")
    return d


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_invalid_leaf_is_reported_at_its_position(prop_dir: Path, data: st.DataObject) -> None:
    suite, leaves = data.draw(valid_suites())
    path = prop_dir / "prop.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    load_suite(path)  # the generated suite itself is valid

    leaf, kind = data.draw(st.sampled_from(leaves))
    bad = copy.deepcopy(suite)
    _set(bad, leaf, data.draw(st.sampled_from(_INVALID[kind])))
    text = yaml.safe_dump(bad, sort_keys=False)
    path.write_text(text)
    with pytest.raises(SpecErrors) as info:
        load_suite(path)
    where = load_yaml(text, str(path)).positions[leaf]
    assert any((e.line, e.col) == where and e.path == leaf for e in info.value.errors), (text, str(info.value))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000), st.integers(1, 1000))
def test_fractions_in_yaml_are_exact(prop_dir: Path, num: int, den: int) -> None:
    path = prop_dir / "frac.yaml"
    path.write_text(suite_with(f"expect:\n  - source-accuracy: {{min: {num}/{den}}}"))
    if num <= den:
        (exp,) = load_suite(path).expectations
        assert exp.params.min == pytest.approx(num / den)
    else:
        with pytest.raises(SpecErrors) as info:
            load_suite(path)
        ((e,),) = [info.value.errors]
        assert (e.line, e.col, format_path(e.path)) == (7, 28, "expect[0].source-accuracy.min")
