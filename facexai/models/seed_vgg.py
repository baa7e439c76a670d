"""Seed B's compact VGG-style network (670,183 parameters at 7 classes, 100x100x3)."""

from __future__ import annotations

from torch import nn


def _block(c_in: int, c_out: int, convs: int, pool: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(3, stride=3))
    return nn.Sequential(*layers)


class SeedVGG(nn.Module):
    """2x64, 3x96, 3x128 conv-BN-ReLU blocks, each closed by 3x3/3 max pooling; GAP; linear head.

    Spatially 100 -> 33 -> 11 -> 3. The head returns logits; softmax lives in the loss.
    With `last_pool=False` the global average reads the whole last block (11x11 at 100x100, 5x5 at
    48x48) instead of the cells the floor-mode 3x3/3 pooling keeps (9 of 121, 9 of 25): the same
    weights, no cell of the last block left unread. `widths` sets the three blocks' channels.
    """

    def __init__(self, num_classes: int = 7, in_channels: int = 3, last_pool: bool = True,
                 widths: tuple[int, int, int] = (64, 96, 128)):
        super().__init__()
        a, b, c = widths
        self.features = nn.Sequential(
            _block(in_channels, a, 2), _block(a, b, 3), _block(b, c, 3, pool=last_pool)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, num_classes)
        for m in self.modules():  # He initialisation, as seed B
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):  # (B, C, H, W) -> (B, K)
        return self.head(self.pool(self.features(x)).flatten(1))
