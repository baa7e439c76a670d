"""Grad-CAM family maps through pytorch-grad-cam, batched, tensors in and out.

The library's CAM classes are used as they are (always inside `with`, so their hooks are
released even when a batch fails); per-sample targets are `ClassifierOutputTarget(c)`.
Two things are added around them:

- a graph cut at the CAM layer: every CAM method here needs only the layer's activations A and
  d(score)/dA, so parameters are frozen for the call and the layer's output is re-rooted as a
  leaf. The backward pass then runs from the logits down to that layer only, instead of through
  the whole network into every weight (same numbers, a fraction of the work).
- batching with an optional rich progress bar.

The registry's CAM entries (`attribute_cam`) turn the maps into region relevance (`base.from_maps`).
"""

from __future__ import annotations

import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from torch import nn

from facexai.errors import ConfigError
from facexai.explain.base import Settings, batches, check_score, check_targets, from_maps, frozen

CAM_METHODS = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "hirescam": HiResCAM, "layercam": LayerCAM}


def cam_class(method: str) -> type:
    """The pytorch-grad-cam class registered under `method`."""
    if method not in CAM_METHODS:
        raise ConfigError(f"unknown CAM method {method!r}; expected one of {', '.join(CAM_METHODS)}")
    return CAM_METHODS[method]


def _leaf(module: nn.Module, args, output):
    """Forward hook: the layer's output re-rooted on a fresh leaf that requires grad (the graph cut).

    The clone keeps the leaf itself out of reach of a following in-place op (ReLU(inplace=True)).
    A half-precision output (bf16 autocast) becomes an fp32 leaf: the library hands activations and
    gradients to numpy, which has no bf16.
    """
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        leaf = output.detach()
        if leaf.dtype in (torch.bfloat16, torch.float16):
            leaf = leaf.float()
        return leaf.requires_grad_(True).clone()
    return output


def cam_maps(
    model: nn.Module,
    layer: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str = "gradcam",
    batch_size: int = 64,
    progress: bool = False,
    score: str = "logit",
) -> torch.Tensor:
    """(B, H, W) float32 maps in [0, 1] on the inputs' device: `method` at `layer` for class targets[i] of input i.

    inputs: standardised float (B, C, H, W) on the model's device; targets: (B,) class indices;
    score: the class's logit (`ClassifierOutputTarget`) or softmax probability (`ClassifierOutputSoftmaxTarget`).
    Each map is min-max scaled per image and resized to (H, W) by the library. The model is left
    as it was (train/eval mode, requires_grad) and no hook remains on it, also after an error.
    """
    cls = cam_class(method)
    targets = check_targets(targets, len(inputs))
    target_type = ClassifierOutputTarget if check_score(score, "logit") == "logit" else ClassifierOutputSoftmaxTarget
    out = torch.empty(inputs.shape[0], *inputs.shape[-2:], dtype=torch.float32, device=inputs.device)
    cut = layer.register_forward_hook(_leaf)  # registered first, so the library's hooks see the leaf
    try:
        with frozen(model), torch.enable_grad(), cls(model=model, target_layers=[layer]) as cam:
            for s in batches(len(inputs), batch_size, progress, f"{method} maps"):
                cam_targets = [target_type(int(c)) for c in targets[s]]
                try:
                    maps = cam(input_tensor=inputs[s], targets=cam_targets)  # numpy (b, H, W) float32
                except IndexError as e:
                    # BaseCAM.__exit__ prints and swallows IndexError: re-raise as another type so a
                    # bad target (or any indexing bug) is never silent.
                    raise ValueError(f"{method}: target or layer indexing failed: {e}") from e
                # The one numpy hop: the library computes weights, ReLU, min-max scaling and the cv2
                # resize in numpy on the CPU; convert its result once per batch and go back to the device.
                out[s] = torch.from_numpy(maps).to(out.device)
    finally:
        cut.remove()
    return out.clamp_(0, 1)


def attribute_cam(method: str, fine: bool = False, name: str | None = None):
    """The registry entry for one CAM method: maps at the run's CAM layer (`fine`: its earlier, finer CAM
    layer, e.g. block 2 of the seed network: 33x33 at 100x100 instead of 11x11), or `settings.layer`."""
    cam_class(method)
    name = name or method

    def attribute(run, inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor, settings: Settings):
        layer_name = settings.layer or (run.fine_cam_layer if fine else run.cam_layer)
        if layer_name is None and run.meta.get("model") == "imported":
            raise ConfigError(
                f"{name} needs a model whose layers take hooks; an imported {run.meta['format']} file keeps none "
                "(a TorchScript module refuses forward hooks, an export may fold the layer away). Use ig, occlusion "
                "or shapley, or pass the nn.Module itself from Python (facexai.Run.of)"
            )
        if layer_name is None:
            raise ConfigError(f"{name} needs a CAM layer: register the model or pass its layer (cam_layer=...)")
        score = check_score(settings.score, "logit")
        layer = run.model.get_submodule(layer_name)
        maps = cam_maps(run.model, layer, inputs, targets, method, settings.batch_size, settings.progress, score)
        return from_maps(name, maps, masks, score)

    return attribute
