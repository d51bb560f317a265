"""``office-synth``: the embedded, generated three-domain dataset (the default).

It mimics the domain structure of Office-31 (Saenko et al. 2010) without downloading anything:

- ``amazon``: clean renders of an object on a plain, light background, centred (product photos);
- ``webcam``: the same objects captured badly: low resolution, blur, sensor noise, a colour cast and
  off-centre framing;
- ``dslr``: sharp captures in a real scene: textured, cluttered backgrounds and uneven lighting.

Objects are classes of 2-D shapes drawn from signed distance functions, with a random colour, size,
rotation and position per image. Everything is rendered in batches on tensors from one seeded generator,
so a (seed, size, counts) triple gives the same bytes on every machine and the whole dataset is made in
about a second.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from ..spec.schema import MAX_SEED, DataParams, Int
from .base import DATASETS, Split

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["OfficeSynth", "SHAPES", "DOMAIN_STYLES", "SynthData"]


class SynthData(DataParams):
    """The embedded generated dataset (``office-synth``)."""

    name: Literal["office-synth"] = "office-synth"
    classes: Int = Field(10, ge=2, le=16)
    image_size: Int = Field(32, ge=16, le=256)
    train_per_class: Int = Field(100, ge=2, le=10_000)
    test_per_class: Int = Field(50, ge=1, le=10_000)
    seed: Int = Field(0, ge=0, le=MAX_SEED)


# --- shapes: signed distance functions in the object frame (u, v in about [-1, 1]); negative inside ---
# Written with tensor methods (``a.maximum(b)`` for ``torch.maximum(a, b)``: the same operators), so that
# the table needs no torch at import.


def _box(u: Tensor, v: Tensor, hw: float, hh: float) -> Tensor:
    du, dv = u.abs() - hw, v.abs() - hh
    outside = (du.clamp(min=0) ** 2 + dv.clamp(min=0) ** 2).sqrt()
    return outside + du.maximum(dv).clamp(max=0)


def _circle(u: Tensor, v: Tensor, r: float, cu: float = 0.0, cv: float = 0.0) -> Tensor:
    return ((u - cu) ** 2 + (v - cv) ** 2).sqrt() - r


def _polygon(u: Tensor, v: Tensor, sides: int, r: float) -> Tensor:
    # Intersection of half-planes: distance to the furthest edge.
    d = None
    for k in range(sides):
        a = 2 * math.pi * k / sides - math.pi / 2
        e = u * math.cos(a) + v * math.sin(a) - r * math.cos(math.pi / sides)
        d = e if d is None else d.maximum(e)
    return d


def _star(u: Tensor, v: Tensor) -> Tensor:
    rho = (u**2 + v**2).sqrt()
    phi = v.atan2(u)
    return rho - (0.52 + 0.32 * (5 * phi + math.pi / 2).cos())


SHAPES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "disc": lambda u, v: _circle(u, v, 0.75),
    "square": lambda u, v: _box(u, v, 0.62, 0.62),
    "triangle": lambda u, v: _polygon(u, v, 3, 0.95),
    "plus": lambda u, v: _box(u, v, 0.8, 0.22).minimum(_box(u, v, 0.22, 0.8)),
    "ring": lambda u, v: ((u**2 + v**2).sqrt() - 0.58).abs() - 0.2,
    "star": _star,
    "crescent": lambda u, v: _circle(u, v, 0.78).maximum(-_circle(u, v, 0.62, 0.42, -0.18)),
    "ell": lambda u, v: _box(u + 0.45, v, 0.22, 0.8).minimum(_box(u, v - 0.58, 0.67, 0.22)),
    "tee": lambda u, v: _box(u, v + 0.58, 0.8, 0.22).minimum(_box(u, v, 0.22, 0.8)),
    "dumbbell": lambda u, v: (
        _circle(u, v, 0.36, -0.5, 0.0).minimum(_circle(u, v, 0.36, 0.5, 0.0)).minimum(_box(u, v, 0.5, 0.1))
    ),
    "frame": lambda u, v: _box(u, v, 0.72, 0.72).maximum(-_box(u, v, 0.42, 0.42)),
    "bars": lambda u, v: (
        _box(u + 0.55, v, 0.16, 0.78).minimum(_box(u, v, 0.16, 0.78)).minimum(_box(u - 0.55, v, 0.16, 0.78))
    ),
    "hourglass": lambda u, v: _box(u, v, 0.75, 0.8).maximum(u.abs() - 0.08 - 0.7 * v.abs()),
    "halfdisc": lambda u, v: _circle(u, v + 0.25, 0.8).maximum(-(v + 0.25)),
    "arrow": lambda u, v: _box(u + 0.25, v, 0.55, 0.17).minimum(_polygon(-v, u - 0.35, 3, 0.62).maximum(-(u - 0.05))),
    "pentagon": lambda u, v: _polygon(u, v, 5, 0.8),
}


@dataclass(frozen=True)
class DomainStyle:
    """How one domain captures the objects; 0 switches a degradation off."""

    background: str  # "plain" or "texture"
    offset: float  # maximum centre offset as a fraction of the half-width
    scale: tuple[float, float]  # object radius as a fraction of the half-width
    low_res: int  # render at this many pixels before upsampling (0: native)
    blur_sigma: float  # Gaussian blur in output pixels
    noise_sigma: float  # additive Gaussian sensor noise on the [0,1] scale
    colour_cast: float  # maximum per-channel gain change, e.g. 0.3 for gains in [0.7, 1.3]
    lighting: float  # strength of a linear lighting ramp across the image
    contrast: tuple[float, float]  # global contrast factor range


DOMAIN_STYLES: dict[str, DomainStyle] = {
    "amazon": DomainStyle("plain", 0.10, (0.55, 0.75), 0, 0.0, 0.0, 0.0, 0.0, (1.0, 1.0)),
    "webcam": DomainStyle("plain-dark", 0.35, (0.45, 0.65), 18, 0.6, 0.04, 0.25, 0.0, (0.7, 1.0)),
    "dslr": DomainStyle("texture", 0.15, (0.50, 0.75), 0, 0.0, 0.01, 0.0, 0.6, (0.8, 1.0)),
}


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """Batched HSV in [0,1] to RGB ``[N, 3]``."""
    import torch

    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    f = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v[:, None] - v[:, None] * s[:, None] * f


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    import torch
    import torch.nn.functional as F

    radius = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _textures(n: int, size: int, g: torch.Generator) -> Tensor:
    """Cluttered backgrounds: random coloured blobs and stripes, smoothed, mid-contrast."""
    import torch
    import torch.nn.functional as F

    low = torch.rand(n, 3, 6, 6, generator=g)
    base = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    freq = 3 + 9 * torch.rand(n, 1, 1, generator=g)
    angle = math.pi * torch.rand(n, 1, 1, generator=g)
    stripes = torch.sin(freq * (xx * torch.cos(angle) + yy * torch.sin(angle)) * math.pi)
    tint = torch.rand(n, 3, 1, 1, generator=g)
    tex = 0.4 + 0.35 * base + 0.15 * (stripes[:, None] * 0.5 + 0.5) * tint
    return tex.clamp(0, 1)


@DATASETS.register("office-synth")
class OfficeSynth:
    """The generated Office-31-like dataset; see the module docstring.

    In suites: ``data: office-synth`` (the default) or ``data: {name: office-synth, classes: 16}``.
    """

    Params: ClassVar[type[DataParams]] = SynthData
    #: A ``data:`` mapping that names no dataset is this one.
    default: ClassVar[bool] = True

    domains = list(DOMAIN_STYLES)

    def __init__(
        self,
        *,
        classes: int = 10,
        image_size: int = 32,
        train_per_class: int = 100,
        test_per_class: int = 50,
        seed: int = 0,
    ) -> None:
        if not 2 <= classes <= len(SHAPES):
            raise ValueError(f"office-synth has between 2 and {len(SHAPES)} classes, got {classes}")
        self.classes = list(SHAPES)[:classes]
        self.image_size = image_size
        self.train_per_class = train_per_class
        self.test_per_class = test_per_class
        self.seed = seed

    @classmethod
    def from_params(cls, params: SynthData, base_dir: Path | None = None) -> OfficeSynth:
        return cls(
            classes=params.classes,
            image_size=params.image_size,
            train_per_class=params.train_per_class,
            test_per_class=params.test_per_class,
            seed=params.seed,
        )

    def recipe(self) -> dict[str, Any]:
        return {
            "dataset": "office-synth",
            "generator": 1,
            "classes": len(self.classes),
            "image_size": self.image_size,
            "train_per_class": self.train_per_class,
            "test_per_class": self.test_per_class,
            "seed": self.seed,
        }

    def split_counts(self, domain: str) -> dict[str, Any]:
        """Every domain is generated as a train and a test split of fixed sizes."""
        n = len(self.classes)
        return {"protocol": "generated", "train": self.train_per_class * n, "test": self.test_per_class * n}

    def build_domain(self, domain: str) -> dict[str, Split]:
        import torch

        if domain not in DOMAIN_STYLES:
            raise KeyError(domain)
        index = self.domains.index(domain)
        out = {}
        for split_index, (split, per_class) in enumerate(
            (("train", self.train_per_class), ("test", self.test_per_class))
        ):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + index * 101 + split_index * 7 + 1)
            out[split] = self.render(DOMAIN_STYLES[domain], per_class, g)
        return out

    def render(self, style: DomainStyle, per_class: int, g: torch.Generator) -> Split:
        """Render ``per_class`` images of every class in one style."""
        import torch
        import torch.nn.functional as F

        n_cls = len(self.classes)
        n = n_cls * per_class
        labels = torch.arange(n_cls).repeat_interleave(per_class)
        size = self.image_size
        hi = 2 * size  # supersample, then average-pool: anti-aliased edges
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, hi), torch.linspace(-1, 1, hi), indexing="ij")

        scale = style.scale[0] + (style.scale[1] - style.scale[0]) * torch.rand(n, generator=g)
        theta = (torch.rand(n, generator=g) - 0.5) * (math.pi / 4.5)
        max_off = style.offset * (1 - scale)
        off = (torch.rand(n, 2, generator=g) * 2 - 1) * max_off[:, None]
        hue = torch.rand(n, generator=g)
        sat = 0.6 + 0.4 * torch.rand(n, generator=g)
        val = 0.45 + 0.45 * torch.rand(n, generator=g)
        colour = _hsv_to_rgb(hue, sat, val)

        x = (xx[None] - off[:, 0, None, None]) / scale[:, None, None]
        y = (yy[None] - off[:, 1, None, None]) / scale[:, None, None]
        c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
        u, v = c * x + s * y, -s * x + c * y
        sdf = torch.empty(n, hi, hi)
        for k, name in enumerate(self.classes):
            idx = labels == k
            sdf[idx] = SHAPES[name](u[idx], v[idx])
        px = 2.0 / hi / scale[:, None, None]  # one supersampled pixel in object units
        mask = torch.sigmoid(-sdf / px)[:, None]

        if style.background == "texture":
            bg = _textures(n, hi, g)
        else:
            level = 0.9 + 0.08 * torch.rand(n, 1, 1, 1, generator=g)
            if style.background == "plain-dark":
                level = 0.55 + 0.25 * torch.rand(n, 1, 1, 1, generator=g)
            bg = level.expand(n, 3, hi, hi)
        img = mask * colour[:, :, None, None] + (1 - mask) * bg
        img = F.avg_pool2d(img, 2)

        if style.lighting:
            a = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
            yy2, xx2 = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
            ramp = xx2 * torch.cos(a) + yy2 * torch.sin(a)
            img = img * (1 + style.lighting * 0.5 * ramp[:, None]) + style.lighting * 0.1
        if style.low_res:
            img = F.interpolate(img, size=(style.low_res, style.low_res), mode="area")
            img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
        if style.blur_sigma:
            img = _gaussian_blur(img, style.blur_sigma)
        if style.colour_cast:
            gains = 1 + (torch.rand(n, 3, 1, 1, generator=g) * 2 - 1) * style.colour_cast
            img = img * gains
        lo, hi_c = style.contrast
        if (lo, hi_c) != (1.0, 1.0):
            factor = lo + (hi_c - lo) * torch.rand(n, 1, 1, 1, generator=g)
            mean = img.mean(dim=(1, 2, 3), keepdim=True)
            img = (img - mean) * factor + mean
        if style.noise_sigma:
            img = img + style.noise_sigma * torch.randn(img.shape, generator=g)
        images = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        perm = torch.randperm(n, generator=g)
        return Split(images[perm].contiguous(), labels[perm].contiguous())
