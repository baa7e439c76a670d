"""FER+ loader: both layouts on tiny files in the real formats, vote handling, bad input, cache, real label files."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import shared_data
from formats import (
    cache_files,
    random_image,
    touch,
    votes,
    write_fer2013_csv,
    write_ferplus_folders,
    write_ferplus_new_csv,
    write_image,
)
from typer.testing import CliRunner

from facexai.cli import app
from facexai.config import DataConfig
from facexai.data import ferplus, load_dataset
from facexai.data.images import decode_many
from facexai.emotions import CANONICAL, SEVEN, Emotion
from facexai.errors import ConfigError, DataNotFoundError, EmptySplitError, MalformedDataError

E = Emotion
USAGE_SPLIT = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}

# (Usage, image name, votes, FER2013 emotion) per fer2013.csv row; chosen so every vote rule shows
ROWS = [
    ("Training", "fer0000000.png", votes(happiness=8, neutral=2), 3),  # clear majority: happiness
    ("Training", "", votes(NF=10), 6),  # not a face, no name (like the real 173): no votes, dropped
    ("PublicTest", "fer0000002.png", votes(neutral=4, sadness=3, anger=3), 6),  # plurality neutral, no majority
    ("PrivateTest", "fer0000003.png", votes(contempt=6, surprise=4), 5),  # 8: contempt; 7: surprise (4 of 4)
    ("Training", "fer0000004.png", votes(fear=5, unknown=5), 2),  # unknown votes ignored: fear 5 of 5
    ("PublicTest", "fer0000005.png", votes(anger=5, disgust=5), 0),  # tie: first in canonical order (anger)
    ("PrivateTest", "fer0000006.png", votes(sadness=10), 4),  # unanimous
    ("Training", "fer0000007.png", votes(anger=9), 0),  # 9 votes, like one real row
    ("PublicTest", "fer0000008.png", votes(surprise=6, happiness=4), 5),  # majority surprise: val never empties
]


def cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(dataset="ferplus", root=str(root), **kw)




def write_csv_layout(root: Path, rows=ROWS) -> Path:
    """fer2013.csv (pixels of row i = random_image(i)) + fer2013new.csv, side by side."""
    write_fer2013_csv(root / "fer2013.csv", [(emo, random_image(i), u) for i, (u, _, _, emo) in enumerate(rows)])
    write_ferplus_new_csv(root / "fer2013new.csv", [(u, name, v) for u, name, v, _ in rows])
    return root


def write_folder_layout(root: Path, rows=ROWS, new_csv: bool = False, old=lambda v: v) -> Path:
    """The three PNG folders (named rows only, image of row i = random_image(i)); label.csv votes = old(votes)."""
    folders = {"FER2013Train": [], "FER2013Valid": [], "FER2013Test": []}
    by_usage = dict(zip(("Training", "PublicTest", "PrivateTest"), folders, strict=True))
    for i, (u, name, v, _) in enumerate(rows):
        if name:
            folders[by_usage[u]].append((name, old(v), random_image(i)))
    write_ferplus_folders(root, folders)
    if new_csv:
        write_ferplus_new_csv(root / "fer2013new.csv", [(u, name, v) for u, name, v, _ in rows])
    return root


# ---------------------------------------------------------------- CSV layout


def test_csv_layout_soft_seven_classes(tmp_path):
    ds = load_dataset(cfg(write_csv_layout(tmp_path)))
    assert ds.name == "ferplus" and ds.classes == SEVEN
    kept = [0, 2, 3, 4, 5, 6, 7, 8]  # row 1 has no name: no face (the folders have no PNG for it)
    assert ds.ids == [f"row:{i}" for i in kept]
    assert ds.images.shape == (8, 1, 48, 48) and ds.images.dtype == torch.uint8
    for k, i in enumerate(kept):
        assert torch.equal(ds.images[k], random_image(i)), f"row {i}"
    assert ds.split.tolist() == [USAGE_SPLIT[ROWS[i][0]] for i in kept]
    assert ds.votes.shape == (8, 7) and torch.allclose(ds.votes.sum(1), torch.ones(8))
    assert ds.votes[0].tolist() == pytest.approx([0.2, 0.8, 0, 0, 0, 0, 0])
    assert ds.votes[2].tolist() == pytest.approx([0, 0, 1, 0, 0, 0, 0])  # contempt dropped: surprise 4 of 4
    assert ds.votes[3].tolist() == pytest.approx([0, 0, 0, 0, 0, 0, 1])  # unknown dropped: fear 5 of 5
    assert [ds.classes[i] for i in ds.labels] == [E.HAPPINESS, E.NEUTRAL, E.SURPRISE, E.FEAR, E.ANGER, E.SADNESS,
                                                  E.ANGER, E.SURPRISE]  # fmt: skip
    assert ds.meta["layout"] == "csv" and ds.meta["votes_from"] == "fer2013new.csv"
    assert ds.meta["found"] == {"train": 3, "val": 3, "test": 2}  # as the folders find
    assert ds.meta["dropped"]["no votes for the 7 classes"] == 0


def test_csv_layout_majority_eight_classes(tmp_path):
    ds = load_dataset(cfg(write_csv_layout(tmp_path), classes=8, label_mode="majority"))
    assert ds.classes == CANONICAL and ds.votes is None
    # Barsoum et al.: unknown/NF votes count in the total, so row 4 (fear 5, unknown 5) has no majority either
    assert ds.ids == ["row:0", "row:3", "row:6", "row:7", "row:8"]  # rows 2, 4, 5: no majority
    assert [ds.classes[i] for i in ds.labels] == [E.HAPPINESS, E.CONTEMPT, E.SADNESS, E.ANGER, E.SURPRISE]
    assert ds.meta["dropped"] == {"no votes for the 8 classes": 0, "no majority (Barsoum et al. rule)": 3}


def test_majority_drops_single_votes_and_an_unknown_winner():
    from facexai.data.ferplus import barsoum_majority

    raw = torch.tensor([votes(happiness=4, neutral=1, sadness=1, anger=1, fear=1), votes(unknown=6, neutral=4)]).float()
    labels, keep = barsoum_majority(raw, 8)
    assert keep.tolist() == [True, False]  # single votes are outliers: happiness has 4 of 4; unknown wins row 2
    assert labels[0] == 1


def test_plurality_takes_the_first_class_on_ties(tmp_path):
    ds = load_dataset(cfg(write_csv_layout(tmp_path), label_mode="plurality"))
    assert ds.votes is None and len(ds) == 8
    labels = dict(zip(ds.ids, (ds.classes[i] for i in ds.labels), strict=True))
    assert labels["row:2"] == E.NEUTRAL and labels["row:5"] == E.ANGER


def test_soft_eight_classes_keeps_contempt_votes(tmp_path):
    ds = load_dataset(cfg(write_csv_layout(tmp_path), classes=8))
    assert ds.votes.shape == (8, 8)
    assert ds.votes[2].tolist() == pytest.approx([0, 0, 0.4, 0, 0, 0, 0, 0.6])
    assert ds.classes[ds.labels[2]] == E.CONTEMPT


def test_a_split_emptied_by_dropping_is_an_error(tmp_path):
    rows = [r for r in ROWS if r[0] != "PublicTest"] + [("PublicTest", "fer0000009.png", votes(anger=5, fear=5), 0)]
    write_csv_layout(tmp_path, rows)
    assert len(load_dataset(cfg(tmp_path))) == 6  # soft keeps the tie
    with pytest.raises(EmptySplitError, match="val"):
        load_dataset(cfg(tmp_path, label_mode="majority"))


# ---------------------------------------------------------------- folder layout

# folders list label.csv order: Train rows 0, 4, 7; Valid 2, 5, 8; Test 3, 6 (row 1 has no name, so no PNG)
FOLDER_ROWS = [0, 4, 7, 2, 5, 8, 3, 6]
FOLDER_IDS = [f"{f}/fer{i:07d}.png" for f, i in zip(["FER2013Train"] * 3 + ["FER2013Valid"] * 3 + ["FER2013Test"] * 2,
                                                    FOLDER_ROWS, strict=True)]  # fmt: skip
FOLDER_LABELS = [E.HAPPINESS, E.FEAR, E.ANGER, E.NEUTRAL, E.ANGER, E.SURPRISE, E.SURPRISE, E.SADNESS]


def test_folder_layout_votes_from_label_csv(tmp_path):
    ds = load_dataset(cfg(write_folder_layout(tmp_path)))
    assert ds.meta["layout"] == "folders" and ds.meta["votes_from"] == "label.csv"
    assert ds.meta["found"] == {"train": 3, "val": 3, "test": 2}
    assert ds.ids == FOLDER_IDS
    for k, i in enumerate(FOLDER_ROWS):
        assert torch.equal(ds.images[k], random_image(i)), ds.ids[k]  # PNG: exact
    assert ds.split.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert [ds.classes[i] for i in ds.labels] == FOLDER_LABELS


def test_folder_layout_prefers_fer2013new_votes(tmp_path):
    """label.csv is an older labelling: with fer2013new.csv beside the folders, its votes win."""
    stale = lambda v: votes(disgust=10)  # noqa: E731
    write_folder_layout(tmp_path, new_csv=True, old=stale)
    ds = load_dataset(cfg(tmp_path))
    assert ds.meta["votes_from"] == "fer2013new.csv"
    assert ds.ids == FOLDER_IDS and [ds.classes[i] for i in ds.labels] == FOLDER_LABELS
    assert ds.votes[0].tolist() == pytest.approx([0.2, 0.8, 0, 0, 0, 0, 0])
    assert ds.meta["found"] == {"train": 3, "val": 3, "test": 2}


def test_folder_layout_duplicate_name_takes_the_later_row(tmp_path):
    """Like fer0033120 in the real file: a name twice in fer2013new.csv, the PNG is the later row's."""
    rows = ROWS + [("PrivateTest", "fer0000006.png", votes(surprise=7, fear=3), 5)]
    write_folder_layout(tmp_path, rows[:-1])
    write_ferplus_new_csv(tmp_path / "fer2013new.csv", [(u, n, v) for u, n, v, _ in rows])
    ds = load_dataset(cfg(tmp_path))
    k = ds.ids.index("FER2013Test/fer0000006.png")
    assert ds.classes[ds.labels[k]] == E.SURPRISE and ds.votes[k].tolist() == pytest.approx([0, 0, 0.7, 0, 0, 0, 0.3])


