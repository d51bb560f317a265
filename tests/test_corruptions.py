"""Corruptions keep their contract, get worse with severity, and derived domains are data artifacts of their own."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustspec.corrupt import (
    CORRUPTIONS,
    SEVERITIES,
    corrupt_split,
    parse_domain,
    standard_corruptions,
)
from robustspec.corrupt.base import at_size
from robustspec.corrupt.domain import SEED, VERSION, domain_problem, generator_for
from robustspec.data import Split
from robustspec.errors import DataError, RegistryError
from robustspec.spec.loader import load_suite
from robustspec.store import Store, content_key
from robustspec.workspace import Workspace

ALL = CORRUPTIONS.names()
#: ImageNet-C's saturate alternates de- and over-saturation (factors 0.3, 0.1, then 1.5+), so its distance
#: to the clean image is not ordered by severity; ImageNet-C leaves it out of the benchmark too.
#: CIFAR-10-C's glass-blur table alternates blur (sigma .05 .25 .4 .25 .4) and shuffling (1 1 1 2 2
#: iterations), and on smooth images more blur undoes the shuffle: the reference's own sequential shuffle,
#: emulated on sixteen smooth 32-px images, measured 0.039 0.039 0.034 0.055 0.048.
#: test_new_corruptions_change_the_image_more_at_severity_five checks it on blocky images instead, where
#: blur and shuffle both add up.
UNORDERED = {"saturate", "glass_blur"}
#: Snow's flakes are rare random events (a few dozen pixels of a 16-px image) and CIFAR-10-C's severities 2
#: and 3 are equally strong on average (0.101 and 0.099 on four 32-px images), so neighbouring severities
#: can swap for one draw (by up to a third over 400 draws); severity 5 stayed at least 2.4 times severity 1.
ENDS_ONLY = {"snow"}
#: Corruptions that draw from the generator; every other one must ignore it.
RANDOM = {
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "motion_blur",
    "glass_blur",
    "elastic_transform",
    "fog",
    "snow",
}


@st.composite
def smooth_images(draw: st.DrawFn) -> torch.Tensor:
    """A small batch of natural-looking images: coarse random colours upsampled, plus a little texture."""
    n = draw(st.integers(1, 3))
    size = draw(st.sampled_from([16, 24, 32]))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n, 3, 4, 4), generator=g)
    up = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    texture = draw(st.floats(0.0, 0.1))
    return (up + texture * torch.rand(up.shape, generator=g)).clamp(0.0, 1.0)


FAST = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("name", ALL)
@FAST
@given(images=smooth_images(), severity=st.sampled_from(SEVERITIES), seed=st.integers(0, 2**31 - 1))
def test_corruption_keeps_shape_dtype_range_and_is_deterministic(
    name: str, images: torch.Tensor, severity: int, seed: int
) -> None:
    fn = CORRUPTIONS.get(name)
    before = images.clone()
    out = fn(images, severity, torch.Generator().manual_seed(seed))
    again = fn(images, severity, torch.Generator().manual_seed(seed))
    assert torch.equal(images, before), "the input is not modified"
    assert out.shape == images.shape and out.dtype == images.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(out, again)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("name", [n for n in ALL if n not in UNORDERED])
@FAST
@given(images=smooth_images(), seed=st.integers(0, 2**31 - 1))
def test_higher_severity_distorts_more(name: str, images: torch.Tensor, seed: int) -> None:
    """Mean absolute difference to the clean batch, non-decreasing in severity (up to 10 % for random draws)."""
    fn = CORRUPTIONS.get(name)
    dist = [float((fn(images, s, torch.Generator().manual_seed(seed)) - images).abs().mean()) for s in SEVERITIES]
    for lo, hi in itertools.pairwise(dist if name not in ENDS_ONLY else []):
        assert hi >= 0.9 * lo - 1e-3, dist
    assert dist[-1] > dist[0], dist


@pytest.mark.parametrize("name", ALL)
def test_only_random_corruptions_depend_on_the_seed(name: str) -> None:
    images = torch.rand((2, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    fn = CORRUPTIONS.get(name)
    a, b = (fn(images, 3, torch.Generator().manual_seed(seed)) for seed in (1, 2))
    assert torch.equal(a, b) == (name not in RANDOM), "seeds 1 and 2 give different images iff the corruption is random"


@pytest.mark.parametrize("name", ALL)
def test_a_batch_split_in_two_gives_the_same_images(name: str) -> None:
    """corrupt_split works in batches of BATCH images with one generator: batching must not change the images."""
    images = torch.rand((6, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    fn = CORRUPTIONS.get(name)
    whole = fn(images, 3, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    assert torch.equal(torch.cat([fn(images[:2], 3, g), fn(images[2:], 3, g)]), whole)


def test_severity_one_changes_a_textured_image_at_every_size() -> None:
    g = torch.Generator().manual_seed(0)
    for size in (32, 224):
        images = torch.rand((2, 3, size, size), generator=g)
        for name in ALL:
            out = CORRUPTIONS.get(name)(images, 1, torch.Generator().manual_seed(1))
            assert float((out - images).abs().mean()) > 1e-3, (name, size)


def test_registry_marks_the_imagenet_c_benchmark_set() -> None:
    standard = set(standard_corruptions())
    assert {
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "defocus_blur",
        "brightness",
        "contrast",
        "jpeg_compression",
        "pixelate",
    } <= standard
    assert {"zoom_blur", "glass_blur", "fog", "snow"} <= standard
    assert {"saturate", "gaussian_blur", "speckle_noise"}.isdisjoint(standard)
    assert all(CORRUPTIONS.get(n).name == n for n in ALL)
    assert "frost" not in CORRUPTIONS  # ImageNet-C's frost blends photographs we do not ship
    with pytest.raises(RegistryError, match="corruption 'frost' is not provided: ImageNet-C's frost blends"):
        CORRUPTIONS.get("frost")


@pytest.mark.parametrize("severity", [0, 6, True, 2.0])
def test_severity_outside_one_to_five_is_refused(severity: object) -> None:
    with pytest.raises(ValueError, match="severity"):
        CORRUPTIONS.get("contrast")(torch.rand(1, 3, 16, 16), severity, torch.Generator())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "images",
    [torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.rand(3, 16, 16), torch.rand(1, 1, 16, 16)],
    ids=["uint8", "no-batch", "grey"],
)
def test_images_must_be_float_rgb_batches(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        CORRUPTIONS.get("contrast")(images, 1, torch.Generator())


def test_severity_tables_follow_the_image_size() -> None:
    small, large = (1.0, 2.0, 3.0, 4.0, 5.0), (10.0, 20.0, 30.0, 40.0, 50.0)
    assert at_size(small, large, 3, 32) == pytest.approx(3.0)
    assert at_size(small, large, 3, 224) == pytest.approx(30.0)
    assert at_size(small, large, 3, 16) == pytest.approx(3.0)  # clamped outside 32..224
    assert at_size(small, large, 3, 1024) == pytest.approx(30.0)
    middle = at_size(small, large, 3, 84)
    assert 3.0 < middle < 30.0


# --- zoom, glass, fog and snow -----------------------------------------------------------------------------


def _smooth(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    up = torch.nn.functional.interpolate(
        torch.rand((n, 3, 4, 4), generator=g), size=(size, size), mode="bilinear", align_corners=False
    )
    return (up + 0.05 * torch.rand(up.shape, generator=g)).clamp(0.0, 1.0)


def _blocky(n: int, size: int, seed: int, block: int = 4) -> torch.Tensor:
    coarse = torch.rand((n, 3, size // block, size // block), generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="nearest")


def _change(name: str, images: torch.Tensor, severity: int) -> float:
    return float((CORRUPTIONS.get(name)(images, severity, torch.Generator().manual_seed(5)) - images).abs().mean())


def _edges(images: torch.Tensor) -> float:
    """High-frequency energy: mean absolute difference between horizontal and vertical neighbours."""
    return float(
        (images[..., 1:] - images[..., :-1]).abs().mean() + (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    )


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(
    ("name", "images"),
    [
        ("zoom_blur", _blocky(8, 32, 0)),
        ("zoom_blur", _blocky(2, 64, 1)),
        ("glass_blur", _blocky(8, 32, 0)),
        ("glass_blur", _blocky(2, 64, 1)),
        ("fog", _smooth(8, 32, 0)),
        ("fog", _smooth(2, 64, 1)),
        ("snow", _smooth(8, 32, 0)),
        ("snow", _smooth(2, 64, 1)),
    ],
    ids=lambda v: v if isinstance(v, str) else f"{v.shape[-1]}px",
)
def test_new_corruptions_change_the_image_more_at_severity_five(name: str, images: torch.Tensor) -> None:
    low, high = _change(name, images, 1), _change(name, images, 5)
    assert low > 0.005, (name, low)
    assert high > 1.2 * low, (name, low, high)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("size", [32, 64])
def test_zoom_blur_removes_edges_more_at_severity_five(size: int) -> None:
    images = _blocky(4, size, 2)
    edges = [_edges(CORRUPTIONS.get("zoom_blur")(images, s, torch.Generator())) for s in (1, 5)]
    assert edges[1] < edges[0] < _edges(images), edges


def test_zoom_blur_zooms_about_the_exact_centre() -> None:
    zoom_blur = CORRUPTIONS.get("zoom_blur")
    flat = torch.full((2, 3, 32, 32), 0.3)
    assert torch.allclose(zoom_blur(flat, 5, torch.Generator()), flat, atol=1e-6)
    # Odd side: the centre pixel is the fixed point of every zoom, whatever surrounds it.
    images = torch.rand((2, 3, 33, 33), generator=torch.Generator().manual_seed(0))
    out = zoom_blur(images, 5, torch.Generator())
    assert torch.allclose(out[..., 16, 16], images[..., 16, 16], atol=1e-5)
    assert float((out - images).abs().mean()) > 0.05


def test_glass_blur_scrambles_within_its_max_displacement() -> None:
    """At 32 px severity 1 the blur is negligible (sigma 0.05): every pixel is a colour from its 3x3 neighbourhood."""
    images = torch.rand((4, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    out = CORRUPTIONS.get("glass_blur")(images, 1, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="replicate")
    neighbours = torch.stack([padded[..., dy : dy + 32, dx : dx + 32] for dy in range(3) for dx in range(3)])
    nearest = (neighbours - out).abs().amax(dim=2).amin(dim=0)  # [N, H, W]: best match over the 3x3 window
    assert float(nearest.max()) < 1e-4
    assert float(((out - images).abs().amax(dim=1) > 1e-4).float().mean()) > 0.5, "most pixels moved"


def test_fog_lowers_contrast_by_the_peak_ratio() -> None:
    """A 1-px checkerboard keeps its mean but its amplitude shrinks to m / (m + thickness) (m = 0.75 here)."""
    board = ((torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2).bool()
    images = torch.where(board, 0.75, 0.25).expand(8, 3, 32, 32).clone()
    fog = CORRUPTIONS.get("fog")

    def amplitude(severity: int) -> float:
        out = fog(images, severity, torch.Generator().manual_seed(0))
        return float(out[..., board].mean() - out[..., ~board].mean())

    a1, a5 = amplitude(1), amplitude(5)
    assert a1 == pytest.approx(0.5 * 0.75 / (0.75 + 0.2), abs=0.02)  # CIFAR-10-C thickness 0.2, then 1.5
    assert a5 == pytest.approx(0.5 * 0.75 / (0.75 + 1.5), abs=0.02)
    assert a5 < a1 < 0.5


def test_snow_only_brightens_and_more_at_severity_five() -> None:
    images = _smooth(8, 32, 3) * 0.8
    snow = CORRUPTIONS.get("snow")
    out1, out5 = (snow(images, s, torch.Generator().manual_seed(0)) for s in (1, 5))
    assert float((out1 - images).min()) >= -1e-6 and float((out5 - images).min()) >= -1e-6
    gain1, gain5 = float((out1 - images).mean()), float((out5 - images).mean())
    assert 0.01 < gain1 < gain5


def test_plasma_fractal_covers_the_image_and_differs_per_image() -> None:
    from robustspec.corrupt.weather import plasma_fractal

    maps = plasma_fractal(3, 40, 2.0, torch.Generator().manual_seed(0))
    assert maps.shape == (3, 64, 64)
    assert torch.allclose(maps.amin(dim=(1, 2)), torch.zeros(3)) and torch.allclose(
        maps.amax(dim=(1, 2)), torch.ones(3)
    )
    assert not torch.allclose(maps[0], maps[1])
    assert torch.equal(maps, plasma_fractal(3, 40, 2.0, torch.Generator().manual_seed(0)))


# --- derived domain names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("amazon", ("amazon", None, None)),
        ("amazon+gaussian_noise@3", ("amazon", "gaussian_noise", 3)),
        ("dslr+jpeg_compression@5", ("dslr", "jpeg_compression", 5)),
    ],
    ids=["plain", "noise", "jpeg"],
)
def test_parse_domain(name: str, parsed: tuple) -> None:
    assert parse_domain(name) == parsed


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("amazon+gausian_noise@3", "did you mean 'gaussian_noise'"),
        ("amazon+gaussian_noise@6", "must be 1-5 (got '6')"),
        ("amazon+gaussian_noise@0", "must be 1-5"),
        ("amazon+gaussian_noise@x", "must be 1-5"),
        ("amazon+gaussian_noise", "needs a severity"),
        ("+gaussian_noise@1", "no base domain"),
        ("amazon+contrast@1+pixelate@2", "more than one corruption"),
    ],
    ids=[
        "unknown-corruption",
        "severity-6",
        "severity-0",
        "severity-text",
        "no-severity",
        "no-base",
        "two-corruptions",
    ],
)
def test_malformed_derived_domains_are_refused(name: str, fragment: str) -> None:
    with pytest.raises(DataError, match=None) as info:
        parse_domain(name)
    assert fragment in str(info.value)


def test_unknown_base_domain_suggests_a_close_one() -> None:
    assert domain_problem("amazon+contrast@1", ["amazon", "webcam"]) is None
    problem = domain_problem("amazn+contrast@1", ["amazon", "webcam"])
    assert problem is not None and "unknown base domain 'amazn'" in problem and "did you mean 'amazon'" in problem


def test_each_split_gets_its_own_stable_generator() -> None:
    draw = lambda *a: torch.rand(4, generator=generator_for(*a))
    assert torch.equal(draw("contrast", 1, "test"), draw("contrast", 1, "test"))
    assert not torch.equal(draw("contrast", 1, "test"), draw("contrast", 1, "train"))
    assert not torch.equal(draw("contrast", 1, "test"), draw("contrast", 2, "test"))
    assert not torch.equal(draw("contrast", 1, "test"), draw("pixelate", 1, "test"))


def test_corrupt_split_is_uint8_in_uint8_out_and_keeps_labels() -> None:
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (300, 3, 16, 16), generator=g, dtype=torch.uint8), torch.arange(300))
    out = corrupt_split(split, "gaussian_noise", 2, "test")
    assert out.images.dtype == torch.uint8 and out.images.shape == split.images.shape
    assert torch.equal(out.labels, split.labels)
    assert not torch.equal(out.images, split.images)
    assert torch.equal(out.images, corrupt_split(split, "gaussian_noise", 2, "test").images)


# --- derived domains as data artifacts ---------------------------------------------------------------------

TINY = """\
suite: t
data: {name: office-synth, classes: 2, image_size: 16, train_per_class: 2, test_per_class: 3}
source: amazon
targets: [webcam, amazon+contrast@2]
train: fast
models: [mini]
expect:
  - target-accuracy: {min: 0.0}
