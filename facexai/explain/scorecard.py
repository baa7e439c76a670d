"""The method scorecard: every attribution method against the truth (synthetic faces, by intervention) and
for faithfulness (any faces), with the null explainers beside it on the same faces and masks.

Tidy rows, one per (part, method, metric, group): the mean over faces with a 95% bootstrap interval,
and for every method its lift over the best null of that metric and group (a paired bootstrap over the
same faces: the per-face difference). Metrics whose lower values are better (deletion area, class
sensitivity) have their lift sign-adjusted, so a positive lift always means "better than the null".

Two kinds of null: blind ones, which know neither the model's answer nor the truth (uniform, centre,
random map, and for each method the same method on a re-initialised model), are the chance level;
the best constant ranking knows each face's emotion and the truth on the other faces
(`scores.constant_ranking`), so it is the best any answer that ignores the face can do. Both lifts
are reported: over the best blind null (`blind_*` columns) and over the best of all nulls (`lift*`).
Where the true top region is the same for every face of an emotion (single-region faces by
construction) the constant is perfect, and no method can beat it, however faithful.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from facexai.catalogue import SCORECARD_METHODS
from facexai.config import check_fields
from facexai.emotions import Emotion
from facexai.explain import faithfulness as F
from facexai.explain import importance as I
from facexai.explain import scores as S
from facexai.explain.analysis import ExplainConfig, Subject, explain, rows_per_pass
from facexai.explain.base import Attribution
from facexai.explain.methods import get_method
from facexai.explain.nulls import random_model
from facexai.explain.truth import intervention_effects
from facexai.facs import FaceRegion

NULLS = ("uniform", "centre", "random")
LOWER_IS_BETTER = {"deletion_auc", "class_sensitivity"}
COLUMNS = ["part", "method", "kind", "metric", "group", "estimate", "ci_low", "ci_high", "n", "best_null",
           "lift", "lift_low", "lift_high", "best_blind_null", "blind_lift", "blind_lift_low",
           "blind_lift_high"]  # fmt: skip


@dataclass(frozen=True)
class ScorecardConfig:
    methods: tuple[str, ...] = SCORECARD_METHODS  # every map and perturbation method, Shapley values included
    nulls: tuple[str, ...] = NULLS
    random_model: bool = True  # each method on a re-initialised copy of the model, as one more null
    margin: float = 0.05  # a clear true top region leads the runner-up by this much probability
    faithfulness_n: int = 500  # faces for deletion/insertion and class sensitivity, stratified by emotion
    road_n: int = 140  # faces for ROAD (its imputation solves a sparse system per face and percentile)
    reference: str = "blur"  # what a removed region becomes (occlusion, deletion/insertion)
    ig_steps: int = 32
    batch_size: int | None = None  # rows per network pass; None = the device's default (16 on a CPU, 512 on a GPU)
    n_boot: int = 1000
    seed: int = 0
    bf16: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        limits = {"faithfulness_n": (0, None), "road_n": (0, None), "ig_steps": (1, None), "batch_size": (1, None)}
        check_fields(self, limits | {"n_boot": (1, None), "margin": (0.0, 1.0)})

    def explain_config(self, rows: int) -> ExplainConfig:
        """The attribution settings, with `rows` per network pass where batch_size is None."""
        return ExplainConfig(methods=(), fills=(self.reference,), ig_steps=self.ig_steps,
                             batch_size=self.batch_size or rows, n_boot=self.n_boot, seed=self.seed, bf16=self.bf16,
                             progress=self.progress)  # fmt: skip


def stratified(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of up to n faces, as equal a share of each class as the classes allow (seeded)."""
    g = torch.Generator().manual_seed(seed)
    per = [torch.nonzero(labels == k).flatten() for k in labels.unique().tolist()]
    per = [idx[torch.randperm(len(idx), generator=g)] for idx in per]
    take, quota = [], n
    for i, idx in enumerate(sorted(per, key=len)):  # small classes first: their leftover goes to the rest
        k = min(len(idx), quota // (len(per) - i))
        take.append(idx[:k])
        quota -= k
    return torch.cat(take).sort().values if take else torch.empty(0, dtype=torch.long)


def attributions(subject: Subject, cfg: ScorecardConfig, target: str = "pred") -> dict[str, Attribution]:
    """{name: Attribution}: every method and null, and "<method>@random-model" where asked for."""
    ecfg = dataclasses.replace(cfg.explain_config(rows_per_pass(subject.run.engine.device)), target=target)
    out = {m: explain(subject, m, ecfg, cfg.reference if m.startswith("occlusion") else None)
           for m in (*cfg.methods, *cfg.nulls)}  # fmt: skip
    if cfg.random_model:
        shuffled = dataclasses.replace(subject, run=random_model(subject.run, cfg.seed))
        for m in cfg.methods:
            out[f"{m}@random-model"] = explain(shuffled, m, ecfg, cfg.reference if m.startswith("occlusion") else None)
    return out


def _kind(name: str) -> str:
    return "null" if "@" in name or name in ("constant",) or get_method(name).kind == "null" else "method"


def truth_part(subject: Subject, cfg: ScorecardConfig, atts: dict[str, Attribution]) -> dict[str, dict]:
    """{metric: {name: (N,) per-face scores}} against the intervention truth; faces of neutral emotion get NaN
    (no active AU: their truth is all but zero, scored apart). Also returns the truth under "_truth"."""
    truth = intervention_effects(subject.run, subject.data, subject.targets(ExplainConfig()), progress=cfg.progress)
    expressive = subject.labels != subject.data.classes.index(Emotion.NEUTRAL)
    per = {"top_hit": {}, "ndcg": {}, "spearman": {}}
    ranked = dict(atts) | {"constant": S.constant_ranking(truth, subject.labels, cfg.seed)}
    for name, att in ranked.items():
        regions = att if isinstance(att, torch.Tensor) else att.regions
        per["top_hit"][name] = S.top_hit(regions, truth, cfg.margin)
        per["ndcg"][name] = S.ndcg(regions, truth)
        per["spearman"][name] = S.spearman(regions, truth)
    for metric in per.values():
        for name in metric:
            metric[name] = torch.where(expressive, metric[name], torch.nan)
    return per | {"_truth": truth}


def faithfulness_part(subject: Subject, cfg: ScorecardConfig, atts: dict[str, Attribution]) -> dict[str, dict]:
    """{metric: {name: (N,) per-face scores}} on a stratified subset (others NaN): deletion and insertion areas,
    ROAD, class sensitivity (map methods), FACS mass and pointing game."""
    n = len(subject.labels)
    keep = stratified(subject.preds, cfg.faithfulness_n, cfg.seed)
    road_keep = stratified(subject.preds[keep], cfg.road_n, cfg.seed)
    masks = subject.masks(tuple(FaceRegion))  # (N, R, S, S)
    device = subject.run.engine.device
    x, t = subject.inputs[keep], subject.preds[keep].to(device)
    expected = F.facs_regions(subject.data.classes, subject.preds, tuple(FaceRegion))  # (N, R)
    per: dict[str, dict] = {m: {} for m in ("deletion_auc", "insertion_auc", "road", "class_sensitivity",
                                            "facs_mass", "pointing")}  # fmt: skip
    nan = torch.full((n,), torch.nan, dtype=torch.float64)
    runner_up = _runner_up(subject, cfg)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
        for name, att in atts.items():
            curves = F.deletion_insertion(subject.run.model, x, t, masks[keep].to(device), att.regions[keep],
                                          cfg.reference, 64, subject.run.pre)  # fmt: skip
            for metric in ("deletion_auc", "insertion_auc"):
                per[metric][name] = nan.clone().index_copy_(0, keep, curves[metric])
            maps = F.painted(att, masks)
            sub = keep[road_keep]
            per["road"][name] = nan.clone().index_copy_(0, sub, F.road(subject.run.model, subject.inputs[sub],
                                                                       subject.preds[sub], maps[sub]))  # fmt: skip
            per["facs_mass"][name] = F.facs_mass(att, expected)
            per["pointing"][name] = F.pointing(att, masks, expected)
            if name in runner_up:
                per["class_sensitivity"][name] = F.class_sensitivity(att.regions, runner_up[name].regions)
    return per


def _runner_up(subject: Subject, cfg: ScorecardConfig) -> dict[str, Attribution]:
    """Map methods' attributions for each face's second most probable class (class-sensitivity check)."""
    names = [m for m in cfg.methods if get_method(m).kind == "map"]
    second = subject.run.predict(subject.data.images).topk(2, dim=1).indices[:, 1]  # (N,)
    other = dataclasses.replace(subject, preds=second)
    small = dataclasses.replace(cfg, methods=tuple(names), nulls=(), random_model=False)
    return attributions(other, small)


def _lift(values: torch.Tensor, est: torch.Tensor, j: int, candidates: list[int], sign: float, cfg) -> dict:
    """Name j's lift over the best of the candidate nulls on the faces in `values` (N, M): the null's index and
    the paired bootstrap stats of the per-face difference (NaN without a scored candidate)."""
    nan = {"best": None, "estimate": float("nan"), "low": float("nan"), "high": float("nan")}
    finite = [c for c in candidates if est[c] == est[c]]
    if not finite:
        return nan
    best = max(finite, key=lambda c: sign * float(est[c]))
    diff = sign * (values[:, j] - values[:, best])  # (N,) paired per face
    stats = I.bootstrap_group_means(diff[:, None], torch.zeros(len(diff), dtype=torch.long), 1, cfg.n_boot,
                                    seed=cfg.seed + 1)  # fmt: skip
    return {"best": best, **{k: float(stats[k][0, 0]) for k in ("estimate", "low", "high")}}


def rows(per: dict[str, dict], subject: Subject, cfg: ScorecardConfig, part: str) -> list[dict[str, Any]]:
    """Tidy rows: per metric, name and group (every emotion and "all"), the mean with its bootstrap interval,
    and each name's lift over its best null and its best blind null (paired bootstrap intervals). A method's
    nulls are the generic ones (uniform, centre, random map), the same method on a random model and, for
    the lift over all nulls, the best constant ranking."""
    classes = subject.data.classes
    groups = {"all": torch.zeros_like(subject.labels), "emotion": subject.labels}
    out = []
    for metric, by_name in per.items():
        if metric.startswith("_") or not by_name:
            continue
        names = list(by_name)
        values = torch.stack([by_name[n] for n in names], 1)  # (N, M)
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        generic = [i for i, n in enumerate(names) if _kind(n) == "null" and "@" not in n and n != "constant"]
        constant = [i for i, n in enumerate(names) if n == "constant"]
        for grouping, g in groups.items():
            k = 1 if grouping == "all" else len(classes)
            stats = I.bootstrap_group_means(values, g, k, cfg.n_boot, seed=cfg.seed)
            for gi in range(k):
                est, faces = stats["estimate"][gi], values[g == gi]
                for j, name in enumerate(names):
                    own = [i for i, n in enumerate(names) if n == f"{name}@random-model"]
                    blind = _lift(faces, est, j, generic + own, sign, cfg)
                    every = _lift(faces, est, j, generic + own + constant, sign, cfg)
                    out.append({
                        "part": part, "method": name, "kind": _kind(name), "metric": metric,
                        "group": "all" if grouping == "all" else str(classes[gi]),
                        "estimate": float(est[j]), "ci_low": float(stats["low"][gi, j]),
                        "ci_high": float(stats["high"][gi, j]), "n": int(stats["n"][gi, j]),
                        "best_null": names[every["best"]] if every["best"] is not None else "",
                        "lift": every["estimate"], "lift_low": every["low"], "lift_high": every["high"],
                        "best_blind_null": names[blind["best"]] if blind["best"] is not None else "",
                        "blind_lift": blind["estimate"], "blind_lift_low": blind["low"],
                        "blind_lift_high": blind["high"],
                    })  # fmt: skip
    return out


def scorecard(subject: Subject, cfg: ScorecardConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Tidy rows of both parts (truth only where the faces can be re-rendered) and the per-face tensors.

    Without truth, only the faithfulness sample is explained (stratified by predicted emotion); with it, every
    face of the subject is, for the truth part."""
    if "params.aus" not in subject.data.extras:
        subject = subject.select(stratified(subject.preds, cfg.faithfulness_n, cfg.seed))
    atts = attributions(subject, cfg)
    out = rows(faithfulness_part(subject, cfg, atts), subject, cfg, "faithfulness")
    tensors: dict[str, Any] = {"attributions": atts, "subject": subject}
    if "params.aus" in subject.data.extras:
        per = truth_part(subject, cfg, atts)
        tensors["truth"] = per["_truth"]
        out = rows(per, subject, cfg, "truth") + out
    return out, tensors
