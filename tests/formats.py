"""Tiny files in the exact formats of the real data sets (see ../shared/data/README.md), for tests.

Every writer creates parent folders and returns what it wrote, so a test reads as the layout it builds.
Images: constant-grey pictures survive JPEG (decode within a grey level or two), so JPEG layouts are
checked by value; random pictures are for lossless formats (CSV pixels, PNG) and checked exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision.io import encode_jpeg, write_file, write_png

FER2013_HEADER = "emotion,pixels,Usage"
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
FERPLUS_NEW_HEADER = "Usage,Image name," + ",".join(VOTE_COLUMNS)
FERPLUS_FACE_BOX = '"(0, 0, 48, 48)"'  # as in the real label.csv files
RAFDB_LABEL_FILE = Path("basic") / "EmoLabel" / "list_patition_label.txt"
RAFDB_ALIGNED = Path("basic") / "Image" / "aligned"

Image = torch.Tensor | np.ndarray | int  # (C, H, W) / (H, W) pixels, or one grey value for a flat picture


# ---------------------------------------------------------------- pictures


def flat_image(value: int, size: int = 48, channels: int = 1) -> torch.Tensor:
    """(C, size, size) uint8, every pixel `value`: identifiable after JPEG."""
    return torch.full((channels, size, size), value, dtype=torch.uint8)


def random_image(seed: int, size: int = 48, channels: int = 1) -> torch.Tensor:
    """(C, size, size) uint8 noise from `seed`: for lossless formats, compared exactly."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (channels, size, size), generator=gen, dtype=torch.uint8)


def as_image(img: Image, size: int = 48, channels: int = 1) -> torch.Tensor:
    """(C, H, W) uint8 from a tensor, an array or a grey value."""
    if isinstance(img, int):
        return flat_image(img, size, channels)
    t = torch.as_tensor(np.asarray(img), dtype=torch.uint8)
    return t.reshape(1, *t.shape) if t.ndim == 2 else t


def write_image(path: Path, img: Image, size: int = 48, channels: int = 1, quality: int = 95) -> Path:
    """PNG or JPEG by the file's suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = as_image(img, size, channels)
    if path.suffix.lower() == ".png":
        write_png(t, str(path))
    else:
        write_file(str(path), encode_jpeg(t, quality=quality))
    return path


# ---------------------------------------------------------------- FER2013


def pixels_text(img: Image) -> str:
    """The CSV's pixel field: 2304 space-separated grey values, row-major."""
    return " ".join(str(v) for v in as_image(img).flatten().tolist())


def write_fer2013_csv(
    path: Path, rows: Iterable[tuple[int | str, Image | str, str]], header: str = FER2013_HEADER, newline: str = "\n"
) -> Path:
    """fer2013.csv: `emotion,pixels,Usage` rows; a str pixel field is written verbatim (for broken rows)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header]
    for emotion, pixels, usage in rows:
        lines.append(f"{emotion},{pixels if isinstance(pixels, str) else pixels_text(pixels)},{usage}")
    path.write_bytes((newline.join(lines) + newline).encode())
    return path


def write_fer2013_folders(root: Path, files: Iterable[tuple[str, Image]]) -> list[Path]:
    """The image-folder variant: `(relative path, picture)` pairs such as ("train/angry/Training_1.jpg", 40).

    Real layout: train/<class>/Training_*.jpg and test/<class>/{PublicTest,PrivateTest}_*.jpg,
    classes angry disgust fear happy neutral sad surprise, 48x48 grey JPEG.
    """
    return [write_image(Path(root) / rel, img) for rel, img in files]


# ---------------------------------------------------------------- FER+


def votes(**counts: int) -> list[int]:
    """10 vote counts in file order, e.g. votes(happiness=8, NF=2)."""
    unknown = set(counts) - set(VOTE_COLUMNS)
    if unknown:
        raise ValueError(f"unknown vote columns {sorted(unknown)}")
    return [counts.get(c, 0) for c in VOTE_COLUMNS]


def write_ferplus_new_csv(path: Path, rows: Iterable[tuple[str, str, Sequence[int]]]) -> Path:
    """fer2013new.csv: `Usage,Image name,<10 vote columns>`, one row per fer2013.csv row (name may be empty)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [FERPLUS_NEW_HEADER] + [f"{u},{name},{','.join(map(str, v))}" for u, name, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ferplus_folders(
    root: Path, folders: dict[str, Iterable[tuple[str, Sequence[int], Image]]], images: bool = True
) -> Path:
    """FER2013Train/ FER2013Valid/ FER2013Test/: PNGs plus a header-less label.csv per folder.

    folders: {"FER2013Train": [(name, 10 votes, picture), ...], ...}; label.csv lines are
    `fer0000000.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0,0` as in the real files.
    """
    root = Path(root)
    for folder, entries in folders.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        lines = []
        for name, v, img in entries:
            lines.append(f"{name},{FERPLUS_FACE_BOX},{','.join(map(str, v))}")
            if images:
                write_image(root / folder / name, img)
        (root / folder / "label.csv").write_text("".join(line + "\n" for line in lines))
    return root


# ---------------------------------------------------------------- RAF-DB


def write_rafdb_tree(root: Path, names_labels: Iterable[tuple[str, int]], size: int = 100, images: bool = True) -> Path:
    """RAF-DB basic: basic/EmoLabel/list_patition_label.txt and basic/Image/aligned/<stem>_aligned.jpg.

    Labels are RAF-DB's 1..7; the label file has no trailing newline, like the real one. Image i is a
    flat RGB picture of grey value 10 + 3 * (i % 80), so tests can tell images apart after JPEG.
    Returns root (the folder holding basic/).
    """
    root = Path(root)
    pairs = list(names_labels)
    label_file = root / RAFDB_LABEL_FILE
    label_file.parent.mkdir(parents=True, exist_ok=True)
    label_file.write_text("\n".join(f"{name} {label}" for name, label in pairs))
    (root / RAFDB_ALIGNED).mkdir(parents=True, exist_ok=True)
    if images:
        for i, (name, _) in enumerate(pairs):
            stem = name.rsplit(".", 1)[0]
            write_image(root / RAFDB_ALIGNED / f"{stem}_aligned.jpg", rafdb_value(i), size=size, channels=3)
    return root


def rafdb_value(i: int) -> int:
    """The grey value write_rafdb_tree gives image i."""
    return 10 + 3 * (i % 80)


# ---------------------------------------------------------------- the decoded-data cache


def cache_files() -> list[Path]:
    """Every file in the test's own data cache ($FACEXAI_CACHE, set per test by conftest)."""
    d = Path(os.environ["FACEXAI_CACHE"])
    return sorted(d.rglob("*")) if d.exists() else []


def touch(path: Path) -> None:
    """A new mtime, one second on, so the fingerprint changes even on coarse file systems."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