# ---------------------------------------------------------------- bad input


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


def _drop_last_line(path: Path) -> None:
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:-1]))


def _csv_case(edit):
    def make(p: Path) -> Path:
        write_csv_layout(p)
        edit(p)
        return p

    return make


def _folder_case(edit, new_csv: bool = False):
    def make(p: Path) -> Path:
        write_folder_layout(p, new_csv=new_csv)
        edit(p)
        return p

    return make


BAD = {
    "missing root": (lambda p: p / "absent", DataNotFoundError, "absent"),
    "nothing there": (lambda p: p, DataNotFoundError, "FER2013Train"),
    "no fer2013new beside csv": (_csv_case(lambda p: os.remove(p / "fer2013new.csv")), DataNotFoundError,
                                 "fer2013new.csv"),
    "new header": (_csv_case(lambda p: _edit(p / "fer2013new.csv", "Usage,", "usage,")), MalformedDataError,
                   "fer2013new.csv.*header"),
    "new vote text": (_csv_case(lambda p: _edit(p / "fer2013new.csv", "png,4,", "png,four,")), MalformedDataError,
                      "fer2013new.csv:4"),
    "new vote negative": (_csv_case(lambda p: _edit(p / "fer2013new.csv", "png,4,", "png,-4,")), MalformedDataError,
                          "fer2013new.csv:4.*negative"),
    "new usage": (_csv_case(lambda p: _edit(p / "fer2013new.csv", "PublicTest,", "Validation,")), MalformedDataError,
                  "fer2013new.csv:4"),
    "usage disagrees": (_csv_case(lambda p: _edit(p / "fer2013new.csv", "PublicTest,", "PrivateTest,")),
                        MalformedDataError, "fer2013new.csv:4"),
    "row counts differ": (_csv_case(lambda p: _drop_last_line(p / "fer2013new.csv")),
                          MalformedDataError, "join by position"),
    "csv pixels": (_csv_case(lambda p: _edit(p / "fer2013.csv", ",Training", " 7,Training")), MalformedDataError,
                   r"fer2013\.csv, line 2"),
    "missing folder": (_folder_case(lambda p: os.rename(p / "FER2013Valid", p / "valid")), DataNotFoundError,
                       "FER2013Valid"),
    "missing label.csv": (_folder_case(lambda p: os.remove(p / "FER2013Test" / "label.csv")), DataNotFoundError,
                          "FER2013Test/label.csv"),
    "label.csv fields": (_folder_case(lambda p: _edit(p / "FER2013Train" / "label.csv", '"(0, 0, 48, 48)",', "")),
                         MalformedDataError, "FER2013Train/label.csv:1"),
    "missing png": (_folder_case(lambda p: os.remove(p / "FER2013Train" / "fer0000004.png")), DataNotFoundError,
                    "fer0000004.png"),
    "undecodable png": (_folder_case(lambda p: (p / "FER2013Test" / "fer0000006.png").write_bytes(b"\x89PNG junk")),
                        MalformedDataError, "fer0000006.png"),
    "wrong size png": (_folder_case(lambda p: write_image(p / "FER2013Test" / "fer0000006.png", random_image(0, 64))),
                       MalformedDataError, "fer0000006.png.*48x48"),
    "name not in fer2013new": (_folder_case(lambda p: _edit(p / "fer2013new.csv", "fer0000005.png", "fer0000050.png"),
                                            new_csv=True), MalformedDataError, "fer0000005.png"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_raises_with_path_and_caches_nothing(tmp_path, case):
    make, error, pattern = BAD[case]
    root = make(tmp_path)
    with pytest.raises(error, match=pattern) as info:
        load_dataset(cfg(root))
    assert str(tmp_path) in str(info.value)
    assert cache_files() == []


@pytest.mark.parametrize("change", [{"label_mode": "vote"}, {"classes": 6}])
def test_bad_options_are_config_errors(tmp_path, change):
    with pytest.raises(ConfigError):
        load_dataset(cfg(write_csv_layout(tmp_path), **change))
    assert cache_files() == []


# ---------------------------------------------------------------- cache


def test_cache_reused_when_unchanged_and_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    write_folder_layout(tmp_path, new_csv=True)
    first = load_dataset(cfg(tmp_path))
    calls = []

    def counting(paths, *a, **k):
        calls.append(len(paths))
        return decode_many(paths, *a, **k)

    monkeypatch.setattr(ferplus, "decode_many", counting)
    second = load_dataset(cfg(tmp_path))
    assert calls == [] and torch.equal(first.images, second.images) and torch.equal(first.votes, second.votes)
    touch(tmp_path / "fer2013new.csv")
    load_dataset(cfg(tmp_path))
    assert calls == [8]
    touch(tmp_path / "FER2013Valid" / "label.csv")
    load_dataset(cfg(tmp_path))
    assert calls == [8, 8]
    load_dataset(cfg(tmp_path, label_mode="majority"))  # another label mode: another cache entry
    assert calls == [8, 8, 8]
    assert len([f for f in cache_files() if f.suffix == ".pt"]) == 4


# ---------------------------------------------------------------- real data (skipped without ../shared/data)

REAL_FOLDERS = {"FER2013Train": 28_558, "FER2013Valid": 3_579, "FER2013Test": 3_573}


def test_real_label_files_and_folders_before_dropping():
    """Counted from label.csv and the folder listings (decoding 35,710 PNGs would take ~15 s)."""
    root = shared_data("ferplus")
    for folder, n in REAL_FOLDERS.items():
        labels = ferplus.read_label_csv(root / folder / "label.csv")
        pngs = {e.name for e in os.scandir(root / folder) if e.name.endswith(".png")}
        assert len(labels) == len(pngs) == n and set(labels) == pngs, folder
        assert all(len(v) == 10 for v in labels.values())


def test_real_fer2013new_rows_and_join():
    root = shared_data("ferplus")
    rows = ferplus.read_votes_csv(root / "fer2013new.csv")
    assert len(rows) == 35_887
    assert Counter(u for u, _, _ in rows) == {"Training": 28_709, "PublicTest": 3_589, "PrivateTest": 3_589}
    unnamed = [v for _, name, v in rows if not name]
    assert len(unnamed) == 173 and all(v == votes(NF=10) for v in unnamed)
    names = Counter(name for _, name, _ in rows if name)
    assert sorted(n for n, c in names.items() if c > 1) == sorted(
        ["fer0006953.png", "fer0011785.png", "fer0008403.png", "fer0033120.png"]
    )
    assert Counter(sum(v) for _, _, v in rows) == {10: 35_886, 9: 1}
    # every PNG has a row of the same Usage; 1,602 of them carry newer votes than label.csv
    current = {(u, name): v for u, name, v in rows if name}
    differ = 0
    for (folder, _), usage in zip(REAL_FOLDERS.items(), ("Training", "PublicTest", "PrivateTest"), strict=True):
        for name, old in ferplus.read_label_csv(root / folder / "label.csv").items():
            differ += current[usage, name] != old
    assert differ == 1_602


def test_real_files_load_through_the_folder_layout(tmp_path):
    """The loader on the real formats: 40 real PNGs per folder with their real label.csv lines and fer2013new.csv."""
    real = shared_data("ferplus")
    for folder in REAL_FOLDERS:
        (tmp_path / folder).mkdir()
        lines = (real / folder / "label.csv").read_text().splitlines()[:40]
        (tmp_path / folder / "label.csv").write_text("".join(line + "\n" for line in lines))
        for line in lines:
            name = line.split(",", 1)[0]
            os.symlink(real / folder / name, tmp_path / folder / name)
    os.symlink(real / "fer2013new.csv", tmp_path / "fer2013new.csv")
    ds = load_dataset(cfg(tmp_path, classes=8, label_mode="plurality"))
    assert ds.meta["found"] == {"train": 40, "val": 40, "test": 40}
    assert ds.meta["votes_from"] == "fer2013new.csv"
    assert ds.images.shape[1:] == (1, 48, 48) and len(ds) == 120 - sum(ds.meta["dropped"].values())
    k = ds.ids.index("FER2013Train/fer0000000.png")  # fer2013new.csv row 2: neutral 4, sadness 1, anger 3, disgust 2
    assert ds.classes[ds.labels[k]] == E.NEUTRAL


def test_both_layouts_give_the_same_faces_when_a_name_is_used_twice(tmp_path):
    """fer2013new.csv names a Training and a PrivateTest face twice (as rows 5274 ... and 33200 of the real file);
    the folders hold one PNG per name with the later row's pixels, so the csv layout keeps the later row too."""
    rows = ROWS + [
        ("Training", "fer0000000.png", votes(sadness=7, neutral=3), 4),  # repeats row 0's name
        ("PrivateTest", "fer0000006.png", votes(surprise=7, fear=3), 5),  # repeats row 6's name
    ]
    csv_root, folder_root = tmp_path / "csv", tmp_path / "folders"
    write_csv_layout(csv_root, rows)
    folders = {"FER2013Train": [], "FER2013Valid": [], "FER2013Test": []}
    by_usage = dict(zip(("Training", "PublicTest", "PrivateTest"), folders, strict=True))
    last = {(u, name): i for i, (u, name, _, _) in enumerate(rows) if name}
    for (u, name), i in last.items():
        folders[by_usage[u]].append((name, rows[i][2], random_image(i)))  # the PNG holds the later row's pixels
    write_ferplus_folders(folder_root, folders)
    write_ferplus_new_csv(folder_root / "fer2013new.csv", [(u, n, v) for u, n, v, _ in rows])
    a, b = load_dataset(cfg(csv_root)), load_dataset(cfg(folder_root))
    assert a.meta["found"] == b.meta["found"] == {"train": 3, "val": 3, "test": 2}
    def faces(d):
        return sorted(zip(d.split.tolist(), (i.numpy().tobytes() for i in d.images), d.votes.tolist(), strict=True))

    assert faces(a) == faces(b)
    assert a.meta["repeated_names"] == b.meta["repeated_names"] == [
        {"line": 2, "name": "fer0000000.png", "kept_line": 11},
        {"line": 8, "name": "fer0000006.png", "kept_line": 12},
    ]
    result = CliRunner().invoke(app, ["data", "check", "ferplus", "--data-root", str(csv_root)])
    assert result.exit_code == 0, result.output
    assert "names used twice in fer2013new.csv: line 2 (fer0000000.png; line 11 kept)" in result.stdout
