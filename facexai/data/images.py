"""Decode image files into one uint8 tensor with torchvision, naming any file that fails."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image, read_file

from facexai.errors import DataNotFoundError, MalformedDataError

_MODES = {1: ImageReadMode.GRAY, 3: ImageReadMode.RGB}


def decode_one(path: Path, channels: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """(C, H, W) uint8; a missing, undecodable or wrongly sized file raises with its path."""
    try:
        data = read_file(str(path))
    except (FileNotFoundError, RuntimeError) as e:
        if not Path(path).exists():
            raise DataNotFoundError(f"image not found: {path}") from None
        raise MalformedDataError(f"{path}: cannot read image ({e})") from None
    webp = bytes(data[:4].tolist()) == b"RIFF" and bytes(data[8:12].tolist()) == b"WEBP"
    try:
        # torchvision decodes WebP in colour only: decode RGB, then to grey by the same luma weights as PIL's "L"
        img = decode_image(data, mode=_MODES[3] if webp else _MODES[channels])
        if webp and channels == 1:
            luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
            img = (img.float() * luma).sum(0, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    except RuntimeError as e:
        img = _pillow(path, channels)  # formats torchvision does not decode (BMP)
        if img is None:
            raise MalformedDataError(f"{path}: not a decodable image ({str(e).splitlines()[0]})") from None
    if size is not None and tuple(img.shape[1:]) != tuple(size):
        raise MalformedDataError(f"{path}: image is {img.shape[2]}x{img.shape[1]}, expected {size[1]}x{size[0]}")
    return img


def _pillow(path: Path, channels: int) -> torch.Tensor | None:
    """(C, H, W) uint8 decoded by Pillow, or None if Pillow cannot read it either."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    except (UnidentifiedImageError, OSError):
        return None
    return torch.from_numpy(arr.reshape(*arr.shape[:2], -1).transpose(2, 0, 1).copy())


def decode_many(
    paths: Sequence[Path], channels: int, size: tuple[int, int] | None = None, threads: int = 4
) -> torch.Tensor:
    """(N, C, H, W) uint8 from N files of one size (the first file's unless `size` is given)."""
    if not paths:
        return torch.empty(0, channels, *(size or (0, 0)), dtype=torch.uint8)
    first = decode_one(paths[0], channels, size)
    size = tuple(first.shape[1:])
    out = torch.empty(len(paths), channels, *size, dtype=torch.uint8)
    out[0] = first

    def work(i: int) -> None:
        out[i] = decode_one(paths[i], channels, size)

    with ThreadPoolExecutor(threads) as pool:  # decoding releases the GIL
        list(pool.map(work, range(1, len(paths))))
    return out
