"""The static list of torchvision's classifiers (validation reads it without importing torchvision) is the
installed torchvision's, and a bare torchvision name is a model of a suite like a zoo name."""

from __future__ import annotations

from pathlib import Path

from robustspec.models.zoo import TORCHVISION_CLASSIFIERS, torchvision_names
from robustspec.spec.loader import load_suite


def test_the_static_list_is_the_installed_torchvisions() -> None:
    assert TORCHVISION_CLASSIFIERS == torchvision_names()


def test_a_bare_torchvision_name_is_a_model(tmp_path: Path) -> None:
    suite = tmp_path / "edge.yaml"
    suite.write_text(
        "source: amazon\nmodels: [mobilenet_v2, resnet18]\nexpect:\n  - source-accuracy: {min: 0.5}\n",
        encoding="utf-8",
    )
    loaded = load_suite(suite)
    assert [(m.name, m.arch) for m in loaded.suite.models] == [
        ("mobilenet_v2", "mobilenet_v2"),
        ("resnet18", "resnet18"),
    ]


def test_the_schema_lists_torchvision_names() -> None:
    from robustspec.spec.json_schema import suite_json_schema

    assert "'mobilenet_v3_small'" in str(suite_json_schema())
