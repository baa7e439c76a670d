"""Exact region Shapley values: each region's average marginal effect on the explained class's probability over
every coalition of the other regions, with a reference standing in for the regions left out.

With R regions there are 2^R coalitions (256 for the 8 face regions). For each face, the model is run on
every coalition, the face with the regions outside it replaced by the reference (the background is
always kept: it is not a player); v(S) is the target's probability. Then

    phi_i = sum over S not holding i of |S|! (R - |S| - 1)! / R! * (v(S + i) - v(S)),

so sum_i phi_i = v(all regions) - v(no region) holds by construction (efficiency), and

    I_ij = sum over S holding neither of |S|! (R - |S| - 2)! / (R - 1)! * (v(S+i+j) - v(S+i) - v(S+j) + v(S))

is the Shapley interaction of a pair (Grabisch and Roubens). captum's `ShapleyValues` computes the same
values one face at a time through `feature_mask` (and counts mask id 0 as a player); it is the reference
the tests hold this to. Written here to batch it: one forward pass serves many (face, coalition) rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facexai.explain.base import Attribution, Settings, batches, check_score, check_targets, frozen
from facexai.explain.references import fill_rows
from facexai.explain.references import reference as make_reference


def coalitions(r: int) -> torch.Tensor:
    """(2^R, R) bool: row c holds region i when bit i of c is set (row 0: no region; the last: all)."""
    c = torch.arange(2**r)
    return (c[:, None] >> torch.arange(r)) & 1 == 1


def shapley_weights(r: int) -> torch.Tensor:
    """(R, 2^R) float64 W with phi = v @ W.T: the Shapley value of every region from the coalition values."""
    members = coalitions(r)
    size = members.sum(1)
    w = torch.zeros(r, 2**r, dtype=torch.float64)
    for i in range(r):
        without = ~members[:, i]
        weight = torch.tensor([math.factorial(s) * math.factorial(r - s - 1) / math.factorial(r) for s in range(r)],
                              dtype=torch.float64)  # fmt: skip
        idx = torch.nonzero(without).flatten()
        w[i, idx | (1 << i)] += weight[size[idx]]  # v(S + i)
        w[i, idx] -= weight[size[idx]]  # - v(S)
    return w


def interaction(values: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """(N,) Shapley interaction index of regions i and j from (N, 2^R) coalition values."""
    r = int(math.log2(values.shape[1]))
    members = coalitions(r)
    out = torch.zeros(len(values), dtype=torch.float64)
    for s in torch.nonzero(~members[:, i] & ~members[:, j]).flatten().tolist():
        k = int(members[s].sum())
        weight = math.factorial(k) * math.factorial(r - k - 2) / math.factorial(r - 1)
        out += weight * (values[:, s | (1 << i) | (1 << j)] - values[:, s | (1 << i)] - values[:, s | (1 << j)]
                         + values[:, s])  # fmt: skip
    return out


@torch.no_grad()
def coalition_values(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    masks: torch.Tensor,
    reference: str | torch.Tensor = "blur",
    pre=None,
    score: str = "probability",
    batch_size: int = 64,
    progress: bool = False,
    seed: int = 0,
    blur_sigma: float | None = None,
) -> torch.Tensor:
    """(N, 2^R) float64 target scores of every coalition of every face (masks: (N, R, H, W) bool, R <= 12)."""
    n, r = masks.shape[:2]
    if r > 12:
        raise ValueError(f"exact Shapley values over {r} regions need 2^{r} passes per face; use at most 12")
    targets = check_targets(targets, n).to(inputs.device)
    fills = make_reference(inputs, reference, pre, seed, blur_sigma)  # (N, C, H, W)
    members = coalitions(r).to(inputs.device)  # (2^R, R)
    masks = masks.to(inputs.device)
    probability = check_score(score, "probability") == "probability"
    out = torch.empty(n * 2**r, dtype=torch.float64)
    with frozen(model):
        for s in batches(n * 2**r, batch_size, progress, "Shapley coalitions"):
            k = torch.arange(s.start, s.stop, device=inputs.device)
            i, c = k // 2**r, k % 2**r  # face and coalition of each row
            removed = (masks[i] & ~members[c][:, :, None, None]).any(1, keepdim=True)  # (rows, 1, H, W)
            logits = model(fill_rows(inputs[i], fills[i], reference, removed)).float()
            scores = F.softmax(logits, 1) if probability else logits
            out[s] = scores.gather(1, targets[i, None]).squeeze(1).double().cpu()
    return out.view(n, 2**r)


def attribute(run, inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor, settings: Settings):
    """The registry entry "shapley": exact region Shapley values of the target's probability (blur reference by
    default); extras: the coalition values (N, 2^R), and v(all) and v(none)."""
    score = check_score(settings.score, "probability")
    values = coalition_values(run.model, inputs, targets, masks, settings.reference or "blur", run.pre, score,
                              max(settings.batch_size, 64), settings.progress, settings.seed,
                              settings.blur_sigma)  # fmt: skip
    phi = values @ shapley_weights(masks.shape[1]).T  # (N, R)
    extras = {"values": values, "full": values[:, -1], "empty": values[:, 0]}
    return Attribution("shapley", phi, f"{score}_shapley", score, None, extras)


def top_pair_interactions(values: torch.Tensor, phi: torch.Tensor) -> tuple[tuple[int, int], torch.Tensor]:
    """The two regions with the largest mean value, and their interaction per face (N,)."""
    i, j = phi.nanmean(0).topk(2).indices.tolist()
    return (i, j), interaction(values, i, j)


__all__ = ["attribute", "coalition_values", "coalitions", "interaction", "shapley_weights", "top_pair_interactions"]
