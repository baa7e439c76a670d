"""FER2013 loader: both layouts on tiny files in the real formats, every bad input, the cache, the real folders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import shared_data
from formats import (
    cache_files,
    flat_image,
    pixels_text,
    random_image,
    touch,
    write_fer2013_csv,
    write_fer2013_folders,
    write_image,
)

from facexai.config import DataConfig
from facexai.data import fer2013, load_dataset
from facexai.data.base import SPLITS
from facexai.data.images import decode_many
from facexai.emotions import SEVEN, Emotion
from facexai.errors import ConfigError, DataNotFoundError, EmptySplitError, MalformedDataError

USAGES = ("Training", "PublicTest", "PrivateTest")
# FER2013 emotion index -> canonical index, written out by hand
CANON = {0: 4, 1: 5, 2: 6, 3: 1, 4: 3, 5: 2, 6: 0}  # Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral


def cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(dataset="fer2013", root=str(root), **kw)


def csv_rows(n: int = 14) -> list[tuple[int, torch.Tensor, str]]:
    """n rows: emotion i % 7, random picture seeded i, Usage cycling Training, PublicTest, PrivateTest."""
    return [(i % 7, random_image(i), USAGES[i % 3]) for i in range(n)]


FOLDER_FILES = [
    ("train/angry/Training_10.jpg", 20),
    ("train/happy/Training_11.jpg", 60),
    ("train/neutral/Training_12.jpg", 100),
    ("train/sad/Training_13.jpg", 140),
    ("test/surprise/PublicTest_20.jpg", 180),
    ("test/fear/PublicTest_21.jpg", 220),
    ("test/disgust/PrivateTest_30.jpg", 240),
]


# ---------------------------------------------------------------- CSV layout


def test_csv_layout_loads_exact_pixels_canonical_labels_official_split(tmp_path):
    rows = csv_rows()
    path = write_fer2013_csv(tmp_path / "fer2013.csv", rows)
    ds = load_dataset(cfg(path))
    assert ds.name == "fer2013" and ds.classes == SEVEN and ds.votes is None
    assert ds.images.shape == (14, 1, 48, 48) and ds.images.dtype == torch.uint8
    for i, (_, img, _) in enumerate(rows):
        assert torch.equal(ds.images[i], img), f"row {i}"
    assert ds.ids == [f"row:{i}" for i in range(14)]
    # by hand: row 0 emotion 0 Angry, row 3 Happy, row 4 Sad, row 5 Surprise, row 6 Neutral
    assert ds.classes[ds.labels[0]] == Emotion.ANGER
    assert ds.classes[ds.labels[1]] == Emotion.DISGUST
    assert ds.classes[ds.labels[2]] == Emotion.FEAR
    assert ds.classes[ds.labels[3]] == Emotion.HAPPINESS
    assert ds.classes[ds.labels[4]] == Emotion.SADNESS
    assert ds.classes[ds.labels[5]] == Emotion.SURPRISE
    assert ds.classes[ds.labels[6]] == Emotion.NEUTRAL
    assert ds.labels.tolist() == [CANON[i % 7] for i in range(14)]
    # Training -> train, PublicTest -> val, PrivateTest -> test
    assert ds.split.tolist() == [i % 3 for i in range(14)]
    assert ds.meta["layout"] == "csv" and ds.meta["split"] == "official" and ds.meta["source"] == str(path)
    assert ds.meta["found"] == {"Training": 5, "PublicTest": 5, "PrivateTest": 4}
    assert ds.meta["dropped"] == {}


def test_csv_layout_from_folder_crlf_and_trailing_blank_line(tmp_path):
    rows = csv_rows(6)
    write_fer2013_csv(tmp_path / "fer2013.csv", rows, newline="\r\n")
    with open(tmp_path / "fer2013.csv", "ab") as f:
        f.write(b"\r\n")
    ds = load_dataset(cfg(tmp_path))  # root = the folder holding fer2013.csv
    assert len(ds) == 6 and torch.equal(ds.images[5], rows[5][1])
    assert ds.meta["source"] == str(tmp_path / "fer2013.csv")


def test_read_csv_is_the_shared_parser(tmp_path):
    """FER+ reads fer2013.csv through read_csv: (canonical labels, (N, 1, 48, 48) images, raw Usage)."""
    rows = csv_rows(4)
    labels, images, usage = fer2013.read_csv(write_fer2013_csv(tmp_path / "fer2013.csv", rows))
    assert labels.tolist() == [CANON[i] for i in range(4)]
    assert images.shape == (4, 1, 48, 48) and images.dtype == torch.uint8
    assert usage == ["Training", "PublicTest", "PrivateTest", "Training"]


def test_csv_parser_handles_every_grey_value_and_zero_padding(tmp_path):
    img = torch.arange(2304).remainder(256).to(torch.uint8).reshape(1, 48, 48)  # 0..255 repeated
    text = pixels_text(img).replace("7 ", "007 ", 1)  # a zero-padded value still reads 7
    _, images, _ = fer2013.read_csv(write_fer2013_csv(tmp_path / "f.csv", [(0, text, "Training")]))
    assert torch.equal(images[0], img)


# ---------------------------------------------------------------- folder layout


def test_folder_layout_loads_by_class_folder_and_prefix(tmp_path):
    write_fer2013_folders(tmp_path, FOLDER_FILES)
    (tmp_path / "train" / "angry" / "notes.txt").write_text("not an image")
    ds = load_dataset(cfg(tmp_path))
    assert ds.images.shape == (7, 1, 48, 48) and ds.images.dtype == torch.uint8
    by_id = {i: k for k, i in enumerate(ds.ids)}
    assert set(by_id) == {rel for rel, _ in FOLDER_FILES}
    expect = {
        "train/angry/Training_10.jpg": (Emotion.ANGER, "train"),
        "train/happy/Training_11.jpg": (Emotion.HAPPINESS, "train"),
        "train/neutral/Training_12.jpg": (Emotion.NEUTRAL, "train"),
        "train/sad/Training_13.jpg": (Emotion.SADNESS, "train"),
        "test/surprise/PublicTest_20.jpg": (Emotion.SURPRISE, "val"),
        "test/fear/PublicTest_21.jpg": (Emotion.FEAR, "val"),
        "test/disgust/PrivateTest_30.jpg": (Emotion.DISGUST, "test"),
    }
    for rel, value in FOLDER_FILES:
        k = by_id[rel]
        assert (ds.classes[ds.labels[k]], SPLITS[ds.split[k]]) == expect[rel]
        assert (ds.images[k].int() - value).abs().max() <= 2, rel  # JPEG of a flat picture
    assert ds.meta["layout"] == "folders" and ds.meta["ignored_files"] == 1
    assert ds.meta["found"] == {"Training": 4, "PublicTest": 2, "PrivateTest": 1}


def test_list_folder_lists_without_decoding(tmp_path, monkeypatch):
    write_fer2013_folders(tmp_path, FOLDER_FILES)
    monkeypatch.setattr(fer2013, "decode_many", None)  # listing must not decode
    entries, ignored = fer2013.list_folder(tmp_path)
    assert ignored == 0
    assert [e.id for e in entries][:2] == ["train/angry/Training_10.jpg", "train/happy/Training_11.jpg"]
    assert Counter(e.usage for e in entries) == {"Training": 4, "PublicTest": 2, "PrivateTest": 1}
    assert all(e.path == tmp_path / e.id for e in entries)


# ---------------------------------------------------------------- seed-a


def test_seed_a_pools_and_resplits_70_20_10_stratified_and_deterministic(tmp_path):
    per_class = [40, 5, 30, 60, 25, 20, 20]  # 200 rows, imbalanced like FER2013
    emotions = [e for e, n in enumerate(per_class) for _ in range(n)]
    rows = [(e, flat_image(i % 256), USAGES[i % 4 % 3]) for i, e in enumerate(emotions)]
    path = write_fer2013_csv(tmp_path / "fer2013.csv", rows)
    a = load_dataset(cfg(path, split="seed-a", split_seed=0))
    assert [int((a.split == s).sum()) for s in range(3)] == [140, 40, 20]
    for e, n in enumerate(per_class):
        in_class = a.labels == CANON[e]
        for s, frac in enumerate((0.7, 0.2, 0.1)):
            assert abs(int((a.split[in_class] == s).sum()) - n * frac) <= 1, (e, s)
    assert a.meta["split"] == "seed-a" and a.meta["split_seed"] == 0
    again = load_dataset(cfg(path, split="seed-a", split_seed=0, cache=False))
    assert torch.equal(a.split, again.split)
    other = load_dataset(cfg(path, split="seed-a", split_seed=1))
    assert not torch.equal(a.split, other.split)
    official = load_dataset(cfg(path))
    assert official.split.tolist() == [i % 4 % 3 for i in range(200)]
    assert len([f for f in cache_files() if f.suffix == ".pt"]) == 3  # one entry per split mode and seed


def test_seed_a_sizes_on_35887():
    """The documented FER2013 seed-A sizes; labels only, so no images needed."""
    assert fer2013.seed_a_sizes(35_887) == (25_120, 7_179, 3_588)
    labels = torch.arange(35_887) % 7
    split = fer2013.seed_a_split(labels, 0)
    assert torch.bincount(split).tolist() == [25_120, 7_179, 3_588]
    assert fer2013.seed_a_sizes(200) == (140, 40, 20) and fer2013.seed_a_sizes(10) == (7, 2, 1)


def test_unknown_split_mode_is_a_config_error(tmp_path):
    path = write_fer2013_csv(tmp_path / "fer2013.csv", csv_rows(3))
    with pytest.raises(ConfigError, match=r"'seed-b'.*official.*seed-a"):
        load_dataset(cfg(path, split="seed-b"))


# ---------------------------------------------------------------- bad input


def _csv(tmp_path: Path, *rows, header: str = "emotion,pixels,Usage") -> Path:
    good = [(0, random_image(0), "Training"), (1, random_image(1), "PublicTest"), (2, random_image(2), "PrivateTest")]
    return write_fer2013_csv(tmp_path / "fer2013.csv", good + list(rows), header=header)


PIX = pixels_text(random_image(9))

# name -> (make the input, return the root; exception; regex the message must match besides the path)
BAD_CSV = {
    "header": (lambda p: _csv(p, header="emotion,pixels,usage"), MalformedDataError, r"line 1: header"),
    "pixels 2303": (lambda p: _csv(p, (3, PIX.rsplit(" ", 1)[0], "Training")), MalformedDataError, r"line 5:.*2303"),
    "pixels 2305": (lambda p: _csv(p, (3, PIX + " 1", "Training")), MalformedDataError, r"line 5:.*2305"),
    "pixel 256": (lambda p: _csv(p, (3, "256 " + PIX.split(" ", 1)[1], "Training")), MalformedDataError, r"5:.*256"),
    "pixel 1000": (lambda p: _csv(p, (3, PIX.rsplit(" ", 1)[0] + " 1000", "Training")), MalformedDataError, r"line 5"),
    "pixel -1": (lambda p: _csv(p, (3, "-1 " + PIX.split(" ", 1)[1], "Training")), MalformedDataError, r"line 5:.*'-'"),
    "pixel float": (lambda p: _csv(p, (3, "1.5 " + PIX.split(" ", 1)[1], "Training")), MalformedDataError, r"line 5"),
    "pixels empty": (lambda p: _csv(p, (3, "", "Training")), MalformedDataError, r"line 5:.*found 0"),
    "emotion 7": (lambda p: _csv(p, (7, PIX, "Training")), MalformedDataError, r"line 5:.*0\.\.6.*'7'"),
    "emotion -1": (lambda p: _csv(p, (-1, PIX, "Training")), MalformedDataError, r"line 5:.*0\.\.6"),
    "emotion text": (lambda p: _csv(p, ("Angry", PIX, "Training")), MalformedDataError, r"line 5:.*'Angry'"),
    "usage": (lambda p: _csv(p, (3, PIX, "Validation")), MalformedDataError, r"line 5:.*'Validation'"),
    "fields": (lambda p: _csv(p, (3, PIX + ",x", "Training")), MalformedDataError, r"line 5:.*3 fields"),
    "empty split": (lambda p: write_fer2013_csv(p / "f.csv", csv_rows(2)), EmptySplitError, r"test split is empty"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_bad_csv_raises_with_path_and_line_and_caches_nothing(tmp_path, case):
    make, error, pattern = BAD_CSV[case]
    path = make(tmp_path)
    with pytest.raises(error, match=pattern) as info:
        load_dataset(cfg(path))
    assert str(path) in str(info.value)
    assert cache_files() == []


def _folders(tmp_path: Path, *extra: tuple[str, object]) -> Path:
    write_fer2013_folders(tmp_path, FOLDER_FILES)
    for rel, content in extra:
        if isinstance(content, bytes):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_bytes(content)
        else:
            write_image(tmp_path / rel, content)
    return tmp_path


BAD_FOLDERS = {
    "unknown class": (lambda p: _folders(p, ("train/happiness/Training_1.jpg", 9)), MalformedDataError, "happiness"),
    "unknown prefix": (lambda p: _folders(p, ("train/angry/Train_1.jpg", 9)), MalformedDataError, "Train_1.jpg"),
    "no prefix": (lambda p: _folders(p, ("test/angry/PublicTest.jpg", 9)), MalformedDataError, "PublicTest.jpg"),
    "undecodable": (lambda p: _folders(p, ("train/fear/Training_5.jpg", b"not a jpeg")), MalformedDataError,
                    "Training_5.jpg"),
    "wrong size": (lambda p: _folders(p, ("train/fear/Training_6.jpg", torch.zeros(1, 64, 64, dtype=torch.uint8))),
                   MalformedDataError, "Training_6.jpg.*48x48"),
    "no test folder": (lambda p: write_fer2013_folders(p, FOLDER_FILES[:4]) and p, DataNotFoundError, "test"),
    "no train folder": (lambda p: write_fer2013_folders(p, FOLDER_FILES[4:]) and p, DataNotFoundError, "train"),
    "empty val": (lambda p: write_fer2013_folders(p, FOLDER_FILES[:4] + FOLDER_FILES[6:]) and p, EmptySplitError,
                  "val split is empty"),
    "nothing there": (lambda p: p, DataNotFoundError, "fer2013.csv"),
    "missing root": (lambda p: p / "absent", DataNotFoundError, "absent"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_bad_folders_raise_with_path_and_cache_nothing(tmp_path, case):
    make, error, pattern = BAD_FOLDERS[case]
    root = make(tmp_path)
    with pytest.raises(error, match=pattern) as info:
        load_dataset(cfg(root))
    assert str(tmp_path) in str(info.value)
    assert cache_files() == []


def test_no_root_is_data_not_found():
    with pytest.raises(DataNotFoundError):
        load_dataset(DataConfig(dataset="fer2013"))


# ---------------------------------------------------------------- cache


def test_csv_cache_reused_when_unchanged_and_rebuilt_when_touched(tmp_path, monkeypatch):
    path = write_fer2013_csv(tmp_path / "fer2013.csv", csv_rows(6))
    first = load_dataset(cfg(path))
    assert len([f for f in cache_files() if f.suffix == ".pt"]) == 1
    real = fer2013.read_csv
    calls = []
    monkeypatch.setattr(fer2013, "read_csv", lambda p: calls.append(p) or real(p))
    second = load_dataset(cfg(path))
    assert calls == [] and torch.equal(first.images, second.images) and second.ids == first.ids
    touch(path)
    load_dataset(cfg(path))
    assert calls == [path]


def test_folder_cache_reused_when_unchanged_and_rebuilt_when_an_image_changes(tmp_path, monkeypatch):
    write_fer2013_folders(tmp_path, FOLDER_FILES)
    first = load_dataset(cfg(tmp_path))
    calls = []

    def counting(paths, *a, **k):
        calls.append(len(paths))
        return decode_many(paths, *a, **k)

    monkeypatch.setattr(fer2013, "decode_many", counting)
    second = load_dataset(cfg(tmp_path))
    assert calls == [] and torch.equal(first.images, second.images) and first.ids == second.ids
    touch(tmp_path / FOLDER_FILES[0][0])
    load_dataset(cfg(tmp_path))
    assert calls == [7]


def test_relative_root_shares_the_cache_with_the_absolute_one(tmp_path, monkeypatch):
    path = write_fer2013_csv(tmp_path / "fer2013.csv", csv_rows(3))
    monkeypatch.chdir(tmp_path)
    rel = load_dataset(DataConfig(dataset="fer2013", root="fer2013.csv"))
    assert rel.meta["source"] == str(path)
    monkeypatch.setattr(fer2013, "read_csv", None)  # a rebuild would fail
    assert load_dataset(cfg(path)).ids == rel.ids


def test_cache_off_writes_nothing(tmp_path):
    load_dataset(cfg(write_fer2013_csv(tmp_path / "fer2013.csv", csv_rows(3)), cache=False))
    assert cache_files() == []


# ---------------------------------------------------------------- real data (skipped without ../shared/data)

REAL_TRAIN = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830}
REAL_TRAIN["surprise"] = 3171
REAL_TEST = {"angry": 958, "disgust": 111, "fear": 1024, "happy": 1774, "neutral": 1233, "sad": 1247, "surprise": 831}


def test_real_folders_counts_by_listing():
    """All 35,887 real files listed (decoding them all takes ~15 s, so only a sample is decoded)."""
    root = shared_data("fer2013")
    entries, ignored = fer2013.list_folder(root)
    assert len(entries) == 35_887 and ignored == 0
    per = Counter((e.id.split("/")[0], e.id.split("/")[1]) for e in entries)
    assert {c: per["train", c] for c in REAL_TRAIN} == REAL_TRAIN
    assert {c: per["test", c] for c in REAL_TEST} == REAL_TEST
    # the prefix splits test/ into the official PublicTest (val) and PrivateTest (test) class counts
    by_usage = Counter((e.usage, SEVEN[e.label].value) for e in entries)
    public = {"anger": 467, "disgust": 56, "fear": 496, "happiness": 895, "sadness": 653, "surprise": 415}
    private = {"anger": 491, "disgust": 55, "fear": 528, "happiness": 879, "sadness": 594, "surprise": 416}
    assert {c: by_usage["PublicTest", c] for c in public} == public and by_usage["PublicTest", "neutral"] == 607
    assert {c: by_usage["PrivateTest", c] for c in private} == private and by_usage["PrivateTest", "neutral"] == 626
    usage = Counter((e.id.split("/")[0], e.usage) for e in entries)
    assert usage == {("train", "Training"): 28_709, ("test", "PublicTest"): 3_589, ("test", "PrivateTest"): 3_589}
    labels = torch.tensor([e.label for e in entries])
    assert SEVEN[int(labels[0])] == Emotion.ANGER  # sorted: train/angry comes first
    split = fer2013.seed_a_split(labels, 0)
    assert torch.bincount(split).tolist() == [25_120, 7_179, 3_588]
    sample = [entries[i].path for i in range(0, len(entries), 2_000)]
    assert decode_many(sample, channels=1, size=(48, 48)).shape == (len(sample), 1, 48, 48)
