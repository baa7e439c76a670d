"""Faithfulness of a region ranking on real faces, where no truth is known: does the model's score fall when
the regions a method ranks first are removed, and rise when they are the only ones left?

- `deletion_insertion`: remove a face's regions one by one in the method's order (most important first)
  and record the explained class's probability after each step (deletion; a faithful order makes it fall
  fast: low area under the curve); or start from a face whose regions are all removed and put them back
  in that order (insertion: high area). Removal replaces a region by a reference (blur by default).
  Batched: every (face, step) is one row of a forward pass.
- `road`: pytorch-grad-cam's ROAD (remove-and-debias with noisy linear imputation), most-relevant-first
  against least-relevant-first pixels averaged over percentiles (`ROADCombined`; higher = more faithful).
  Pixel maps; a region method's map paints each region with its score.
- `class_sensitivity`: Spearman correlation of a method's region scores for the explained class and for
  the runner-up class: near 1 = the answer does not depend on the class asked about.
- `facs_mass` / `pointing`: the share of a map inside the explained emotion's FACS prototype regions,
  and whether its peak lies there (an expectation on real faces, not truth).

Per-face tensors (N,) float64 (NaN = not scored).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from torch import nn

from facexai.emotions import Emotion
from facexai.explain.base import Attribution, batches, frozen
from facexai.explain.references import fill_rows
from facexai.explain.references import reference as make_reference
from facexai.explain.scores import _ordered, spearman
from facexai.facs import FaceRegion, evidence


@torch.no_grad()
def deletion_insertion(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    masks: torch.Tensor,
    scores: torch.Tensor,
    reference: str | torch.Tensor = "blur",
    batch_size: int = 64,
    pre=None,
) -> dict[str, torch.Tensor]:
    """Deletion and insertion curves over regions in the order of `scores` (N, R), most important first.

    Deletion step k replaces the top k regions; insertion step k replaces every region but the top k (the
    background stays as it is throughout).

    inputs (N, C, H, W) on the model's device; masks (N, R, H, W) bool. Returns "deletion" and "insertion"
    (N, R + 1) probabilities after 0..R steps, and their areas "deletion_auc", "insertion_auc" (N,) (mean of
    the curve, trapezoid rule, so 0..1).
    """
    n, r = scores.shape
    order = _ordered(scores).argsort(dim=1, descending=True, stable=True).to(inputs.device)  # (N, R) region per step
    ranked = masks.to(inputs.device).gather(1, order.view(n, r, 1, 1).expand(-1, -1, *masks.shape[-2:]))
    removed_by = torch.cat([torch.zeros_like(ranked[:, :1]), ranked.cumsum(1).bool()], 1)  # (N, R+1, H, W)
    fills = make_reference(inputs, reference, pre)
    inserted = removed_by[:, -1:] & ~removed_by  # insertion step k: every region but the top k removed
    curves = {}
    with frozen(model):
        for name, drop in (("deletion", removed_by), ("insertion", inserted)):
            probs = torch.empty(n * (r + 1), dtype=torch.float64)
            for s in batches(n * (r + 1), batch_size):
                k = torch.arange(s.start, s.stop, device=inputs.device)
                i, step = k // (r + 1), k % (r + 1)
                m = drop[i, step].unsqueeze(1)  # (rows, 1, H, W)
                p = torch.softmax(model(fill_rows(inputs[i], fills[i], reference, m)).float(), 1)
                probs[s] = p.gather(1, targets.to(inputs.device)[i, None]).squeeze(1).double().cpu()
            curves[name] = probs.view(n, r + 1)
    for name in ("deletion", "insertion"):
        c = curves[name]
        curves[f"{name}_auc"] = ((c[:, 1:] + c[:, :-1]) / 2).mean(1)
    return curves


def painted(att: Attribution, masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) a pixel map for a region method: each region's pixels carry its score (min-max scaled per
    face; NaN and the background lowest); map methods return their own maps."""
    if att.maps is not None:
        return att.maps.float()
    s = _ordered(att.regions)
    s = torch.where(s.isinf(), s[~s.isinf()].min() if (~s.isinf()).any() else 0.0, s)
    lo, hi = s.min(1, keepdim=True).values, s.max(1, keepdim=True).values
    unit = (s - lo) / (hi - lo).clamp(min=1e-12)  # (N, R)
    return (masks.cpu().float() * unit.float()[:, :, None, None]).sum(1)


def road(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor,
         percentiles=(20, 40, 60, 80), batch_size: int = 16) -> torch.Tensor:  # fmt: skip
    """(N,) pytorch-grad-cam's ROADCombined score of the maps (N, H, W) for the targets' probabilities.

    The model's scores are handed to the library in fp32 (it converts them to numpy, which has no bf16)."""
    metric = ROADCombined(percentiles=list(percentiles))
    fp32 = nn.Sequential(model, _Float())
    out = torch.empty(len(inputs), dtype=torch.float64)
    m = maps.detach().cpu().float()
    m = (m - m.flatten(1).min(1).values.view(-1, 1, 1)) / (
        m.flatten(1).max(1).values - m.flatten(1).min(1).values
    ).clamp(min=1e-12).view(-1, 1, 1)  # the library thresholds maps in [0, 1]
    with frozen(model), warnings.catch_warnings():
        # the library's np.percentile on a torch tensor: NumPy 2 deprecates how torch wraps the result
        warnings.filterwarnings("ignore", message="__array_wrap__", category=DeprecationWarning)
        for s in batches(len(inputs), batch_size):
            t = [ClassifierOutputSoftmaxTarget(int(c)) for c in targets[s]]
            out[s] = torch.from_numpy(np.asarray(metric(inputs[s], m[s].numpy(), t, fp32), dtype=np.float64))
    return out


class _Float(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def class_sensitivity(scores_a: torch.Tensor, scores_b: torch.Tensor) -> torch.Tensor:
    """(N,) Spearman correlation of the region scores for two classes (1 = the same answer for both)."""
    return spearman(scores_a, scores_b)


def facs_regions(classes, targets: torch.Tensor, regions: tuple[FaceRegion, ...]) -> torch.Tensor:
    """(N, R) bool: region r is one of the FACS prototype regions of the emotion explained for face i."""
    ev = evidence()
    table = torch.tensor([[r.value in ev.get(Emotion(c).value, {"regions": []})["regions"] for r in regions]
                          for c in classes])  # fmt: skip  (K, R)
    return table[targets.cpu()]


def facs_mass(att: Attribution, expected: torch.Tensor) -> torch.Tensor:
    """(N,) the share of a map's positive attribution inside the expected regions (maps: "mass" extra)."""
    mass = att.extras.get("mass")
    if mass is None:
        return torch.full((len(expected),), torch.nan, dtype=torch.float64)
    return torch.where(expected, mass.nan_to_num(0.0), 0.0).sum(1).double()


def pointing(att: Attribution, masks: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """(N,) 1 if the map's peak pixel (a region method: its top region) lies in an expected region, else 0."""
    if att.maps is None:
        top = _ordered(att.regions).argmax(1)
        return expected.gather(1, top[:, None]).squeeze(1).double()
    flat = att.maps.flatten(1).argmax(1)  # (N,)
    region_at_peak = masks.cpu().flatten(2)[torch.arange(len(flat)), :, flat]  # (N, R)
    return (region_at_peak & expected).any(1).double()
