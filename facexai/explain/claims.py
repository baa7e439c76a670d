"""Region effects that survive: per-face region Shapley values under several references, occlusion and a
size-matched null for one model, reduced to claims with statistics (explain/statistics.py).

For one run (a seed) `effects` measures, per face:

- "shapley/<reference>": exact region Shapley values of the explained class's probability, on every face
  for the main reference (blur) and on a stratified sample for the others (blur at two more widths, the
  data-set mean, and inpainting, which is computed per removal);
- "shapley_area/<reference>": the same per unit of face area (value / the region's share of the face);
- "occlusion/blur": the drop when a region alone is blurred;
- "patches/blur": for the size-matched null, the drop when a random compact patch of the region's area
  is blurred instead (several patches per face and region), on the sample.

`claims` turns them into one row per (measure, emotion, region): the mean with a bootstrap interval, a
one-sided sign-flip p-value, its Benjamini-Hochberg q over the family of one measure (every emotion x
region), the probability the region ranks first, and per emotion the paired difference between the top
region and the runner-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from facexai.explain import statistics as st
from facexai.explain.analysis import Subject, rows_per_pass
from facexai.explain.base import Settings, Target, batches
from facexai.explain.methods import attribute
from facexai.explain.occlusion import occlude
from facexai.explain.references import reference as make_reference
from facexai.explain.scorecard import stratified
from facexai.explain.shapley import coalition_values, interaction, shapley_weights
from facexai.facs import FaceRegion


@dataclass(frozen=True)
class StudyConfig:
    main: str = "blur"  # the reference of the Shapley values on every face
    others: tuple[str, ...] = ("blur_narrow", "blur_wide", "mean", "inpaint")  # on the sample only
    per_emotion: int = 50  # sample faces per emotion (grouping label) for the other references and the null
    patches: int = 10  # random patches per face and region (size-matched null)
    group: str = "true"  # true | pred: which emotion a face counts for
    target: str | None = None  # the class explained: None = the grouping's (true class or predicted class)
    correct_only: bool = False  # keep only the faces the model classifies correctly
    map_method: str | None = "ig_blur"  # a map method shown beside (relevance - 1: 0 = no preference)
    n_boot: int = 2000
    n_perm: int = 10_000
    fdr: float = 0.05
    seed: int = 0
    batch_size: int = 64
    bf16: bool = False
    progress: bool = True


def _groups(subject: Subject, cfg: StudyConfig) -> torch.Tensor:
    return subject.labels if cfg.group == "true" else subject.preds


def study_subject(subject: Subject, cfg: StudyConfig) -> Subject:
    """The faces the study uses (all, or the correctly classified ones)."""
    return subject.select(subject.preds == subject.labels) if cfg.correct_only else subject


def _shapley(subject: Subject, targets: torch.Tensor, reference: str, cfg: StudyConfig) -> tuple[torch.Tensor, ...]:
    device = subject.run.engine.device
    masks = subject.masks(tuple(FaceRegion)).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
        values = coalition_values(subject.run.model, subject.inputs, targets.to(device), masks, reference,
                                  subject.run.pre, "probability", cfg.batch_size, cfg.progress, cfg.seed)  # fmt: skip
    phi = values @ shapley_weights(len(FaceRegion)).T  # (N, R)
    area = masks.flatten(2).sum(-1).double().cpu()
    share = area / area.sum(1, keepdim=True).clamp(min=1)
    return phi, phi / torch.where(share > 0, share, torch.nan), values


@torch.no_grad()
def size_matched_drops(model: torch.nn.Module, x: torch.Tensor, fills: torch.Tensor, targets: torch.Tensor,
                       masks: torch.Tensor, k: int, seed: int = 0, batch_size: int = 64, progress: bool = False
                       ) -> torch.Tensor:  # fmt: skip
    """(N, R, K) the drop in the target's probability when a random compact patch of each region's area (in
    that face; the face is the union of the masks) takes the fill instead of the region: K patches per face
    and region, one forward row each; NaN where a region is missing from the face.
    x, fills: (N, C, S, S) model inputs; targets: (N,); masks: (N, R, S, S) bool."""
    face = masks.any(1)
    n, r = masks.shape[0], masks.shape[1]
    patch = torch.zeros(n, r * k, *masks.shape[-2:], dtype=torch.bool)
    for i in range(n):
        for j in range(r):
            area = int(masks[i, j].sum())
            if area:
                patch[i, j * k : (j + 1) * k] = st.random_patches(face[i], area, k, seed=seed * 1_000_003 + i * 31 + j)
    device = x.device
    t = targets.to(device)
    base = torch.cat([torch.softmax(model(x[s]).float(), 1).gather(1, t[s, None]).squeeze(1)
                      for s in batches(n, batch_size)]).double().cpu()  # fmt: skip
    out = torch.empty(n * r * k, dtype=torch.float64)
    for s in batches(n * r * k, batch_size, progress, "size-matched patches"):
        rows = torch.arange(s.start, s.stop)
        i, c = rows // (r * k), rows % (r * k)
        m = patch[i, c].unsqueeze(1).to(device)  # (rows, 1, S, S)
        p = torch.softmax(model(torch.where(m, fills[i.to(device)], x[i.to(device)])).float(), 1)
        out[s] = base[i] - p.gather(1, t[i.to(device), None]).squeeze(1).double().cpu()
    empty = ~patch.flatten(2).any(-1)  # (N, R*K): a region missing from the face has no patch
    return torch.where(empty.view(-1), torch.nan, out).view(n, r, k)


def _patch_null(subject: Subject, targets: torch.Tensor, cfg: StudyConfig) -> torch.Tensor:
    """The size-matched null of the subject's faces under the blur fill: (N, R, K), as `size_matched_drops`."""
    x = subject.inputs
    fills = make_reference(x, "blur", subject.run.pre)  # in fp32: only the model's passes take bf16
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
        return size_matched_drops(subject.run.model.eval(), x, fills, targets, subject.masks(tuple(FaceRegion)),
                                  cfg.patches, cfg.seed, cfg.batch_size, cfg.progress)  # fmt: skip


