"""A small fast CNN (24,199 parameters at 7 classes, 48x48x1) for laptops, quick looks and tests that train a model."""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU blocks of 16, 32, 64 channels, each closed by 2x2 max pooling; GAP; linear head.

    Spatially 48 -> 24 -> 12 -> 6. The head returns logits.
    """

    def __init__(self, num_classes: int = 7, in_channels: int = 1):
        super().__init__()
        blocks: list[nn.Module] = []
        for c_in, c_out in ((in_channels, 16), (16, 32), (32, 64)):
            blocks.append(
                nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2))
            )
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):  # (B, C, H, W) -> (B, K)
        return self.head(self.pool(self.features(x)).flatten(1))
