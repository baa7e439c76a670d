"""A user's own labelled faces: one subfolder per emotion, any size, grey or RGB, jpg/png/bmp/webp."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_data
from formats import random_image, write_image
from PIL import Image
from typer.testing import CliRunner

from facexai.cli import app
from facexai.config import DataConfig
from facexai.data import load_dataset
from facexai.emotions import SEVEN, Emotion
from facexai.errors import DataNotFoundError, EmptySplitError, MalformedDataError
from facexai.runs import adapt_classes


def folder(root, layout=("happy", "Sad", "surprised", "ANGRY")):
    """Two images per class folder, of mixed sizes, channels and formats."""
    for k, name in enumerate(layout):
        write_image(root / name / f"{k}a.png", random_image(k, size=40, channels=3), channels=3)
        write_image(root / name / f"{k}b.jpg", 100 + k, size=64)
    Image.fromarray(np.full((30, 50), 90, np.uint8)).save(root / layout[0] / "wide.bmp")
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(root / layout[0] / "small.webp")
    return root


def test_class_folders_map_to_emotions_by_synonym_in_any_case_and_every_image_is_test(tmp_path):
    ds = load_dataset(DataConfig(dataset="imagefolder", root=str(folder(tmp_path)), image_size=32))
    assert ds.classes == SEVEN and ds.images.shape == (10, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.counts() == {"test": {"neutral": 0, "happiness": 4, "surprise": 2, "sadness": 2, "anger": 2,
                                    "disgust": 0, "fear": 0}}  # fmt: skip
    assert "happy/wide.bmp" in ds.ids and ds.meta["layout"] == "flat"
    wide = ds.images[ds.ids.index("happy/wide.bmp")]
    assert (wide == 90).all()  # a grey BMP, centre-cropped to a square and resized


def test_split_folders_are_kept_and_a_flat_folder_is_carved_for_training(tmp_path):
    for split in ("train", "test"):
        folder(tmp_path / "split" / split)
    ds = load_dataset(DataConfig(dataset="imagefolder", root=str(tmp_path / "split"), image_size=24, val_fraction=0.25))
    assert set(ds.counts()) == {"train", "val", "test"}  # validation carved out of train
    flat = folder(tmp_path / "flat", layout=("happy", "sad") * 1)
    for k in range(8):
        write_image(flat / "happy" / f"x{k}.png", random_image(10 + k))
        write_image(flat / "sad" / f"x{k}.png", random_image(20 + k))
    carved = load_dataset(DataConfig(dataset="imagefolder", root=str(flat), image_size=24, carve=True,
                                     val_fraction=0.2))  # fmt: skip
    sizes = {s: sum(c.values()) for s, c in carved.counts().items()}
    assert sizes == {"train": 13, "val": 5, "test": 4}  # 22 images cut at round(22 * 0.6) and round(22 * 0.8)


def test_a_class_map_names_folders_and_contempt_makes_eight_classes(tmp_path):
    root = folder(tmp_path / "data", layout=("joy", "scorn"))
    cmap = tmp_path / "classes.toml"
    cmap.write_text('[classes]\njoy = "happiness"\nscorn = "contempt"\n')
    ds = load_dataset(DataConfig(dataset="imagefolder", root=str(root), class_map=str(cmap), image_size=24))
    assert len(ds.classes) == 8 and ds.counts()["test"]["contempt"] == 2
    seven = adapt_classes(ds, SEVEN)
    assert seven.classes == SEVEN and len(seven) == len(ds) - 2 and seven.meta["excluded"] == {"contempt": 2}
    assert "neutral" in seven.meta["absent"] and "happiness" not in seven.meta["absent"]
    assert (seven.labels == SEVEN.index(Emotion.HAPPINESS)).all()
    with pytest.raises(Exception, match="2 contempt image"):
        adapt_classes(ds, SEVEN, strict=True)


@pytest.mark.parametrize("case, error, words", [
    ("unknown", MalformedDataError, "unknown class folder 'elated'; expected one of anger, angry"),
    ("empty", EmptySplitError, "no images"),
    ("missing", DataNotFoundError, "image folder not found"),
    ("broken", MalformedDataError, "not a decodable image"),
])  # fmt: skip
def test_bad_folders_are_one_line_errors_naming_the_file(tmp_path, case, error, words):
    root = tmp_path / "data"
    if case == "unknown":
        folder(root, layout=("happy", "elated"))
    elif case == "empty":
        (root / "happy").mkdir(parents=True)
    elif case == "broken":
        folder(root, layout=("happy",))
        (root / "happy" / "x.jpg").write_text("not an image")
    with pytest.raises(error, match=words):
        load_dataset(DataConfig(dataset="imagefolder", root=str(root if case != "missing" else tmp_path / "no")))


def test_a_fer_plus_model_is_evaluated_on_a_real_fer2013_folder(tmp_path, real_data_cache, monkeypatch):
    test = shared_data("fer2013", "test")
    subset = tmp_path / "private"
    for cls in sorted(p.name for p in test.iterdir()):
        for f in sorted((test / cls).glob("PrivateTest_*"))[:5]:
            (subset / cls).mkdir(parents=True, exist_ok=True)
            (subset / cls / f.name).symlink_to(f)
    monkeypatch.setenv("FACEXAI_CACHE", str(real_data_cache))
    model = Path(__file__).resolve().parents[1] / "results" / "ferplus-seed-b-48"
    result = CliRunner().invoke(app, ["evaluate", str(model), "--folder", str(subset), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n"] == 35 and metrics["excluded"] == {} and metrics["provenance"]["config"]["data"]["n"] == 35
