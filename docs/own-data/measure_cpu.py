"""Measure what fine-tuning and evaluating ResNet-50 at 224 px costs per image on this CPU.

Uses robustspec's own training loop (augmentation, AdamW/SGD, schedule) and evaluation, on random uint8
images, with 1 and 2 torch threads::

    python docs/own-data/measure_cpu.py --images 48 --batch-size 16 --threads 1 2

Prints one line per thread count: training images/s (forward + backward + step) and evaluation images/s.
"""

from __future__ import annotations

import argparse
import time

import torch

from robustspec.data.base import Split
from robustspec.evaluate import correctness
from robustspec.models import Normalized, build_network
from robustspec.spec.schema import OptimizerSpec, TrainRecipe
from robustspec.train import train_supervised


def measure(threads: int, images: int, batch_size: int, size: int, classes: int) -> tuple[float, float]:
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    data = Split(
        torch.randint(0, 256, (images, 3, size, size), dtype=torch.uint8, generator=g),
        torch.randint(0, classes, (images,), generator=g),
    )
    net = Normalized(build_network("resnet50", classes), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    recipe = TrainRecipe(
        epochs=1, batch_size=batch_size, optimizer=OptimizerSpec(name="sgd", lr=0.001), schedule="cosine"
    )
    # Warm-up: one small step so that one-time allocations do not count.
    train_supervised(net, Split(data.images[:batch_size], data.labels[:batch_size]), recipe, device=torch.device("cpu"))
    t = time.perf_counter()
    train_supervised(net, data, recipe, device=torch.device("cpu"))
    train_rate = images / (time.perf_counter() - t)
    net.eval()
    t = time.perf_counter()
    correctness(net, data, device=torch.device("cpu"), batch_size=32)
    eval_rate = images / (time.perf_counter() - t)
    return train_rate, eval_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=31)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    for threads in args.threads:
        train_rate, eval_rate = measure(threads, args.images, args.batch_size, args.image_size, args.classes)
        print(
            f"resnet50 {args.image_size}px threads={threads}: train {train_rate:.2f} img/s "
            f"({1 / train_rate:.2f} s/img), eval {eval_rate:.2f} img/s ({1 / eval_rate:.3f} s/img)",
            flush=True,
        )


if __name__ == "__main__":
    main()
