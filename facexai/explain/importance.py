"""Region importance from attribution maps and occlusion, per emotion with bootstrap CIs.

Tensors in, tensors or plain rows out (no files). The pipeline is

    maps -> per-image region scores (N, R) -> per-emotion means and CIs (G, R) -> ranks, agreement
    between methods, and a check against the regions that carry each emotion's evidence by construction.

NaN means "no information" throughout (an image with no positive attribution, a region missing
from a face); every statistic here skips NaN cells instead of treating them as zero.
Statistics come back as float64 on the CPU (they are small); per-image scores stay on the input's device.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats

from facexai.emotions import Emotion
from facexai.facs import FaceRegion

MODES = ("positive", "abs")


def attribution_map(attr: torch.Tensor, mode: str = "positive") -> torch.Tensor:
    """(N, H, W) map from (N, C, H, W) or (N, H, W) attributions: channels summed, then the positive part or |.|.

    Summing before clipping keeps channel evidence that cancels (e.g. +R -G) from counting twice.
    "positive" keeps what speaks for the target class (IG, gradient x input); "abs" keeps both signs.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if attr.dim() == 4:
        attr = attr.sum(1)
    elif attr.dim() != 3:
        raise ValueError(f"attributions must be (N, C, H, W) or (N, H, W), got {tuple(attr.shape)}")
    return attr.clamp(min=0) if mode == "positive" else attr.abs()


def _region_sums(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positive attribution per region (N, R), on the whole face (N,), and region areas (N, R), float64."""
    if maps.dim() != 3 or masks.dim() != 4 or masks.shape[:1] + masks.shape[2:] != maps.shape:
        raise ValueError(f"need maps (N, H, W) and masks (N, R, H, W) alike, got {tuple(maps.shape)}, "
                         f"{tuple(masks.shape)}")  # fmt: skip
    maps = maps.detach().float().clamp(min=0)
    masks = masks.to(maps.device, torch.bool)
    # one region at a time: never a (N, R, H, W) float copy of the masks
    mass = torch.stack([(maps * m).sum((1, 2)) for m in masks.unbind(1)], 1).double()  # (N, R)
    face = (maps * masks.any(1)).sum((1, 2)).double()  # (N,)
    area = masks.flatten(2).sum(-1).double()  # (N, R)
    return mass, face, area


def region_mass(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N, R) float64 share of each face's positive attribution that lies in each region.

    maps: (N, H, W) (negative values are ignored); masks: (N, R, H, W) bool, disjoint (region_masks).
    The face is the union of the masks, so rows sum to 1; attribution on the background is left
    out. A face with no positive attribution gives a NaN row; an absent region gets 0.
    """
    mass, face, _ = _region_sums(maps, masks)
    return mass / torch.where(face > 0, face, torch.nan)[:, None]


def map_relevance(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N, R) float64 area-normalised relevance: region's share of the attribution / its share of the face area.

    1.0 = the region gets what its size predicts (no preference), 2.0 = twice that, 0 = none.
    maps: (N, H, W), only the positive part counts; masks: (N, R, H, W) bool, disjoint; the face
    is the union of the masks (background attribution is left out). NaN where the image has no
    positive attribution on the face (the whole row) or the region is empty in that image; the
    area-weighted mean of a row is exactly 1.
    """
    mass, face, area = _region_sums(maps, masks)
    share = mass / torch.where(face > 0, face, torch.nan)[:, None]  # (N, R)
    area_share = area / area.sum(1, keepdim=True).clamp(min=1)  # (N, R), as region_area_share
    return share / torch.where(area > 0, area_share, torch.nan)


def bootstrap_group_means(
    values: torch.Tensor,
    groups: torch.Tensor,
    n_groups: int,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Per group, the mean of each column over images and a percentile bootstrap (1 - alpha) CI.

    values: (N, R), NaN allowed (skipped); groups: (N,) long in [0, n_groups), e.g. the true emotion.
    Images are resampled whole (one index matrix per group, so the R columns share replicates and
    their CIs are comparable); a replicate's mean of a column is over its finite cells. The
    replicates are counts matrices times the values (a matmul, no loop per replicate). Group g
    draws from numpy's generator seeded with (seed, g), so its CI does not depend on other groups.
    Returns float64 estimate, low, high (G, R) and n (G, R) long = finite cells; estimate is NaN
    where n = 0 and the CI is NaN where n < 2.
    """
    if values.dim() != 2 or groups.shape != values.shape[:1]:
        raise ValueError(f"need values (N, R) and groups (N,), got {tuple(values.shape)}, {tuple(groups.shape)}")
    if groups.is_floating_point():
        raise ValueError("groups must be integer class indices")
    if not 0 < alpha < 1 or n_boot < 1:
        raise ValueError(f"need 0 < alpha < 1 and n_boot >= 1, got {alpha}, {n_boot}")
    v = values.detach().cpu().double()
    g = groups.detach().cpu().long()
    if len(g) and (int(g.min()) < 0 or int(g.max()) >= n_groups):
        raise ValueError(f"groups must lie in 0..{n_groups - 1}")
    r = v.shape[1]
    nan = torch.full((n_groups, r), torch.nan, dtype=torch.float64)
    est, low, high = nan.clone(), nan.clone(), nan.clone()
    n = torch.zeros(n_groups, r, dtype=torch.long)
    q = torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64)
    for k in range(n_groups):
        x = v[g == k]  # (m, R)
        finite = x.isfinite()
        x0 = torch.where(finite, x, 0.0)
        f = finite.double()
        n[k] = finite.sum(0)
        est[k] = x0.sum(0) / torch.where(n[k] > 0, n[k], torch.nan)
        m = len(x)
        if m < 2:
            continue
        rng = np.random.default_rng([seed, k])
        chunk = max(1, 4_000_000 // m)  # replicates per block: bounded memory for large groups
        means = []
        for start in range(0, n_boot, chunk):
            b = min(chunk, n_boot - start)
            idx = torch.from_numpy(rng.integers(0, m, size=(b, m)))  # (b, m) resampled image indices
            counts = torch.zeros(b, m, dtype=torch.float64).scatter_add_(1, idx, torch.ones(b, m, dtype=torch.float64))
            cells = counts @ f  # (b, R) finite cells drawn
            means.append((counts @ x0) / torch.where(cells > 0, cells, torch.nan))  # (b, R)
        ci = torch.nanquantile(torch.cat(means), q, dim=0)  # (2, R)
        ok = n[k] >= 2
        low[k] = torch.where(ok, ci[0], torch.nan)
        high[k] = torch.where(ok, ci[1], torch.nan)
    return {"estimate": est, "low": low, "high": high, "n": n}


def rank_regions(estimate: torch.Tensor) -> torch.Tensor:
    """(G, R) long ranks within each row: 1 = largest score; NaN ranks last; ties keep region order."""
    by_value = torch.sort(torch.nan_to_num(estimate, nan=0.0), dim=1, descending=True, stable=True).indices
    nan_last = torch.sort(estimate.isnan().gather(1, by_value).long(), dim=1, stable=True).indices
    order = by_value.gather(1, nan_last)  # (G, R) region at each rank
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(1, estimate.shape[1] + 1, device=estimate.device).expand_as(order))
    return ranks


