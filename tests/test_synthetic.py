"""The embedded office-synth dataset: deterministic, well-formed, and really shifted."""

from __future__ import annotations

import pytest
import torch

from robustspec.data.synthetic import OfficeSynth


@pytest.fixture(scope="module")
def small() -> OfficeSynth:
    return OfficeSynth(classes=5, image_size=24, train_per_class=6, test_per_class=4, seed=3)


def test_shapes_labels_and_balance(small: OfficeSynth) -> None:
    for domain in small.domains:
        splits = small.build_domain(domain)
        assert splits["train"].images.shape == (30, 3, 24, 24) and splits["train"].images.dtype == torch.uint8
        assert torch.bincount(splits["train"].labels).tolist() == [6] * 5
        assert torch.bincount(splits["test"].labels).tolist() == [4] * 5


def test_deterministic_for_a_seed(small: OfficeSynth) -> None:
    again = OfficeSynth(classes=5, image_size=24, train_per_class=6, test_per_class=4, seed=3)
    for domain in small.domains:
        a, b = small.build_domain(domain), again.build_domain(domain)
        assert torch.equal(a["test"].images, b["test"].images) and torch.equal(a["train"].labels, b["train"].labels)


def test_other_seed_other_images(small: OfficeSynth) -> None:
    other = OfficeSynth(classes=5, image_size=24, train_per_class=6, test_per_class=4, seed=4)
    assert not torch.equal(small.build_domain("amazon")["train"].images, other.build_domain("amazon")["train"].images)


def test_train_and_test_differ(small: OfficeSynth) -> None:
    s = small.build_domain("amazon")
    assert not torch.equal(s["train"].images[:20], s["test"].images[:20])


def test_domains_differ_in_the_documented_ways(small: OfficeSynth) -> None:
    amazon = small.build_domain("amazon")["train"].float_images()
    webcam = small.build_domain("webcam")["train"].float_images()
    dslr = small.build_domain("dslr")["train"].float_images()
    # amazon: light plain background (corners are bright and flat)
    corners = amazon[:, :, :3, :3]
    assert corners.mean() > 0.85 and corners.std() < 0.05
    # webcam: darker background, noisier (high-frequency energy), colour cast
    hf = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().mean()  # noqa: E731
    assert webcam[:, :, :3, :3].mean() < 0.8
    # dslr: textured background: corners vary a lot
    assert dslr[:, :, :4, :4].std() > corners.std() * 3
    assert hf(webcam) > hf(amazon)


def test_recipe_names_everything_that_changes_the_bytes(small: OfficeSynth) -> None:
    r = small.recipe()
    assert {"classes", "image_size", "train_per_class", "test_per_class", "seed", "generator"} <= set(r)


def test_class_count_is_bounded() -> None:
    with pytest.raises(ValueError):
        OfficeSynth(classes=1)
