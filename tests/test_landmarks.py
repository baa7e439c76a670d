"""Landmark providers: the data set's own, a template, dlib (skipped when not installed), and the fallback."""

import importlib.util
import math
import sys
from dataclasses import replace

import pytest
import torch
from conftest import shared_data

from facexai.data.synthetic import generate
from facexai.errors import ConfigError
from facexai.faces import landmarks as L
from facexai.faces.landmarks import (
    DatasetLandmarks,
    DlibLandmarks,
    TemplateLandmarks,
    default_template,
    from_unit,
    landmarks_for,
    mean_landmarks,
    outlier_scores,
    to_unit,
)


@pytest.fixture(scope="module")
def faces():
    return generate(20, 48, 1, seed=5)


def without_landmarks(ds):
    return replace(ds, landmarks=None)


def needs_dlib():
    pytest.importorskip("dlib")
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face-recognition-models is not installed")


def test_default_template_is_a_frontal_face_in_the_unit_square():
    t = default_template()
    assert t.shape == (68, 2) and t.dtype == torch.float32
    right_eye, left_eye, mouth = t[36:42].mean(0), t[42:48].mean(0), t[48:60].mean(0)
    assert right_eye[0] < mouth[0] < left_eye[0]  # mouth between the eyes, horizontally
    assert right_eye[1] < mouth[1] and left_eye[1] < mouth[1]  # and below them
    assert t[17:68].min() > 0 and t[17:68].max() < 1  # inner features inside the image


def test_template_provider_scales_one_shape_to_every_image_size():
    lm48, ok = TemplateLandmarks()(torch.zeros(5, 1, 48, 48, dtype=torch.uint8))
    assert lm48.shape == (5, 68, 2) and lm48.dtype == torch.float32 and ok.all() and ok.dtype == torch.bool
    assert torch.equal(lm48[0], lm48[4])
    lm100, _ = TemplateLandmarks()(torch.zeros(2, 3, 100, 100, dtype=torch.uint8))
    assert torch.allclose(lm100[0], (lm48[0] + 0.5) * 100 / 48 - 0.5, atol=1e-4)


def test_unit_coordinates_round_trip():
    pts = torch.rand(3, 68, 2) * 40
    assert torch.allclose(from_unit(to_unit(pts, (48, 64)), (48, 64)), pts, atol=1e-5)
    assert from_unit(torch.tensor([[0.0, 0.0]]), (48, 48)).tolist() == [[-0.5, -0.5]]  # the image's corner


def test_mean_landmarks_skips_flagged_and_missing_rows(faces):
    lm = faces.landmarks.clone()
    ok = torch.ones(20, dtype=torch.bool)
    ok[0] = False
    lm[0] += 100  # flagged: must not count
    lm[1] = float("nan")  # missing: must not count
    assert torch.allclose(mean_landmarks(lm, ok), faces.landmarks[2:].mean(0), atol=1e-4)
    with pytest.raises(ConfigError):
        mean_landmarks(lm, torch.zeros(20, dtype=torch.bool))


def test_a_template_from_a_data_set_reproduces_its_mean(faces):
    t = TemplateLandmarks.from_landmarks(faces.landmarks, (48, 48))
    lm, _ = t(faces.images[:2])
    assert torch.allclose(lm[0], faces.landmarks.mean(0), atol=1e-4)


def test_dataset_provider_returns_the_data_sets_own_landmarks(faces):
    lm, ok = DatasetLandmarks.of(faces)(faces.images)
    assert torch.equal(lm, faces.landmarks) and ok.all()
    with pytest.raises(ConfigError):
        DatasetLandmarks.of(faces)(faces.images[:3])
    with pytest.raises(ConfigError):
        DatasetLandmarks.of(without_landmarks(faces))


def test_landmarks_for_prefers_the_data_sets_own(faces):
    lm, ok, name, counts = landmarks_for(faces)
    assert name == "dataset" and counts == {"dataset": 20, "template": 0}
    assert torch.equal(lm, faces.landmarks) and ok.all()


