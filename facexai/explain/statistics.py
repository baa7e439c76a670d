"""Statistics for region claims that survive: paired comparisons, the chance a region ranks first, sign-flip
p-values with Benjamini-Hochberg control of the false discovery rate, and a size-matched null.

All work on per-face effects (N, R) (NaN = no information, skipped); tensors in, tensors (or floats) out.
A claim "region r drives emotion e" is one-sided: its mean effect is above zero.
"""

from __future__ import annotations

import numpy as np
import torch


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0x57A7])


def paired_difference(a: torch.Tensor, b: torch.Tensor, n_boot: int = 2000, alpha: float = 0.05,
                      seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Mean of a - b over faces where both are finite, with a percentile bootstrap interval that resamples
    faces (the pairs stay together): {"estimate", "low", "high", "n"}."""
    d = (a.double() - b.double()).cpu().numpy()
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return {"estimate": float(d.mean()) if len(d) else float("nan"), "low": float("nan"), "high": float("nan"),
                "n": len(d)}  # fmt: skip
    idx = _rng(seed).integers(0, len(d), (n_boot, len(d)))
    means = d[idx].mean(1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {"estimate": float(d.mean()), "low": float(low), "high": float(high), "n": len(d)}


def rank_first_probability(values: torch.Tensor, n_boot: int = 2000, seed: int = 0) -> torch.Tensor:
    """(R,) the share of bootstrap replicates (faces resampled) in which each region has the largest mean
    effect; a region with no finite value never ranks first."""
    v = values.double().cpu().numpy()
    n, r = v.shape
    if n == 0:
        return torch.full((r,), float("nan"), dtype=torch.float64)
    finite = np.isfinite(v)
    x = np.where(finite, v, 0.0)
    idx = _rng(seed).integers(0, n, (n_boot, n))
    counts = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(np.float64)  # (B, N)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (counts @ x) / (counts @ finite)  # (B, R)
    means = np.where(np.isfinite(means), means, -np.inf)
    first = np.bincount(means.argmax(1), minlength=r) / n_boot
    return torch.from_numpy(first)


def sign_flip_pvalues(values: torch.Tensor, n_perm: int = 10_000, seed: int = 0) -> torch.Tensor:
    """(R,) one-sided p-values of "mean effect > 0" by a sign-flip permutation test: under the null each face's
    effect is symmetric about 0, so flipping signs at random draws the null distribution of the mean.
    p = (1 + #{flipped mean >= observed}) / (1 + n_perm); NaN where a column has no finite value."""
    v = values.double().cpu().numpy()
    out = np.full(v.shape[1], np.nan)
    rng = _rng(seed)
    for j in range(v.shape[1]):
        x = v[:, j][np.isfinite(v[:, j])]
        if len(x) == 0:
            continue
        observed = x.mean()
        flips = np.empty(n_perm)
        for start in range(0, n_perm, 1000):  # bounded memory: 1000 x N signs at a time
            b = min(1000, n_perm - start)
            signs = rng.choice(np.array([-1.0, 1.0]), size=(b, len(x)))
            flips[start : start + b] = (signs * x).mean(1)
        out[j] = (1 + (flips >= observed - 1e-15).sum()) / (1 + n_perm)
    return torch.from_numpy(out)


def benjamini_hochberg(p: torch.Tensor, q: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """(adjusted p-values, rejected at FDR q) for a family of p-values (any shape; NaN are left out of the
    family and never rejected). Adjusted p_(i) = min over j >= i of m p_(j) / j, capped at 1."""
    flat = p.double().flatten().cpu().numpy()
    ok = np.isfinite(flat)
    adjusted = np.full_like(flat, np.nan)
    x = flat[ok]
    m = len(x)
    if m:
        order = np.argsort(x)
        scaled = x[order] * m / np.arange(1, m + 1)
        adj = np.minimum.accumulate(scaled[::-1])[::-1].clip(max=1.0)
        out = np.empty(m)
        out[order] = adj
        adjusted[ok] = out
    adjusted = torch.from_numpy(adjusted).view(p.shape)
    return adjusted, adjusted <= q


def random_patches(face: torch.Tensor, area: int, k: int, seed: int = 0) -> torch.Tensor:
    """(k, H, W) bool: k random compact patches of `area` face pixels (the face pixels nearest a random face
    pixel), for a size-matched null: a region's effect must beat that of removing any patch of its size."""
    h, w = face.shape
    pixels = torch.nonzero(face.cpu())  # (P, 2)
    area = min(area, len(pixels))
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(k, h, w, dtype=torch.bool)
    for i, c in enumerate(torch.randint(0, len(pixels), (k,), generator=g).tolist()):
        jitter = torch.rand(len(pixels), generator=g, dtype=torch.float64) * 1e-3  # breaks distance ties at random
        d = ((pixels - pixels[c]) ** 2).sum(1).double() + jitter
        near = pixels[d.topk(area, largest=False).indices]
        out[i, near[:, 0], near[:, 1]] = True
    return out