def agreement(a: torch.Tensor, b: torch.Tensor, kind: str = "spearman") -> torch.Tensor:
    """(G,) float64 rank correlation between two methods' region scores per group (scipy.stats).

    Only regions finite in both count; fewer than 3 such regions, or constant scores, give NaN.
    "spearman" is Spearman's rho and "kendall" Kendall's tau-b (both handle ties).
    """
    if kind not in ("spearman", "kendall"):
        raise ValueError(f"kind must be 'spearman' or 'kendall', got {kind!r}")
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"need two (G, R) tensors alike, got {tuple(a.shape)}, {tuple(b.shape)}")
    x, y = a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()
    test = stats.spearmanr if kind == "spearman" else stats.kendalltau
    out = np.full(len(x), np.nan)
    for g in range(len(x)):
        ok = np.isfinite(x[g]) & np.isfinite(y[g])
        if ok.sum() >= 3:
            with warnings.catch_warnings():  # constant input: scipy warns and returns NaN
                warnings.simplefilter("ignore")
                out[g] = test(x[g, ok], y[g, ok]).statistic
    return torch.from_numpy(out)


def truth_scores(
    estimate: torch.Tensor,
    regions: Sequence[FaceRegion],
    classes: Sequence[Emotion],
    evidence: dict[str, dict[str, list[str]]],
    relevance_mass: torch.Tensor | None = None,
) -> list[dict]:
    """One row per emotion: does the method's top region lie where the emotion's evidence is?

    estimate: (G, R) per-emotion region scores (higher = more important), G = len(classes),
    R = len(regions); evidence: {emotion: {"regions": [...]}} (`facs.evidence()`).
    relevance_mass: (G, R) per-emotion mean attribution share per region (`region_mass`) gives
    evidence_mass_share, the share of the mass in the evidence regions (NaN cells skipped;
    passing area-normalised relevance instead gives the area-normalised version); NaN without it.
    Columns: emotion, top_region ("" if the row is all NaN), top_is_evidence, best_evidence_rank
    (rank of the best-placed evidence region, 1 = recovered; 0 if none is scored),
    evidence_regions ("a;b"), evidence_mass_share, evidence_auc and chance_top. Emotions missing
    from `evidence` are skipped.

    top_is_evidence alone is a weak test when one region (the mouth) is evidence for every
    emotion: a method that always names it scores 7/7. evidence_auc is stricter: the probability
    that an evidence region outscores a non-evidence region (ties count half; 0.5 = chance,
    1.0 = every evidence region above every other; NaN if either set is empty). chance_top is the
    probability that a region drawn at random is evidence (the chance level of top_is_evidence).
    """
    regions = [FaceRegion(r) for r in regions]
    if estimate.shape != (len(classes), len(regions)):
        raise ValueError(f"estimate must be (G, R) = {(len(classes), len(regions))}, got {tuple(estimate.shape)}")
    if relevance_mass is not None and relevance_mass.shape != estimate.shape:
        raise ValueError(f"relevance_mass must be {tuple(estimate.shape)}, got {tuple(relevance_mass.shape)}")
    est = estimate.detach().cpu().double()
    ranks = rank_regions(est)  # (G, R)
    rows = []
    for g, emo in enumerate(classes):
        name = Emotion(emo).value
        if name not in evidence:
            continue
        ev = {FaceRegion(r) for r in evidence[name]["regions"]}
        is_ev = torch.tensor([r in ev for r in regions], dtype=torch.bool)  # (R,)
        scored = est[g].isfinite()
        top = int(ranks[g].argmin()) if scored.any() else None
        ev_ranks = ranks[g][is_ev & scored]
        share = float("nan")
        if relevance_mass is not None:
            m = relevance_mass[g].detach().cpu().double()
            fin = m.isfinite()
            total = m[fin].sum()
            share = float(m[fin & is_ev].sum() / total) if total > 0 else float("nan")
        inside, outside = est[g][is_ev & scored], est[g][~is_ev & scored]
        auc = float("nan")
        if len(inside) and len(outside):
            diff = inside[:, None] - outside[None, :]  # (E, O)
            auc = float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())
        rows.append({
            "emotion": name,
            "top_region": regions[top].value if top is not None else "",
            "top_is_evidence": top is not None and bool(is_ev[top]),
            "best_evidence_rank": int(ev_ranks.min()) if len(ev_ranks) else 0,
            "evidence_regions": ";".join(r.value for r in regions if r in ev),
            "evidence_mass_share": share,
            "evidence_auc": auc,
            "chance_top": float((is_ev & scored).sum() / scored.sum()) if scored.any() else float("nan"),
        })  # fmt: skip
    return rows