def test_missing_rows_fall_back_to_the_template_and_are_counted(faces):
    lm = faces.landmarks.clone()
    lm[[2, 7, 11]] = float("nan")
    lm_out, ok, name, counts = landmarks_for(replace(faces, landmarks=lm), "dataset")
    assert name == "dataset" and counts == {"dataset": 17, "template": 3}
    assert ok.sum() == 17 and not ok[[2, 7, 11]].any()
    assert torch.isfinite(lm_out).all()
    # 17 ok faces are too few for a data-set template: the shipped default fills the gaps
    assert torch.allclose(lm_out[2], from_unit(default_template(), (48, 48)))
    assert torch.equal(lm_out[ok], faces.landmarks[ok])


def test_with_enough_faces_the_fallback_is_the_training_mean(faces, monkeypatch):
    monkeypatch.setattr(L, "MIN_TEMPLATE_FACES", 5)
    lm = faces.landmarks.clone()
    lm[0] = float("nan")
    lm_out, ok, _, _ = landmarks_for(replace(faces, landmarks=lm), "dataset")
    assert torch.allclose(lm_out[0], faces.landmarks[1:].mean(0), atol=1e-4)


def test_template_provider_answers_every_row(faces):
    lm, ok, name, counts = landmarks_for(faces, "template")
    assert name == "template" and counts == {"template": 20} and ok.all()
    assert lm.shape == (20, 68, 2)


def test_auto_without_landmarks_or_dlib_uses_the_template(faces, monkeypatch):
    monkeypatch.setattr(L, "dlib_available", lambda: False)
    _, _, name, counts = landmarks_for(without_landmarks(faces))
    assert name == "template" and counts == {"template": 20}


def test_unknown_provider_is_a_config_error(faces):
    with pytest.raises(ConfigError, match="unknown landmark provider"):
        landmarks_for(faces, "openface")


def test_dlib_missing_is_a_config_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    with pytest.raises(ConfigError, match=r"facexai\[landmarks\]"):
        DlibLandmarks()


def test_outlier_scores_separate_placement_from_shape(faces):
    ref = faces.landmarks[0]
    angle = math.radians(10)
    turn = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = (ref - 24) @ turn.T * 1.2 + 24 + 3  # the same shape, rotated, scaled and shifted
    squashed = ref.clone()
    squashed[:, 0] = 24 + (ref[:, 0] - 24) * 0.5  # a profile-like squeeze
    shift, shape = outlier_scores(torch.stack([ref, moved, squashed]), ref)
    assert shift[0] == 0 and shape[0] < 1e-5
    assert shift[1] > 0.1 and shape[1] < 1e-4
    assert shape[2] > 0.1


def test_dlib_provider_contract_on_synthetic_faces(faces):
    needs_dlib()
    lm, ok = DlibLandmarks()(faces.images[:6])
    assert lm.shape == (6, 68, 2) and lm.dtype == torch.float32 and ok.shape == (6,) and ok.dtype == torch.bool
    assert torch.isfinite(lm).all()
    assert (lm[:, 36:48, 1].mean(1) < lm[:, 48:60, 1].mean(1)).all()  # eyes above the mouth


def test_dlib_results_are_cached_per_data_set(faces, monkeypatch):
    needs_dlib()
    ds = without_landmarks(faces).select(torch.arange(4))
    first = landmarks_for(ds, "dlib")
    assert first[2] == "dlib" and sum(first[3].values()) == 4

    def fail(self, images):
        raise AssertionError("dlib ran again instead of reading the cache")

    monkeypatch.setattr(DlibLandmarks, "detect", fail)
    second = landmarks_for(ds, "dlib")
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]) and first[3] == second[3]
    with pytest.raises(AssertionError, match="ran again"):  # another data set is not served from this cache
        landmarks_for(replace(ds, ids=[f"other:{i}" for i in range(4)]), "dlib")


def test_dlib_lands_on_real_frontal_faces():
    needs_dlib()
    import numpy as np
    from PIL import Image

    root = shared_data("ferplus", "FER2013Train")
    paths = [root / f"fer{i:07d}.png" for i in range(40)]
    paths = [p for p in paths if p.exists()][:24]
    images = torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("L")) for p in paths]))[:, None]
    lm, ok = DlibLandmarks()(images)
    assert ok.sum() >= 18  # most FER+ faces are near-frontal
    eyes, mouth = lm[ok, 36:48].mean(1), lm[ok, 48:60].mean(1)
    assert (eyes[:, 1] < mouth[:, 1]).all()
    assert ((eyes > 0) & (eyes < 48)).all()
