"""Attribution methods over a whole split, reduced to per-emotion region findings (tidy rows).

load_subject() prepares what every method needs once: the trained model, the split's
model inputs, targets, and region masks at the model's input size. saliency() and
occlusion() return tidy rows (one per group x emotion x region x method x fill) and
per-image tensors; writing files is left to the caller (CLI, report).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from facexai.data import SPLITS, FaceDataset
from facexai.data.augment import Preprocess, prepare
from facexai.errors import ConfigError
from facexai.explain import importance as I
from facexai.explain.gradcam import CAM_METHODS, cam_maps
from facexai.explain.integrated import integrated_gradients
from facexai.explain.occlusion import occlude
from facexai.explain.sanity import cascading_randomization, flag_insensitive
from facexai.faces.landmarks import landmarks_for
from facexai.faces.regions import region_index
from facexai.facs import FaceRegion
from facexai.models import get_spec
from facexai.training import Engine, open_run, predict

METHODS = (*CAM_METHODS, "ig")
FILLS = ("mean", "blur", "noise")


@dataclass(frozen=True)
class AnalysisConfig:
    split: str = "test"
    target: str = "pred"  # pred | true: which class each image's attribution explains
    methods: tuple[str, ...] = METHODS
    regions: tuple[FaceRegion, ...] = tuple(FaceRegion)
    fills: tuple[str, ...] = ("blur",)  # blur stays closest to a real face; mean and noise fills add new edges
    ig_steps: int = 32
    ig_baseline: str = "black"  # black | blur | mean
    margin: float = 0.1  # region margin, in inter-ocular distances
    landmarks: str = "auto"  # auto | dataset | dlib | template
    limit: int | None = None  # first N images of the split, to try things quickly
    batch_size: int = 16  # rows per forward pass (Grad-CAM, occlusion): at 1-2 CPU threads 16 ran faster than 32
    sanity_n: int = 16  # images for the model-randomisation check per method (0 = skip it)
    n_boot: int = 1000
    alpha: float = 0.05
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # torch CPU threads; None = torch's default (every core)
    bf16: bool = False  # bf16 autocast in the attribution passes (predictions stay fp32): faster, less exact
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown method(s) {', '.join(unknown)}; expected some of {', '.join(METHODS)}")
        bad_fills = [f for f in self.fills if f not in FILLS]
        if bad_fills:
            raise ConfigError(f"unknown fill(s) {', '.join(bad_fills)}; expected some of {', '.join(FILLS)}")
        if self.target not in ("pred", "true"):
            raise ConfigError(f"target must be pred or true, got {self.target!r}")


@dataclass
class Subject:
    """A trained model and one split, prepared once for every method."""

    run: Path
    model: torch.nn.Module
    layer: torch.nn.Module
    layer_name: str  # dotted path of `layer`, to find it again in a copy of the model
    pre: Preprocess
    engine: Engine
    data: FaceDataset  # the analysed split
    inputs: torch.Tensor  # (N, C, S, S) standardised model inputs on the device
    labels: torch.Tensor  # (N,) true class
    preds: torch.Tensor  # (N,) predicted class
    targets: torch.Tensor  # (N,) the class each attribution explains
    index: torch.Tensor  # (N, S, S) int64 region ids, 0 = none
    masks: torch.Tensor  # (N, R, S, S) bool
    regions: tuple[FaceRegion, ...]
    landmarks: dict[str, Any] = field(default_factory=dict)  # provider and counts


def load_subject(
    run: str | Path, cfg: AnalysisConfig, data: FaceDataset | None = None, data_root: str | None = None
) -> Subject:
    """Load a finished run's model and prepare its data set's split for analysis."""
    run = Path(run)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _, engine, model, meta, data = open_run(run, cfg.device, data, data_root)
    # channels_last: the same fp32 numbers; bf16 (opt-in, only in _maps / occlusion) runs faster with it
    # (benchmarks/explain_precision.py)
    engine = Engine(engine.device, bf16=cfg.bf16, channels_last=True)
    model = engine.model(model)
    landmarks, ok, provider, counts = landmarks_for(data, cfg.landmarks)
    keep = data.split == SPLITS.index(cfg.split)
    if cfg.limit is not None:
        keep &= torch.cumsum(keep.long(), 0) <= cfg.limit
    part, landmarks = data.select(keep), landmarks[keep]
    pre = Preprocess.from_dict(meta["preprocess"])
    logits = predict(model, part.images, pre, dataclasses.replace(engine, bf16=False))
    preds = logits.argmax(1)
    size = (pre.size, pre.size)
    index = region_index(landmarks, size, cfg.regions, cfg.margin, from_size=part.size)  # (N, S, S)
    masks = index[:, None] == torch.arange(1, len(cfg.regions) + 1).view(1, -1, 1, 1)  # (N, R, S, S)
    inputs = torch.cat([prepare(part.images[i : i + 512], pre) for i in range(0, len(part), 512)])
    inputs = engine.input(inputs.to(engine.device))
    return Subject(
        run=run,
        model=model,
        layer=model.get_submodule(get_spec(meta["model"]).cam_layer),
        layer_name=get_spec(meta["model"]).cam_layer,
        pre=pre,
        engine=engine,
        data=part,
        inputs=inputs,
        labels=part.labels,
        preds=preds,
        targets=preds if cfg.target == "pred" else part.labels,
        index=index,
        masks=masks,
        regions=cfg.regions,
        landmarks={"provider": provider, "counts": counts, "ok_in_split": int(ok[keep].sum())},
    )


def _maps(
    model: torch.nn.Module,
    layer_name: str,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str,
    cfg: AnalysisConfig,
    pre: Preprocess,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N, S, S) non-negative maps of one method on the CPU, and IG's per-image convergence delta."""
    with _autocast(inputs, cfg):
        if method == "ig":
            attr, delta = integrated_gradients(
                model, inputs, targets, baseline=cfg.ig_baseline, pre=pre, n_steps=cfg.ig_steps, progress=progress
            )
            return I.attribution_map(attr.cpu().contiguous(), "positive"), delta.cpu()
        layer = model.get_submodule(layer_name)
        maps = cam_maps(model, layer, inputs, targets, method=method, batch_size=cfg.batch_size, progress=progress)
        return maps.cpu(), None


