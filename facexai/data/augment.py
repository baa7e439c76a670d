"""Batched preprocessing on the training device: resize, channels, affine augmentation, standardisation.

One affine grid per batch does resize + rotation + scale + flip in a single
grid_sample, instead of per-sample PIL transforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facexai.config import AugmentConfig

_GREY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as PIL's "L" conversion


@dataclass(frozen=True)
class Preprocess:
    """How a model sees an image; stored in every checkpoint."""

    size: int  # model input side, pixels
    channels: int  # model input channels
    mean: tuple[float, ...]  # per channel, of training images scaled to [0, 1]
    std: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"size": self.size, "channels": self.channels, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        return cls(int(d["size"]), int(d["channels"]), tuple(d["mean"]), tuple(d["std"]))


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, H, W) float -> (B, channels, H, W): grey is replicated, RGB is turned to luma."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    if channels == 1:
        return (x * x.new_tensor(_GREY).view(1, 3, 1, 1)).sum(1, keepdim=True)
    raise ValueError(f"cannot turn {x.shape[1]} channels into {channels}")


@torch.no_grad()
def channel_stats(
    images: torch.Tensor, channels: int, chunk: int = 4096
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 (N, C, H, W) images scaled to [0, 1], as the model sees them."""
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for i in range(0, len(images), chunk):
        x = match_channels(images[i : i + chunk].double() / 255, channels)
        total += x.sum((0, 2, 3)).cpu()
        squares += (x * x).sum((0, 2, 3)).cpu()
        count += x.numel() // channels
    mean = total / count
    std = (squares / count - mean**2).clamp(min=1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def random_affine(n: int, cfg: AugmentConfig, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, 2, 3) affine_grid matrices: rotation, zoom, horizontal flip and shift drawn per sample."""
    u = torch.rand(n, 3, generator=generator, device=device)
    angle = (u[:, 0] * 2 - 1) * math.radians(cfg.rotation)
    scale = 1 + (u[:, 1] * 2 - 1) * cfg.scale  # > 1 zooms in
    flip = torch.where(u[:, 2] < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n, device=device)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # drawn only when asked, so that recipes without a shift keep their random stream
    tx = ty = torch.zeros_like(cos)
    if cfg.translate:  # [-1, 1] spans the side
        tx, ty = ((torch.rand(n, 2, generator=generator, device=device) * 2 - 1) * 2 * cfg.translate).unbind(1)
    # output (x, y) -> input coordinates: rotate/zoom, then mirror x, then shift
    return torch.stack([torch.stack([cos * flip, -sin * flip, tx], 1), torch.stack([sin, cos, ty], 1)], 1)


def random_boxes(n: int, size: int, p: float, generator: torch.Generator, device: torch.device) -> torch.Tensor | None:
    """(n, 4) int64 boxes (top, left, height, width) for random erasing, height 0 where a face keeps all
    its pixels; torchvision's RandomErasing draws (area 2-33% of the image, aspect ratio 0.3-3.3 on a log
    scale), clipped to the image instead of redrawn. None when p is 0 (nothing drawn)."""
    if not p:
        return None
    u = torch.rand(n, 5, generator=generator, device=device)
    area = (0.02 + u[:, 0] * (0.33 - 0.02)) * size * size
    ratio = torch.exp(math.log(0.3) + u[:, 1] * (math.log(3.3) - math.log(0.3)))
    h = torch.sqrt(area * ratio).round().clamp(1, size)
    w = torch.sqrt(area / ratio).round().clamp(1, size)
    top = (u[:, 2] * (size - h + 1)).floor().clamp(max=size - h)
    left = (u[:, 3] * (size - w + 1)).floor().clamp(max=size - w)
    h = torch.where(u[:, 4] < p, h, torch.zeros_like(h))
    return torch.stack([top, left, h, w], 1).long()


def erase(x: torch.Tensor, boxes: torch.Tensor | None) -> torch.Tensor:
    """(B, C, S, S) standardised images with each (top, left, height, width) box set to 0, the training mean.

    Written by hand because torchvision's RandomErasing erases one box per call (the same box for a whole
    batch); each face here gets its own, as a mask in one pass. Tested against torchvision's `erase`."""
    if boxes is None:
        return x
    rows = torch.arange(x.shape[-2], device=x.device).view(1, -1, 1)
    cols = torch.arange(x.shape[-1], device=x.device).view(1, 1, -1)
    top, left, h, w = (boxes[:, k].view(-1, 1, 1) for k in range(4))
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)  # (B, S, S)
    return x.masked_fill(inside.unsqueeze(1), 0.0)


def prepare(images: torch.Tensor, pre: Preprocess, theta: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (B, C, H, W) on any device -> standardised float (B, pre.channels, pre.size, pre.size).

    With `theta` (B, 2, 3) the batch is warped (border pixels repeat, like Keras' default fill);
    without it the images are only resized (bilinear, antialiased when shrinking).
    """
    x = match_channels(images.float() / 255, pre.channels)
    if theta is not None:
        grid = F.affine_grid(theta, [x.shape[0], x.shape[1], pre.size, pre.size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    elif x.shape[-2:] != (pre.size, pre.size):
        x = F.interpolate(x, size=(pre.size, pre.size), mode="bilinear", align_corners=False, antialias=True)
    mean = x.new_tensor(pre.mean).view(1, -1, 1, 1)
    std = x.new_tensor(pre.std).view(1, -1, 1, 1)
    return (x - mean) / std
