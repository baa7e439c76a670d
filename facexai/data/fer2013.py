"""FER2013 (Goodfellow et al. 2013): 35,887 grey 48x48 faces, 7 emotions, in canonical class order.

Two layouts, told apart by what `cfg.root` holds:
- CSV: Kaggle's `fer2013.csv` (header `emotion,pixels,Usage`), exact pixels; ids `row:<i>`
  (i counts data rows from 0, the position FER+'s fer2013new.csv joins on).
- Folders: the image-folder variant `train/<class>/Training_*.jpg`, `test/<class>/{PublicTest,PrivateTest}_*.jpg`;
  JPEG, so pixels differ slightly from the CSV; ids are paths relative to the root.

Splits: `official` (Training -> train, PublicTest -> val, PrivateTest -> test) or `seed-a` (everything
pooled and re-split 70/20/10, stratified, seeded by `cfg.split_seed`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from facexai.config import DataConfig
from facexai.data.base import SPLITS, FaceDataset, stratified_split
from facexai.data.cache import cached, fingerprint
from facexai.data.images import decode_many
from facexai.emotions import SEVEN, Emotion
from facexai.errors import ConfigError, DataNotFoundError, EmptySplitError, MalformedDataError

HEADER = "emotion,pixels,Usage"
SIDE = 48
N_PIXELS = SIDE * SIDE
# the CSV's emotion 0..6, in FER2013's own order
FER_ORDER: tuple[Emotion, ...] = (
    Emotion.ANGER,
    Emotion.DISGUST,
    Emotion.FEAR,
    Emotion.HAPPINESS,
    Emotion.SADNESS,
    Emotion.SURPRISE,
    Emotion.NEUTRAL,
)
TO_CANONICAL = np.array([SEVEN.index(e) for e in FER_ORDER], dtype=np.int64)  # FER2013 index -> canonical index
FOLDER_CLASSES: dict[str, Emotion] = {
    "angry": Emotion.ANGER,
    "disgust": Emotion.DISGUST,
    "fear": Emotion.FEAR,
    "happy": Emotion.HAPPINESS,
    "neutral": Emotion.NEUTRAL,
    "sad": Emotion.SADNESS,
    "surprise": Emotion.SURPRISE,
}
USAGE: dict[str, str] = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLIT_MODES = ("official", "seed-a")
SEED_A_FRACTIONS = (0.7, 0.2, 0.1)
SPLIT_FOLDERS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_CHUNK = 2048  # CSV rows parsed per vectorised step: bounded memory, still fast


class FolderEntry(NamedTuple):
    """One image of the folder layout, found by listing (nothing decoded)."""

    path: Path
    id: str  # path relative to the root, '/'-separated
    label: int  # canonical index into SEVEN
    usage: str  # Training | PublicTest | PrivateTest, from the file-name prefix


# ---------------------------------------------------------------- CSV layout


def _parse_pixels(fields: list[bytes], lines: list[int], path: Path) -> np.ndarray:
    """(n, 2304) uint8 from n pixel strings, vectorised over all of them; errors name the CSV line.

    Every number is read from its last three bytes (digits are those bytes minus '0' below 10), so a
    chunk costs a handful of numpy passes instead of 2304 Python int() calls per row.
    """
    pad = 4  # leading spaces: looking 4 bytes back from any number stays inside the buffer
    buf = np.frombuffer(b" " * pad + b" ".join(fields) + b" ", dtype=np.uint8)
    row_end = pad + np.cumsum([len(f) + 1 for f in fields])  # exclusive end of each row (with its separator)

    def fail(row: int, what: str) -> MalformedDataError:
        return MalformedDataError(
            f"{path}, line {lines[row]}: pixels must be {N_PIXELS} space-separated integers 0..255, {what}"
        )

    d = buf - np.uint8(ord("0"))  # digit value where < 10 (uint8 wraps everything else above 10)
    digit = d < 10
    ok = digit | (buf == ord(" ")) | (buf == ord("\t"))
    if not ok.all():
        i = int(ok.argmin())
        raise fail(int(np.searchsorted(row_end, i, side="right")), f"found {chr(buf[i])!r}")
    ends = np.flatnonzero(digit[:-1] > digit[1:]) + 1  # exclusive end of every number; buf ends with a space
    per_row = np.diff(np.searchsorted(ends, row_end), prepend=0)
    if (per_row != N_PIXELS).any():
        row = int(np.flatnonzero(per_row != N_PIXELS)[0])
        raise fail(row, f"found {per_row[row]} numbers")
    ones, tens, hundreds = d[ends - 1], d[ends - 2], d[ends - 3]
    two = tens < 10
    three = two & (hundreds < 10)
    values = ones.astype(np.int16) + two * (tens * np.int16(10)) + three * (hundreds * np.int16(100))  # int16 all along
    wrong = (values > 255) | (three & digit[ends - 4])  # 4+ digits: out of range (or zero-padded)
    if wrong.any():
        k = int(wrong.argmax())
        start = int(ends[k]) - 1
        while digit[start - 1]:
            start -= 1
        raise fail(k // N_PIXELS, f"found {bytes(buf[start : ends[k]]).decode()}")
    return values.astype(np.uint8).reshape(len(fields), N_PIXELS)


def read_csv(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """fer2013.csv -> (labels (N,) int64 canonical, images (N, 1, 48, 48) uint8, Usage string per row).

    Rows keep file order (FER+ joins on it). Errors name the file and the line number an editor shows.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"FER2013 CSV not found: {path}")
    labels: list[int] = []
    usage: list[str] = []
    chunks: list[np.ndarray] = []
    fields: list[bytes] = []
    lines: list[int] = []
    with open(path, "rb") as f:
        header = f.readline().decode("utf-8", "replace").lstrip("\ufeff").strip()
        if header != HEADER:
            raise MalformedDataError(f"{path}, line 1: header must be exactly {HEADER!r}, got {header[:80]!r}")
        for number, raw in enumerate(f, start=2):
            line = raw.strip()
            if not line:
                continue  # blank lines (e.g. a trailing one) are not rows
            cells = [c.strip().strip(b'"') for c in line.split(b",")]
            if len(cells) != 3:
                raise MalformedDataError(f"{path}, line {number}: expected 3 fields {HEADER}, got {len(cells)}")
            emotion, pixels, use = cells
            if not (emotion.isdigit() and int(emotion) <= 6):
                raise MalformedDataError(
                    f"{path}, line {number}: emotion must be 0..6 (Angry, Disgust, Fear, Happy, Sad, Surprise, "
                    f"Neutral), got {emotion.decode(errors='replace')!r}"
                )
            u = use.decode(errors="replace")
            if u not in USAGE:
                raise MalformedDataError(f"{path}, line {number}: Usage must be one of {', '.join(USAGE)}, got {u!r}")
            labels.append(int(emotion))
            usage.append(u)
            fields.append(pixels)
            lines.append(number)
            if len(fields) == _CHUNK:
                chunks.append(_parse_pixels(fields, lines, path))
                fields, lines = [], []
    if fields:
        chunks.append(_parse_pixels(fields, lines, path))
    pixels = np.concatenate(chunks) if chunks else np.empty((0, N_PIXELS), dtype=np.uint8)
    images = torch.from_numpy(pixels).reshape(-1, 1, SIDE, SIDE)  # (N, 1, 48, 48)
    return torch.from_numpy(TO_CANONICAL[np.asarray(labels, dtype=np.int64)]), images, usage