def _every_face(subject: Subject, targets: torch.Tensor, cfg: StudyConfig) -> dict[str, torch.Tensor]:
    """The measures taken on every face (main-reference Shapley values and their coalition values, blur
    occlusion, the map method), with the faces streamed through in chunks (`Subject.chunks`): only one
    chunk's inputs and region masks exist at a time."""
    device, parts = subject.run.engine.device, []
    for faces, chunk in subject.chunks():
        t = targets[faces]
        phi, per_area, values = _shapley(chunk, t, cfg.main, cfg)
        part = {f"shapley/{cfg.main}": phi, f"shapley_area/{cfg.main}": per_area, "values": values}
        masks = chunk.masks(tuple(FaceRegion))
        index = chunk.index.to(device, torch.int64)  # the region ids the masks come from (0 = none)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            occ = occlude(chunk.run.model, chunk.inputs, t.to(device), index, len(FaceRegion), "blur", cfg.batch_size,
                          cfg.progress, cfg.seed, pre=chunk.run.pre)  # fmt: skip
        part["occlusion/blur"] = torch.where(occ["present"].cpu(), occ["drop"].double().cpu(), torch.nan)
        if cfg.map_method:
            att = attribute(cfg.map_method, chunk.run, chunk.inputs, t.to(device), masks.to(device),
                            Settings(batch_size=rows_per_pass(device), bf16=cfg.bf16, progress=cfg.progress,
                                     seed=cfg.seed))  # fmt: skip
            part[f"map/{cfg.map_method}"] = att.regions - 1
        parts.append(part)
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def effects(subject: Subject, cfg: StudyConfig) -> dict[str, Any]:
    """Per-face effects {measure: (N, R) with NaN off the sample}, the sample mask, the groups and the
    interaction of each emotion's top two regions (main reference)."""
    subject = study_subject(subject, cfg)
    groups = _groups(subject, cfg)
    kind = cfg.target or cfg.group
    targets = Target(kind).classes(subject.preds, subject.labels)
    sample = torch.zeros(len(groups), dtype=torch.bool)
    sample[stratified(groups, cfg.per_emotion * len(subject.data.classes), cfg.seed)] = True
    # the stratified helper spreads n over the classes present; keep at most per_emotion of each
    every = _every_face(subject, targets, cfg)
    phi, values = every[f"shapley/{cfg.main}"], every["values"]
    out = {f"shapley/{cfg.main}": phi, f"shapley_area/{cfg.main}": every[f"shapley_area/{cfg.main}"]}
    small = subject.select(sample)
    nan = torch.full((len(groups), len(FaceRegion)), torch.nan, dtype=torch.float64)
    for ref in cfg.others:
        phi_s, area_s, _ = _shapley(small, targets[sample], ref, cfg)
        out[f"shapley/{ref}"] = nan.clone().index_put_((sample,), phi_s)
        out[f"shapley_area/{ref}"] = nan.clone().index_put_((sample,), area_s)
    out |= {k: v for k, v in every.items() if k.startswith(("occlusion/", "map/"))}
    patches = _patch_null(small, targets[sample], cfg)  # (n, R, K)
    pairs = {}
    for k in groups.unique().tolist():
        rows = groups == k
        i, j = phi[rows].nanmean(0).topk(2).indices.tolist()
        pairs[int(k)] = (i, j, interaction(values[rows], i, j))
    return {"effects": out, "sample": sample, "groups": groups, "targets": targets, "patches": patches,
            "interactions": pairs, "subject": subject}  # fmt: skip