"""


@pytest.fixture
def tiny(tmp_path: Path):
    import shutil

    shutil.copytree(Path(__file__).resolve().parents[1] / "specs", tmp_path / "specs")
    (tmp_path / "t.yaml").write_text(TINY, encoding="utf-8")
    return load_suite(tmp_path / "t.yaml")


def test_derived_data_keys_differ_per_corruption_and_severity_and_share_the_base(tiny, tmp_path: Path) -> None:
    ws = Workspace(Store(tmp_path / "store"))
    suite = tiny.suite
    names = ["amazon", "webcam", "amazon+contrast@2", "amazon+contrast@3", "amazon+pixelate@2", "webcam+contrast@2"]
    keys = {n: ws.data_key(suite, n) for n in names}
    assert len(set(keys.values())) == len(names)
    for n in names[2:]:
        base, corruption, severity = parse_domain(n)
        recipe = {"corruption": corruption, "severity": severity, "seed": SEED}
        assert keys[n] == content_key("data", recipe, (keys[base],), VERSION)
    assert Workspace(Store(tmp_path / "other")).data_key(suite, "amazon+contrast@2") == keys["amazon+contrast@2"]
    assert "amazon+contrast@2" in suite.targets


def test_derived_splits_are_the_base_splits_corrupted(tiny, tmp_path: Path) -> None:
    ws = Workspace(Store(tmp_path / "store"))
    clean = ws.splits(tiny.suite, "amazon")
    derived = ws.splits(tiny.suite, "amazon+contrast@2")
    assert set(derived) == set(clean) == {"train", "test"}
    for name in clean:
        assert torch.equal(derived[name].labels, clean[name].labels)
        assert derived[name].images.shape == clean[name].images.shape
        assert torch.equal(derived[name].images, corrupt_split(clean[name], "contrast", 2, name).images)
    # Stored: another workspace on the same store reads the same images without corrupting again.
    again = Workspace(Store(tmp_path / "store")).splits(tiny.suite, "amazon+contrast@2")
    assert torch.equal(again["test"].images, derived["test"].images)
    assert ws.store.has(ws.data_key(tiny.suite, "amazon+contrast@2"))
