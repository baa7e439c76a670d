"""Attribution methods by name, one verb for all: `attribute(name, run, inputs, targets, masks, settings)`.

Every entry returns an `Attribution` (base.py). A new method is one file with its function
`(run, inputs, targets, masks, settings) -> Attribution` and one `register` line below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from facexai.errors import ConfigError
from facexai.explain import gradcam, integrated, nulls, occlusion, shapley
from facexai.explain.base import Attribution, Settings


@dataclass(frozen=True)
class Method:
    name: str
    label: str  # how reports name it
    kind: str  # "map": per-pixel maps, scored by region relevance | "perturbation": region scores directly
    # | "null": knows nothing about the model (nulls.py), the chance level beside every method
    attribute: Callable[..., Attribution]


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    METHODS[method.name] = method
    return method


register(Method("gradcam", "Grad-CAM", "map", gradcam.attribute_cam("gradcam")))
register(Method("gradcampp", "Grad-CAM++", "map", gradcam.attribute_cam("gradcampp")))
register(Method("hirescam", "HiResCAM", "map", gradcam.attribute_cam("hirescam")))
register(Method("layercam", "LayerCAM", "map", gradcam.attribute_cam("layercam")))
register(Method("gradcam_fine", "Grad-CAM (fine layer)", "map", gradcam.attribute_cam("gradcam", True, "gradcam_fine")))
register(Method("ig", "integrated gradients", "map", integrated.attribute_ig("ig", "black")))
register(Method("ig_blur", "integrated gradients (blur baseline)", "map", integrated.attribute_ig("ig_blur", "blur")))
register(Method("expected_gradients", "expected gradients", "map", integrated.expected_gradients))
register(Method("occlusion", "occlusion", "perturbation", occlusion.attribute))
register(Method("occlusion_area", "occlusion per unit area", "perturbation", occlusion.attribute_per_area))
register(Method("shapley", "region Shapley values", "perturbation", shapley.attribute))
register(Method("uniform", "uniform map (null)", "null", nulls.uniform))
register(Method("centre", "centre-prior Gaussian (null)", "null", nulls.centre))
register(Method("random", "random map (null)", "null", nulls.random))


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    return METHODS[name]


def names(kind: str | None = None) -> tuple[str, ...]:
    """Registered method names, optionally of one kind."""
    return tuple(n for n, m in METHODS.items() if kind is None or m.kind == kind)


def attribute(
    method: str,
    run,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    masks: torch.Tensor,
    settings: Settings = Settings(),
) -> Attribution:
    """`method`'s attribution of targets[i] (a class index) for inputs[i], scored over the (N, R, H, W) masks.

    run: a `Run` (model on its device, preprocessing, CAM layer); inputs: standardised (N, C, H, W)
    on the model's device. With settings.bf16 the method's passes run under bf16 autocast.
    """
    entry = get_method(method)
    if masks.dim() != 4 or masks.shape[0] != len(inputs) or masks.shape[-2:] != inputs.shape[-2:]:
        raise ValueError(f"masks must be (N, R, H, W) = ({len(inputs)}, R, {tuple(inputs.shape[-2:])}), "
                         f"got {tuple(masks.shape)}")  # fmt: skip
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=settings.bf16):
        return entry.attribute(run, inputs, targets, masks, settings)
