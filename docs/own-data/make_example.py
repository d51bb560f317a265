"""Make a small, offline stand-in for the "your own data" example: an Office-31-shaped JPEG tree and a
ResNet-50 weights file, so that ``office31.yaml`` runs end to end without downloading anything.

What it writes (next to this script unless ``--out`` says otherwise)::

    office31/amazon/images/<class>/frame_0000.jpg ...   # the Office-31 layout, 3 domains
    office31/webcam/images/<class>/...
    office31/dslr/images/<class>/...
    weights/resnet50-imagenet.pth                        # a STAND-IN: random init, not ImageNet weights

The images come from robustspec's embedded ``office-synth`` generator (amazon: clean product-like renders,
webcam: blurred, noisy, colour-cast; dslr: cluttered scenes), rendered at ``--size`` and written as JPEGs.
The weights file is torchvision's ResNet-50 with random initialisation and its 1000-class head, saved as
a plain state dict with ``torch.save``: it has the names and shapes of real ImageNet weights, so the suite
loads it, replaces the head and fine-tunes exactly as it would the real file, but its accuracies mean
nothing. Replace both with the real things (see the README section "Your own data").

    python docs/own-data/make_example.py                       # 5 classes x 8 images per domain, 224 px
    python docs/own-data/make_example.py --classes 10 --images 20 --size 128
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from robustspec.data.synthetic import OfficeSynth
from robustspec.models.zoo import build_network

log = logging.getLogger("robustspec.own-data")

HERE = Path(__file__).resolve().parent
DOMAINS = ("amazon", "webcam", "dslr")


def write_tree(
    root: Path, *, classes: int = 5, images: int = 8, size: int = 224, seed: int = 0, quality: int = 90
) -> Path:
    """Write ``images`` JPEGs per class per domain under ``root`` in the Office-31 layout; returns ``root``."""
    synth = OfficeSynth(classes=classes, image_size=size, train_per_class=images, test_per_class=1, seed=seed)
    for domain in DOMAINS:
        split = synth.build_domain(domain)["train"]  # `images` renders per class, labels in class order
        counters = [0] * classes
        for image, label in zip(split.images, split.labels.tolist()):
            folder = root / domain / "images" / synth.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            _write_jpeg(folder / f"frame_{counters[label]:04d}.jpg", image, quality)
            counters[label] += 1
        log.info("wrote %d images of domain %r to %s", sum(counters), domain, root / domain)
    return root


def _write_jpeg(path: Path, image: torch.Tensor, quality: int) -> None:
    """One uint8 ``[3, H, W]`` image as a JPEG: with PIL if installed, else torchvision's encoder."""
    try:
        from PIL import Image
    except ImportError:
        import warnings

        from torchvision.io import encode_jpeg, write_file

        with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs, one warning per call
            warnings.simplefilter("ignore", DeprecationWarning)
            write_file(str(path), encode_jpeg(image.contiguous(), quality=quality))
        return
    Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(path, format="JPEG", quality=quality)


def write_standin_weights(path: Path, *, arch: str = "resnet50", classes: int = 1000, seed: int = 0) -> Path:
    """Save a randomly initialised ``arch`` with a ``classes``-way head as a plain state dict: a STAND-IN
    with the names and shapes of real ImageNet weights, not their values."""
    torch.manual_seed(seed)
    net = build_network(arch, classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    log.info("wrote stand-in weights (random init, NOT ImageNet) for %s to %s", arch, path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="where office31/ and weights/ go (default: next to this script)"
    )
    parser.add_argument("--classes", type=int, default=5, help="classes per domain (2-16)")
    parser.add_argument("--images", type=int, default=8, help="images per class per domain")
    parser.add_argument("--size", type=int, default=224, help="side of the written JPEGs in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-weights", action="store_true", help="write the image tree only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_tree(args.out / "office31", classes=args.classes, images=args.images, size=args.size, seed=args.seed)
    if not args.no_weights:
        write_standin_weights(args.out / "weights" / "resnet50-imagenet.pth", seed=args.seed)


if __name__ == "__main__":
    main()