def claims(result: dict[str, Any], cfg: StudyConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(claim rows, headline rows). Claim rows: measure, emotion, region, estimate, ci_low, ci_high, n, p, q,
    significant, rank, p_first. Headlines: per measure and emotion, the top region, the runner-up, their
    paired difference with its interval, and the size-matched null (occlusion only)."""
    subject, groups = result["subject"], result["groups"]
    classes = subject.data.classes
    regions = list(FaceRegion)
    rows, heads = [], []
    for measure, values in result["effects"].items():
        p_all, est_all = {}, {}
        for k in range(len(classes)):
            v = values[groups == k]
            if not v.isfinite().any():
                continue
            est_all[k] = v.nanmean(0)
            p_all[k] = st.sign_flip_pvalues(v, cfg.n_perm, cfg.seed + k)
        family = torch.stack([p_all[k] for k in sorted(p_all)]) if p_all else torch.empty(0, len(regions))
        q_family, reject = st.benjamini_hochberg(family, cfg.fdr)
        for row_k, k in enumerate(sorted(p_all)):
            v = values[groups == k]
            first = st.rank_first_probability(v, cfg.n_boot, cfg.seed + k)
            null95 = sample_mean = None
            if measure == "occlusion/blur":  # the size-matched null of every region, on the sample
                in_k = groups == k
                draws = result["patches"][in_k[result["sample"]]].nanmean(0)  # (R, K): each patch draw's mean
                null95 = torch.nanquantile(draws, 0.95, dim=1) if draws.numel() else None
                sample_mean = values[result["sample"] & in_k].nanmean(0)
            order = torch.nan_to_num(est_all[k], nan=-torch.inf).argsort(descending=True)
            rank = torch.empty_like(order)
            rank[order] = torch.arange(1, len(regions) + 1)
            for r, region in enumerate(regions):
                ci = st.paired_difference(v[:, r], torch.zeros(len(v), dtype=torch.float64), cfg.n_boot,
                                          seed=cfg.seed + k)  # fmt: skip
                rows.append({
                    "measure": measure, "emotion": str(classes[k]), "region": region.value,
                    "estimate": float(est_all[k][r]), "ci_low": ci["low"], "ci_high": ci["high"], "n": ci["n"],
                    "p": float(p_all[k][r]), "q": float(q_family[row_k, r]), "significant": bool(reject[row_k, r]),
                    "rank": int(rank[r]), "p_first": float(first[r]),
                    "size_null_p95": float(null95[r]) if null95 is not None else float("nan"),
                    "on_sample": float(sample_mean[r]) if sample_mean is not None else float("nan"),
                })  # fmt: skip
            top, second = order[0].item(), order[1].item()
            diff = st.paired_difference(v[:, top], v[:, second], cfg.n_boot, seed=cfg.seed + k)
            head = {"measure": measure, "emotion": str(classes[k]), "top": regions[top].value,
                    "runner_up": regions[second].value, "difference": diff["estimate"], "diff_low": diff["low"],
                    "diff_high": diff["high"], "n": diff["n"], "top_significant": bool(reject[row_k, top]),
                    "p_first": float(first[top])}  # fmt: skip
            if measure.startswith("shapley/") and k in result["interactions"]:
                i, j, inter = result["interactions"][k]
                head["pair"] = f"{regions[i].value}+{regions[j].value}"
                head["interaction"] = float(inter.nanmean())
            heads.append(head)
    return rows, heads


__all__ = ["StudyConfig", "claims", "effects", "study_subject"]