def _autocast(inputs: torch.Tensor, cfg: AnalysisConfig):
    return torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=cfg.bf16)


def method_maps(subject: Subject, method: str, cfg: AnalysisConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N, S, S) non-negative attribution maps of one method over the subject, and IG's per-image delta."""
    targets = subject.targets.to(subject.engine.device)
    return _maps(subject.model, subject.layer_name, subject.inputs, targets, method, cfg, subject.pre, cfg.progress)


def sanity(subject: Subject, method: str, cfg: AnalysisConfig) -> list[dict[str, Any]]:
    """Cascading model randomisation on the first `cfg.sanity_n` images: one row per randomised layer.

    Rows: method, step, layer, spearman, spearman_abs, ssim, flagged (the method's maps still match
    the original once the whole network is random; the same value on every row of the method).
    """
    n = min(cfg.sanity_n, len(subject.inputs))
    if n == 0:
        return []
    x, t = subject.inputs[:n], subject.targets[:n].to(subject.engine.device)
    steps = cascading_randomization(
        subject.model,
        lambda m: _maps(m, subject.layer_name, x, t, method, cfg, subject.pre, False)[0],
        seed=cfg.seed,
    )
    flagged = flag_insensitive(steps)
    return [{"method": method, **step, "flagged": flagged} for step in steps]


def mean_by_emotion(values: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, ...) float mean of `values` (N, ...) over the images of each class, and (K,) counts (0 -> zeros)."""
    n = torch.bincount(labels, minlength=k)  # (K,)
    sums = torch.zeros(k, *values.shape[1:], dtype=torch.float64).index_add_(0, labels, values.double())
    return sums / n.clamp(min=1).view(-1, *[1] * (values.dim() - 1)), n


def _grouped(
    values: torch.Tensor, subject: Subject, cfg: AnalysisConfig, method: str, fill: str, measure: str
) -> list[dict[str, Any]]:
    """Tidy rows of per-emotion means with bootstrap CIs, grouped by true and by predicted emotion."""
    rows = []
    k = len(subject.data.classes)
    for group, by in (("true", subject.labels), ("pred", subject.preds)):
        stats = I.bootstrap_group_means(values, by, k, n_boot=cfg.n_boot, alpha=cfg.alpha, seed=cfg.seed)
        for row in I.tidy_rows(stats, subject.data.classes, subject.regions, method, fill, measure):
            rows.append({"group": group, **row})
    return rows


def saliency(subject: Subject, cfg: AnalysisConfig) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Per method: region relevance (1.0 = no preference) and mass (share of the face's attribution).

    Returns tidy rows and per-method tensors: maps (N, S, S), relevance (N, R) and IG's delta (N,).
    """
    rows: list[dict[str, Any]] = []
    out: dict[str, torch.Tensor] = {}
    for method in cfg.methods:
        maps, delta = method_maps(subject, method, cfg)
        relevance = I.map_relevance(maps, subject.masks)  # (N, R)
        rows += _grouped(relevance, subject, cfg, method, "", "relevance")
        rows += _grouped(I.region_mass(maps, subject.masks), subject, cfg, method, "", "mass")
        out[f"{method}/maps"], out[f"{method}/relevance"] = maps, relevance
        if delta is not None:
            out[f"{method}/delta"] = delta
    return rows, out


def occlusion(subject: Subject, cfg: AnalysisConfig) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Per fill: drop in target-class probability and in accuracy when each region is replaced."""
    rows: list[dict[str, Any]] = []
    out: dict[str, torch.Tensor] = {}
    device = subject.engine.device
    for fill in cfg.fills:
        with _autocast(subject.inputs, cfg):
            res = occlude(
                subject.model,
                subject.inputs,
                subject.targets.to(device),
                subject.index.to(device),
                len(subject.regions),
                fill=fill,
                batch_size=cfg.batch_size,
                progress=cfg.progress,
                seed=cfg.seed,
            )
        res = {k: v.cpu() for k, v in res.items()}
        # the occlusion pass's own intact prediction (under --bf16 it may differ from subject.preds)
        base_correct = (res["base_pred"] == subject.labels).float()  # (N,)
        occluded_correct = (res["pred"] == subject.labels[:, None]).float()  # (N, R)
        accuracy_drop = base_correct[:, None] - occluded_correct  # mean over images = accuracy lost
        rows += _grouped(res["drop"], subject, cfg, "occlusion", fill, "probability_drop")
        rows += _grouped(accuracy_drop, subject, cfg, "occlusion", fill, "accuracy_drop")
        rows += _grouped(res["flipped"].float(), subject, cfg, "occlusion", fill, "flip_rate")
        out |= {f"{fill}/{k}": v for k, v in res.items()}
    return rows, out
