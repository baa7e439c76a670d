"""A folder of labelled face images, one subfolder per emotion: the user's own faces.

Layouts, told apart by what `cfg.root` holds:
- `DIR/<class>/*.jpg`: every image in the test split (to analyse a model on them), or, with
  `cfg.carve`, stratified train / val / test splits (1 - 2 f, f, f; f = `cfg.val_fraction`, seeded by
  `cfg.split_seed`), which `facexai train imagefolder` asks for;
- `DIR/{train,val,test}/<class>/...`: those splits (without `val/`, validation is carved out of train).

Class folders are matched to the canonical emotions through SYNONYMS (case-insensitive), or through a
class map (`cfg.class_map`, a TOML file with a `[classes]` table `folder = "emotion"`); an unknown name
is an error that lists the accepted ones. Images may be any size, grey or RGB, jpg/png/bmp/webp: each
is decoded to RGB, centre-cropped to a square and resized to `cfg.image_size` (antialiased), so the
data set is one uint8 tensor. Classes: the seven of FER+'s order, or all eight where a contempt folder
exists; counts say which classes are present. ids are paths relative to the root.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tomllib
import torch
import torch.nn.functional as F

from facexai.config import DataConfig
from facexai.data.base import SPLITS, FaceDataset, stratified_split
from facexai.data.cache import cached, fingerprint
from facexai.data.images import decode_one
from facexai.emotions import CANONICAL, SEVEN, Emotion
from facexai.errors import ConfigError, DataNotFoundError, EmptySplitError, MalformedDataError

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SYNONYMS: dict[str, Emotion] = {
    "neutral": Emotion.NEUTRAL,
    "happy": Emotion.HAPPINESS, "happiness": Emotion.HAPPINESS,
    "surprise": Emotion.SURPRISE, "surprised": Emotion.SURPRISE,
    "sad": Emotion.SADNESS, "sadness": Emotion.SADNESS,
    "angry": Emotion.ANGER, "anger": Emotion.ANGER,
    "disgust": Emotion.DISGUST, "disgusted": Emotion.DISGUST,
    "fear": Emotion.FEAR, "fearful": Emotion.FEAR,
    "contempt": Emotion.CONTEMPT,
}  # fmt: skip


def read_class_map(path: str | Path) -> dict[str, Emotion]:
    """{folder name (lower case): emotion} from a TOML file's [classes] table."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"class map not found: {path}")
    try:
        table = tomllib.loads(path.read_text()).get("classes")
    except tomllib.TOMLDecodeError as e:
        raise MalformedDataError(f"{path}: not valid TOML ({e})") from None
    if not isinstance(table, dict) or not table:
        raise MalformedDataError(f'{path}: expected a [classes] table of folder = "emotion" lines')
    out = {}
    for folder, name in table.items():
        try:
            out[folder.lower()] = Emotion(str(name).strip().lower())
        except ValueError:
            raise MalformedDataError(
                f"{path}: {folder} = {name!r} is not an emotion; expected one of {', '.join(e.value for e in Emotion)}"
            ) from None
    return out


def _classes_of(folder: Path, names: dict[str, Emotion]) -> dict[Path, Emotion]:
    found = {}
    with os.scandir(folder) as it:
        for e in sorted(it, key=lambda e: e.name):
            if not e.is_dir():
                continue
            if e.name.lower() not in names:
                raise MalformedDataError(
                    f"{e.path}: unknown class folder {e.name!r}; expected one of {', '.join(sorted(names))} "
                    "(case-insensitive), or a --class-map"
                )
            found[Path(e.path)] = names[e.name.lower()]
    return found


def list_images(root: Path, names: dict[str, Emotion]) -> tuple[list[Path], list[Emotion], list[str]]:
    """(image paths, their emotions, their split names) under `root`, in a stable order."""
    split_dirs = [s for s in SPLITS if (root / s).is_dir()]
    layout = {s: root / s for s in split_dirs} if split_dirs else {"test": root}
    paths, emotions, splits = [], [], []
    for split, folder in layout.items():
        for cdir, emotion in _classes_of(folder, names).items():
            files = sorted(p for p in cdir.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
            paths += files
            emotions += [emotion] * len(files)
            splits += [split] * len(files)
    if not paths:
        raise EmptySplitError(f"no images ({', '.join(SUFFIXES)}) in class folders under {root}")
    return paths, emotions, splits


def square(img: torch.Tensor, side: int) -> torch.Tensor:
    """(C, H, W) uint8 centre-cropped to a square and resized to side x side (antialiased)."""
    h, w = img.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = img[:, top : top + s, left : left + s].float()[None]
    if s != side:
        crop = F.interpolate(crop, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return crop[0].round().clamp(0, 255).to(torch.uint8)


def load(cfg: DataConfig) -> FaceDataset:
    """The folder's images (N, 3, S, S) uint8, S = cfg.image_size; labels into SEVEN (or all eight classes
    where a contempt folder exists)."""
    if cfg.root is None:
        raise DataNotFoundError("imagefolder needs --data-root: a folder with one subfolder per emotion")
    root = Path(os.path.abspath(Path(cfg.root).expanduser()))
    if not root.is_dir():
        raise DataNotFoundError(f"image folder not found: {root}")
    if cfg.image_size < 16:
        raise ConfigError(f"image_size must be at least 16 pixels, got {cfg.image_size}")
    names = read_class_map(cfg.class_map) if cfg.class_map else SYNONYMS
    paths, emotions, split_names = list_images(root, names)
    classes = CANONICAL if Emotion.CONTEMPT in emotions else SEVEN
    files = paths + ([Path(cfg.class_map)] if cfg.class_map else [])
    options = {"size": cfg.image_size, "carve": cfg.carve, "val_fraction": cfg.val_fraction, "seed": cfg.split_seed,
               "class_map": str(cfg.class_map)}  # fmt: skip

    def build() -> FaceDataset:
        images = torch.empty(len(paths), 3, cfg.image_size, cfg.image_size, dtype=torch.uint8)

        def work(i: int) -> None:
            images[i] = square(decode_one(paths[i], 3), cfg.image_size)

        with ThreadPoolExecutor(4) as pool:  # decoding releases the GIL
            list(pool.map(work, range(len(paths))))
        labels = torch.tensor([classes.index(e) for e in emotions], dtype=torch.long)
        split = torch.tensor([SPLITS.index(s) for s in split_names], dtype=torch.long)
        split = _carved(split, labels, cfg)
        return FaceDataset(
            name="imagefolder", classes=classes, images=images, labels=labels, split=split,
            ids=[str(p.relative_to(root)) for p in paths],
            meta={"source": str(root), "layout": "splits" if set(split_names) != {"test"} else "flat",
                  "class_folders": sorted({p.parent.name for p in paths}), **options},
        )  # fmt: skip

    return cached("imagefolder", fingerprint(files, options), build, cfg.cache)


def _carved(split: torch.Tensor, labels: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    """Validation carved out of train where there is a train split but no val; with cfg.carve, a flat folder
    (every image in test) becomes stratified train / val / test."""
    f = cfg.val_fraction
    train, val, test = (SPLITS.index(s) for s in SPLITS)
    if (split == train).any() and not (split == val).any():
        idx = (split == train).nonzero().flatten()
        split[idx] = stratified_split(labels[idx], (1 - f, f), cfg.split_seed)
    elif cfg.carve and (split == test).all():
        if not 0 < f < 0.5:
            raise ConfigError(f"carving train/val/test needs 0 < val_fraction < 0.5, got {f}")
        split = stratified_split(labels, (1 - 2 * f, f, f), cfg.split_seed)
    return split
