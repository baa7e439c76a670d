"""Attribution methods over a whole split, reduced to per-emotion region findings (tidy rows).

`load_subject` prepares what is fixed for a model and a split (`SubjectConfig`: the split, how many
faces, landmarks, region margin, device): true and predicted classes and the region ids of every face
(uint8); model inputs are prepared from the stored images when asked for, and `saliency` and
`occlusion` stream the faces through in chunks of `CHUNK`, so memory grows with the split only by its
images, region ids and per-face numbers, not by its inputs, masks or maps. Each method call then takes
its own settings (`ExplainConfig`: which regions, which target, references, steps, precision) and
returns tidy rows, one per (group x emotion x region x method x fill x measure), and per-image
tensors; writing files is left to the caller (CLI, report).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from facexai import parallel
from facexai.config import check_fields
from facexai.data import SPLITS, FaceDataset
from facexai.data.augment import prepare
from facexai.errors import ConfigError
from facexai.explain import importance as I
from facexai.explain.base import Attribution, Settings, Target
from facexai.explain.methods import attribute, get_method, names
from facexai.explain.references import check_reference
from facexai.explain.sanity import cascading_randomization, flag_insensitive
from facexai.faces.landmarks import landmarks_for
from facexai.faces.regions import region_index
from facexai.facs import FaceRegion
from facexai.runs import Run, open_run, predict, run_data

MAP_METHODS = names("map")
SALIENCY_DEFAULT = ("gradcam", "gradcampp", "hirescam", "ig")  # `saliency`'s methods unless told otherwise
# faces per chunk in `saliency` and `occlusion`: at 100x100, 2,048 faces of inputs and 8 region masks are
# about 0.4 GB, and the whole FER+ test split at 48x48 (3,572 faces) is two chunks
CHUNK = 2048


def rows_per_pass(device: torch.device) -> int:
    """The analysis' default rows per network pass on a device. On 2-core CPUs 16 rows ran as fast as or
    faster than 32 or 64 at 48 and 100 px; on a GPU 16-row passes leave it waiting on launches, and 512
    rows analysed the whole FER+ test split in 10 s on an H200 (results/benchmarks/analysis-time-h200-bf16)."""
    return 16 if torch.device(device).type == "cpu" else 512


@dataclass(frozen=True)
class SubjectConfig:
    """What is fixed once a model and a split are loaded for analysis."""

    split: str = "test"
    limit: int | None = None  # first N images of the split, to try things quickly
    landmarks: str = "auto"  # auto | dataset | dlib | template
    margin: float = 0.1  # region margin, in inter-ocular distances
    device: str = "auto"
    threads: int | None = None  # torch CPU threads; None = torch's default (every core)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        limit = self.limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"limit must be a positive number of images, got {self.limit!r}")


@dataclass(frozen=True)
class ExplainConfig:
    """What each method call takes: which regions and target, references, steps, precision, statistics."""

    methods: tuple[str, ...] = SALIENCY_DEFAULT  # map methods for `saliency` (any of MAP_METHODS)
    regions: tuple[FaceRegion, ...] = tuple(FaceRegion)
    target: str = "pred"  # pred | true: which class each image's attribution explains
    fills: tuple[str, ...] = ("blur",)  # occlusion references: blur stays closest to a real face
    ig_steps: int = 32
    ig_baseline: str = "black"  # integrated gradients' reference
    batch_size: int = 16  # rows per network pass (`rows_per_pass` gives a device's default; the CLI uses it)
    sanity_n: int | None = None  # images for the model-randomisation check (0 = skip; None = 2% of the faces, 2..16)
    galleries: bool = True  # saliency: per emotion, the most confident and the most confused faces with their maps
    n_boot: int = 1000
    alpha: float = 0.05
    seed: int = 0
    bf16: bool = False  # bf16 autocast in the attribution passes (predictions stay fp32): faster, less exact
    progress: bool = True

    def __post_init__(self) -> None:
        limits = {"ig_steps": (1, None), "batch_size": (1, None), "sanity_n": (0, None), "n_boot": (1, None)}
        check_fields(self, limits | {"alpha": (0.0, 1.0)})
        for m in self.methods:
            if get_method(m).kind not in ("map", "null"):
                raise ConfigError(f"{m} is not a map method; expected some of {', '.join(MAP_METHODS)}")
        for ref in self.fills:
            check_reference(ref, masked=True)
        check_reference(self.ig_baseline)
        Target(self.target)
        object.__setattr__(self, "regions", tuple(FaceRegion(r) for r in self.regions))
        if not self.regions:
            raise ConfigError("regions: name at least one face region")

    def settings(self, reference: str | None = None) -> Settings:
        return Settings(reference=reference, steps=self.ig_steps, batch_size=self.batch_size, seed=self.seed,
                        bf16=self.bf16, progress=self.progress)  # fmt: skip


@dataclass
class Subject:
    """A trained model and one split, prepared once for every method."""

    run: Run
    data: FaceDataset  # the analysed split (its uint8 images are the only copy of the faces kept)
    labels: torch.Tensor  # (N,) true class
    preds: torch.Tensor  # (N,) predicted class (fp32)
    index: torch.Tensor  # (N, S, S) uint8 region ids over every FaceRegion, in FaceRegion order; 0 = none
    config: SubjectConfig = SubjectConfig()
    probs: torch.Tensor | None = None  # (N, K) fp32 softmax probabilities
    landmarks: dict[str, Any] = field(default_factory=dict)  # provider and counts

    @cached_property
    def inputs(self) -> torch.Tensor:
        """(N, C, S, S) standardised model inputs on the device, prepared on first use and kept while this
        subject lives: a chunk from `chunks` holds only its own faces' inputs."""
        pre, engine = self.run.pre, self.run.engine
        images = self.data.images
        if len(images) == 0:
            return engine.input(torch.empty(0, pre.channels, pre.size, pre.size, device=engine.device))
        return engine.input(torch.cat([prepare(images[i : i + 512], pre).to(engine.device)
                                       for i in range(0, len(images), 512)]))  # fmt: skip

    def select(self, index: torch.Tensor) -> Subject:
        """The same subject on the faces picked by an index tensor (or a boolean mask), in that order."""
        index = index.nonzero().flatten() if index.dtype == torch.bool else index
        probs = self.probs[index] if self.probs is not None else None
        return dataclasses.replace(self, data=self.data.select(index), labels=self.labels[index],
                                   preds=self.preds[index], index=self.index[index], probs=probs)  # fmt: skip

    def chunks(self, size: int | None = None) -> Iterator[tuple[slice, Subject]]:
        """(faces, sub-subject) for consecutive runs of at most `size` (default CHUNK) faces, each preparing
        its own inputs."""
        n, size = len(self.labels), size or CHUNK
        for start in range(0, max(n, 1), size):  # an empty subject is one empty chunk
            part = slice(start, min(start + size, n))
            yield part, self if part == slice(0, n) else self.select(torch.arange(part.start, part.stop))

    def targets(self, cfg: ExplainConfig) -> torch.Tensor:
        """(N,) the class each attribution explains."""
        return Target(cfg.target).classes(self.preds, self.labels)

    def masks(self, regions: tuple[FaceRegion, ...]) -> torch.Tensor:
        """(N, R, S, S) bool masks of the given regions, in their order (each region's pixels do not
        depend on which others are asked for)."""
        ids = torch.tensor([list(FaceRegion).index(FaceRegion(r)) + 1 for r in regions])
        return self.index[:, None] == ids.view(1, -1, 1, 1)


