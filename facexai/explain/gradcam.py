"""Grad-CAM family maps through pytorch-grad-cam, batched, tensors in and out.

The library's CAM classes are used as they are (always inside `with`, so their hooks are
released even when a batch fails); per-sample targets are `ClassifierOutputTarget(c)`.
Two things are added around them:

- a graph cut at the CAM layer: every CAM method here needs only the layer's activations A and
  d(score)/dA, so parameters are frozen for the call and the layer's output is re-rooted as a
  leaf. The backward pass then runs from the logits down to that layer only, instead of through
  the whole network into every weight (same numbers, a fraction of the work).
- batching with an optional rich progress bar.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from facexai.errors import ConfigError
from facexai.io.progress import progress_bar

CAM_METHODS = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "hirescam": HiResCAM}


def cam_class(method: str) -> type:
    """The pytorch-grad-cam class registered under `method`."""
    if method not in CAM_METHODS:
        raise ConfigError(f"unknown CAM method {method!r}; expected one of {', '.join(CAM_METHODS)}")
    return CAM_METHODS[method]


def batches(n: int, batch_size: int, progress: bool = False, description: str = "") -> Iterator[slice]:
    """Slices covering range(n) in steps of `batch_size`, with an optional rich progress bar (on stderr)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    bar = progress_bar(progress)
    with bar:
        task = bar.add_task(description, total=n)
        for i in range(0, n, batch_size):
            yield slice(i, min(i + batch_size, n))
            bar.update(task, advance=min(batch_size, n - i))


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode with parameters not requiring grad; mode, flags and any .grad restored on exit.

    (pytorch-grad-cam calls model.zero_grad() on every batch; a caller's accumulated grads survive.)
    """
    saved = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    training = model.training
    try:
        model.eval()
        for p, _, _ in saved:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag, grad in saved:
            p.requires_grad_(flag)
            p.grad = grad
        model.train(training)


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


def _check_targets(targets: torch.Tensor, n: int) -> torch.Tensor:
    targets = torch.as_tensor(targets).reshape(-1)
    if len(targets) != n or targets.is_floating_point():
        raise ValueError(f"targets must be {n} integer class indices, got shape {tuple(targets.shape)}")
    return targets.cpu()


def cam_maps(
    model: nn.Module,
    layer: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str = "gradcam",
    batch_size: int = 64,
    progress: bool = False,
) -> torch.Tensor:
    """(B, H, W) float32 maps in [0, 1] on the inputs' device: `method` at `layer` for class targets[i] of input i.

    inputs: standardised float (B, C, H, W) on the model's device; targets: (B,) class indices.
    Each map is min-max scaled per image and resized to (H, W) by the library. The model is left
    as it was (train/eval mode, requires_grad) and no hook remains on it, also after an error.
    """
    cls = cam_class(method)
    targets = _check_targets(targets, len(inputs))
    out = torch.empty(inputs.shape[0], *inputs.shape[-2:], dtype=torch.float32, device=inputs.device)
    cut = layer.register_forward_hook(_leaf)  # registered first, so the library's hooks see the leaf
    try:
        with frozen(model), torch.enable_grad(), cls(model=model, target_layers=[layer]) as cam:
            for s in batches(len(inputs), batch_size, progress, f"{method} maps"):
                cam_targets = [ClassifierOutputTarget(int(c)) for c in targets[s]]
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
