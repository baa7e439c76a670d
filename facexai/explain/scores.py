"""Scores of a region ranking against the true region effects, that a constant answer cannot pass.

Truth has ties (regions no active AU touches have effect 0), so every score here is tie-aware, and
so is the ranking scored: a method that ties several regions at the top is credited for each in
proportion (the expected score of breaking its ties at random), so a uniform map has no ranking.

- `top_hit`: is the method's top region the true top region? Only on faces whose true top leads the
  runner-up by a clear margin (else NaN).
- `ndcg`: normalised discounted cumulative gain of the method's ranking with the positive true effects
  as gains (1 = the true order); NaN where no region has a positive effect.
- `spearman`: rank correlation of the method's scores with the true effects (secondary).
- `constant_ranking`: the best constant answer: per emotion, the mean true effects of the other half of
  the faces, scored on this half (two folds).

Per-face tensors (N,) of float64, NaN = not scored; tensors in, tensors out.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats


def _ordered(scores: torch.Tensor) -> torch.Tensor:
    """NaN (no information) ranks below every number."""
    s = scores.detach().cpu().double()
    return torch.where(s.isnan(), torch.tensor(-torch.inf, dtype=torch.float64), s)


def top_hit(scores: torch.Tensor, truth: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """(N,) share of the method's top-tied regions that are the true top region; NaN without a clear true top
    (its effect below `margin`, or less than `margin` above the runner-up)."""
    s, t = _ordered(scores), truth.detach().cpu().double()
    top2 = t.topk(2, dim=1).values  # (N, 2)
    clear = (top2[:, 0] >= margin) & (top2[:, 0] - top2[:, 1] >= margin)
    tied = s == s.max(1, keepdim=True).values  # (N, R)
    hit = tied.gather(1, t.argmax(1, keepdim=True)).squeeze(1).double() / tied.sum(1)
    return torch.where(clear, hit, torch.nan)


def _discounts(s: torch.Tensor) -> torch.Tensor:
    """(N, R) expected discount 1 / log2(position + 1) of each region under the ranking `s`, ties averaged."""
    n, r = s.shape
    position_discount = 1.0 / np.log2(np.arange(2, r + 2))  # (R,) position 1 first
    out = np.empty((n, r))
    for i, row in enumerate(s.numpy()):
        order = stats.rankdata(-row, method="min") - 1  # first position of each region's tie group
        counts = np.bincount(order, minlength=r)
        cumulative = np.concatenate([[0.0], np.cumsum(position_discount)])
        out[i] = (cumulative[order + counts[order]] - cumulative[order]) / counts[order]
    return torch.from_numpy(out)


def ndcg(scores: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(N,) tie-aware NDCG of the method's ranking with gains max(true effect, 0); NaN where every gain is 0."""
    s, gains = _ordered(scores), truth.detach().cpu().double().clamp(min=0)
    dcg = (gains * _discounts(s)).sum(1)
    ideal = (gains.sort(1, descending=True).values / torch.log2(torch.arange(2, gains.shape[1] + 2))).sum(1)
    return torch.where(ideal > 0, dcg / ideal.clamp(min=1e-300), torch.nan)


def spearman(scores: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(N,) Spearman's rho per face (ties averaged); NaN where either side is constant."""
    a, b = _ordered(scores).numpy(), truth.detach().cpu().double().numpy()
    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        if np.isfinite(a[i]).all() and np.isfinite(b[i]).all() and np.ptp(a[i]) > 0 and np.ptp(b[i]) > 0:
            out[i] = stats.spearmanr(a[i], b[i]).statistic
    return torch.from_numpy(out)


def constant_ranking(truth: torch.Tensor, groups: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(N, R) the best constant answer per group (e.g. emotion): for each face, the mean true effects of its
    group's faces in the other of two random halves (fitted on one half, scored on the other)."""
    t = truth.detach().cpu().double()
    g = groups.detach().cpu().long()
    fold = torch.randperm(len(t), generator=torch.Generator().manual_seed(seed)) % 2  # (N,) 0 or 1
    out = torch.zeros_like(t)
    for k in g.unique().tolist():
        for f in (0, 1):
            fit = (g == k) & (fold != f)
            score = (g == k) & (fold == f)
            if fit.any():
                out[score] = t[fit].nanmean(0)
    return out
