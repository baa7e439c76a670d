"""Models by name; each declares its input and the layer Grad-CAM should use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from facexai.errors import ConfigError
from facexai.models.resnet import small_resnet18
from facexai.models.seed_vgg import SeedVGG
from facexai.models.small_cnn import SmallCNN


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[int, int], nn.Module]  # (num_classes, in_channels) -> module
    input_size: int  # default input side, pixels
    in_channels: int  # default input channels
    cam_layer: str  # dotted path of the module whose activations Grad-CAM uses
    description: str
    fine_cam_layer: str | None = None  # an earlier layer with a finer map, for CAMs at higher resolution


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


register(
    ModelSpec("seed_vgg", SeedVGG, 100, 3, "features.2.8", "seed B's 670k-parameter VGG-style GAP network",
              "features.1.8")
)  # fmt: skip
register(
    ModelSpec(
        "seed_vgg_gap",
        lambda k, c: SeedVGG(k, c, last_pool=False),
        100,
        3,
        "features.2.8",
        "seed_vgg whose global average reads the whole last block (no last 3x3/3 pooling)",
        "features.1.8",
    )
)
register(
    ModelSpec("small_cnn", SmallCNN, 48, 1, "features.2.2", "24k-parameter 3-block CNN: quick looks, tests",
              "features.1.2")
)  # fmt: skip
register(
    ModelSpec("resnet18", small_resnet18, 100, 3, "layer4", "torchvision ResNet-18 (untrained), small-input stem",
              "layer3")
)  # fmt: skip


def list_models() -> list[ModelSpec]:
    return list(_REGISTRY.values())


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int = 7, in_channels: int | None = None) -> nn.Module:
    """An untrained model; both registered networks accept any input size (global pooling)."""
    spec = get_spec(name)
    return spec.build(num_classes, in_channels or spec.in_channels)


def cam_layer(model: nn.Module, name: str) -> nn.Module:
    """The module Grad-CAM hooks for a model built from registry entry `name`."""
    return model.get_submodule(get_spec(name).cam_layer)


def count_parameters(model: nn.Module) -> int:
    """Weights plus batch-norm running mean and variance (how Keras counted seed B's 670,183)."""
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in model.parameters()) + stats
