"""RAF-DB basic (Li et al. 2017): aligned 100x100 RGB faces, 7 emotions, in canonical class order.

Layout: `basic/EmoLabel/list_patition_label.txt` (lines `train_00001.jpg 5`, the file's own spelling
of "partition") and `basic/Image/aligned/train_00001_aligned.jpg`. `cfg.root` may be the folder
holding `basic/` or `basic/` itself. RAF-DB has train and test only; validation is carved out of
train (stratified, `cfg.val_fraction`, seeded by `cfg.split_seed`), never out of test.
ids are the names in the label file (`train_00001.jpg`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from facexai.config import DataConfig
from facexai.data.base import SPLITS, FaceDataset, stratified_split
from facexai.data.cache import cached, fingerprint
from facexai.data.images import decode_many
from facexai.emotions import SEVEN, Emotion
from facexai.errors import ConfigError, DataNotFoundError, EmptySplitError, MalformedDataError

LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
ALIGNED = Path("Image") / "aligned"
SIDE = 100
# the label file's 1..7, in RAF-DB's own order
RAF_ORDER: tuple[Emotion, ...] = (
    Emotion.SURPRISE,
    Emotion.FEAR,
    Emotion.DISGUST,
    Emotion.HAPPINESS,
    Emotion.SADNESS,
    Emotion.ANGER,
    Emotion.NEUTRAL,
)
PREFIXES = {"train_": "train", "test_": "test"}


def read_partition(path: Path) -> tuple[list[str], torch.Tensor]:
    """list_patition_label.txt -> (image names in file order, (N,) int64 canonical labels).

    Errors name the file and the 1-based line number.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"RAF-DB label file not found: {path}")
    names: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            cells = line.split()
            if not cells:
                continue
            if len(cells) != 2:
                raise MalformedDataError(f"{path}, line {number}: expected '<name>.jpg <label>', got {line.strip()!r}")
            name, label = cells
            if not (name.startswith(tuple(PREFIXES)) and name.lower().endswith(".jpg")):
                raise MalformedDataError(
                    f"{path}, line {number}: image name must be train_*.jpg or test_*.jpg, got {name!r}"
                )
            if not (label.isdigit() and 1 <= int(label) <= 7):
                raise MalformedDataError(
                    f"{path}, line {number}: label must be 1..7 (Surprise, Fear, Disgust, Happiness, Sadness, "
                    f"Anger, Neutral), got {label!r}"
                )
            if name in seen:
                raise MalformedDataError(f"{path}, line {number}: {name} is listed twice")
            seen.add(name)
            names.append(name)
            labels.append(SEVEN.index(RAF_ORDER[int(label) - 1]))
    return names, torch.tensor(labels, dtype=torch.long)


def aligned_name(name: str) -> str:
    """`train_00001.jpg` -> `train_00001_aligned.jpg`, the aligned image's file name."""
    stem, suffix = os.path.splitext(name)
    return f"{stem}_aligned{suffix}"


def _locate(root: Path) -> Path:
    """The `basic/` folder: root itself or root/basic."""
    if not root.exists():
        raise DataNotFoundError(f"RAF-DB data root not found: {root}")
    for base in (root / "basic", root):
        if (base / LABEL_FILE).is_file():
            return base
    raise DataNotFoundError(f"RAF-DB label file not found: {root / 'basic' / LABEL_FILE} (nor {root / LABEL_FILE})")


def _image_paths(base: Path, names: list[str]) -> list[Path]:
    """Aligned image paths for `names`; a missing one is named (checked by one listing, not N stats)."""
    folder = base / ALIGNED
    if not folder.is_dir():
        raise DataNotFoundError(f"RAF-DB aligned image folder not found: {folder}")
    with os.scandir(folder) as it:
        present = {e.name for e in it}
    paths = [folder / aligned_name(n) for n in names]
    missing = [p for p in paths if p.name not in present]
    if missing:
        raise DataNotFoundError(
            f"RAF-DB aligned image not found: {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    return paths


def load(cfg: DataConfig) -> FaceDataset:
    """RAF-DB basic, aligned faces (N, 3, 100, 100) uint8, classes = SEVEN, votes None."""
    if not 0 < cfg.val_fraction < 1:
        raise ConfigError(f"val_fraction must be between 0 and 1 (exclusive), got {cfg.val_fraction}")
    if cfg.root is None:
        raise DataNotFoundError("RAF-DB needs a data root: the folder holding basic/ (or basic/ itself)")
    # absolute, so the cache key (which hashes file paths) does not depend on the working directory
    base = _locate(Path(os.path.abspath(Path(cfg.root).expanduser())))
    label_path = base / LABEL_FILE
    names, labels = read_partition(label_path)
    paths = _image_paths(base, names)
    options = {"val_fraction": cfg.val_fraction, "split_seed": cfg.split_seed}

    def build() -> FaceDataset:
        is_test = torch.tensor([n.startswith("test_") for n in names], dtype=torch.bool)
        split = torch.full((len(names),), SPLITS.index("test"), dtype=torch.long)
        train_idx = (~is_test).nonzero().flatten()
        if len(train_idx) == 0:
            raise EmptySplitError(f"RAF-DB train split is empty: no train_* lines in {label_path}")
        # 0 -> train, 1 -> val: stratified within train, so test stays the official test set
        carved = stratified_split(labels[train_idx], (1 - cfg.val_fraction, cfg.val_fraction), cfg.split_seed)
        split[train_idx] = carved  # SPLITS order is train, val, test
        for s, part in enumerate(SPLITS):
            if not (split == s).any():
                raise EmptySplitError(f"RAF-DB {part} split is empty ({label_path}, val_fraction {cfg.val_fraction})")
        images = decode_many(paths, channels=3, size=(SIDE, SIDE))  # (N, 3, 100, 100)
        return FaceDataset(
            name="rafdb",
            classes=SEVEN,
            images=images,
            labels=labels,
            split=split,
            ids=list(names),
            meta={
                "source": str(base),
                "layout": "aligned",
                **options,
                "found": {"train": int((~is_test).sum()), "test": int(is_test.sum())},  # before anything is dropped
                "images": len(names),
                "dropped": {},  # RAF-DB drops nothing; kept so every loader reports the same keys
            },
        )

    return cached("rafdb", fingerprint([label_path, *paths], options), build, cfg.cache)


__all__ = ["load", "read_partition", "aligned_name", "RAF_ORDER"]
