"""Images per second: robustspec's image pipeline against torchvision's ImageFolder + DataLoader.

Writes a tree of photograph-sized JPEGs (640x480 by default, like Caltech's), then decodes and makes
every image 224x224 (shorter side, centre crop) with both, for each number of worker processes, in the
same run. The peer is what a PyTorch user writes: ``ImageFolder(root, transform=Compose([Resize(224),
CenterCrop(224), PILToTensor()]))`` in a ``DataLoader``.

    python benchmarks/decode.py                      # 400 images, workers 0 and 2
    python benchmarks/decode.py --images 1000 --workers 0 1 2 4

Run by hand; results go to benchmarks/README.md, never into a timed test.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image


def make_tree(root: Path, images: int, width: int, height: int) -> list[Path]:
    """``images`` JPEGs in 4 classes: smooth random colour fields (JPEG-typical content, not noise)."""
    g = torch.Generator().manual_seed(0)
    paths = []
    for i in range(images):
        low = torch.rand(3, 6, 8, generator=g)
        field = torch.nn.functional.interpolate(low[None], size=(height, width), mode="bicubic")[0]
        pixels = (field.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
        path = root / f"class{i % 4}" / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return sorted(paths, key=lambda p: (p.parent.name, p.name))


def robustspec_rate(paths: list[Path], workers: int, size: int) -> float:
    from robustspec.data.pipeline import decode_images

    start = time.perf_counter()
    out = decode_images(paths, size, "shorter-side", workers=workers)
    assert out.shape == (len(paths), 3, size, size)
    return len(paths) / (time.perf_counter() - start)


def torchvision_rate(root: Path, workers: int, size: int) -> float:
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()])
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(str(root), transform=tf), batch_size=32, num_workers=workers
    )
    start = time.perf_counter()
    n = sum(len(x) for x, _ in loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_tree(root, args.images, args.width, args.height)
        print(
            f"{args.images} JPEGs of {args.width}x{args.height} -> {args.size}x{args.size} (shorter side, centre crop)"
        )
        robustspec_rate(paths[:8], 0, args.size)  # imports and first calls, outside the timings
        print("| workers | robustspec images/s | torchvision ImageFolder images/s | ratio |")
        print("|---|---|---|---|")
        for workers in args.workers:
            ours = robustspec_rate(paths, workers, args.size)
            peer = torchvision_rate(root, workers, args.size)
            print(f"| {workers} | {ours:.0f} | {peer:.0f} | {ours / peer:.2f}x |")


if __name__ == "__main__":
    main()
