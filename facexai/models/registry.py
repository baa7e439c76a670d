"""Models by name; each declares its input and the layer Grad-CAM should use.

Importing this module does not import torch: a spec names its builder ("module:callable" in facexai.models),
so `facexai list` answers at once; `create_model` imports the network when it is built.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from facexai.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: str | Callable[..., nn.Module]  # (num_classes, in_channels, **options) -> module; "module:callable"
    # names one in facexai.models, imported when first built
    input_size: int  # default input side, pixels
    in_channels: int  # default input channels
    cam_layer: str  # dotted path of the module whose activations Grad-CAM uses
    description: str
    fine_cam_layer: str | None = None  # an earlier layer with a finer map, for CAMs at higher resolution
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the builder

    def builder(self) -> Callable[..., nn.Module]:
        if callable(self.build):
            return self.build
        module, name = self.build.split(":")
        return getattr(importlib.import_module(f"facexai.models.{module}"), name)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


register(
    ModelSpec("seed_vgg", "seed_vgg:SeedVGG", 100, 3, "features.2.8",
              "seed B's 670k-parameter VGG-style GAP network", "features.1.8")
)  # fmt: skip
register(
    ModelSpec("seed_vgg_gap", "seed_vgg:SeedVGG", 100, 3, "features.2.8",
              "seed_vgg whose global average reads the whole last block (no last 3x3/3 pooling)", "features.1.8",
              {"last_pool": False})
)  # fmt: skip
register(
    ModelSpec("seed_vgg_wide", "seed_vgg:SeedVGG", 48, 3, "features.2.8",
              "seed_vgg_gap with 64/128/192 channels (1.30M parameters): the width goes where the map is small",
              "features.1.8", {"last_pool": False, "widths": (64, 128, 192)})
)  # fmt: skip
register(
    ModelSpec("small_cnn", "small_cnn:SmallCNN", 48, 1, "features.2.2",
              "24k-parameter 3-block CNN: quick looks, tests", "features.1.2")
)  # fmt: skip
register(
    ModelSpec("resnet18", "resnet:small_resnet18", 100, 3, "layer4",
              "torchvision ResNet-18 (untrained), small-input stem", "layer3")
)  # fmt: skip


def list_models() -> list[ModelSpec]:
    return list(_REGISTRY.values())


def get_spec(name: str) -> ModelSpec:
    """A registered model, or "torchvision:NAME" (any of torchvision's convolutional classifiers, untrained)."""
    if name.startswith(TORCHVISION_PREFIX):
        return _torchvision_spec(name)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(_REGISTRY)} or torchvision:NAME")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int = 7, in_channels: int | None = None) -> nn.Module:
    """An untrained model; both registered networks accept any input size (global pooling)."""
    spec = get_spec(name)
    return spec.builder()(num_classes, in_channels or spec.in_channels, **spec.options)


def cam_layer(model: nn.Module, name: str) -> nn.Module:
    """The module Grad-CAM hooks for a model built from registry entry `name`."""
    return model.get_submodule(get_spec(name).cam_layer)


def count_parameters(model: nn.Module) -> int:
    """Weights plus batch-norm running mean and variance (how Keras counted seed B's 670,183)."""
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in model.parameters()) + stats


TORCHVISION_PREFIX = "torchvision:"


@functools.cache
def _torchvision_spec(name: str) -> ModelSpec:
    """The spec of "torchvision:ARCH" (its CAM layer found by one forward pass), built once per name."""
    arch = name.removeprefix(TORCHVISION_PREFIX)
    layer = last_spatial_layer(torchvision_model(arch, 7, 3), 3)
    return ModelSpec(name, lambda k, c: torchvision_model(arch, k, c), 100, 3, layer,
                     f"torchvision's {arch} (untrained), small-input stem")  # fmt: skip
FIXED_INPUT = ("vit_", "swin_", "maxvit_")  # transformers built for one input size


def _first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    from torch import nn

    return next((name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d))


def torchvision_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    """torchvision's convolutional classifier `name`, untrained (nothing is downloaded), taking `in_channels`;
    ResNet-style stems (7x7/2 conv and max-pool) become a 3x3/1 conv without pooling for small faces."""
    import torchvision
    from torch import nn

    if name.startswith(FIXED_INPUT):
        raise ConfigError(f"torchvision:{name} is built for one input size (a transformer); facexai needs a "
                          "convolutional classifier that takes small faces (e.g. torchvision:resnet18)")  # fmt: skip
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ConfigError(f"unknown torchvision classifier {name!r}; see torchvision.models.list_models()")
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if hasattr(model, "conv1") and hasattr(model, "maxpool"):  # ResNet, ResNeXt, wide ResNet
        out = model.conv1.out_channels
        model.conv1 = nn.Conv2d(in_channels, out, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    else:
        path, conv = _first_conv(model)
        if conv.in_channels != in_channels:
            new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                            conv.dilation, conv.groups, conv.bias is not None)  # fmt: skip
            parent, _, leaf = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, new)
    return model


def last_spatial_layer(model: nn.Module, channels: int, size: int = 64) -> str:
    """The dotted path of the last module (in execution order, adaptive pooling aside) whose output is a
    (B, C, h, w) map with h, w >= 2: the layer a CAM reads for a model the registry does not know."""
    import torch
    from torch import nn

    pools = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)  # resize a map to a fixed size: not a layer a CAM reads
    seen: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: seen.append(n) if isinstance(o, torch.Tensor)
                                     and o.dim() == 4 and min(o.shape[-2:]) >= 2 else None)
             for n, m in model.named_modules() if n and not isinstance(m, pools)]  # fmt: skip
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, channels, size, size))
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise ConfigError("the model has no layer with a spatial output for a CAM")
    return seen[-1]
