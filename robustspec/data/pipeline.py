"""Image files to uint8 tensors: decoding, resizing to a square, and decoding many in worker processes.

Three ways to make a photograph ``size x size`` (``resize:`` of an image tree):

- ``shorter-side`` (the default): scale so the shorter side is ``size``, then crop the centre; the
  evaluation convention of ImageNet models, and no distortion;
- ``squash``: scale both sides to ``size``: nothing is cropped, the aspect ratio is lost;
- ``pad``: scale so the longer side is ``size``, then pad the shorter one with black, centred.

All three scale with antialiasing. :func:`decode_images` decodes a list of files with a
``torch.utils.data.DataLoader`` over worker processes (``workers``), in order, reporting progress.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import DataError
from ..progress import Timer, report

if TYPE_CHECKING:
    import torch

__all__ = ["RESIZE_MODES", "ResizeMode", "decode", "decode_images", "default_workers", "to_square"]

ResizeMode = Literal["shorter-side", "squash", "pad"]
RESIZE_MODES: tuple[str, ...] = ("shorter-side", "squash", "pad")

#: Images per DataLoader batch: large enough to amortise the transfer from a worker, small enough for
#: steady progress lines.
_BATCH = 32
#: Seconds between progress lines.
_PROGRESS_S = 5.0


def decode(path: Path) -> torch.Tensor:
    """One image file as uint8 ``[3, H, W]`` RGB: torchvision first, then PIL; DataError if neither can."""
    import torch
    import torchvision.io as tvio

    try:
        # torchvision 0.29 deprecates its image codecs with one warning per call: thousands per domain.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            img = tvio.decode_image(str(path), mode=tvio.ImageReadMode.RGB)
        if img.dtype == torch.uint8 and img.ndim == 3 and img.shape[0] == 3:
            return img
    except Exception:  # noqa: BLE001 - any failure falls through to PIL
        pass
    try:
        from PIL import Image

        with Image.open(path) as pil:
            rgb = pil.convert("RGB")
            width, height = rgb.size
            data = bytearray(rgb.tobytes())
        return torch.frombuffer(data, dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1).contiguous()
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"imagefolder: cannot decode image {str(path)!r}: {exc}") from exc


def to_square(img: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """``img`` (uint8 ``[3, H, W]``) as ``[3, size, size]`` by ``mode`` (see the module docstring)."""
    from torchvision.transforms.v2 import functional as TF

    height, width = int(img.shape[1]), int(img.shape[2])
    if height == size and width == size:
        return img
    if mode == "squash":
        return TF.resize(img, [size, size], antialias=True)
    if mode == "shorter-side":
        scale = size / min(height, width)
        h, w = max(size, round(height * scale)), max(size, round(width * scale))
        return TF.center_crop(TF.resize(img, [h, w], antialias=True), [size, size])
    if mode == "pad":
        scale = size / max(height, width)
        h, w = min(size, max(1, round(height * scale))), min(size, max(1, round(width * scale)))
        scaled = TF.resize(img, [h, w], antialias=True)
        top, left = (size - h) // 2, (size - w) // 2
        return TF.pad(scaled, [left, top, size - w - left, size - h - top], fill=0)
    raise ValueError(f"unknown resize mode {mode!r}; expected one of {', '.join(RESIZE_MODES)}")


def default_workers() -> int:
    """Decoding processes when a suite names none: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(8, cpus))


class _Files:
    """A map-style dataset of image files, each decoded and made square (run inside DataLoader workers)."""

    def __init__(self, paths: Sequence[Path], size: int, mode: str) -> None:
        self.paths, self.size, self.mode = list(paths), size, mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return to_square(decode(self.paths[i]), self.size, self.mode)


def decode_images(
    paths: Sequence[Path], size: int, mode: str, *, workers: int | None = None, label: str = "decoding"
) -> torch.Tensor:
    """uint8 ``[N, 3, size, size]`` of ``paths`` in order, decoded by ``workers`` processes (None: the
    CPUs, :func:`default_workers`; 0 or a handful of images: this process)."""
    import torch

    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    if not paths:
        return out
    workers = default_workers() if workers is None else workers
    if len(paths) < 4 * _BATCH:
        workers = 0  # starting processes costs more than it saves
    loader = torch.utils.data.DataLoader(
        _Files(paths, size, mode),
        batch_size=_BATCH,
        num_workers=workers,
        collate_fn=torch.stack,
        # Workers that import torch again (spawn) cost seconds; fork shares what is loaded.
        multiprocessing_context="fork" if workers and "fork" in _start_methods() else None,
    )
    done, timer, shown = 0, Timer(), 0.0
    for batch in loader:
        out[done : done + len(batch)] = batch
        done += len(batch)
        if timer.seconds - shown >= _PROGRESS_S and done < len(paths):
            shown = timer.seconds
            rate = done / shown
            report(f"{label}: {done}/{len(paths)} images ({rate:.0f}/s, {(len(paths) - done) / rate:.0f}s left)")
    return out


def _start_methods() -> list[str]:
    import multiprocessing

    return multiprocessing.get_all_start_methods()
