"""Faces in photos: dlib's frontal face detector, its 68 landmarks, and a similarity transform on the eye
centres that aligns and crops each face the way the training faces were framed.

The crop puts the eye centres where the template face (the mean of 2,855 dlib-detected FER+ training
faces, `landmarks.default_template`) has them, at the model's input size; the face's own 68 landmarks go
through the same transform, so its region masks are its own, never the template's. Needs the
`landmarks` extra (dlib-bin, face-recognition-models).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from skimage.transform import SimilarityTransform, warp

from facexai.data.images import decode_one
from facexai.errors import ConfigError
from facexai.faces.landmarks import _shape_predictor, default_template, from_unit, shape_predictor_path


@dataclass
class Face:
    """One face found in a photo, aligned."""

    file: Path
    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the photo, pixels
    score: float  # the detector's score (None-like 0.0 for a whole-image guess)
    photo_landmarks: np.ndarray  # (68, 2) (x, y) in the photo
    image: torch.Tensor  # (3, S, S) uint8: the aligned crop
    landmarks: torch.Tensor  # (68, 2) float32 (x, y) in the crop


@functools.lru_cache(maxsize=1)
def _detector():
    try:
        import dlib
    except ImportError:
        raise ConfigError("finding faces in photos needs the landmarks extra: pip install 'facexai[landmarks]'") \
            from None
    return dlib, dlib.get_frontal_face_detector()


Found = tuple[tuple[int, int, int, int], float, np.ndarray]  # box, score, (68, 2) landmarks


def detect(photo: np.ndarray, threshold: float = 0.5, upsample: int = 1) -> list[Found]:
    """[(box, score, (68, 2) landmarks)] of the frontal faces in an (H, W, 3) uint8 photo scoring above
    `threshold` (dlib's detection score; the mission patch on skimage's astronaut scores about 0.1),
    best first."""
    dlib, detector = _detector()
    predictor = _shape_predictor(str(shape_predictor_path()))
    rects, scores, _ = detector.run(np.ascontiguousarray(photo), upsample, min(threshold, 0.0))
    found = []
    for rect, score in sorted(zip(rects, scores, strict=True), key=lambda rs: -rs[1]):
        if score < threshold:
            continue
        shape = predictor(np.ascontiguousarray(photo), rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
        found.append(((rect.left(), rect.top(), rect.right(), rect.bottom()), float(score), points))
    return found


def whole_image(photo: np.ndarray) -> Found:
    """A whole-image guess (--no-detect): the photo is taken as the face box; landmarks by the shape predictor
    inside it."""
    dlib, _ = _detector()
    predictor = _shape_predictor(str(shape_predictor_path()))
    h, w = photo.shape[:2]
    shape = predictor(np.ascontiguousarray(photo), dlib.rectangle(0, 0, w - 1, h - 1))
    return (0, 0, w - 1, h - 1), 0.0, np.array([(p.x, p.y) for p in shape.parts()], np.float64)


def align(photo: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """((3, S, S) uint8 crop, (68, 2) landmarks in it): a similarity transform taking the face's eye centres to
    the template's."""
    template = from_unit(default_template(), (size, size)).double().numpy()  # (68, 2) at S x S
    eyes = lambda p: np.stack([p[36:42].mean(0), p[42:48].mean(0)])  # noqa: E731
    tf = SimilarityTransform.from_estimate(eyes(landmarks), eyes(template))
    if not tf:
        raise ConfigError("could not align a face: its eye centres coincide")
    crop = warp(photo, tf.inverse, output_shape=(size, size), order=1, mode="edge", preserve_range=True)
    image = torch.from_numpy(np.round(crop).clip(0, 255).astype(np.uint8)).permute(2, 0, 1).contiguous()
    return image, torch.from_numpy(tf(landmarks).astype(np.float32))


def faces_in(path: str | Path, size: int, threshold: float = 0.5, detect_faces: bool = True) -> list[Face]:
    """Every face in a photo file, aligned to size x size (an empty list when none is found)."""
    path = Path(path)
    photo = decode_one(path, 3).permute(1, 2, 0).numpy()  # (H, W, 3)
    found = detect(photo, threshold) if detect_faces else [whole_image(photo)]
    out = []
    for box, score, points in found:
        image, lm = align(photo, points, size)
        out.append(Face(path, box, score, points, image, lm))
    return out
