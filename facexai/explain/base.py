"""What every attribution method shares: its result type, what it explains, its per-call settings, and the
batching and model-freezing helpers.

A method is a function `(run, inputs, targets, masks, settings) -> Attribution`:

- run: a `Run` (the model in eval mode on its device, its preprocessing and CAM layer);
- inputs: standardised float (N, C, H, W) model inputs on the model's device;
- targets: (N,) class indices, one per image (what `Target` resolves to);
- masks: (N, R, H, W) bool region masks at the input size, disjoint (`faces.regions.region_masks`);
- settings: `Settings`.

It returns (N, R) region scores always (higher = more important for the target; NaN = no
information, e.g. a region missing from the face), per-pixel maps where the method has them, and
its extras. Region scores of map methods are area-normalised relevance (`importance.map_relevance`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from facexai.errors import ConfigError
from facexai.explain import importance as I
from facexai.io.progress import progress_bar

TARGETS = ("pred", "true", "class")
SCORES = ("logit", "probability")


@dataclass(frozen=True)
class Target:
    """Which class each image's attribution explains, and on which of the model's scores.

    kind: "pred" (the predicted class), "true" (the labelled class) or "class" (class `index` for every
    image); score: "logit" or "probability" (softmax), None = the method's own default (maps: logit,
    occlusion: probability), which the result states.
    """

    kind: str = "pred"
    index: int | None = None
    score: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in TARGETS:
            raise ConfigError(f"target must be one of {', '.join(TARGETS)}, got {self.kind!r}")
        if (self.kind == "class") != (self.index is not None):
            raise ConfigError("a 'class' target needs its class index, and only it takes one")
        if self.score is not None and self.score not in SCORES:
            raise ConfigError(f"score must be logit or probability, got {self.score!r}")

    def classes(self, preds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N,) class indices from (N,) predicted and true classes."""
        if self.kind == "pred":
            return preds
        if self.kind == "true":
            return labels
        return torch.full_like(preds, self.index)


@dataclass(frozen=True)
class Settings:
    """What one method call takes besides the batch (fields a method does not use are ignored).

    reference: what replaces a region or forms the baseline: a name in `references.REFERENCES` or a
    tensor in model space; None = the method's default (IG: black, occlusion: blur).
    """

    score: str | None = None  # logit | probability; None = the method's default
    reference: str | torch.Tensor | None = None
    steps: int = 32  # integrated-gradients path steps
    batch_size: int = 16  # rows per forward pass: at 1-2 CPU threads 16 ran faster than 32
    layer: str | None = None  # CAM layer (dotted path); None = the run's
    blur_sigma: float | None = None  # blur reference width, pixels; None = a tenth of the side
    seed: int = 0  # noise reference
    bf16: bool = False  # bf16 autocast in the attribution passes: faster on CPUs with hardware bf16, less exact
    progress: bool = False


@dataclass
class Attribution:
    """One method's answer for N images and R regions (tensors on the CPU).

    regions: (N, R) float64 region scores (higher = more important; NaN = no information);
    measure: what `regions` holds ("relevance" for maps, "probability_drop" or "logit_drop" for occlusion);
    score: the model score explained (logit or probability); maps: (N, H, W) non-negative per-pixel
    maps or None; extras: other per-image tensors (e.g. IG's "delta" (N,), maps' "mass" (N, R),
    occlusion's "pred" (N, R)).
    """

    method: str
    regions: torch.Tensor
    measure: str
    score: str
    maps: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


def from_maps(method: str, maps: torch.Tensor, masks: torch.Tensor, score: str, **extras: torch.Tensor) -> Attribution:
    """A map method's result: relevance (share of the positive attribution / share of the face area) as
    the region scores, and each region's share of the attribution ("mass") among the extras."""
    maps = maps.detach().cpu()
    masks = masks.cpu()
    relevance = I.map_relevance(maps, masks)  # (N, R)
    mass = I.region_mass(maps, masks)
    return Attribution(method, relevance, "relevance", score, maps, {"mass": mass, **extras})


def batches(n: int, batch_size: int, progress: bool = False, description: str = "") -> Iterator[slice]:
    """Slices covering range(n) in steps of `batch_size`, with an optional rich progress bar (on stderr)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=n)
        for i in range(0, n, batch_size):
            yield slice(i, min(i + batch_size, n))
            bar.update(task, advance=min(batch_size, n - i))


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode with parameters not requiring grad; mode, flags and any .grad restored on exit.

    (pytorch-grad-cam calls model.zero_grad() on every batch; a caller's accumulated grads survive.)
    """
    saved = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    training = model.training
    try:
        model.eval()
        for p, _, _ in saved:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag, grad in saved:
            p.requires_grad_(flag)
            p.grad = grad
        model.train(training)


def check_targets(targets: torch.Tensor, n: int) -> torch.Tensor:
    """(N,) int64 class indices on the CPU, or a ValueError naming the shape."""
    targets = torch.as_tensor(targets).reshape(-1)
    if len(targets) != n or targets.is_floating_point():
        raise ValueError(f"targets must be {n} integer class indices, got shape {tuple(targets.shape)}")
    return targets.cpu()


class Probabilities(nn.Module):
    """The model's softmax probabilities: what a method explains when its score is "probability"."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x).float(), 1)


def check_score(score: str | None, default: str) -> str:
    score = default if score is None else score
    if score not in SCORES:
        raise ConfigError(f"score must be logit or probability, got {score!r}")
    return score
