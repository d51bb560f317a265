"""Validation and collection import no torch: the suite language is checked with pydantic models alone.

Each check runs in a fresh interpreter (this one has torch loaded by other tests) and reads ``sys.modules``
when it is done. The repository's suites cover every compression step, expectation kind and attack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "torchattacks", "torch_pruning")


def _modules_after(code: str, cwd: Path) -> dict[str, object]:
    probe = f"{code}\nimport json, sys\nprint('MODULES=' + json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, timeout=300, env=_env()
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("MODULES=")), None)
    assert line is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {"loaded": json.loads(line.removeprefix("MODULES=")), "stdout": proc.stdout}


def _env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ROBUSTSPEC_"))}
    return env


#: Suites whose validation builds networks: torchvision models outside the built-in ResNets are counted
#: and trial-pruned on the meta device (robustspec.spec.checks), which needs torch.
BUILDS_AT_VALIDATION = ("suites/extra/edge.yaml",)


def test_validate_of_every_repository_suite_imports_no_torch() -> None:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "suites").rglob("*.yaml"))
    files = [f for f in files if f not in BUILDS_AT_VALIDATION]
    out = _modules_after(
        f"from robustspec.cli import main\nrc = main(['validate', *{files!r}])\nassert rc == 0, rc", ROOT
    )
    assert not any(out["loaded"].values()), out["loaded"]
    assert "of 6 suite files valid" in out["stdout"] or "ok:" in out["stdout"]


def test_collect_only_of_every_repository_suite_imports_no_torch(tmp_path: Path) -> None:
    # Sharded as one shard: every item stays, and the trained models' keys are computed too.
    code = (
        "import pytest\n"
        f"rc = pytest.main(['suites', '--collect-only', '-q', '-p', 'no:cacheprovider', '--robustspec-store', {str(tmp_path)!r}, '--robustspec-shard', '1/1'])\n"
        "assert rc == 0, rc"
    )
    out = _modules_after(code, ROOT)
    assert not any(out["loaded"].values()), out["loaded"]
    assert "tests collected" in out["stdout"]


def test_an_invalid_suite_is_reported_without_torch(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "suite: bad\nsource: amazn\nmodels: [resnet81]\nvariants: {v: {prune: {ratio: 2}}}\n"
        "expect:\n  - source-accuracy: {min: 1.5}\n",
        encoding="utf-8",
    )
    code = f"from robustspec.cli import main\nrc = main(['validate', {str(bad)!r}])\nassert rc == 1, rc"
    out = _modules_after(code, tmp_path)
    assert not any(out["loaded"].values()), out["loaded"]
    text = out["stdout"]
    # Every problem at once, each at its line:col.
    assert "bad.yaml:2:9: source: unknown domain 'amazn'" in text
    assert "bad.yaml:3:10: models[0]: unknown model 'resnet81'" in text
    assert "bad.yaml:4:" in text and "ratio" in text
    assert "bad.yaml:6:" in text and "min" in text


@pytest.mark.parametrize("module", ["robustspec.spec.loader", "robustspec.spec.json_schema", "robustspec.plan"])
def test_spec_modules_import_no_torch(module: str) -> None:
    out = _modules_after(f"import {module}", ROOT)
    assert not any(out["loaded"].values()), out["loaded"]
