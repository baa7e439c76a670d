"""RAF-DB stand-in trees: real layout and labels, synthetic faces, deterministic, all or nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import shared_data
from formats import RAFDB_ALIGNED, RAFDB_LABEL_FILE

from facexai.config import DataConfig
from facexai.data import load_dataset, rafdb
from facexai.data.images import decode_many
from facexai.data.standin import write_rafdb_standin
from facexai.emotions import SEVEN, Emotion
from facexai.errors import ConfigError, DataNotFoundError, MalformedDataError

# RAF-DB label -> emotion, written out by hand
RAF = {1: Emotion.SURPRISE, 2: Emotion.FEAR, 3: Emotion.DISGUST, 4: Emotion.HAPPINESS, 5: Emotion.SADNESS,
       6: Emotion.ANGER, 7: Emotion.NEUTRAL}  # fmt: skip
# 2 per class: one train, one test line; RAF-DB's spelling, no trailing newline (like the real file)
PAIRS = [(f"train_{i:05d}.jpg", lab) for i, lab in enumerate([5, 1, 4, 7, 2, 6, 3], 1)]
PAIRS += [(f"test_{i:04d}.jpg", lab) for i, lab in enumerate([3, 7, 1, 6, 4, 2, 5], 1)]


def label_file(tmp_path: Path, pairs=PAIRS, extra: str = "") -> Path:
    path = tmp_path / "labels" / "list_patition_label.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(f"{n} {lab}" for n, lab in pairs) + extra)
    return path


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


def test_tree_loads_as_rafdb_with_the_label_files_labels(tmp_path):
    labels = label_file(tmp_path)
    out = write_rafdb_standin(labels, tmp_path / "tree")
    assert out == tmp_path / "tree"
    assert (out / RAFDB_LABEL_FILE).read_bytes() == labels.read_bytes()
    assert sorted(p.name for p in (out / RAFDB_ALIGNED).iterdir()) == sorted(rafdb.aligned_name(n) for n, _ in PAIRS)
    note = (out / "STANDIN.md").read_text()
    assert "synthetic" in note and "NOT real data" in note and str(labels) in note and "seed: 0" in note
    ds = load_dataset(DataConfig(dataset="rafdb", root=str(out)))
    assert ds.images.shape == (14, 3, 100, 100) and ds.ids == [n for n, _ in PAIRS]
    assert [ds.classes[i] for i in ds.labels.tolist()] == [RAF[lab] for _, lab in PAIRS]
    assert torch.equal(ds.labels, rafdb.read_partition(labels)[1])
    assert Counter(ds.split.tolist()) == {0: 6, 1: 1, 2: 7}  # val carved out of the 7 train lines
    assert ds.meta["found"] == {"train": 7, "test": 7}
    assert Counter(ds.classes[i] for i in ds.labels.tolist()) == {e: 2 for e in SEVEN}
    # faces, not flat pictures, and no two alike
    assert all(img.float().std() > 10 for img in ds.images)
    assert len({img.numpy().tobytes() for img in ds.images}) == 14


def test_same_seed_same_bytes_other_seed_other_faces_limit_keeps_both_splits(tmp_path):
    labels = label_file(tmp_path)
    a = files(write_rafdb_standin(labels, tmp_path / "a", seed=3))
    b = files(write_rafdb_standin(labels, tmp_path / "b", seed=3))
    c = files(write_rafdb_standin(labels, tmp_path / "c", seed=4))
    assert a == b
    images = [k for k in a if k.endswith("_aligned.jpg")]
    assert len(images) == 14 and all(a[k] != c[k] for k in images)
    # `limit` lines, train and test in the file's proportion (7:7 -> 3 and 2 of 5), byte for byte,
    # and the same faces as in the full tree
    d = files(write_rafdb_standin(labels, tmp_path / "d", seed=3, limit=5))
    pairs = PAIRS[:3] + PAIRS[7:9]
    kept = [rafdb.aligned_name(n) for n, _ in pairs]
    assert sorted(k for k in d if k.endswith("_aligned.jpg")) == sorted(str(RAFDB_ALIGNED / k) for k in kept)
    assert d[str(RAFDB_LABEL_FILE)] == "".join(f"{n} {lab}\n" for n, lab in pairs).encode()
    assert all(d[str(RAFDB_ALIGNED / k)] == a[str(RAFDB_ALIGNED / k)] for k in kept)


def test_existing_non_empty_out_is_refused_and_left_alone(tmp_path):
    labels = label_file(tmp_path)
    out = tmp_path / "tree"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(ConfigError, match="already exists") as info:
        write_rafdb_standin(labels, out)
    assert str(out) in str(info.value) and "\n" not in str(info.value)
    assert files(out) == {"mine.txt": b"keep"} and leftovers(tmp_path) == []
    (out / "mine.txt").unlink()  # an empty folder is fine
    assert (write_rafdb_standin(labels, out, limit=2) / RAFDB_LABEL_FILE).is_file()


def test_malformed_label_line_names_file_and_line_and_leaves_nothing(tmp_path):
    labels = label_file(tmp_path, extra="\ntrain_00099.jpg 9")
    with pytest.raises(MalformedDataError, match=r"line 15:.*'9'") as info:
        write_rafdb_standin(labels, tmp_path / "tree")
    assert str(labels) in str(info.value)
    assert not (tmp_path / "tree").exists() and leftovers(tmp_path) == []
    with pytest.raises(DataNotFoundError, match="absent.txt"):
        write_rafdb_standin(tmp_path / "absent.txt", tmp_path / "tree")
    assert not (tmp_path / "tree").exists()


def test_error_while_rendering_cleans_the_partial_folder(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("facexai.data.standin.write_file", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_rafdb_standin(label_file(tmp_path), tmp_path / "tree")
    assert not (tmp_path / "tree").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("option", [{"size": 8}, {"seed": -1}, {"limit": 0}])
def test_bad_options_are_config_errors(tmp_path, option):
    with pytest.raises(ConfigError):
        write_rafdb_standin(label_file(tmp_path), tmp_path / "tree", **option)
    assert not (tmp_path / "tree").exists()


def test_real_label_file_limit_keeps_train_and_test_lines(tmp_path):
    """The real label file (12,271 train and 3,068 test lines), limit 20: the first 16 train and the first 4 test
    lines (names, labels, 100x100 faces), so a limited tree has a test split."""
    path = shared_data("rafdb", "basic", "EmoLabel", "list_patition_label.txt")
    out = write_rafdb_standin(path, tmp_path / "tree", limit=20)
    names, labels = rafdb.read_partition(out / RAFDB_LABEL_FILE)
    real_names, real_labels = rafdb.read_partition(path)
    first_test = next(i for i, n in enumerate(real_names) if n.startswith("test"))
    assert names == real_names[:16] + real_names[first_test : first_test + 4]
    assert torch.equal(labels, torch.cat([real_labels[:16], real_labels[first_test : first_test + 4]]))
    assert SEVEN[int(labels[0])] == Emotion.SADNESS  # `train_00001.jpg 5`
    images = decode_many([out / RAFDB_ALIGNED / rafdb.aligned_name(n) for n in names], channels=3)
    assert images.shape == (20, 3, 100, 100)
    assert str(path.resolve()) in (out / "STANDIN.md").read_text()
