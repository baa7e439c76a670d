"""Faces from photos: found by dlib's detector, aligned on the eye centres, classified and explained.

Real photos: scikit-image's astronaut (one face, and a mission patch the detector scores low) and a
collage of upscaled FER2013 test faces on a background (several faces per photo; skipped without the data).
"""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_data
from PIL import Image
from typer.testing import CliRunner

from facexai.cli import app
from facexai.faces.landmarks import dlib_available

pytestmark = pytest.mark.skipif(not dlib_available(), reason="needs the landmarks extra (dlib-bin)")
RUN = Path(__file__).resolve().parents[1] / "results" / "ferplus-seed-b-48"


def astronaut(path: Path) -> Path:
    from skimage.data import astronaut as photo

    Image.fromarray(photo()).save(path)
    return path


def invoke(*args):
    torch.set_num_threads(1)
    return CliRunner().invoke(app, ["explain", *map(str, args), "--run", str(RUN), "--no-progress"])


def test_the_astronaut_s_one_face_is_found_aligned_and_explained(tmp_path):
    result = invoke(astronaut(tmp_path / "astronaut.png"), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader(open(tmp_path / "out" / "faces.csv")))
    assert row["prediction"] == "happiness" and float(row["p_happiness"]) > 0.5
    left, top, right, bottom = map(int, row["box"].split())
    assert 150 < left < 200 and 60 < top < 100 and 80 < right - left < 110  # the face, not the mission patch
    assert {f"effect_{r}" for r in ("mouth", "eyes", "brows")} <= set(row)
    assert (tmp_path / "out" / "face_0.png").read_bytes()[:4] == b"\x89PNG"
    assert invoke(tmp_path / "astronaut.png", "--out", tmp_path / "low", "--threshold", "0.05").exit_code == 0
    assert len(list(csv.DictReader(open(tmp_path / "low" / "faces.csv")))) == 2  # and the patch, at a low score


def test_a_collage_of_faces_gives_one_row_per_face(tmp_path):
    test = shared_data("fer2013", "test", "happy")
    canvas = np.full((420, 900, 3), 235, np.uint8)
    for k, f in enumerate(sorted(test.glob("PrivateTest_*.jpg"))[:3]):
        face = Image.open(f).convert("RGB").resize((192, 192), Image.BICUBIC)
        canvas[100:292, 60 + k * 290 : 252 + k * 290] = np.asarray(face)
    Image.fromarray(canvas).save(tmp_path / "collage.png")
    result = invoke(tmp_path / "collage.png", "--out", tmp_path / "out", "--threshold", "0.0")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "out" / "faces.csv")))
    assert len(rows) >= 2 and {r["face"] for r in rows} == {str(k) for k in range(len(rows))}


def test_no_face_and_no_image_are_one_line_errors_and_write_nothing(tmp_path):
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(tmp_path / "wall.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.jpg").write_text("not an image")
    for target, words in ((tmp_path / "wall.png", "no face found in"), (tmp_path / "empty", "no images"),
                          (tmp_path / "broken.jpg", "not a decodable image")):  # fmt: skip
        result = invoke(target, "--out", tmp_path / "out")
        assert result.exit_code == 2 and words in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