def load_subject(
    run: Run | str | Path,
    cfg: SubjectConfig = SubjectConfig(),
    data: FaceDataset | None = None,
    data_root: str | None = None,
) -> Subject:
    """Load a run's model (a run folder or a `Run`) and prepare one split of its data set (or of `data`)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = run if isinstance(run, Run) else open_run(run, cfg.device)
    data = run_data(run, data, data_root)
    # channels_last: the same fp32 numbers; bf16 (opt-in, only in the attribution passes) runs faster with it
    # (benchmarks/explain_precision.py)
    engine = dataclasses.replace(run.engine, bf16=False, channels_last=True)
    run = dataclasses.replace(run, model=engine.model(run.model), engine=engine)
    landmarks, ok, provider, counts = landmarks_for(data, cfg.landmarks)
    keep = data.split == SPLITS.index(cfg.split)
    if cfg.limit is not None:
        keep &= torch.cumsum(keep.long(), 0) <= cfg.limit
    part, landmarks = data.select(keep), landmarks[keep]
    pre = run.pre
    probs = torch.softmax(predict(run.model, part.images, pre, engine), 1)  # (N, K)
    preds = probs.argmax(1)
    size = (pre.size, pre.size)
    index = torch.empty(len(part), *size, dtype=torch.uint8)  # ids fit a byte (len(FaceRegion) + 1 values)
    for i in range(0, len(part), CHUNK):  # region_index works in int64: one chunk at a time
        index[i : i + CHUNK] = region_index(landmarks[i : i + CHUNK], size, tuple(FaceRegion), cfg.margin,
                                            from_size=part.size)  # fmt: skip
    return Subject(
        run=run,
        data=part,
        labels=part.labels,
        preds=preds,
        probs=probs,
        index=index,  # (N, S, S)
        config=cfg,
        landmarks={"provider": provider, "counts": counts, "ok_in_split": int(ok[keep].sum())},
    )


def explain(subject: Subject, method: str, cfg: ExplainConfig, reference: str | None = None) -> Attribution:
    """One registered method over the whole subject, for cfg's regions and target.

    Under torchrun the faces are shared out (rank, rank + W, ...) and every process gets the whole answer
    back, in face order (a noise reference is drawn per process's share, so it differs from one process's)."""
    if reference is None and method == "ig":
        reference = cfg.ig_baseline
    device = subject.run.engine.device
    targets = subject.targets(cfg).to(device)
    masks = subject.masks(cfg.regions).to(device)
    w = parallel.world()
    if w.size == 1:
        return attribute(method, subject.run, subject.inputs, targets, masks, cfg.settings(reference))
    mine = torch.arange(w.rank, len(targets), w.size)
    part = attribute(method, subject.run, subject.inputs[mine.to(device)], targets[mine.to(device)],
                     masks[mine.to(device)], cfg.settings(reference))  # fmt: skip
    return _gathered(part, mine, len(targets))


def _gathered(part: Attribution, mine: torch.Tensor, n: int) -> Attribution:
    """Every process's share of an attribution put back in face order."""
    shares = parallel.all_gather((mine, part.regions, part.maps, {k: v.cpu() for k, v in part.extras.items()}))

    def whole(pieces: list[torch.Tensor | None]) -> torch.Tensor | None:
        if pieces[0] is None:
            return None
        out = torch.empty(n, *pieces[0].shape[1:], dtype=pieces[0].dtype)
        for (idx, *_), piece in zip(shares, pieces, strict=True):
            out[idx] = piece
        return out

    extras = {k: whole([s[3][k] for s in shares]) for k in part.extras}
    return dataclasses.replace(part, regions=whole([s[1] for s in shares]), maps=whole([s[2] for s in shares]),
                               extras=extras)  # fmt: skip