def recovered(rows: Sequence[dict]) -> int:
    """Number of emotions whose top-ranked region is one of their evidence regions."""
    return sum(bool(row["top_is_evidence"]) for row in rows)


def tidy_rows(
    stats: dict[str, torch.Tensor],
    classes: Sequence[Emotion],
    regions: Sequence[FaceRegion],
    method: str,
    fill: str = "",
    measure: str = "",
) -> list[dict]:
    """One row per (emotion, region) from `bootstrap_group_means`: emotion, region, method, fill, measure,
    estimate, ci_low, ci_high, n (emotion-major, in the given orders; NaN stays NaN)."""
    est, low, high, n = (stats[k].detach().cpu() for k in ("estimate", "low", "high", "n"))
    if est.shape != (len(classes), len(regions)):
        raise ValueError(f"stats are {tuple(est.shape)}, expected (G, R) = {(len(classes), len(regions))}")
    return [
        {
            "emotion": Emotion(emo).value,
            "region": FaceRegion(reg).value,
            "method": method,
            "fill": fill,
            "measure": measure,
            "estimate": float(est[g, r]),
            "ci_low": float(low[g, r]),
            "ci_high": float(high[g, r]),
            "n": int(n[g, r]),
        }
        for g, emo in enumerate(classes)
        for r, reg in enumerate(regions)
    ]
