"""FaceDataset: one in-memory structure for every data set, decoded once.

Images stay uint8 at their native resolution; resizing, channel replication,
augmentation and standardisation happen batched on the training device.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from facexai.emotions import Emotion
from facexai.errors import ConfigError, EmptySplitError, MalformedDataError

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class FaceDataset:
    """A labelled face data set with every split in one set of tensors.

    images:    (N, C, H, W) uint8, C = 1 (grey) or 3 (RGB)
    labels:    (N,) int64, index into `classes`
    votes:     (N, K) float32 rows summing to 1 over `classes`, or None
    split:     (N,) int64, index into SPLITS
    ids:       N strings (file names, or `row:<i>` for CSV rows)
    landmarks: (N, 68, 2) float32 (x, y) pixels in iBUG 300-W order, or None
    extras:    other per-image tensors with N rows (e.g. synthetic AU intensities)
    meta:      JSON-able facts: source, options, what was dropped and why, ground truth
    """

    name: str
    classes: tuple[Emotion, ...]
    images: torch.Tensor
    labels: torch.Tensor
    split: torch.Tensor
    ids: list[str]
    votes: torch.Tensor | None = None
    landmarks: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise MalformedDataError(
                f"{self.name}: images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        rows = {"labels": self.labels, "split": self.split, "ids": self.ids}
        rows |= {k: v for k, v in (("votes", self.votes), ("landmarks", self.landmarks)) if v is not None}
        rows |= self.extras
        for key, value in rows.items():
            if len(value) != n:
                raise MalformedDataError(f"{self.name}: {key} has {len(value)} rows, images have {n}")
        if n and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise MalformedDataError(f"{self.name}: labels outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[2:])  # type: ignore[return-value]

    def select(self, index: torch.Tensor) -> FaceDataset:
        """The rows picked by a boolean mask or an index tensor, in that order."""
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        ids = [self.ids[i] for i in index.tolist()]
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            split=self.split[index],
            ids=ids,
            votes=pick(self.votes),
            landmarks=pick(self.landmarks),
            extras={k: v[index] for k, v in self.extras.items()},
        )

    def subset(self, split: str) -> FaceDataset:
        """One split; an empty split is an error because nothing downstream can use it."""
        part = self.select(self.split == SPLITS.index(split))
        if len(part) == 0:
            raise EmptySplitError(f"{self.name}: the {split!r} split is empty")
        return part

    def targets(self) -> torch.Tensor:
        """(N, K) float32 training targets: the vote distribution, else one-hot labels."""
        if self.votes is not None:
            return self.votes
        return torch.nn.functional.one_hot(self.labels, len(self.classes)).float()

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class: {split: {emotion: n}}."""
        out: dict[str, dict[str, int]] = {}
        for s, name in enumerate(SPLITS):
            per = Counter(self.labels[self.split == s].tolist())
            if sum(per.values()):
                out[name] = {str(c): per.get(i, 0) for i, c in enumerate(self.classes)}
        return out

    def to_state(self) -> dict[str, Any]:
        """A dict of tensors, strings and JSON-able values; loads with weights_only=True."""
        return {
            "name": self.name,
            "classes": [c.value for c in self.classes],
            "images": self.images,
            "labels": self.labels,
            "split": self.split,
            "ids": list(self.ids),
            "votes": self.votes,
            "landmarks": self.landmarks,
            "extras": dict(self.extras),
            "meta": self.meta,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FaceDataset:
        return cls(**{**state, "classes": tuple(Emotion(c) for c in state["classes"])})


def labels_from_votes(votes: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels for (N, K) vote counts under a label mode; returns (labels, keep).

    soft / plurality: the most-voted class (first on ties); majority (Barsoum et
    al. 2016): a class with more than half the votes, else the image is dropped.
    Rows with no votes are never kept.
    """
    total = votes.sum(1)
    top, labels = votes.max(1)
    keep = total > 0
    if mode == "majority":
        keep &= top > total / 2
    elif mode not in ("soft", "plurality"):
        raise ConfigError(f"unknown label mode {mode!r}; expected soft, majority or plurality")
    return labels, keep


def stratified_split(labels: torch.Tensor, fractions: tuple[float, ...], seed: int) -> torch.Tensor:
    """(N,) split index: each class shuffled with `seed`, interleaved, and cut by `fractions`.

    Cuts are round(N * cumulative fraction); callers that need other sizes pass the exact
    fractions (FER2013's seed-A split computes its 25,120 / 7,179 / 3,588 that way).
    """
    n = len(labels)
    gen = torch.Generator().manual_seed(seed)
    # Interleave classes in shuffled order, then cut the interleaving: every prefix
    # is (nearly) class-balanced, so each split is stratified and the sizes exact.
    order = []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        # position of each item within its class, scaled to [0, 1)
        order.append(torch.stack([(torch.arange(len(idx)) + 0.5) / len(idx), idx.double()], 1))
    keys = torch.cat(order)
    tie = torch.rand(len(keys), generator=gen, dtype=torch.float64)
    perm = torch.from_numpy(np.lexsort((tie.numpy(), keys[:, 0].numpy())))
    ranked = keys[perm, 1].long()  # item indices, stratified order
    bounds = [round(n * f) for f in torch.tensor(fractions, dtype=torch.float64).cumsum(0).tolist()]
    out = torch.empty(n, dtype=torch.long)
    start = 0
    for s, end in enumerate(bounds):
        out[ranked[start:end]] = s
        start = end
    return out


def train_twins(data: FaceDataset) -> torch.Tensor:
    """(N,) int64: for each val/test image, the index of a pixel-identical train image, else -1.

    FER2013 (and so FER+) holds groups of identical faces, and a test face whose twin was
    trained on is not unseen. Exact equality only, via a hash of the pixels; near-duplicates
    (re-encoded, shifted) are not found. Train rows are -1.
    """
    keys = [hashlib.sha1(img.numpy().tobytes()).digest() for img in data.images]
    is_train = (data.split == SPLITS.index("train")).tolist()
    first = {}
    for i, (k, t) in enumerate(zip(keys, is_train, strict=True)):
        if t:
            first.setdefault(k, i)
    return torch.tensor([-1 if t else first.get(k, -1) for k, t in zip(keys, is_train, strict=True)])


def describe(data: FaceDataset) -> dict[str, Any]:
    """What `data check` reports: images per split and class, what was found and dropped (and why), and
    how many val/test faces have a pixel-identical twin in train, and rows left out because a later row
    reuses their image name (FER+): {"counts", "found", "dropped", "twins", "repeated_names"}."""
    twin = train_twins(data) >= 0
    twins = {}
    for s in SPLITS[1:]:
        held = data.split == SPLITS.index(s)
        if held.any():
            twins[s] = (int(twin[held].sum()), int(held.sum()))
    dropped = {why: n for why, n in data.meta.get("dropped", {}).items() if n}
    return {"counts": data.counts(), "found": data.meta.get("found"), "dropped": dropped, "twins": twins,
            "repeated_names": data.meta.get("repeated_names", [])}  # fmt: skip
