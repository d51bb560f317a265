"""Render docs/office-synth.png: one training image per class (columns) for each domain (rows).

python docs/make_samples.py [-o docs/office-synth.png] [--classes 10]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
import torchvision

from robustspec.data.synthetic import OfficeSynth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="docs/office-synth.png")
    ap.add_argument("--classes", type=int, default=10)
    args = ap.parse_args()
    ds = OfficeSynth(classes=args.classes)
    rows = []
    for domain in ds.domains:
        train = ds.build_domain(domain)["train"]
        first = [int((train.labels == k).nonzero()[0]) for k in range(len(ds.classes))]
        rows.append(train.images[first])
    grid = torchvision.utils.make_grid(torch.cat(rows).float() / 255, nrow=len(ds.classes), padding=2, pad_value=1.0)
    grid = F.interpolate(grid[None], scale_factor=3, mode="nearest")[0]
    torchvision.utils.save_image(grid, args.output)
    print(f"wrote {args.output}: rows {', '.join(ds.domains)}; columns {', '.join(ds.classes)}")


if __name__ == "__main__":
    main()