def mean_by_emotion(values: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, ...) float mean of `values` (N, ...) over the images of each class, and (K,) counts (0 -> zeros)."""
    n = torch.bincount(labels, minlength=k)  # (K,)
    sums = torch.zeros(k, *values.shape[1:], dtype=torch.float64).index_add_(0, labels, values.double())
    return sums / n.clamp(min=1).view(-1, *[1] * (values.dim() - 1)), n


def grouped(
    values: torch.Tensor, subject: Subject, cfg: ExplainConfig, method: str, fill: str, measure: str
) -> list[dict[str, Any]]:
    """Tidy rows of per-emotion means of (N, R) values with bootstrap CIs, grouped by true and by predicted
    emotion (NaN cells are no information and are skipped)."""
    rows = []
    k = len(subject.data.classes)
    for group, by in (("true", subject.labels), ("pred", subject.preds)):
        stats = I.bootstrap_group_means(values, by, k, n_boot=cfg.n_boot, alpha=cfg.alpha, seed=cfg.seed)
        for row in I.tidy_rows(stats, subject.data.classes, cfg.regions, method, fill, measure):
            rows.append({"group": group, **row})
    return rows


def gallery_faces(subject: Subject, k: int = 4) -> dict[int, list[int]]:
    """Per true emotion with faces: its k most confident faces (highest probability of the emotion), then
    its k most confused (lowest), without repeats; {} without probabilities."""
    if subject.probs is None:
        return {}
    picked = {}
    for e in range(len(subject.data.classes)):
        idx = torch.nonzero(subject.labels == e).flatten()
        if len(idx):
            order = subject.probs[idx, e].argsort(descending=True)
            picked[e] = list(dict.fromkeys([*idx[order[:k]].tolist(), *idx[order.flip(0)[:k]].tolist()]))
    return picked


def _joined(parts: list[Attribution]) -> Attribution:
    """One attribution from consecutive chunks' answers, without maps (callers reduce those per chunk)."""
    extras = {k: torch.cat([p.extras[k] for p in parts]) for k in parts[0].extras}
    return dataclasses.replace(parts[0], regions=torch.cat([p.regions for p in parts]), maps=None, extras=extras)


