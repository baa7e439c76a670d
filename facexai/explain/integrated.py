"""Integrated gradients through captum, batched over images and steps, with named baselines.

IG attributes f(x) - f(x') to input pixels along the straight path from a baseline x' to x.
What "absence of evidence" means is the baseline's choice, so it is named:

- "black": a black image (all channels 0 before standardisation), i.e. -mean/std per channel in
  model space. Needs the model's `Preprocess` (its mean/std). Asks "what do the bright pixels add?".
- "blur": a strong Gaussian blur of each input (sigma ~ a tenth of the image side). Keeps the
  coarse face layout and lighting and removes edges, so attributions go to fine detail (brows,
  mouth corners) rather than to overall brightness.
- "mean": the data set's mean image in model space, which is 0 after standardisation (per-channel
  standardisation makes the mean image zero on average). Pass a tensor instead to use a real mean
  image (or any other baseline): (C, H, W), (1, C, H, W) or (B, C, H, W), in model space.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from captum.attr import IntegratedGradients
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from facexai.data.augment import Preprocess
from facexai.errors import ConfigError
from facexai.explain.gradcam import _check_targets, batches, frozen

BASELINES = ("black", "blur", "mean")


def blur(x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Strong Gaussian blur of (B, C, H, W) images; sigma defaults to a tenth of the longer side.

    The kernel spans +-3 sigma, capped so that reflect padding stays inside the image. Always fp32,
    also under bf16 autocast: it prepares inputs (and its large kernels ran very slowly in bf16).
    """
    h, w = x.shape[-2:]
    sigma = float(sigma) if sigma is not None else max(h, w) / 10
    k = min(2 * math.ceil(3 * sigma) + 1, 2 * min(h, w) - 1)
    k = max(k - (k % 2 == 0), 1)  # odd, at least 1
    with torch.autocast(x.device.type, enabled=False):
        return gaussian_blur(x, kernel_size=[k, k], sigma=[sigma, sigma])


def make_baseline(
    inputs: torch.Tensor,
    baseline: str | torch.Tensor,
    pre: Preprocess | None = None,
    blur_sigma: float | None = None,
) -> torch.Tensor:
    """The baseline for `inputs` (B, C, H, W) as a (B, C, H, W) tensor (an expanded view where constant)."""
    if isinstance(baseline, torch.Tensor):
        b = baseline.to(inputs.device, inputs.dtype)
        if b.dim() == 3:
            b = b.unsqueeze(0)
        return b.expand_as(inputs)
    if baseline == "black":
        if pre is None:
            raise ConfigError("baseline 'black' needs the model's Preprocess (pre=...) for its mean/std")
        mean = inputs.new_tensor(pre.mean).view(1, -1, 1, 1)
        std = inputs.new_tensor(pre.std).view(1, -1, 1, 1)
        return (-mean / std).expand_as(inputs)  # (0 - mean) / std
    if baseline == "blur":
        return blur(inputs, blur_sigma)
    if baseline == "mean":
        return torch.zeros_like(inputs)
    raise ConfigError(f"unknown baseline {baseline!r}; expected one of {', '.join(BASELINES)} or a tensor")


@contextmanager
def _no_autocast_cache() -> Iterator[None]:
    """Autocast's cast cache off for the call, restored after (a no-op outside autocast).

    The cache keeps the bf16 cast of every grad-requiring leaf until the autocast context exits,
    and captum's path points are such leaves, new on every batch: one long `--bf16` context over a
    split kept ~6 MB per 100x100 image at 32 steps (OOM at 3,572 faces). Parameters are frozen
    here, so the cache has nothing worth reusing.
    """
    enabled = torch.is_autocast_cache_enabled()
    torch.set_autocast_cache_enabled(False)
    try:
        yield
    finally:
        torch.set_autocast_cache_enabled(enabled)


def integrated_gradients(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    baseline: str | torch.Tensor = "black",
    pre: Preprocess | None = None,
    n_steps: int = 32,
    internal_batch_size: int = 16,
    batch_size: int = 2,
    progress: bool = False,
    blur_sigma: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(attributions (B, C, H, W), delta (B,)) of the target logits, by captum's IntegratedGradients.

    inputs: standardised float (B, C, H, W) on the model's device; targets: (B,) class indices.
    `batch_size` images go to captum per call and captum evaluates their n_steps path points in
    forward passes of about `internal_batch_size` rows (images x steps together), so large inputs
    run in bounded memory (the small defaults suit a CPU, where chunks of 8-16 rows ran fastest;
    on a GPU raise both). delta is the convergence delta, sum(attr) - (f(x) - f(x')) per image
    (captum's Gauss-Legendre rule); it shrinks as n_steps grows. f(x) and f(x') are evaluated in
    fp32 even under bf16 autocast, so the delta also holds the error of bf16 gradients against the
    fp32 model. Parameters are frozen for the call, so only input gradients are computed.
    """
    if isinstance(baseline, str) and baseline != "blur":
        make_baseline(inputs[:1], baseline, pre)  # fail before any work on an unknown name or missing pre
    targets = _check_targets(targets, len(inputs)).to(inputs.device)
    per_image = None  # a (B, C, H, W) baseline tensor is sliced with the batches
    if isinstance(baseline, torch.Tensor) and baseline.dim() == 4 and len(baseline) == len(inputs) > 1:
        per_image = baseline
    attributions = torch.empty_like(inputs, dtype=torch.float32)
    deltas = torch.empty(len(inputs), dtype=torch.float32, device=inputs.device)
    with frozen(model), torch.enable_grad(), _no_autocast_cache():
        ig = IntegratedGradients(model)
        for s in batches(len(inputs), batch_size, progress, "integrated gradients"):
            x = inputs[s]  # (b, C, H, W)
            base = make_baseline(x, per_image[s] if per_image is not None else baseline, pre, blur_sigma)
            attr = ig.attribute(
                x,
                baselines=base,
                target=targets[s],
                n_steps=n_steps,
                internal_batch_size=max(internal_batch_size, len(x)),  # captum needs >= b rows
            )
            attributions[s] = attr.detach()
            with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
                t = targets[s, None]
                change = model(x).float().gather(1, t) - model(base.contiguous()).float().gather(1, t)  # (b, 1)
            deltas[s] = attributions[s].sum((1, 2, 3)) - change.squeeze(1)
    return attributions, deltas
