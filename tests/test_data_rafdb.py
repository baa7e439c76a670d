"""RAF-DB basic loader: generated trees in the real layout, every bad input, the cache, the real label file."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import shared_data
from formats import RAFDB_ALIGNED, RAFDB_LABEL_FILE, cache_files, rafdb_value, touch, write_image, write_rafdb_tree

from facexai.config import DataConfig
from facexai.data import load_dataset, rafdb
from facexai.data.images import decode_many
from facexai.emotions import SEVEN, Emotion
from facexai.errors import ConfigError, DataNotFoundError, EmptySplitError, MalformedDataError

# RAF-DB label -> emotion, written out by hand
RAF = {1: Emotion.SURPRISE, 2: Emotion.FEAR, 3: Emotion.DISGUST, 4: Emotion.HAPPINESS, 5: Emotion.SADNESS,
       6: Emotion.ANGER, 7: Emotion.NEUTRAL}  # fmt: skip


def cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(dataset="rafdb", root=str(root), **kw)




def names_labels(n_train: int = 40, n_test: int = 10) -> list[tuple[str, int]]:
    """Real-style names; labels cycle 1..7 (train) and 7..1 (test)."""
    train = [(f"train_{i:05d}.jpg", i % 7 + 1) for i in range(1, n_train + 1)]
    test = [(f"test_{i:04d}.jpg", 7 - i % 7) for i in range(1, n_test + 1)]
    return train + test


def test_tree_loads_rgb_canonical_labels_test_kept_val_from_train(tmp_path):
    pairs = names_labels()
    write_rafdb_tree(tmp_path, pairs)
    ds = load_dataset(cfg(tmp_path, val_fraction=0.25))
    assert ds.name == "rafdb" and ds.classes == SEVEN and ds.votes is None
    assert ds.images.shape == (50, 3, 100, 100) and ds.images.dtype == torch.uint8
    assert ds.ids == [n for n, _ in pairs]
    for i, (name, label) in enumerate(pairs):
        assert ds.classes[ds.labels[i]] == RAF[label], name
        assert (ds.images[i].int() - rafdb_value(i)).abs().max() <= 2, name  # JPEG of a flat picture
    # by hand: train_00001 is label 2 (Fear), train_00004 label 5 (Sadness), test_0001 label 6 (Anger)
    assert ds.classes[ds.labels[0]] == Emotion.FEAR
    assert ds.classes[ds.labels[3]] == Emotion.SADNESS
    assert ds.classes[ds.labels[40]] == Emotion.ANGER
    assert (ds.split[40:] == 2).all(), "test_* is the test split, untouched"
    assert set(ds.split[:40].tolist()) == {0, 1}, "val is carved out of train_* only"
    assert int((ds.split == 1).sum()) == 10  # 25% of 40
    assert ds.meta["found"] == {"train": 40, "test": 10} and ds.meta["dropped"] == {}
    assert ds.meta["source"] == str(tmp_path / "basic")


def test_root_may_be_basic_itself(tmp_path):
    write_rafdb_tree(tmp_path, names_labels(14, 3))
    a = load_dataset(cfg(tmp_path))
    b = load_dataset(cfg(tmp_path / "basic"))
    assert a.ids == b.ids and torch.equal(a.images, b.images) and torch.equal(a.split, b.split)


def test_val_split_is_stratified_seeded_and_deterministic(tmp_path):
    raf_counts = {1: 20, 2: 10, 3: 10, 4: 60, 5: 30, 6: 10, 7: 40}  # 180 train
    pairs = [(f"train_{i + 1:05d}.jpg", label) for i, label in enumerate(lab for lab, n in raf_counts.items()
                                                                         for _ in range(n))]  # fmt: skip
    pairs += [(f"test_{i:04d}.jpg", i % 7 + 1) for i in range(1, 15)]
    write_rafdb_tree(tmp_path, pairs, size=100)
    a = load_dataset(cfg(tmp_path, val_fraction=0.1, split_seed=3))
    for label, n in raf_counts.items():
        in_class = (a.labels == SEVEN.index(RAF[label])) & (a.split != 2)
        assert int((a.split[in_class] == 1).sum()) == n // 10, label
    assert int((a.split == 1).sum()) == 18 and int((a.split == 2).sum()) == 14
    b = load_dataset(cfg(tmp_path, val_fraction=0.1, split_seed=3, cache=False))
    assert torch.equal(a.split, b.split)
    c = load_dataset(cfg(tmp_path, val_fraction=0.1, split_seed=4))
    assert not torch.equal(a.split, c.split) and torch.equal(a.split == 2, c.split == 2)


def test_read_partition_maps_labels_and_keeps_file_order(tmp_path):
    path = write_rafdb_tree(tmp_path, [("train_00002.jpg", 4), ("test_0001.jpg", 1), ("train_00001.jpg", 7)],
                            images=False) / RAFDB_LABEL_FILE  # fmt: skip
    names, labels = rafdb.read_partition(path)
    assert names == ["train_00002.jpg", "test_0001.jpg", "train_00001.jpg"]
    assert [SEVEN[i] for i in labels.tolist()] == [Emotion.HAPPINESS, Emotion.SURPRISE, Emotion.NEUTRAL]
    assert rafdb.aligned_name("train_00002.jpg") == "train_00002_aligned.jpg"


# ---------------------------------------------------------------- bad input


def _tree(tmp_path: Path, lines: list[str] | None = None, extra: str = "") -> Path:
    """A good 10-image tree; `lines` replaces the label file, `extra` is appended to it."""
    write_rafdb_tree(tmp_path, names_labels(7, 3))
    label_file = tmp_path / RAFDB_LABEL_FILE
    if lines is not None:
        label_file.write_text("\n".join(lines))
    if extra:
        label_file.write_text(label_file.read_text() + "\n" + extra)
    return tmp_path


def _replace_image(tmp_path: Path, content: object) -> Path:
    _tree(tmp_path)
    target = tmp_path / RAFDB_ALIGNED / "train_00003_aligned.jpg"
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        write_image(target, content)
    return tmp_path


LABELS = str(RAFDB_LABEL_FILE)
BAD = {
    "missing root": (lambda p: p / "absent", DataNotFoundError, "absent"),
    "no label file": (lambda p: p, DataNotFoundError, "list_patition_label.txt"),
    "three fields": (lambda p: _tree(p, extra="train_00099.jpg 5 x"), MalformedDataError, r"line 11:.*train_00099"),
    "one field": (lambda p: _tree(p, extra="train_00099.jpg"), MalformedDataError, r"line 11"),
    "label 0": (lambda p: _tree(p, extra="train_00099.jpg 0"), MalformedDataError, r"line 11:.*1\.\.7.*'0'"),
    "label 8": (lambda p: _tree(p, extra="train_00099.jpg 8"), MalformedDataError, r"line 11:.*1\.\.7.*'8'"),
    "label text": (lambda p: _tree(p, extra="train_00099.jpg Anger"), MalformedDataError, r"line 11:.*'Anger'"),
    "bad name": (lambda p: _tree(p, extra="val_00001.jpg 5"), MalformedDataError, r"line 11:.*val_00001"),
    "listed twice": (lambda p: _tree(p, extra="train_00002.jpg 5"), MalformedDataError, r"line 11:.*twice"),
    "missing image": (lambda p: _tree(p, extra="train_00099.jpg 5"), DataNotFoundError, r"train_00099_aligned\.jpg"),
    "no aligned folder": (lambda p: write_rafdb_tree(p, names_labels(3, 1), images=False)
                          and os.rmdir(p / RAFDB_ALIGNED) or p, DataNotFoundError, r"aligned"),
    "undecodable": (lambda p: _replace_image(p, b"\xff\xd8 broken"), MalformedDataError, r"train_00003_aligned\.jpg"),
    "wrong size": (lambda p: _replace_image(p, torch.zeros(3, 64, 64, dtype=torch.uint8)), MalformedDataError,
                   r"train_00003_aligned\.jpg.*100x100"),
    "no test images": (lambda p: _tree(p, lines=[f"train_{i:05d}.jpg {i % 7 + 1}" for i in range(1, 8)]),
                       EmptySplitError, "test split is empty"),
    "no train images": (lambda p: _tree(p, lines=["test_0001.jpg 1"]), EmptySplitError, "train split is empty"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_raises_with_path_and_caches_nothing(tmp_path, case):
    make, error, pattern = BAD[case]
    root = make(tmp_path)
    with pytest.raises(error, match=pattern) as info:
        load_dataset(cfg(root))
    assert str(tmp_path) in str(info.value)
    if error is MalformedDataError and "line" in pattern:
        assert LABELS in str(info.value)
    assert cache_files() == []


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_val_fraction_out_of_range_is_a_config_error(tmp_path, fraction):
    with pytest.raises(ConfigError, match="val_fraction"):
        load_dataset(cfg(_tree(tmp_path), val_fraction=fraction))


# ---------------------------------------------------------------- cache


def test_cache_reused_when_unchanged_and_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    write_rafdb_tree(tmp_path, names_labels(14, 4))
    first = load_dataset(cfg(tmp_path))
    assert len([f for f in cache_files() if f.suffix == ".pt"]) == 1
    calls = []

    def counting(paths, *a, **k):
        calls.append(len(paths))
        return decode_many(paths, *a, **k)

    monkeypatch.setattr(rafdb, "decode_many", counting)
    second = load_dataset(cfg(tmp_path))
    assert calls == [] and torch.equal(first.images, second.images) and torch.equal(first.split, second.split)
    touch(tmp_path / RAFDB_ALIGNED / "test_0002_aligned.jpg")
    load_dataset(cfg(tmp_path))
    assert calls == [18]
    touch(tmp_path / RAFDB_LABEL_FILE)
    load_dataset(cfg(tmp_path))
    assert calls == [18, 18]
    load_dataset(cfg(tmp_path, split_seed=1))  # another seed is another split: rebuilt
    assert calls == [18, 18, 18]


# ---------------------------------------------------------------- real label file (skipped without ../shared/data)


def test_real_label_file():
    path = shared_data("rafdb", "basic", "EmoLabel", "list_patition_label.txt")
    names, labels = rafdb.read_partition(path)
    assert len(names) == len(set(names)) == 15_339
    assert sum(n.startswith("train_") for n in names) == 12_271
    assert sum(n.startswith("test_") for n in names) == 3_068
    assert (names[0], SEVEN[int(labels[0])]) == ("train_00001.jpg", Emotion.SADNESS)  # `train_00001.jpg 5`
    assert (names[2], SEVEN[int(labels[2])]) == ("train_00003.jpg", Emotion.HAPPINESS)  # `train_00003.jpg 4`
    assert (names[-1], SEVEN[int(labels[-1])]) == ("test_3068.jpg", Emotion.NEUTRAL)  # `test_3068.jpg 7`
    # the published RAF-DB basic class counts, by RAF-DB label 1..7 (Surprise ... Neutral)
    train = torch.tensor([n.startswith("train_") for n in names])
    per = {part: Counter(SEVEN[i] for i in labels[m].tolist()) for part, m in (("train", train), ("test", ~train))}
    assert [per["train"][RAF[k]] for k in range(1, 8)] == [1290, 281, 717, 4772, 1982, 705, 2524]
    assert [per["test"][RAF[k]] for k in range(1, 8)] == [329, 74, 160, 1185, 478, 162, 680]


def test_real_names_load_as_a_generated_tree(tmp_path):
    """A slice of the real label file (first 60 train, first 20 test lines) with generated images."""
    path = shared_data("rafdb", "basic", "EmoLabel", "list_patition_label.txt")
    lines = path.read_text().split("\n")
    pairs = [(n, int(lab)) for n, lab in (line.split() for line in lines[:60] + lines[12_271 : 12_271 + 20])]
    write_rafdb_tree(tmp_path, pairs)
    ds = load_dataset(cfg(tmp_path))
    assert ds.images.shape == (80, 3, 100, 100)
    assert ds.ids[0] == "train_00001.jpg" and ds.ids[60] == "test_0001.jpg"
    assert Counter(ds.split.tolist()) == {0: 54, 1: 6, 2: 20}
