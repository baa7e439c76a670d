"""A tiny data set whose right answer is known by hand: class k is a bright bar at column block k."""

from __future__ import annotations

import torch

from facexai.data.base import FaceDataset
from facexai.emotions import SEVEN


def bars(n: int = 140, size: int = 28, seed: int = 0) -> FaceDataset:
    """(n, 1, size, size) noise images; class k has a bright vertical bar in the k-th of 7 column blocks."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 7
    images = (torch.rand(n, 1, size, size, generator=g) * 120).to(torch.uint8)
    width = size // 7
    for i, k in enumerate(labels.tolist()):
        images[i, :, :, k * width : (k + 1) * width] = 255
    split = torch.tensor([0, 0, 0, 1, 2] * (n // 5 + 1))[:n]  # 60% train, 20% val, 20% test
    return FaceDataset("bars", SEVEN, images, labels, split, [f"bar{i}" for i in range(n)])
