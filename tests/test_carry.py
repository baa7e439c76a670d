"""The FER+ pack that travels to a GPU machine is lossless: every pixel comes back."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("carry", Path(__file__).parents[1] / "benchmarks" / "carry_ferplus.py")
carry = importlib.util.module_from_spec(_spec)
sys.modules["carry"] = carry  # unpack's worker processes find its functions by module name
_spec.loader.exec_module(carry)


def test_median_edge_residuals_restore_every_pixel():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (6, 48, 48), dtype=np.uint8)
    faces[0], faces[1] = 0, 255  # flat faces: the predictor's edge cases
    faces[2] = np.add.outer(np.arange(48), np.arange(48)).astype(np.uint8) * 3  # smooth gradients wrap mod 256
    r = carry.residuals(faces)
    assert r.dtype == np.uint8 and r.shape == faces.shape
    assert np.array_equal(carry.restore(r), faces)
    assert (r[1] != 0).sum() == 1  # a flat face costs one residual: the corner pixel


def test_pack_refuses_an_empty_or_foreign_folder_before_writing(tmp_path):
    dest = tmp_path / "ferplus.tar.xz"
    with pytest.raises(carry.PackError, match="label.csv: not found"):
        carry.pack(tmp_path, dest)
    for folder in carry.FOLDERS:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "label.csv").write_text("")
    (tmp_path / "fer2013new.csv").write_text("")
    with pytest.raises(carry.PackError, match="FER2013Train: no .png faces"):
        carry.pack(tmp_path, dest)
    assert not dest.exists()


def test_pack_and_unpack_give_back_every_face_and_file(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    src, faces = tmp_path / "src", {}
    for k, folder in enumerate(carry.FOLDERS):
        (src / folder).mkdir(parents=True)
        (src / folder / "label.csv").write_text(f"fer{k}.png,(0,0,48,48),10,0,0,0,0,0,0,0,0,0\n")
        for i in range(k + 2):
            faces[folder, f"fer{i:07d}.png"] = f = rng.integers(0, 256, (48, 48), dtype=np.uint8)
            Image.fromarray(f).save(src / folder / f"fer{i:07d}.png")
    (src / "fer2013new.csv").write_text("Usage,Image name\n")
    carry.pack(src, tmp_path / "p.tar.xz")
    carry.unpack(tmp_path / "p.tar.xz", tmp_path / "out", workers=2)
    for (folder, name), f in faces.items():
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / folder / name)), f)
    assert len(list((tmp_path / "out").rglob("*.png"))) == len(faces)
    for rel in ["fer2013new.csv", *(f"{f}/label.csv" for f in carry.FOLDERS)]:
        assert (tmp_path / "out" / rel).read_bytes() == (src / rel).read_bytes()


def test_unpack_refuses_an_archive_that_is_not_a_pack(tmp_path):
    import tarfile

    with tarfile.open(tmp_path / "x.tar.xz", "w:xz") as tar:
        tar.add(__file__, arcname="other.txt")
    with pytest.raises(carry.PackError, match="not a FER\\+ pack"):
        carry.unpack(tmp_path / "x.tar.xz", tmp_path / "out")
    assert not (tmp_path / "out").exists()
