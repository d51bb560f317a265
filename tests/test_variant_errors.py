"""Bad compression variants are collection errors at the step's file:line:col, with a clear message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from robustspec.errors import SpecErrors
from robustspec.spec.loader import load_suite

REPO_SPECS = Path(__file__).resolve().parents[1] / "specs"

SUITE = """\
source: amazon
train: fast
models:
  - name: r50
    arch: resnet50
    variants:
      v: {variant}
expect:
  - source-accuracy: {{min: 0.5}}
"""

CASES = [
    ("budget-above-model", "{prune: {params: 30M}}", "7:18", "is not below the model's"),
    ("budget-too-small", "{prune: {params: 10k}}", "7:18", "vanish"),
    ("ratio-zero", "{prune: {ratio: 0}}", "7:26", "> 0"),
    ("ratio-one", "{prune: {ratio: 1}}", "7:26", "< 1"),
    ("ratio-and-params", "{prune: {ratio: 0.5, params: 11.19M}}", "7:18", "not both"),
    ("bad-count", "{prune: {params: lots}}", "7:27", "11.19M"),
    ("unknown-student", "{distill: {student: resnet81}}", "7:20", "unknown student"),
    ("distill-not-first", "[{prune: {ratio: 0.3}}, {distill: {student: resnet18}}]", "7:44", "first step"),
    ("quantize-before-prune", "[{quantize: ptsq}, {prune: {ratio: 0.3}}]", "7:37", "cannot be pruned"),
    ("step-after-quantize", "[{quantize: ptsq}, {sparsify: {sparsity: 0.5}}]", "7:22", "last step"),
    ("unknown-step", "{squeeze: {ratio: 0.5}}", "7:11", "unknown compression 'squeeze'"),
    ("two-keys", "{prune: {ratio: 0.5}, quantize: ptsq}", "7:10", "one-key mapping"),
    ("unknown-quant-method", "{quantize: dynamic}", "7:21", "'ptsq'"),
    ("sparsity-out-of-range", "{sparsify: {sparsity: 1.5}}", "7:32", "less than 1"),
    ("lowrank-neither", "{lowrank: {finetune: 1}}", "7:20", "rank-ratio"),
    ("step-after-export", "[{export: onnx}, {sparsify: {sparsity: 0.5}}]", "7:20", "export must be the last step"),
    ("export-twice", "[{export: onnx}, {export: executorch}]", "7:36", "export appears twice"),
    ("eager-int8-exported", "[{quantize: ptsq}, {export: onnx}]", "7:22", "which no runtime exports"),
    ("unknown-runtime", "{export: tflite}", "7:19", "unknown runtime 'tflite'"),
    ("export-batch-zero", "{export: {format: onnx, batch: 0}}", "7:41", "greater than or equal to 1"),
    ("unknown-quant-backend", "{quantize: {backend: tensorrt}}", "7:31", "'xnnpack'"),
    ("load-not-alone", "[{prune: {ratio: 0.3}}, {load: missing.onnx}]", "7:41", "not found"),
    ("baseline-redefined", None, "7:7", "cannot be redefined"),
]


@pytest.mark.parametrize("name, variant, where, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_variant_points_at_the_step(
    tmp_path: Path, name: str, variant: str | None, where: str, fragment: str
) -> None:
    shutil.copytree(REPO_SPECS, tmp_path / "specs")
    text = (
        SUITE.format(variant=variant)
        if variant
        else SUITE.replace("      v: {variant}", "      baseline: {{quantize: ptsq}}").format()
    )
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(SpecErrors) as info:
        load_suite(path)
    lines = str(info.value).splitlines()
    assert any(f"suite.yaml:{where}:" in line and fragment in line for line in lines), "\n".join(lines)


def test_quantizing_a_factory_model_is_refused(tmp_path: Path) -> None:
    shutil.copytree(REPO_SPECS, tmp_path / "specs")
    path = tmp_path / "suite.yaml"
    path.write_text(
        SUITE.replace("arch: resnet50", "arch: tests.test_models:tiny_factory").format(variant="{quantize: ptsq}")
    )
    with pytest.raises(SpecErrors, match="eager int8 flow.* supports torchvision ResNets"):
        load_suite(path)


def test_a_good_chain_loads_with_its_steps(tmp_path: Path) -> None:
    shutil.copytree(REPO_SPECS, tmp_path / "specs")
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(variant="[{prune: {params: 11.19M}}, {quantize: ptsq}]"))
    loaded = load_suite(path)
    steps = loaded.variants["r50"]["v"]
    assert [s.kind for s in steps] == ["prune", "quantize"]
    assert steps[0].params.params == 11_190_000


def test_a_broken_variant_does_not_hide_the_chain_problems_of_the_others(tmp_path: Path) -> None:
    shutil.copytree(REPO_SPECS, tmp_path / "specs")
    path = tmp_path / "suite.yaml"
    path.write_text(
        "source: amazon\n"
        "train: fast\n"
        "models: [mobilenet_v2]\n"
        "variants:\n"
        "  shipped: {load: nowhere.onnx}\n"
        "  int8: {quantize: ptsq}\n"
        "  et: [{export: executorch}, {prune: {ratio: 0.3}}]\n"
        "expect:\n"
        "  - source-accuracy: {min: 0.5, variants: [shipped, int8]}\n"
    )
    with pytest.raises(SpecErrors) as info:
        load_suite(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 3, lines  # and no "unknown variant 'shipped'" for the reference to the broken one
    assert "suite.yaml:5:19:" in lines[0] and "model file not found" in lines[0]
    assert "suite.yaml:6:20:" in lines[1] and "use backend xnnpack" in lines[1]
    assert "suite.yaml:7:17:" in lines[2] and "export must be the last step" in lines[2]
