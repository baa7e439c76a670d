"""Region occlusion: how much the target-class probability drops when one face region is replaced.

Regions come as an integer map per image (0 = no region, i + 1 = region i), e.g. from
landmark masks. Fills say what "removing" a region means:

- "mean": the data set's mean image, 0 in standardised model space (or a given (C, H, W),
  (1, C, H, W) or (B, C, H, W) tensor in model space): the region becomes average.
- "blur": a strong Gaussian blur of the same image: the region keeps its colour and lighting and
  loses its shape (the least out-of-distribution fill).
- "noise": seeded standard Gaussian noise in standardised space: the region's evidence is destroyed.

`occlude` is the fast path: every (image, region) pair is one row, and rows go through the model in
chunks of `batch_size`, so one forward pass covers many images and regions at once.
`occlude_reference` computes the same thing through captum's FeatureAblation (feature_mask =
region map, baselines = the fill) and is kept as the check on the fast path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from captum.attr import FeatureAblation
from torch import nn

from facexai.errors import ConfigError
from facexai.explain.gradcam import _check_targets, batches, frozen
from facexai.explain.integrated import blur

FILLS = ("mean", "blur", "noise")


def make_fill(
    inputs: torch.Tensor, fill: str | torch.Tensor = "mean", seed: int = 0, blur_sigma: float | None = None
) -> torch.Tensor:
    """(B, C, H, W) replacement values for `inputs` (B, C, H, W) in model space.

    Noise is drawn on the CPU from `seed` for the whole input at once, so it does not depend on
    the device or on how the work is batched.
    """
    if isinstance(fill, torch.Tensor):
        f = fill.to(inputs.device, inputs.dtype)
        return (f.unsqueeze(0) if f.dim() == 3 else f).expand_as(inputs)
    if fill == "mean":
        return torch.zeros_like(inputs)
    if fill == "blur":
        return torch.cat([blur(inputs[s], blur_sigma) for s in batches(len(inputs), 256)]) if len(inputs) else inputs
    if fill == "noise":
        g = torch.Generator().manual_seed(seed)
        return torch.randn(inputs.shape, generator=g, dtype=torch.float32).to(inputs.device, inputs.dtype)
    raise ConfigError(f"unknown fill {fill!r}; expected one of {', '.join(FILLS)} or a tensor")


def _check_regions(region_index: torch.Tensor, inputs: torch.Tensor, n_regions: int) -> torch.Tensor:
    if region_index.shape != (inputs.shape[0], *inputs.shape[-2:]):
        raise ValueError(
            f"region_index must be (B, H, W) = {(inputs.shape[0], *inputs.shape[-2:])}, got {tuple(region_index.shape)}"
        )
    if region_index.is_floating_point() or region_index.dtype == torch.bool:
        raise ValueError(f"region_index must be an integer tensor, got {region_index.dtype}")
    if n_regions < 1:
        raise ConfigError(f"n_regions must be at least 1, got {n_regions}")
    if region_index.numel() and (int(region_index.min()) < 0 or int(region_index.max()) > n_regions):
        raise ValueError(f"region_index values must lie in 0..{n_regions}")
    return region_index.to(inputs.device, torch.int64)


def _present(region_index: torch.Tensor, n_regions: int) -> torch.Tensor:
    """(B, R) bool: region r occurs in image b."""
    flat = region_index.flatten(1)  # (B, H*W)
    counts = torch.zeros(len(flat), n_regions + 1, device=flat.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float32))
    return counts[:, 1:] > 0


def _result(base_prob, prob, pred, base_pred, present) -> dict[str, torch.Tensor]:
    prob = torch.where(present, prob, base_prob[:, None])  # an absent region changes nothing, exactly
    return {
        "base_prob": base_prob,  # (B,)
        "prob": prob,  # (B, R)
        "drop": base_prob[:, None] - prob,  # (B, R)
        "flipped": (pred != base_pred[:, None]) & present,  # (B, R)
    }


@torch.no_grad()
def occlude(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    region_index: torch.Tensor,
    n_regions: int,
    fill: str | torch.Tensor = "mean",
    batch_size: int = 16,
    progress: bool = False,
    seed: int = 0,
    blur_sigma: float | None = None,
) -> dict[str, torch.Tensor]:
    """Occlude each region of each image in turn; tensors on the inputs' device.

    inputs: standardised float (B, C, H, W) on the model's device; targets: (B,) class indices;
    region_index: (B, H, W) int64, 0 = no region, i + 1 = region i (i < n_regions).
    Returns base_prob (B,), the target-class softmax probability of the intact image; prob (B, R)
    with region r replaced by the fill; drop = base_prob - prob (B, R); flipped (B, R) bool, the
    predicted class differs from the intact image's; pred (B, R) and base_pred (B,), the predicted
    classes themselves. A region absent from an image gets drop 0.
    `batch_size` is the number of rows (image-region pairs) per forward pass: 16 suits a CPU
    (larger chunks ran slower there); on a GPU raise it.
    """
    targets = _check_targets(targets, len(inputs)).to(inputs.device)
    region_index = _check_regions(region_index, inputs, n_regions)
    fills = make_fill(inputs, fill, seed, blur_sigma)  # (B, C, H, W)
    n, r_count = len(inputs), n_regions
    base_prob = torch.empty(n, device=inputs.device)
    base_pred = torch.empty(n, dtype=torch.int64, device=inputs.device)
    prob = torch.empty(n * r_count, device=inputs.device)
    pred = torch.empty(n * r_count, dtype=torch.int64, device=inputs.device)
    with frozen(model):
        for s in batches(n, batch_size):
            p = F.softmax(model(inputs[s]).float(), 1)  # (b, K)
            base_prob[s] = p.gather(1, targets[s, None]).squeeze(1)
            base_pred[s] = p.argmax(1)
        for s in batches(n * r_count, batch_size, progress, "occlusion"):
            k = torch.arange(s.start, s.stop, device=inputs.device)
            i, region = k // r_count, k % r_count + 1  # image and region id of each row
            m = (region_index[i] == region[:, None, None]).unsqueeze(1)  # (rows, 1, H, W)
            p = F.softmax(model(torch.where(m, fills[i], inputs[i])).float(), 1)  # (rows, K)
            prob[s] = p.gather(1, targets[i, None]).squeeze(1)
            pred[s] = p.argmax(1)
    present = _present(region_index, r_count)
    pred = torch.where(present, pred.view(n, r_count), base_pred[:, None])
    # the occluded argmax too (the captum reference cannot give it): accuracy under occlusion needs it
    return _result(base_prob, prob.view(n, r_count), pred, base_pred, present) | {"pred": pred, "base_pred": base_pred}


@torch.no_grad()
def occlude_reference(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    region_index: torch.Tensor,
    n_regions: int,
    fill: str | torch.Tensor = "mean",
    batch_size: int = 16,
    progress: bool = False,
    seed: int = 0,
    blur_sigma: float | None = None,
) -> dict[str, torch.Tensor]:
    """`occlude` through captum's FeatureAblation: the same arguments and the same result.

    One FeatureAblation scores the target-class softmax probability (its attribution at a pixel is
    base_prob - prob for that pixel's region); a second scores "prediction unchanged" as 1.0/0.0
    (its attribution is 1.0 where occluding the region flips the prediction). Captum also ablates
    region 0 (the background), one forward pass per batch that is ignored here.
    """
    targets = _check_targets(targets, len(inputs)).to(inputs.device)
    region_index = _check_regions(region_index, inputs, n_regions)
    fills = make_fill(inputs, fill, seed, blur_sigma)
    n = len(inputs)
    ids = torch.arange(1, n_regions + 1, device=inputs.device)
    hits = region_index.flatten(1)[:, None, :] == ids[None, :, None]  # (B, R, H*W)
    present = hits.any(-1)  # (B, R)
    first = hits.to(torch.uint8).argmax(-1)  # (B, R): first pixel of each region, where its value is read
    base_prob = torch.empty(n, device=inputs.device)
    base_pred = torch.empty(n, dtype=torch.int64, device=inputs.device)
    drop = torch.empty(n, n_regions, device=inputs.device)
    flip = torch.empty(n, n_regions, device=inputs.device)
    with frozen(model):

        def probs(x):
            return F.softmax(model(x).float(), 1)

        def unchanged(x, pred):
            return (model(x).argmax(1) == pred).float()

        by_prob, by_flip = FeatureAblation(probs), FeatureAblation(unchanged)
        for s in batches(n, batch_size, progress, "occlusion (captum)"):
            x, mask, fill_s = inputs[s], region_index[s, None], fills[s]  # mask (b, 1, H, W) broadcasts over C
            p = probs(x)
            base_prob[s] = p.gather(1, targets[s, None]).squeeze(1)
            base_pred[s] = p.argmax(1)
            a = by_prob.attribute(x, baselines=fill_s, target=targets[s], feature_mask=mask)  # (b, C, H, W)
            f = by_flip.attribute(x, baselines=fill_s, additional_forward_args=(base_pred[s],), feature_mask=mask)
            drop[s] = a[:, 0].flatten(1).gather(1, first[s]).float()
            flip[s] = f[:, 0].flatten(1).gather(1, first[s]).float()
    prob = base_prob[:, None] - drop
    pred = torch.where(flip > 0.5, -1, base_pred[:, None])  # -1: some other class than base_pred
    return _result(base_prob, prob, pred, base_pred, present)
