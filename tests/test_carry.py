"""The FER+ pack that travels to a GPU machine is lossless: every pixel comes back."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("carry", Path(__file__).parents[1] / "benchmarks" / "carry_ferplus.py")
carry = importlib.util.module_from_spec(_spec)
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
