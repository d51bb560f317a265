"""A warm run judges stored numbers without importing torch (#11).

One tiny suite (3 classes of 16x16 images, 1 epoch, resnet10-mini, a pruned and an int8 variant, an
attack) is run once cold, then warm: without xdist and with ``-n 2``. The project's conftest.py records
at ``pytest_sessionfinish``, in the controller and in every worker, whether ``torch`` is in
``sys.modules``; on a warm run it must be in none of them, and every number must be the cold run's.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from robustspec.store import Store

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 300

PROJECT = {
    "specs/datasets.yaml": (
        "tiny: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 8, seed: 0}\n"
    ),
    "specs/training.yaml": "tiny: {epochs: 1, batch-size: 16}\n",
    "suites/s.yaml": """\
data: tiny
source: amazon
targets: [webcam]
train: tiny
models:
  - name: resnet10-mini
    variants:
      fp: {prune: {ratio: 0.4}}
      int8: {quantize: {method: ptsq, calibration: 16}}
expect:
  - source-accuracy: {min: 0.0}
  - target-accuracy: {min: 0.0}
  - drop-vs-source: {max: 1.0}
  - drop-vs-baseline: {variants: [fp, int8], domains: [webcam], max: 1.0}
  - max-params: {variants: [fp], max: 10M}
  - attack: {name: fgsm, eps: 4/255, samples: 8, variants: [baseline], min-accuracy: 0.0}
""",
    # Where each process of the run stands at its end: torch imported or not.
    "conftest.py": """\
import json
import os
import sys


def pytest_sessionfinish(session):
    name = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    out = os.path.join(str(session.config.rootpath), "imported", name + ".json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    heavy = sorted(m for m in ("torch", "torchvision", "torchattacks", "torch_pruning") if m in sys.modules)
    with open(out, "w") as f:
        json.dump(heavy, f)
""",
}

#: source-accuracy, target-accuracy[webcam], drop-vs-source[webcam] on three subjects, two drop-vs-baseline,
#: max-params, attack[fgsm].
N_ITEMS = 3 * 3 + 2 + 1 + 1


def run(pytester: pytest.Pytester, store: Path, *args: str) -> dict[str, list[str]]:
    """Run pytest on the project; return what each process had imported at its end."""
    imported = pytester.path / "imported"
    for f in imported.glob("*.json"):
        f.unlink()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--robustspec-store={store}", "--junitxml=out.xml", *args, timeout=RUN_TIMEOUT
    )
    text = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret == 0, text
    result.assert_outcomes(passed=N_ITEMS)
    return {f.stem: json.loads(f.read_text()) for f in sorted(imported.glob("*.json"))}


def properties(pytester: pytest.Pytester) -> dict[str, dict[str, str]]:
    """Every testcase's JUnit properties, by ``model::variant::name``."""
    out = {}
    for tc in ET.parse(pytester.path / "out.xml").getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        out[f"{props['model']}::{props['variant']}::{tc.get('name')}"] = props
    return out


def test_a_warm_run_imports_no_torch(write_project, tmp_path: Path) -> None:
    pytester = write_project(PROJECT)
    store = tmp_path / "store"
    cold = run(pytester, store, "-p", "no:xdist")
    assert "torch" in cold["controller"]  # it built everything
    built = Store(store).builds()
    kinds = sorted({b["kind"] for b in built})
    assert kinds == ["attack", "data", "eval", "metrics", "model", "variant"]
    numbers = properties(pytester)
    assert len(numbers) == N_ITEMS

    warm = run(pytester, store, "-p", "no:xdist")
    assert warm == {"controller": []}
    assert properties(pytester) == numbers  # the same numbers, outcomes, keys and recipes

    parallel = run(pytester, store, "-n", "2")
    assert parallel == {"controller": [], "gw0": [], "gw1": []}
    assert properties(pytester) == numbers
    assert Store(store).builds() == built  # nothing was built again

    # What the warm runs read is JSON; what needs torch (images, weights) is not read at all.
    formats = {e["kind"]: e["format"] for e in Store(store).entries() if e["kind"] in ("eval", "metrics", "attack")}
    assert formats == {"eval": "json", "metrics": "json", "attack": "json"}
