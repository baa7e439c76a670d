"""torchvision's ResNet-18, untrained, with a stem for small face crops."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18


def small_resnet18(num_classes: int = 7, in_channels: int = 3) -> nn.Module:
    """ResNet-18 with a 3x3 stride-1 stem and no stem max-pool (100 px -> 13 px at layer4).

    The ImageNet stem (7x7/2 + max-pool) shrinks a 48-100 px face to 2-4 px before the
    last block, too coarse for Grad-CAM; never loads pretrained weights (no downloads).
    """
    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model
