"""Attribution methods by name, one verb for all: `attribute(name, run, inputs, targets, masks, settings)`.

Every entry returns an `Attribution` (base.py). A new method is one file with its function
`(run, inputs, targets, masks, settings) -> Attribution` and one `register` line below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from facexai.catalogue import METHODS as CATALOGUE
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


def _register(name: str, attribute: Callable[..., Attribution]) -> None:
    register(Method(name, *CATALOGUE[name], attribute))


_register("gradcam", gradcam.attribute_cam("gradcam"))
_register("gradcampp", gradcam.attribute_cam("gradcampp"))
_register("hirescam", gradcam.attribute_cam("hirescam"))
_register("layercam", gradcam.attribute_cam("layercam"))
_register("gradcam_fine", gradcam.attribute_cam("gradcam", True, "gradcam_fine"))
_register("ig", integrated.attribute_ig("ig", "black"))
_register("ig_blur", integrated.attribute_ig("ig_blur", "blur"))
_register("expected_gradients", integrated.expected_gradients)
_register("occlusion", occlusion.attribute)
_register("occlusion_area", occlusion.attribute_per_area)
_register("shapley", shapley.attribute)
_register("uniform", nulls.uniform)
_register("centre", nulls.centre)
_register("random", nulls.random)


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
