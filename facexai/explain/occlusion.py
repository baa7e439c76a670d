"""Region occlusion: how much the target-class probability drops when one face region is replaced.

Regions come as an integer map per image (0 = no region, i + 1 = region i), e.g. from
landmark masks. The fill says what "removing" a region means: a reference (`references.py`: blur,
the data-set mean, noise, black, or a tensor in model space).

`occlude` is the fast path: every (image, region) pair is one row, and rows go through the model in
chunks of `batch_size`, so one forward pass covers many images and regions at once.
`occlude_reference` computes the same thing through captum's FeatureAblation (feature_mask =
region map, baselines = the fill) and is kept as the check on the fast path. The registry entry
(`attribute`) reports the drop as the region score, NaN where a region is missing from a face.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from captum.attr import FeatureAblation
from torch import nn

from facexai.data.augment import Preprocess
from facexai.errors import ConfigError
from facexai.explain.base import Attribution, Settings, batches, check_score, check_targets, frozen
from facexai.explain.references import fill_rows, reference
from facexai.faces.regions import masks_to_index


def _scorer(model: nn.Module, score: str):
    """x -> (B, K) float32 scores: softmax probabilities or logits."""
    if check_score(score, "probability") == "probability":
        return lambda x: F.softmax(model(x).float(), 1)
    return lambda x: model(x).float()


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
    pre: Preprocess | None = None,
    score: str = "probability",
) -> dict[str, torch.Tensor]:
    """Occlude each region of each image in turn; tensors on the inputs' device.

    inputs: standardised float (B, C, H, W) on the model's device; targets: (B,) class indices;
    region_index: (B, H, W) int64, 0 = no region, i + 1 = region i (i < n_regions); fill: a
    reference name or tensor (pre: the model's Preprocess, for "black"); score: the target class's
    softmax probability (default) or logit.
    Returns base_prob (B,), the target-class score of the intact image; prob (B, R)
    with region r replaced by the fill; drop = base_prob - prob (B, R); flipped (B, R) bool, the
    predicted class differs from the intact image's; pred (B, R) and base_pred (B,), the predicted
    classes themselves. A region absent from an image gets drop 0.
    `batch_size` is the number of rows (image-region pairs) per forward pass: 16 suits a CPU
    (larger chunks ran slower there); on a GPU raise it.
    """
    targets = check_targets(targets, len(inputs)).to(inputs.device)
    region_index = _check_regions(region_index, inputs, n_regions)
    fills = reference(inputs, fill, pre, seed, blur_sigma)  # (B, C, H, W)
    scores = _scorer(model, score)
    n, r_count = len(inputs), n_regions
    base_prob = torch.empty(n, device=inputs.device)
    base_pred = torch.empty(n, dtype=torch.int64, device=inputs.device)
    prob = torch.empty(n * r_count, device=inputs.device)
    pred = torch.empty(n * r_count, dtype=torch.int64, device=inputs.device)
    with frozen(model):
        for s in batches(n, batch_size):
            p = scores(inputs[s])  # (b, K)
            base_prob[s] = p.gather(1, targets[s, None]).squeeze(1)
            base_pred[s] = p.argmax(1)
        label = f"occlusion ({fill if isinstance(fill, str) else 'given fill'})"
        for s in batches(n * r_count, batch_size, progress, label):
            k = torch.arange(s.start, s.stop, device=inputs.device)
            i, region = k // r_count, k % r_count + 1  # image and region id of each row
            m = (region_index[i] == region[:, None, None]).unsqueeze(1)  # (rows, 1, H, W)
            p = scores(fill_rows(inputs[i], fills[i], fill, m))  # (rows, K)
            prob[s] = p.gather(1, targets[i, None]).squeeze(1)
            pred[s] = p.argmax(1)
    present = _present(region_index, r_count)
    pred = torch.where(present, pred.view(n, r_count), base_pred[:, None])
    # the occluded argmax too (the captum reference cannot give it): accuracy under occlusion needs it
    return _result(base_prob, prob.view(n, r_count), pred, base_pred, present) | {
        "pred": pred, "base_pred": base_pred, "present": present,
    }  # fmt: skip


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
    pre: Preprocess | None = None,
    score: str = "probability",
) -> dict[str, torch.Tensor]:
    """`occlude` through captum's FeatureAblation: the same arguments and the same result.

    One FeatureAblation scores the target-class softmax probability (its attribution at a pixel is
    base_prob - prob for that pixel's region); a second scores "prediction unchanged" as 1.0/0.0
    (its attribution is 1.0 where occluding the region flips the prediction). Captum also ablates
    region 0 (the background), one forward pass per batch that is ignored here.
    """
    targets = check_targets(targets, len(inputs)).to(inputs.device)
    region_index = _check_regions(region_index, inputs, n_regions)
    fills = reference(inputs, fill, pre, seed, blur_sigma)
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

        probs = _scorer(model, score)

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


def attribute(run, inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor, settings: Settings):
    """The registry entry "occlusion": the drop in the target's score when each region is replaced by the
    reference (blur by default), NaN where the region is missing from the face; the occlusion's own tensors
    as extras."""
    score = check_score(settings.score, "probability")
    index = masks_to_index(masks)  # (N, H, W)
    res = occlude(
        run.model, inputs, targets, index.to(inputs.device), masks.shape[1], settings.reference or "blur",
        settings.batch_size, settings.progress, settings.seed, settings.blur_sigma, run.pre, score,
    )  # fmt: skip
    res = {k: v.cpu() for k, v in res.items()}
    drop = torch.where(res["present"], res["drop"].double(), torch.nan)  # a missing region: no information
    measure = "probability_drop" if score == "probability" else "logit_drop"
    return Attribution("occlusion", drop, measure, score, None, res)


def attribute_per_area(run, inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor, settings: Settings):
    """The registry entry "occlusion_area": occlusion's drop per unit of face area (the drop divided by the
    region's share of the face), so that a large region (the cheeks: about 7x the eyes) is not favoured for
    its size alone."""
    att = attribute(run, inputs, targets, masks, settings)
    area = masks.flatten(2).sum(-1).double().cpu()  # (N, R)
    share = area / area.sum(1, keepdim=True).clamp(min=1)
    per_area = att.regions / torch.where(share > 0, share, torch.nan)
    return Attribution("occlusion_area", per_area, f"{att.measure}_per_area", att.score, None, att.extras)
