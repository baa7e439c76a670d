"""FER+ (Barsoum et al. 2016): FER2013 faces relabelled by 10 taggers each.

Two layouts:
- CSV: `fer2013.csv` (pixels) + `fer2013new.csv` (votes), row i of one is row i of the other.
  The folders' rule holds for both layouts: one face per image name. Rows without a name (FER+ saw no face)
  have no PNG, and four names occur twice in `fer2013new.csv` (three in Training, one in PrivateTest) where
  the PNG holds the later row's pixels; the csv layout leaves out the unnamed rows and the earlier row of
  each pair, so both give the same faces with the same votes (`data check` lists the repeated rows).
- Folders: Microsoft's `FER2013Train/`, `FER2013Valid/`, `FER2013Test/` PNGs, each with a
  header-less `label.csv`; votes come from `fer2013new.csv` when it sits beside them
  (the current labelling; the folders' label.csv files are an older one).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

from facexai.config import DataConfig
from facexai.data.base import SPLITS, FaceDataset, labels_from_votes
from facexai.data.cache import cached, fingerprint, tree_files
from facexai.data.fer2013 import read_csv  # one parser for both data sets
from facexai.data.images import decode_many
from facexai.emotions import classes_for
from facexai.errors import DataNotFoundError, EmptySplitError, MalformedDataError

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
NEW_HEADER = ["Usage", "Image name", *VOTE_COLUMNS]
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FOLDERS = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}


def read_votes_csv(path: Path) -> list[tuple[str, str, list[int]]]:
    """Rows of fer2013new.csv as (usage, image name, 10 vote counts), in file order."""
    rows = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != NEW_HEADER:
            raise MalformedDataError(f"{path}: header must be {','.join(NEW_HEADER)}, got {header}")
        for line, row in enumerate(reader, start=2):
            if len(row) != len(NEW_HEADER) or row[0] not in USAGE:
                raise MalformedDataError(
                    f"{path}:{line}: expected Usage (Training/PublicTest/PrivateTest), image name and 10 vote counts"
                )
            rows.append((row[0], row[1].strip(), _votes(row[2:], path, line)))
    return rows


def _votes(cells: list[str], path: Path, line: int) -> list[int]:
    try:
        votes = [int(c) for c in cells]
    except ValueError:
        raise MalformedDataError(f"{path}:{line}: vote counts must be whole numbers, got {cells}") from None
    if min(votes) < 0:
        raise MalformedDataError(f"{path}:{line}: negative vote count in {cells}")
    return votes


def read_label_csv(path: Path) -> dict[str, list[int]]:
    """A folder's header-less label.csv: image name -> 10 vote counts."""
    out = {}
    with open(path, newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if len(row) != 12:
                raise MalformedDataError(f"{path}:{line}: expected image name, face box and 10 vote counts")
            out[row[0].strip()] = _votes(row[2:], path, line)
    return out


def read_pixels_csv(path: Path) -> tuple[torch.Tensor, list[str]]:
    """fer2013.csv -> images (N, 1, 48, 48) uint8 and the Usage of each row."""

    _, images, usage = read_csv(path)
    return images, usage


def barsoum_majority(raw: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Microsoft FERPlus' majority mode on (N, 10) vote counts: drop single votes as outliers,
    then keep an image only if one of the first `k` emotions has more than half of all
    remaining votes (unknown and NF included in the total). Returns (labels, keep)."""
    votes = torch.where(raw <= 1, 0, raw)
    top, labels = votes.max(1)
    keep = (top > votes.sum(1) / 2) & (labels < k)
    return labels.clamp(max=k - 1), keep


def _load_csv_layout(csv_path: Path, new_path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    images, usage = read_pixels_csv(csv_path)
    rows = read_votes_csv(new_path)
    if len(rows) != len(usage):
        raise MalformedDataError(
            f"{new_path}: has {len(rows)} rows, {csv_path} has {len(usage)}; they join by position"
        )
    for i, (u, (nu, _, _)) in enumerate(zip(usage, rows, strict=True)):
        if u != nu:
            raise MalformedDataError(f"{new_path}:{i + 2}: Usage {nu!r} but {csv_path} row {i + 2} says {u!r}")
    # one face per name, as in the folders: rows without a name (FER+ found no face) have no PNG, and of a name
    # used twice in a split the PNG holds the later row's pixels
    last = _last_rows(rows)
    keep = [i for i, (u, name, _) in enumerate(rows) if name and last[(u, name)] == i]
    votes = torch.tensor([rows[i][2] for i in keep], dtype=torch.float32)  # (N, 10)
    split = torch.tensor([SPLITS.index(USAGE[usage[i]]) for i in keep])
    return images[keep], votes, split, [f"row:{i}" for i in keep]


def _last_rows(rows: list[tuple[str, str, list[int]]]) -> dict[tuple[str, str], int]:
    """(usage, image name) -> index of its last row in fer2013new.csv."""
    return {(u, name): i for i, (u, name, _) in enumerate(rows) if name}


def repeated_names(new_path: Path) -> list[dict[str, Any]]:
    """fer2013new.csv rows whose image name a later row of the same split uses again: the folders hold one PNG
    per name (the later row's pixels), so both layouts keep only the later row. Lines are 1-based file lines."""
    rows = read_votes_csv(new_path)
    last = _last_rows(rows)
    return [{"line": i + 2, "name": name, "kept_line": last[(u, name)] + 2}
            for i, (u, name, _) in enumerate(rows) if name and last[(u, name)] != i]  # fmt: skip


def _load_folder_layout(
    root: Path, new_path: Path | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    current: dict[tuple[str, str], list[int]] = {}
    if new_path is not None:
        # later rows win: where a name occurs twice the PNG holds the later row's pixels
        current = {(USAGE[u], name): v for u, name, v in read_votes_csv(new_path) if name}
    paths, votes, split, ids = [], [], [], []
    for folder, part in FOLDERS.items():
        label_path = root / folder / "label.csv"
        if not label_path.is_file():
            raise DataNotFoundError(f"FER+ split file not found: {label_path}")
        labels = read_label_csv(label_path)
        for name, old in labels.items():
            if new_path is not None and (part, name) not in current:
                raise MalformedDataError(f"{new_path}: no {part} row for {folder}/{name}")
            paths.append(root / folder / name)
            votes.append(current[(part, name)] if new_path is not None else old)
            split.append(SPLITS.index(part))
            ids.append(f"{folder}/{name}")
    images = decode_many(paths, channels=1, size=(48, 48))
    return images, torch.tensor(votes, dtype=torch.float32), torch.tensor(split), ids


def _sources(root: Path) -> tuple[str, list[Path]]:
    if not root.exists():
        raise DataNotFoundError(f"FER+ data root not found: {root}")
    if root.is_file():
        root = root.parent
    new_path = root / "fer2013new.csv"
    if (root / "fer2013.csv").is_file():
        if not new_path.is_file():
            raise DataNotFoundError(f"FER+ votes not found: {new_path} (needed beside fer2013.csv)")
        return "csv", [root / "fer2013.csv", new_path]
    if any((root / f).is_dir() for f in FOLDERS):
        missing = [f for f in FOLDERS if not (root / f).is_dir()]
        if missing:
            raise DataNotFoundError(f"FER+ split folder not found: {root / missing[0]}")
        files = [p for f in FOLDERS for p in tree_files(root / f, (".png", ".csv"))]
        return "folders", files + ([new_path] if new_path.is_file() else [])
    raise DataNotFoundError(
        f"no FER+ data in {root}: expected fer2013.csv + fer2013new.csv, or FER2013Train/ FER2013Valid/ FER2013Test/"
    )


def load(cfg: DataConfig) -> FaceDataset:
    """FER+ with votes turned into labels by `cfg.label_mode` over `cfg.classes` emotions."""
    if cfg.root is None:
        raise DataNotFoundError("FER+ needs --data-root: a folder with FER2013Train/ ... or fer2013.csv")
    root = Path(cfg.root).expanduser()
    layout, files = _sources(root)
    classes = classes_for(cfg.classes)
    labels_from_votes(torch.zeros(1, 1), cfg.label_mode)  # validate the mode before any work
    options = {"layout": layout, "classes": cfg.classes, "label_mode": cfg.label_mode}

    def build() -> FaceDataset:
        base = root.parent if root.is_file() else root
        if layout == "csv":
            images, raw, split, ids = _load_csv_layout(base / "fer2013.csv", base / "fer2013new.csv")
            votes_from = "fer2013new.csv"
        else:
            new_path = base / "fer2013new.csv"
            images, raw, split, ids = _load_folder_layout(base, new_path if new_path.is_file() else None)
            votes_from = "fer2013new.csv" if new_path.is_file() else "label.csv"
        repeated = repeated_names(base / "fer2013new.csv") if votes_from == "fer2013new.csv" else []
        found = {s: int((split == i).sum()) for i, s in enumerate(SPLITS)}
        counts = raw[:, : len(classes)]  # unknown, NF (and contempt for 7 classes) are dropped
        no_votes = counts.sum(1) == 0
        dropped = {f"no votes for the {len(classes)} classes": int(no_votes.sum())}
        if cfg.label_mode == "majority":
            labels, keep = barsoum_majority(raw, len(classes))
            dropped["no majority (Barsoum et al. rule)"] = int((~keep & ~no_votes).sum())
        else:
            labels, keep = labels_from_votes(counts, cfg.label_mode)
        dist = counts / counts.sum(1, keepdim=True).clamp(min=1)
        ds = FaceDataset(
            name="ferplus",
            classes=classes,
            images=images,
            labels=labels,
            split=split,
            ids=ids,
            votes=dist if cfg.label_mode == "soft" else None,
            meta={
                "source": str(base),
                "layout": layout,
                "votes_from": votes_from,
                **options,
                "found": found,
                "repeated_names": repeated,  # rows left out in the csv layout (the folders hold one face per name)
                "dropped": dropped,
                "dropped_by_split": {s: int((~keep & (split == i)).sum()) for i, s in enumerate(SPLITS)},
            },
        ).select(keep)
        for s in SPLITS:
            if not (ds.split == SPLITS.index(s)).any():
                raise EmptySplitError(f"FER+ {s} split is empty after dropping images in {base}")
        return ds

    # "names": the rule for repeated names changed what the csv layout keeps; older caches are rebuilt
    return cached("ferplus", fingerprint(files, options | {"names": "one face each"}), build, cfg.cache)


__all__ = ["load", "read_votes_csv", "read_label_csv"]
