"""Validating a suite needs every component's registry and parameter model, and none of them imports torch.

The cases run in one fresh interpreter (this process may have imported torch already): the first imports
the component packages, each other walks one registry the way the suite loader does (every entry's
``Params`` schema and class variables), and each reports which heavy modules it brought into
``sys.modules``, so a failure names the component that imported torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "torchvision", "torchattacks", "torch_pruning")

IMPORTS = """
import robustspec.attacks, robustspec.compress, robustspec.corrupt, robustspec.data, robustspec.expect
import robustspec.models, robustspec.registry
"""

#: What validation touches, per component; each snippet prints nothing and fails loudly on a bad entry.
CASES = {
    "compressions": """
        from robustspec.compress import COMPRESSIONS
        from robustspec.compress.base import ChainPosition
        assert COMPRESSIONS.names()
        for name in COMPRESSIONS:
            step = COMPRESSIONS.get(name)
            assert step.Params.model_json_schema()["properties"], name
            getattr(step, "libraries", ()), getattr(step, "adapts", False)
            step().parse({})
        ChainPosition(0, (), ())
    """,
    "attacks": """
        from robustspec.attacks import ATTACKS
        from robustspec.attacks.base import AttackParams
        assert ATTACKS.names()
        for name in ATTACKS:
            attack = ATTACKS.get(name)
            assert issubclass(attack.Params, AttackParams) and attack.Params.model_json_schema(), name
            assert isinstance(attack.gradient_free, bool) and isinstance(attack.bounded, bool), name
            attack.norm, getattr(attack, "loss", "ce"), getattr(attack, "version", 1), getattr(attack, "libraries", ())
        assert ATTACKS.get("autoattack").libraries == ("torchattacks",)
    """,
    "corruptions": """
        from robustspec.corrupt import (
            CORRUPTIONS, SEVERITIES, derived_name, domain_problem, parse_domain, standard_corruptions,
        )
        assert len(standard_corruptions()) >= 10 and SEVERITIES == (1, 2, 3, 4, 5)
        for name in CORRUPTIONS:
            fn = CORRUPTIONS.get(name)
            fn.family, fn.standard
            assert parse_domain(derived_name("amazon", name, 3)) == ("amazon", name, 3)
        assert domain_problem("amazon+fog@3", ["amazon"]) is None
        assert "did you mean" in domain_problem("amazn+fog@3", ["amazon"])
        assert domain_problem("amazon+frost@3", ["amazon"])
    """,
    "datasets": """
        from robustspec.data import DATASETS, open_dataset
        from robustspec.spec.schema import SynthData
        assert "office-synth" in DATASETS
        ds = open_dataset(SynthData.model_validate({"name": "office-synth", "classes": 5, "image-size": 24}))
        assert ds.domains == ["amazon", "webcam", "dslr"] and len(ds.classes) == 5 and ds.image_size == 24
        import json
        json.dumps(ds.recipe())
    """,
    "imagefolder": """
        from robustspec.data import DATASETS, open_dataset
        from robustspec.spec.schema import FolderData
        ds = open_dataset(FolderData.model_validate({"imagefolder": ROOT, "image-size": 32}))
        assert "imagefolder" in DATASETS
        assert ds.domains == ["amazon", "webcam"] and ds.classes == ["bike", "mug"]
        import json
        json.dumps(ds.recipe())
    """,
    "models": """
        from robustspec.metrics import parameter_count
        from robustspec.models import MODELS, import_factory
        from robustspec.models.zoo import zoo_parameters
        assert "resnet18" in MODELS and "resnet10-mini" in MODELS
        for name in MODELS:
            assert callable(MODELS.get(name)), name
        assert zoo_parameters("resnet18", 10) == 11_181_642
        assert callable(import_factory("robustspec.models.zoo:narrow_resnet"))
    """,
    "expectations": """
        from robustspec.expect import EXPECTATIONS
        assert EXPECTATIONS.names()
        for name in EXPECTATIONS:
            assert EXPECTATIONS.get(name).Params.model_json_schema(), name
    """,
}


#: Runs in the fresh interpreter: each case in turn, recording the heavy modules that case brought in.
RUNNER = """
import json, sys, textwrap, traceback

def heavy():
    return {m.split(".")[0] for m in sys.modules} & set(HEAVY)

report = {}
for name, snippet in CASES.items():
    before = heavy()
    try:
        exec(textwrap.dedent(snippet), {"ROOT": ROOT})
        error = None
    except Exception:
        error = traceback.format_exc()
    report[name] = {"imported": sorted(heavy() - before), "error": error}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Opening a tree checks every image's header (with PIL, not torch): tiny distinct PNGs.
    from PIL import Image

    root = tmp_path_factory.mktemp("tree")
    for d, domain in enumerate(("amazon", "webcam")):
        for c, cls in enumerate(("bike", "mug")):
            (root / domain / cls).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (8, 8), (d * 100, c * 100, i * 100)).save(root / domain / cls / f"{i}.jpg", "PNG")
    return root


@pytest.fixture(scope="module")
def report(image_tree: Path) -> dict[str, dict]:
    """Per case (the package imports first), what it imported and how it failed, from one fresh interpreter."""
    cases = {"imports": IMPORTS, **CASES}
    code = f"HEAVY = {HEAVY!r}\nROOT = {str(image_tree)!r}\nCASES = {cases!r}\n" + RUNNER
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["imports", *CASES])
def test_validation_imports_no_torch(case: str, report: dict[str, dict]) -> None:
    assert report[case]["error"] is None, report[case]["error"]
    assert report[case]["imported"] == []


def test_the_wrapper_is_exported_lazily() -> None:
    # Normalized (an nn.Module) comes from robustspec.models on first access (tests/test_models.py uses it).
    from robustspec import models

    assert {"Normalized", "IMAGENET_MEAN", "IMAGENET_STD"} <= set(models.__all__)
    with pytest.raises(AttributeError):
        models.NotAThing  # noqa: B018