# ---------------------------------------------------------------- folder layout


def list_folder(root: Path) -> tuple[list[FolderEntry], int]:
    """Every image of the folder layout, without decoding: (entries, number of non-image files ignored).

    Order: split folder, class folder, file name (sorted), so ids and seeded splits are reproducible.
    The file-name prefix, not the folder, says the official split.
    """
    root = Path(root)
    entries: list[FolderEntry] = []
    ignored = 0
    for split_folder in SPLIT_FOLDERS:
        top = root / split_folder
        if not top.is_dir():
            raise DataNotFoundError(f"FER2013 split folder not found: {top} (expected train/ and test/ in {root})")
        with os.scandir(top) as it:
            class_dirs = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        for cdir in class_dirs:
            if not cdir.is_dir():
                ignored += 1
                continue
            emotion = FOLDER_CLASSES.get(cdir.name.lower())
            if emotion is None:
                raise MalformedDataError(
                    f"{cdir.path}: unknown class folder {cdir.name!r}; expected one of {', '.join(FOLDER_CLASSES)}"
                )
            with os.scandir(cdir.path) as it:
                files = sorted(e.name for e in it if e.is_file() and not e.name.startswith("."))
            for name in files:
                if not name.lower().endswith(IMAGE_SUFFIXES):
                    ignored += 1
                    continue
                prefix = name.split("_", 1)[0]
                if prefix not in USAGE:  # also catches a name with no '_' at all
                    raise MalformedDataError(
                        f"{Path(cdir.path) / name}: file name must start with one of "
                        f"{', '.join(p + '_' for p in USAGE)} (the official split)"
                    )
                rel = f"{split_folder}/{cdir.name}/{name}"
                entries.append(FolderEntry(root / rel, rel, SEVEN.index(emotion), prefix))
    return entries, ignored