def saliency(subject: Subject, cfg: ExplainConfig) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Per map method: region relevance (1.0 = no preference) and mass (share of the face's attribution).

    Faces stream through in chunks (`Subject.chunks`) and no per-face map is kept. Returns tidy rows and
    per-method tensors: relevance (N, R), IG's delta (N,), mean_maps (K, S, S), the mean over each true
    emotion's faces of their maps, each scaled to its own maximum so every face counts the same (zeros
    for an emotion without faces), and gallery_maps (G, S, S), the maps of the `gallery_faces` in order.
    """
    rows: list[dict[str, Any]] = []
    out: dict[str, torch.Tensor] = {}
    k, size = len(subject.data.classes), subject.index.shape[-2:]
    picks = torch.tensor([i for faces in gallery_faces(subject).values() for i in faces], dtype=torch.long)
    counts = torch.bincount(subject.labels, minlength=k).clamp(min=1).view(-1, 1, 1)
    for method in cfg.methods:
        parts = []
        sums = torch.zeros(k, *size, dtype=torch.float64)
        gallery = torch.zeros(len(picks), *size)
        for faces, chunk in subject.chunks():
            att = explain(chunk, method, cfg)
            parts.append(att)
            peak = att.maps.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
            sums.index_add_(0, chunk.labels, (att.maps / peak).double())
            mine = (picks >= faces.start) & (picks < faces.stop)
            gallery[mine] = att.maps[picks[mine] - faces.start].float()
        att = _joined(parts)
        rows += grouped(att.regions, subject, cfg, method, "", "relevance")
        rows += grouped(att.extras["mass"], subject, cfg, method, "", "mass")
        out[f"{method}/relevance"], out[f"{method}/mean_maps"] = att.regions, sums / counts
        out[f"{method}/gallery_maps"] = gallery
        if "delta" in att.extras:
            out[f"{method}/delta"] = att.extras["delta"]
    return rows, out


def occlusion(subject: Subject, cfg: ExplainConfig) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Per fill: drop in the target class's probability and in accuracy, and the rate of changed
    predictions, when each region is replaced (a region missing from a face: no information). Faces
    stream through in chunks (`Subject.chunks`)."""
    rows: list[dict[str, Any]] = []
    out: dict[str, torch.Tensor] = {}
    for fill in cfg.fills:
        att = _joined([explain(chunk, "occlusion", cfg, fill) for _, chunk in subject.chunks()])
        res, present = att.extras, att.extras["present"]
        # the occlusion pass's own intact prediction (under --bf16 it may differ from subject.preds)
        base_correct = (res["base_pred"] == subject.labels).double()  # (N,)
        occluded_correct = (res["pred"] == subject.labels[:, None]).double()  # (N, R)
        accuracy_drop = base_correct[:, None] - occluded_correct  # mean over images = accuracy lost
        nan = torch.tensor(torch.nan, dtype=torch.float64)
        rows += grouped(att.regions, subject, cfg, "occlusion", fill, att.measure)
        rows += grouped(torch.where(present, accuracy_drop, nan), subject, cfg, "occlusion", fill, "accuracy_drop")
        rows += grouped(torch.where(present, res["flipped"].double(), nan), subject, cfg, "occlusion", fill,
                        "flip_rate")  # fmt: skip
        out |= {f"{fill}/{k}": v for k, v in res.items()}
    return rows, out


def sanity_size(cfg: ExplainConfig, n: int) -> int:
    """Faces in the sanity check: cfg.sanity_n, or 2% of the n faces, at least 2 and at most 16."""
    wanted = cfg.sanity_n if cfg.sanity_n is not None else max(2, min(16, round(0.02 * n)))
    return min(wanted, n)


def sanity(subject: Subject, method: str, cfg: ExplainConfig) -> list[dict[str, Any]]:
    """Cascading model randomisation on the first `cfg.sanity_n` images: one row per randomised layer.

    By default the check's size follows the run's: 2% of the faces, at least 2 and at most 16 (each layer
    randomised costs a full pass of the method over them). Rows: method, step, layer, spearman,
    spearman_abs, ssim, flagged (the method's maps still match the original once the whole network is
    random; the same value on every row of the method).
    """
    n = sanity_size(cfg, len(subject.inputs))
    if n == 0:
        return []
    device = subject.run.engine.device
    first = subject.select(torch.arange(n))  # only these faces' inputs and masks are made
    x, t = first.inputs, first.targets(cfg).to(device)
    masks = first.masks(cfg.regions).to(device)
    reference = cfg.ig_baseline if method == "ig" else None
    quiet = dataclasses.replace(cfg.settings(reference), progress=False)

    def maps(model: torch.nn.Module) -> torch.Tensor:
        return attribute(method, dataclasses.replace(subject.run, model=model), x, t, masks, quiet).maps

    steps = cascading_randomization(subject.run.model, maps, seed=cfg.seed, progress=cfg.progress,
                                    description=f"sanity check of {method} on {n} faces")  # fmt: skip
    flagged = flag_insensitive(steps)
    return [{"method": method, **step, "flagged": flagged} for step in steps]
