"""A suite whose variants ship as runtime files: pt2e int8 on ExecuTorch, fp32 on ONNX Runtime.

One pytest run of a tiny project (3 classes of 16 px images, one epoch): every expectation applies to
the exported variants, their evaluations run in the runtime, size is the file's, and the runtime, its
version, the agreement and the latency are recorded; attacks name the modes that ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_plugin import SPECS, assert_no_traceback, junit_cases, run, write_suite

pytestmark = pytest.mark.slow

pytest.importorskip("executorch")
pytest.importorskip("onnxruntime")

SUITE = """\
data: tiny
source: amazon
targets: [webcam]
train: tiny
models: [resnet10-mini]
variants:
  int8-et: [{quantize: {backend: xnnpack, calibration: 24}}, {export: {format: executorch, batch: 8, repeats: 2}}]
  fp32-onnx: {export: {format: onnx, repeats: 2}}
expect:
  - source-accuracy: {min: 0.0}
  - drop-vs-baseline: {max: 1.0, domains: [amazon]}
  - max-size-mb: {max: 2.0}
  - max-latency-ratio: {max: 100.0, severity: warn}
  - attack: {name: fgsm, eps: 8/255, samples: 12, max-degradation: 1.0, variants: [int8-et, fp32-onnx]}
  - attack: {name: square, eps: 8/255, queries: 20, samples: 12, max-degradation: 1.0, variants: [int8-et]}
"""


def test_runtime_variants_are_judged_on_their_runtime(write_project, tmp_path: Path) -> None:
    project = write_project(SPECS)
    (project.path / "suites").mkdir()
    write_suite(project, "edge.yaml", SUITE)
    xml = tmp_path / "junit.xml"
    result = run(project, tmp_path / "store", "-p", "no:xdist", f"--junitxml={xml}")
    assert_no_traceback(result)
    assert result.ret == 0, result.stdout.str()
    cases = junit_cases(xml)

    et, _ = cases["resnet10-mini::int8-et::max-size-mb"]
    assert et["export.runtime"] == "executorch" and et["export.runtime_version"]
    assert float(et["export.runtime_agreement"]) >= 0.9
    assert int(et["quantized"]) == 1
    assert float(et["measured"]) == pytest.approx(float(et["export.file_mb"]), abs=1e-3)
    onnx, _ = cases["resnet10-mini::fp32-onnx::max-size-mb"]
    assert onnx["export.runtime"] == "onnxruntime" and float(onnx["export.runtime_agreement"]) == 1.0
    # int8 weights in the .pte: well under the fp32 .onnx.
    assert float(et["measured"]) < 0.5 * float(onnx["measured"])

    latency, _ = cases["resnet10-mini::int8-et::max-latency-ratio"]
    assert float(latency["export.latency_ms"]) > 0 and float(latency["export.eager_fp32_ms"]) > 0
    assert "resnet10-mini::baseline::max-latency-ratio" not in cases  # only exported variants have one

    # A gradient attack on a runtime's file: the worst case of the modes that can reach it, each named.
    def attack(variant: str, name: str) -> dict[str, str]:
        (key,) = [k for k in cases if k.startswith(f"resnet10-mini::{variant}::attack") and name in k]
        return cases[key][0]

    for variant in ("int8-et", "fp32-onnx"):
        props = attack(variant, "fgsm")
        assert props["attack_mode"] == "worst-case", props
        modes = props["worst_case_of"].split(", ")
        assert {"transfer", "white-box"} <= set(modes), modes
        assert props["attack_mode[transfer]"] == "transfer"
        assert (
            props["attack_mode[white-box]"]
            == {
                "int8-et": "white-box (fake-quant surrogate)",
                "fp32-onnx": "white-box (the float graph the runtime's file was exported from)",
            }[variant]
        )
    assert attack("int8-et", "square")["attack_mode"] == "black-box"
