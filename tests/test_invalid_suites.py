"""A table of invalid suites: each is reported at its file:line:col with a clear, bounded message.

Every case is a whole suite file (text, or bytes for the encoding cases), the position and a fragment of
the message of the problem it must report, and optionally other files written next to it (``specs/...``).
Each runs through :func:`robustspec.spec.loader.load_suite`; some also through ``robustspec validate``.
Validation never builds a dataset, a model or an artifact, so the suites stay small. Cases already in
tests/test_spec_errors.py and tests/test_variant_errors.py are not repeated here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from robustspec.cli import main as cli_main
from robustspec.errors import SpecError, SpecErrors
from robustspec.spec.loader import load_suite

#: The specs/ directory of every case (a case's own files replace these).
SPECS = {
    "specs/models.yaml": "mini:\n  arch: resnet10-mini\n",
    "specs/training.yaml": "fast:\n  epochs: 1\n",
}

#: Lines 1-3 of most cases; what follows starts on line 4.
HEAD = "data: {name: office-synth, classes: 2, image-size: 16, train-per-class: 2, test-per-class: 1}\nsource: amazon\nmodels: [mini]\n"
EXPECT = "expect:\n  - source-accuracy: {min: 0.5}\n"
#: A model with a variant (lines 3-6), for the cases about steps and vs-baseline expectations.
WITH_VARIANT = "source: amazon\nmodels:\n  - name: m\n    arch: resnet10-mini\n    variants:\n      v: {{{step}}}\n"
BIG = 2 << 20  # more than the 1 MiB a file may have


def case(
    text: str | bytes,
    line: int,
    col: int,
    fragment: str,
    *,
    id: str,
    files: dict[str, str] | None = None,
    file: str = "suite.yaml",
    also: tuple[tuple[str, int, int, str], ...] = (),
    absent: tuple[str, ...] = (),
    once: bool = False,
    marks: Any = (),
) -> Any:
    """One row: the problem at ``file:line:col`` containing ``fragment``; ``also`` more that must be there,
    ``absent`` fragments no message may contain; ``once``: no other message contains ``fragment``."""
    return pytest.param(text, line, col, fragment, files or {}, file, also, absent, once, id=id, marks=marks)


CASES = [
    # ---- YAML syntax
    case(
        HEAD + "expect:\n  - source-accuracy: {min: 0.5\n",
        6,
        1,
        "YAML syntax error: expected ',' or '}'",
        id="syntax-unclosed-flow-mapping",
    ),
    case(
        "source: amazon\n  models: [mini]\n",
        2,
        9,
        "YAML syntax error: mapping values are not allowed here",
        id="syntax-indented-key",
    ),
    case(
        "source: amazon\nmodels:\n\t- mini\n",
        3,
        1,
        "found character '\\t' that cannot start any token",
        id="syntax-tab-indent",
    ),
    case("source: amazon\n---\nmodels: [mini]\n", 2, 1, "expected a single YAML document", id="syntax-two-documents"),
    # ---- encoding
    case(
        HEAD.encode() + b"suite: caf\xe9\n" + EXPECT.encode(),
        4,
        11,
        "file is not valid UTF-8: byte 0xE9",
        id="encoding-latin1-byte-on-line-4",
    ),
    case(
        b"source: amazon\nmodels: [mini]\nsuite: \xc3\xa9t\xc3\xa9 \xff\n",
        3,
        12,
        "not valid UTF-8: byte 0xFF (invalid start byte)",
        id="encoding-bad-byte-line-3-after-multibyte",
    ),
    case((HEAD + EXPECT).encode("utf-16"), 1, 1, "file is UTF-16 (little-endian) text", id="encoding-utf16-with-bom"),
    case((HEAD + EXPECT).encode("utf-16-be"), 1, 1, "looks like UTF-16 or UTF-32", id="encoding-utf16-without-bom"),
    case("\ufeff" + HEAD + "\ufeff" + EXPECT, 4, 1, "byte order mark (U+FEFF", id="encoding-bom-inside-the-file"),
    case(HEAD + "suite: a\x00b\n" + EXPECT, 4, 9, "NUL character (U+0000)", id="encoding-nul"),
    case(
        HEAD + EXPECT + "targets: [webcam\x1b]\n",
        6,
        17,
        "control character '\\x1b' (U+001B)",
        id="encoding-escape-character",
    ),
    # ---- YAML features that are refused
    case(
        HEAD + "expect:\n  - target-accuracy: {min: 0.2, min: 0.3}\n",
        5,
        33,
        "duplicate key 'min' (first defined at line 5)",
        id="duplicate-key-in-flow-mapping",
    ),
    case(
        "source: amazon\ndata: !!python/object:collections.OrderedDict {}\nmodels: [mini]\n" + EXPECT,
        2,
        7,
        "tags are not allowed (found !!python/object:collections.OrderedDict)",
        id="tag-python-object",
    ),
    case(
        "source: amazon\ndata: !include specs/datasets.yaml\nmodels: [mini]\n" + EXPECT,
        2,
        7,
        "tags are not allowed (found !include)",
        id="tag-include",
    ),
    case(
        "source: amazon\nmodels: [*mini]\n" + EXPECT,
        2,
        10,
        "alias *mini refers to an anchor that is not defined before it",
        id="alias-undefined",
    ),
    case(HEAD + EXPECT + "variants: &v {q: [*v]}\n", 6, 19, "alias *v refers to itself", id="alias-self-reference"),
    case(
        HEAD
        + EXPECT
        + "x0: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
        + "".join(
            f"x{i}: &{'abcdefghi'[i]} [" + ", ".join([f"*{'abcdefghi'[i - 1]}"] * 9) + "]\n" for i in range(1, 8)
        ),
        10,
        13,
        "document too large (alias expansion)",
        id="alias-billion-laughs",
    ),
    case(HEAD + EXPECT + "train:\n  <<: {epochs: 1}\n", 7, 3, "merge keys are not supported", id="merge-key"),
    # ---- size and depth
    case(
        "source: amazon\nmodels: " + "[" * 60 + "]" * 60 + "\n", 2, 58, "nesting is deeper than 50 levels", id="depth"
    ),
    case(
        HEAD + "suite: " + "x" * 70_000 + "\n" + EXPECT,
        4,
        8,
        "a value of 70000 characters is longer than the 65536 allowed",
        id="size-huge-scalar",
    ),
    case(
        HEAD + EXPECT + "# " + "x" * BIG + "\n",
        1,
        1,
        f"file too large: {len(HEAD + EXPECT) + BIG + 3} bytes",
        id="size-huge-file",
    ),
    case(
        HEAD + EXPECT + "targets: [" + "webcam, " * 25_000 + "]\n",
        6,
        159_795,
        "document too large: more than 20000 nodes (values, lists and mappings)",
        id="size-huge-list-without-aliases",
    ),
    case(
        HEAD + EXPECT + "k" * 300 + ": 1\n",
        6,
        1,
        "a mapping key of 300 characters is longer than the 256 allowed",
        id="size-long-key",
    ),
    # ---- top-level fields
    case(HEAD + EXPECT + "suite: " + "n" * 65 + "\n", 6, 8, "at most 64 characters", id="suite-name-too-long"),
    case(HEAD + EXPECT + "suite: -leading-hyphen\n", 6, 8, "should match pattern", id="suite-name-pattern"),
    case(
        "data: office-synth\nsource: [amazon]\nmodels: [mini]\n" + EXPECT,
        2,
        9,
        "valid string",
        id="source-not-a-string",
    ),
    case(HEAD + EXPECT + "targets: webcam\n", 6, 10, "valid list", id="targets-not-a-list"),
    case(
        "data: office-synth\nsource: amazon\nmodels: mini\n" + EXPECT,
        3,
        9,
        "expected a list of models",
        id="models-not-a-list",
    ),
    case(
        "data: office-synth\nsource: amazon\nmodels: []\n" + EXPECT,
        3,
        9,
        "a suite needs at least one model",
        id="models-empty",
    ),
    case(HEAD + "expect: []\n", 4, 9, "a suite needs at least one expectation", id="expect-empty"),
    # ---- data
    case(
        "data: {classes: 17}\nsource: amazon\nmodels: [mini]\n" + EXPECT,
        1,
        17,
        "less than or equal to 16 (got 17)",
        id="data-too-many-classes",
    ),
    case(
        "data: {classes: true}\nsource: amazon\nmodels: [mini]\n" + EXPECT,
        1,
        17,
        "valid integer (got True)",
        id="data-classes-boolean",
    ),
    case(
        "data: {name: office-real}\nsource: amazon\nmodels: [mini]\n" + EXPECT,
        1,
        14,
        "input should be 'office-synth' (got 'office-real')",
        id="data-name-literal",
    ),
    case(
        "data: {imagefolder: no/such/dir}\nsource: amazon\nmodels: [mini]\n" + EXPECT,
        1,
        7,
        "no/such/dir",
        id="data-imagefolder-missing",
    ),
    case(
        "data: {imagefolder: no/such/dir, bad-images: maybe}\nsource: amazon\nmodels: [mini]\n" + EXPECT,
        1,
        46,
        "input should be 'fail' or 'skip' (got 'maybe')",
        id="data-bad-images-literal",
    ),
    case(
        "data: [office-synth]\nsource: amazon\nmodels: [mini]\n" + EXPECT,
        1,
        7,
        "expected a dataset name or a mapping, got list",
        id="data-list",
    ),
    case(
        "data: offise-synth\nsource: amazon\nmodels: [mini]\n" + EXPECT,
        1,
        7,
        "did you mean 'office-synth'?",
        id="data-unknown-name",
    ),
    # ---- training recipe
    case(HEAD + EXPECT + "train: {epochs: true}\n", 6, 17, "valid integer (got True)", id="train-epochs-boolean"),
    case(HEAD + EXPECT + "train: {epochs: 2.5}\n", 6, 17, "valid integer", id="train-epochs-float"),
    case(HEAD + EXPECT + "train: {optimizer: {lr: .inf}}\n", 6, 25, "finite number", id="train-lr-inf"),
    case(HEAD + EXPECT + "train: {optimizer: {momentum: .nan}}\n", 6, 31, "finite number", id="train-momentum-nan"),
    case(
        HEAD + EXPECT + "train: {optimizer: {name: rmsprop}}\n",
        6,
        27,
        "input should be 'sgd', 'adam' or 'adamw' (got 'rmsprop')",
        id="train-optimizer-literal",
    ),
    case(HEAD + EXPECT + "train: {augment: {flip: maybe}}\n", 6, 25, "valid boolean", id="train-flip-not-a-boolean"),
    case(HEAD + EXPECT + "train: {augment: {jitter: 1e309}}\n", 6, 27, "finite number", id="train-jitter-1e309"),
    case(HEAD + EXPECT + "train: {label-smoothing: 1}\n", 6, 26, "less than 1 (got 1)", id="train-label-smoothing-one"),
    case(
        HEAD + EXPECT + "train: {batch-size: 0}\n",
        6,
        21,
        "greater than or equal to 1 (got 0)",
        id="train-batch-size-zero",
    ),
    case(
        HEAD + EXPECT + "train: {class-weights: inverse}\n",
        6,
        24,
        "input should be 'none' or 'balanced' (got 'inverse')",
        id="train-class-weights-literal",
    ),
    # ---- models
    case(
        "source: amazon\nmodels:\n  - {name: m, arch: ''}\n" + EXPECT,
        3,
        21,
        "at least 1 character",
        id="model-arch-empty",
    ),
    case(
        "source: amazon\nmodels:\n  - {name: my model, arch: resnet18}\n" + EXPECT,
        3,
        12,
        "should match pattern",
        id="model-name-pattern",
    ),
    case(
        "source: amazon\nmodels:\n  - {name: m, arch: resnet81}\n" + EXPECT,
        3,
        21,
        "did you mean 'resnet18'",
        id="model-arch-resnet81",
    ),
    case(
        "source: amazon\nmodels:\n  - {name: m, arch: 'no_such_module:factory'}\n" + EXPECT,
        3,
        21,
        "no_such_module",
        id="model-arch-factory-missing",
    ),
    case(
        "source: amazon\nmodels:\n  - {name: m, arch: resnet10-mini, params: {width: .inf}}\n" + EXPECT,
        3,
        52,
        "finite number",
        id="model-params-inf",
    ),
    case(
        "source: amazon\nmodels:\n  - {name: m, arch: resnet10-mini, weights: 3}\n" + EXPECT,
        3,
        45,
        "valid string (got 3)",
        id="model-weights-not-a-string",
    ),
    case(
        "source: amazon\nmodels:\n  - {name: m, arch: resnet10-mini, normalize: {std: [0.2, 0, 0.2]}}\n" + EXPECT,
        3,
        59,
        "greater than 0 (got 0)",
        id="model-normalize-std-zero",
    ),
    case(
        "source: amazon\nmodels:\n  - {name: m, arch: resnet10-mini, normalize: {mean: [.nan, 0.5, 0.5]}}\n" + EXPECT,
        3,
        55,
        "finite number",
        id="model-normalize-mean-nan",
    ),
    case(
        "source: amazon\nmodels:\n  - {name: m, arch: resnet10-mini, normalize: {mean: [0.5, 0.5, 0.5, 0.5]}}\n"
        + EXPECT,
        3,
        54,
        "at most 3 items",
        id="model-normalize-mean-four",
    ),
    case(
        "source: amazon\nmodels:\n  - {name: m, arch: resnet10-mini, normalize: {mean: [true, 0.5, 0.5]}}\n" + EXPECT,
        3,
        55,
        "boolean",
        id="model-normalize-mean-boolean",
    ),
    case(
        "source: amazon\nmodels: [resnet81]\n" + EXPECT,
        2,
        10,
        "unknown model 'resnet81': not in specs/models.yaml nor the zoo; did you mean 'resnet18'",
        id="models-resnet81",
    ),
    case(
        "source: amazon\nmodels: [mini]\n" + EXPECT,
        2,
        3,
        "unknown key 'arhc'; did you mean 'arch'?",
        files={"specs/models.yaml": "mini:\n  arhc: resnet10-mini\n"},
        file="specs/models.yaml",
        id="models-yaml-unknown-key",
    ),
    # ---- variants and each compression step's parameters
    case(
        HEAD + EXPECT + "variants: {bad name: {quantize: ptsq}}\n",
        6,
        12,
        "should match pattern",
        id="variant-name-pattern",
    ),
    case(WITH_VARIANT.format(step="prune: {ratio: .inf}") + EXPECT, 6, 26, "finite number", id="step-prune-ratio-inf"),
    case(
        WITH_VARIANT.format(step="prune: {method: l2-filter}") + EXPECT,
        6,
        27,
        "input should be 'l1-filter' (got 'l2-filter')",
        id="step-prune-method",
    ),
    case(
        WITH_VARIANT.format(step="sparsify: {sparsity: '1e309'}") + EXPECT,
        6,
        32,
        "must be a finite number",
        id="step-sparsify-sparsity-1e309-quoted",
    ),
    case(
        WITH_VARIANT.format(step="sparsify: {sparsity: 0.5, scope: model}") + EXPECT,
        6,
        44,
        "input should be 'global' or 'layer' (got 'model')",
        id="step-sparsify-scope",
    ),
    case(
        WITH_VARIANT.format(step="quantize: {calibration: true}") + EXPECT,
        6,
        35,
        "valid integer (got True)",
        id="step-quantize-calibration-boolean",
    ),
    case(
        WITH_VARIANT.format(step="quantize: {backend: tensorrt}") + EXPECT,
        6,
        31,
        "(got 'tensorrt')",
        id="step-quantize-backend",
    ),
    case(
        WITH_VARIANT.format(step="lowrank: {rank-ratio: .nan}") + EXPECT,
        6,
        33,
        "finite number",
        id="step-lowrank-rank-ratio-nan",
    ),
    case(
        WITH_VARIANT.format(step="lowrank: {params: 1e999999999}") + EXPECT,
        6,
        29,
        "finite number",
        id="step-lowrank-params-1e999999999",
    ),
    case(
        WITH_VARIANT.format(step="lowrank: {params: '1e999999999'}") + EXPECT,
        6,
        29,
        "a parameter count must be at most 10^15, got '1e999999999'",
        id="step-lowrank-params-huge-text",
    ),
    case(
        WITH_VARIANT.format(step="distill: {student: resnet18, temperature: 1e309}") + EXPECT,
        6,
        53,
        "finite number",
        id="step-distill-temperature-1e309",
    ),
    case(
        WITH_VARIANT.format(step="distill: {student: resnet18, alpha: true}") + EXPECT,
        6,
        47,
        "boolean",
        id="step-distill-alpha-boolean",
    ),
    case(
        WITH_VARIANT.format(step="coral: {target: webcam, weight: -1}") + EXPECT,
        6,
        43,
        "greater than or equal to 0 (got -1)",
        id="step-coral-weight-negative",
    ),
    case(
        WITH_VARIANT.format(step="coral: {target: amazn}") + EXPECT,
        6,
        27,
        "unknown domain 'amazn'; did you mean 'amazon'?",
        id="step-coral-target-amazn",
    ),
    case(
        WITH_VARIANT.format(step="adabn: {target: amazon}") + EXPECT,
        6,
        27,
        "is the source domain",
        id="step-adabn-target-is-source",
    ),
    case(
        WITH_VARIANT.format(step="adabn: {target: webcam, images: 0}") + EXPECT,
        6,
        43,
        "greater than",
        id="step-adabn-images-zero",
    ),
    case(
        WITH_VARIANT.format(step="quantise: ptsq") + EXPECT,
        6,
        11,
        "unknown compression 'quantise'; did you mean 'quantize'",
        id="step-unknown-with-suggestion",
    ),
    # ---- each expectation kind's parameters
    case(
        HEAD + "expect:\n  - source-accuracy: {min: .inf}\n",
        5,
        28,
        "must be a finite number",
        id="source-accuracy-min-inf",
    ),
    case(
        HEAD + "expect:\n  - target-accuracy: {min: '1e309'}\n",
        5,
        28,
        "must be a finite number (got '1e309')",
        id="target-accuracy-min-1e309-quoted",
    ),
    case(
        HEAD + "expect:\n  - target-accuracy: {min: true}\n",
        5,
        28,
        "expected a number, got a boolean",
        id="target-accuracy-min-boolean",
    ),
    case(
        HEAD + "expect:\n  - drop-vs-source: {max: 1e309}\n",
        5,
        27,
        "must be a finite number",
        id="drop-vs-source-max-1e309",
    ),
    case(
        WITH_VARIANT.format(step="quantize: ptsq") + "expect:\n  - drop-vs-baseline: {max: .nan}\n",
        8,
        29,
        "must be a finite number",
        id="drop-vs-baseline-max-nan",
    ),
    case(
        WITH_VARIANT.format(step="quantize: ptsq") + "expect:\n  - drop-vs-baseline: {max: 0.1, relative: 1}\n",
        8,
        44,
        "valid boolean",
        id="drop-vs-baseline-relative-not-boolean",
    ),
    case(
        WITH_VARIANT.format(step="quantize: ptsq") + "expect:\n  - retained: {min: -.inf}\n",
        8,
        21,
        "must be a finite number",
        id="retained-min-minus-inf",
    ),
    case(
        WITH_VARIANT.format(step="quantize: ptsq") + "expect:\n  - max-params: {max: '1e309'}\n",
        8,
        23,
        "a parameter count must be at most 10^15",
        id="max-params-max-1e309",
    ),
    case(
        WITH_VARIANT.format(step="quantize: ptsq") + "expect:\n  - max-size-mb: {max: 1e309}\n",
        8,
        24,
        "finite number",
        id="max-size-mb-max-1e309",
    ),
    case(
        WITH_VARIANT.format(step="quantize: ptsq") + "expect:\n  - max-size-mb: {max: '1e309'}\n",
        8,
        24,
        "finite number",
        id="max-size-mb-max-1e309-quoted",
    ),
    case(
        WITH_VARIANT.format(step="quantize: ptsq") + "expect:\n  - max-size-mb: {max: true}\n",
        8,
        24,
        "boolean",
        id="max-size-mb-max-boolean",
    ),
    case(
        WITH_VARIANT.format(step="coral: webcam") + "expect:\n  - adaptation-gain: {min: 2}\n",
        8,
        28,
        "less than or equal to 1 (got 2)",
        id="adaptation-gain-min-two",
    ),
    case(
        WITH_VARIANT.format(step="coral: webcam") + "expect:\n  - adaptation-gain: {min: 0, versus: q8}\n",
        8,
        39,
        "unknown variant 'q8'",
        id="adaptation-gain-versus-unknown",
    ),
    case(
        HEAD + "expect:\n  - corruption: {severities: [6]}\n",
        5,
        31,
        "severity must be 1-5 (got 6)",
        id="corruption-severity-six",
    ),
    case(
        HEAD + "expect:\n  - corruption: {corruptions: [gaussian_nosie]}\n",
        5,
        32,
        "did you mean 'gaussian_noise'",
        id="corruption-unknown-with-suggestion",
    ),
    case(HEAD + "expect:\n  - corruption: {max-mce: .inf}\n", 5, 27, "finite number", id="corruption-max-mce-inf"),
    case(
        HEAD + "expect:\n  - corruption: {domain: amazn, min-accuracy: 0.1}\n",
        5,
        26,
        "unknown domain 'amazn'; did you mean 'amazon'?",
        id="corruption-domain-amazn",
    ),
    case(
        HEAD + "expect:\n  - attack: {name: fgsm, eps: .inf, min-accuracy: 0.1}\n",
        5,
        31,
        "must be a finite number",
        id="attack-eps-inf",
    ),
    case(
        HEAD + "expect:\n  - attack: {name: fgsn, eps: 4/255, min-accuracy: 0.1}\n",
        5,
        20,
        "did you mean 'fgsm'",
        id="attack-unknown-with-suggestion",
    ),
    case(
        HEAD + "expect:\n  - attack: {name: pgd-linf, eps: 4/255, stepz: 10, min-accuracy: 0.1}\n",
        5,
        42,
        "unknown key 'stepz'; did you mean 'steps'?",
        id="attack-unknown-parameter",
    ),
    case(
        HEAD + "expect:\n  - attack: {name: fgsm, eps: 4/255, samples: 0, min-accuracy: 0.1}\n",
        5,
        47,
        "greater than or equal to 1",
        id="attack-samples-zero",
    ),
    case(
        WITH_VARIANT.format(step="quantize: ptsq")
        + "expect:\n  - attack: {name: fgsm, eps: 4/255, max-degradation-vs-baseline: .nan}\n",
        8,
        67,
        "finite number",
        id="attack-vs-baseline-nan",
    ),
    case(
        WITH_VARIANT.format(step="quantize: ptsq")
        + "expect:\n  - attack: {name: fgsm, eps: 4/255, max-degradation-vs-baseline: true}\n",
        8,
        67,
        "boolean",
        id="attack-vs-baseline-boolean",
    ),
    case(
        HEAD + "expect:\n  - source-accuracy: {min: 0.5, severity: fatal}\n",
        5,
        43,
        "input should be 'fail' or 'warn' (got 'fatal')",
        id="severity-literal",
    ),
    case(
        HEAD + "expect:\n  - source-accuracy: {min: 0.5, confidence: true}\n", 5, 45, "boolean", id="confidence-boolean"
    ),
    case(
        HEAD + "expect:\n  - source-accuracy: {min: 0.5, regression: {max-drop: .inf}}\n",
        5,
        56,
        "finite number",
        id="regression-max-drop-inf",
    ),
    case(
        HEAD + "expect:\n  - min-class-accuracy: {min: 1.5}\n",
        5,
        31,
        "input should be less than or equal to 1 (got 1.5)",
        id="min-class-accuracy-above-1",
    ),
    case(
        HEAD + "expect:\n  - balanced-accuracy: {min: 0.5, domains: [webcm]}\n",
        5,
        45,
        "unknown domain 'webcm'; did you mean 'webcam'",
        id="balanced-accuracy-unknown-domain",
    ),
    case(
        HEAD + "expect:\n  - drop-vs-sorce: {max: 0.5}\n",
        5,
        5,
        "unknown expectation 'drop-vs-sorce'; did you mean 'drop-vs-source'",
        id="expectation-kind-suggestion",
    ),
    # ---- references across the suite
    case(
        HEAD + "expect:\n  - target-accuracy: {min: 0.2, models: [resnet50]}\n",
        5,
        42,
        "unknown model 'resnet50' (the suite has: mini)",
        id="ref-unknown-model",
    ),
    case(
        WITH_VARIANT.format(step="quantize: ptsq") + "expect:\n  - drop-vs-baseline: {max: 0.1, variants: [w]}\n",
        8,
        45,
        "unknown variant 'w'",
        id="ref-unknown-variant",
    ),
    case(
        HEAD + "expect:\n  - target-accuracy: {min: 0.2, domains: [amazon+gaussian_noise@9]}\n",
        5,
        43,
        "amazon+gaussian_noise@9",
        id="ref-derived-domain-severity",
    ),
    case(
        HEAD + "expect:\n  - target-accuracy: {min: 0.2, domains: [webcam+gaussian_nosie@3]}\n",
        5,
        43,
        "gaussian_noise",
        id="ref-derived-domain-unknown-corruption",
    ),
    case(HEAD + EXPECT + "targets: [amazn+gaussian_noise@3]\n", 6, 11, "amazn", id="ref-derived-target-unknown-base"),
    case(
        HEAD + EXPECT + "targets: [dslr, ebcam]\n",
        6,
        17,
        "unknown domain 'ebcam'; did you mean 'webcam'?",
        id="ref-target-suggestion",
    ),
    # ---- behaviours being implemented in the loader (last, see the module docstring)
    case(
        "source: amazon\nmodels: [mini, tiny]\n" + EXPECT,
        5,
        1,
        "YAML syntax error",
        files={"specs/models.yaml": "tiny:\n  arch: resnet10-mini\nmini:\n  arch: [resnet10-mini\n"},
        file="specs/models.yaml",
        absent=("unknown model", "not in specs/models.yaml"),
        once=True,
        id="no-cascade-from-a-broken-models-yaml",
    ),
    case(
        'suite: "bad name"\nsource: amazon\nmodels: [resnet81]\nvariants: {bad v: {quantize: ptsq}}\n' + EXPECT,
        1,
        8,
        "should match pattern",
        also=(("suite.yaml", 3, 10, "unknown model 'resnet81'"), ("suite.yaml", 4, 12, "should match pattern")),
        id="every-problem-at-once",
    ),
    case(
        HEAD + "expect:\n  - attack: {name: fgsm, eps: 4/255, max-degradation-vs-baseline: 0.1}\n",
        5,
        5,
        "attack selects nothing",
        id="selects-nothing-vs-baseline-without-variants",
    ),
    case(
        "source: amazon\nmodels:\n  - {name: a, arch: resnet10-mini, variants: {v: {quantize: ptsq}}}\n  - {name: b, arch: resnet10-mini}\n"
        "expect:\n  - drop-vs-baseline: {max: 0.1, models: [b]}\n",
        6,
        5,
        "drop-vs-baseline selects nothing",
        id="selects-nothing-model-without-variants",
    ),
    case(
        "source: amazon\nmodels:\n  - {name: a, arch: resnet10-mini, variants: {v: {quantize: ptsq}}}\n  - {name: b, arch: resnet10-mini}\n"
        "expect:\n  - source-accuracy: {min: 0.5, models: [b], variants: [v]}\n",
        6,
        5,
        "source-accuracy selects nothing: no model of the suite has models b and variants v",
        id="selects-nothing-variant-of-another-model",
    ),
]


def _write(directory: Path, text: str | bytes, files: dict[str, str]) -> Path:
    for name, content in {**SPECS, **files}.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    path = directory / "suite.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def _errors(path: Path) -> list[SpecError]:
    with pytest.raises(SpecErrors) as info:
        load_suite(path)
    return info.value.errors


def _has(errs: list[SpecError], file: Path, line: int, col: int, fragment: str) -> bool:
    return any((e.file, e.line, e.col) == (str(file), line, col) and fragment in e.message for e in errs)


def _where(directory: Path, file: str) -> Path:
    # Errors name a spec file by its resolved path, the suite file as it was given.
    return (directory.resolve() if file != "suite.yaml" else directory) / file


@pytest.mark.parametrize(("text", "line", "col", "fragment", "files", "file", "also", "absent", "once"), CASES)
def test_invalid_suite_is_reported_at_its_position(
    tmp_path: Path,
    text: str | bytes,
    line: int,
    col: int,
    fragment: str,
    files: dict[str, str],
    file: str,
    also: tuple,
    absent: tuple,
    once: bool,
) -> None:
    path = _write(tmp_path, text, files)
    errs = _errors(path)
    shown = "\n".join(map(str, errs))
    assert _has(errs, _where(tmp_path, file), line, col, fragment), f"no {file}:{line}:{col} {fragment!r} in:\n{shown}"
    for other_file, other_line, other_col, other_fragment in also:
        assert _has(errs, _where(tmp_path, other_file), other_line, other_col, other_fragment), (
            f"no {other_file}:{other_line}:{other_col} {other_fragment!r} in:\n{shown}"
        )
    for fragment_absent in absent:
        assert not any(fragment_absent in e.message for e in errs), shown
    if once:
        assert sum(fragment in e.message for e in errs) == 1, shown
    # Bounded: no message repeats a long input, and a file never gives a flood.
    assert all(len(str(e)) < 600 for e in errs), shown[:2000]
    assert len(shown) < 20_000


# --------------------------------------------------------------------------- through the command line

#: Ids of cases also run through ``robustspec validate``: the printed form and a bounded output.
CLI_CASES = [
    "encoding-latin1-byte-on-line-4",
    "encoding-utf16-with-bom",
    "alias-billion-laughs",
    "size-huge-scalar",
    "size-huge-file",
    "size-huge-list-without-aliases",
    "max-size-mb-max-1e309",
    "ref-derived-domain-severity",
]
_BY_ID = {p.id: p for p in CASES}


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_validate_prints_file_line_col(tmp_path: Path, capsys: pytest.CaptureFixture[str], case_id: str) -> None:
    text, line, col, fragment, files, file, *_ = _BY_ID[case_id].values
    path = _write(tmp_path, text, files)
    assert cli_main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(ln.startswith(f"{path}:{line}:{col}: ") and fragment in ln for ln in lines), out[:2000]
    assert len(out) < 5_000, f"{len(out)} characters of output"


def test_validate_runs_as_a_program(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + "suite: " + "x" * 70_000 + "\n" + EXPECT, {})
    proc = subprocess.run(
        [sys.executable, "-m", "robustspec.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith(f"{path}:4:8: suite: a value of 70000 characters is longer than the 65536 allowed")
    assert len(proc.stdout) < 1_000 and "Traceback" not in proc.stderr


def test_every_message_is_short_even_for_long_inputs(tmp_path: Path) -> None:
    """Values just under the scalar cap, and keys just under the key cap, everywhere they are echoed."""
    long = "z" * 60_000
    key = "k" * 250
    text = (
        f"suite: {long}\ndata: {long}\nsource: {long}\ntargets:\n  - {long}\ntrain: {long}\n"
        f"models:\n  - {long}\n  - name: m\n    arch: {long}\n"
        f"variants:\n  v: {{{key}: {{}}}}\n  {key}: {{quantize: ptsq}}\n"
        f"expect:\n  - source-accuracy: {{min: {long}}}\n"
        f"  - max-params: {{max: '{long}'}}\n  - {key}: {{}}\n"
        f"{key}: 1\n"
    )
    path = _write(tmp_path, text, {})
    errs = _errors(path)
    assert len(errs) >= 5, "\n".join(str(e)[:300] for e in errs)
    assert all(len(str(e)) < 600 for e in errs), "\n".join(str(e)[:300] for e in errs if len(str(e)) >= 600)