# ---------------------------------------------------------------- loader


def _locate(root: Path) -> tuple[str, Path]:
    """('csv', the CSV file) or ('folders', the root holding train/ and test/)."""
    if not root.exists():
        raise DataNotFoundError(f"FER2013 data root not found: {root}")
    if root.is_file():
        return "csv", root
    if (root / "fer2013.csv").is_file():
        return "csv", root / "fer2013.csv"
    if any((root / s).is_dir() for s in SPLIT_FOLDERS):
        return "folders", root
    raise DataNotFoundError(
        f"no FER2013 data in {root}: expected fer2013.csv, or train/<class>/*.jpg and test/<class>/*.jpg"
    )


def seed_a_sizes(n: int) -> tuple[int, int, int]:
    """Seed-A split sizes: train and test are 70% and 10% rounded down, val takes the rest.

    On FER2013's 35,887 images: 25,120 / 7,179 / 3,588 (rounding each cut to nearest, as
    stratified_split does with (0.7, 0.2, 0.1), would give 25,121 / 7,177 / 3,589).
    """
    train, test = int(n * SEED_A_FRACTIONS[0]), int(n * SEED_A_FRACTIONS[2])
    return train, n - train - test, test


def seed_a_split(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """(N,) index into SPLITS: all images pooled, stratified 70/20/10 with seed-A sizes."""
    n = len(labels)
    sizes = seed_a_sizes(n)
    # exact fractions of n, so stratified_split's cumulative rounding lands on `sizes`
    return stratified_split(labels, tuple(k / n for k in sizes), seed)


def _split(usage: list[str], labels: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    """(N,) index into SPLITS under the chosen split mode."""
    if cfg.split == "seed-a" and len(labels):
        return seed_a_split(labels, cfg.split_seed)
    return torch.tensor([SPLITS.index(USAGE[u]) for u in usage], dtype=torch.long)


def load(cfg: DataConfig) -> FaceDataset:
    """FER2013 from either layout, labels in canonical order (classes = SEVEN), votes None."""
    if cfg.split not in SPLIT_MODES:
        raise ConfigError(f"unknown FER2013 split {cfg.split!r}; expected one of {', '.join(SPLIT_MODES)}")
    if cfg.root is None:
        raise DataNotFoundError("FER2013 needs a data root: fer2013.csv, or a folder with train/ and test/")
    # absolute, so the cache key (which hashes file paths) does not depend on the working directory
    layout, source = _locate(Path(os.path.abspath(Path(cfg.root).expanduser())))
    ignored = 0
    if layout == "csv":
        files = [source]
    else:
        entries, ignored = list_folder(source)  # structure errors surface even on a cache hit
        files = [e.path for e in entries]
    options = {"layout": layout, "split": cfg.split}
    if cfg.split == "seed-a":
        options["split_seed"] = cfg.split_seed

    def build() -> FaceDataset:
        if layout == "csv":
            labels, images, usage = read_csv(source)
            ids = [f"row:{i}" for i in range(len(usage))]
        else:
            images = decode_many(files, channels=1, size=(SIDE, SIDE))  # (N, 1, 48, 48)
            labels = torch.tensor([e.label for e in entries], dtype=torch.long)
            usage = [e.usage for e in entries]
            ids = [e.id for e in entries]
        split = _split(usage, labels, cfg)
        for s, name in enumerate(SPLITS):
            if not (split == s).any():
                raise EmptySplitError(f"FER2013 {name} split is empty ({cfg.split} split of {source})")
        found = {u: usage.count(u) for u in USAGE}
        return FaceDataset(
            name="fer2013",
            classes=SEVEN,
            images=images,
            labels=labels,
            split=split,
            ids=ids,
            meta={
                "source": str(source),
                **options,
                "found": found,  # images per official Usage, before anything is dropped
                "images": len(ids),
                "dropped": {},  # FER2013 drops nothing; kept so every loader reports the same keys
                "ignored_files": ignored,  # non-image files in the class folders
            },
        )

    return cached("fer2013", fingerprint(files, options), build, cfg.cache)


__all__ = [
    "load",
    "read_csv",
    "list_folder",
    "seed_a_split",
    "seed_a_sizes",
    "FolderEntry",
    "FER_ORDER",
    "FOLDER_CLASSES",
]
