"""68-point landmark providers: the data set's own annotations, dlib's shape predictor (optional), or a template.

A provider maps uint8 images (N, C, H, W) to `(landmarks (N, 68, 2) float32, ok (N,) bool)`: (x, y)
pixel index coordinates (the top-left pixel's centre is (0, 0)) in iBUG 300-W order, and whether
each row is the provider's own usable answer. `landmarks_for` picks a provider for a data set,
fills the rows that are not ok from a template and counts them.

Templates are stored in unit-square coordinates (0 and 1 are the image edges: x = u * W - 0.5), so
one template serves every image size.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facexai.data.base import SPLITS, FaceDataset
from facexai.data.cache import cache_dir, fingerprint
from facexai.errors import ConfigError, MalformedDataError
from facexai.io.files import atomic_save

PROVIDERS: tuple[str, ...] = ("auto", "dataset", "dlib", "template")
MIN_TEMPLATE_FACES = 50  # fewer ok faces than this and the fallback template is the shipped default
TEMPLATE_FILE = "template.json"
OUTLIER_POINTS = slice(17, 48)  # brows, nose, eyes


def to_unit(landmarks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., 68, 2) pixel coordinates on (H, W) images -> unit-square coordinates."""
    h, w = size
    return (landmarks + 0.5) / torch.tensor([w, h], dtype=landmarks.dtype)


def from_unit(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., 68, 2) unit-square coordinates -> pixel coordinates on (H, W) images."""
    h, w = size
    return points * torch.tensor([w, h], dtype=points.dtype) - 0.5


def mean_landmarks(landmarks: torch.Tensor, ok: torch.Tensor | None = None) -> torch.Tensor:
    """(68, 2) coordinate-wise mean of the ok, finite rows of (N, 68, 2) landmarks.

    No Procrustes alignment: on pre-cropped faces the mean in image coordinates is the template wanted.
    """
    keep = torch.isfinite(landmarks).flatten(1).all(1)
    if ok is not None:
        keep &= ok.bool()
    if not keep.any():
        raise ConfigError("no usable landmarks to average (every row is missing or flagged)")
    return landmarks[keep].double().mean(0).float()


def default_template() -> torch.Tensor:
    """(68, 2) float32 unit-square template shipped with facexai (see the JSON for how it was made)."""
    try:
        text = resources.files("facexai.faces").joinpath(TEMPLATE_FILE).read_text()
        points = torch.tensor(json.loads(text)["points"], dtype=torch.float32)
    except (OSError, KeyError, ValueError) as e:
        raise MalformedDataError(f"facexai/faces/{TEMPLATE_FILE}: cannot read the default template ({e})") from None
    if points.shape != (68, 2):
        raise MalformedDataError(f"facexai/faces/{TEMPLATE_FILE}: expected 68 (x, y) points, got {tuple(points.shape)}")
    return points


def _iod(points: torch.Tensor) -> torch.Tensor:
    """(...,) inter-ocular distance (between the eye centres) of (..., 68, 2) landmarks."""
    return (points[..., 42:48, :].mean(-2) - points[..., 36:42, :].mean(-2)).norm(dim=-1)


def outlier_scores(landmarks: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(shift, shape), each (N,): how far (N, 68, 2) landmarks are from a (68, 2) reference, in reference IODs.

    shift: mean point distance as they stand (a face found in the wrong place or at the wrong scale);
    shape: mean point distance after the best similarity transform (a distorted shape, e.g. a profile).
    Only brows, nose and eyes count (OUTLIER_POINTS): expressions move them least, so an open mouth
    or a dropped jaw (surprise, fear) is not an outlier.
    """
    iod = _iod(reference.double()).clamp(min=1e-6)
    lm, ref = landmarks[:, OUTLIER_POINTS].double(), reference[OUTLIER_POINTS].double()
    shift = (lm - ref).norm(dim=-1).mean(-1) / iod
    a = torch.complex(*(lm - lm.mean(-2, keepdim=True)).unbind(-1))  # (N, 68)
    b = torch.complex(*(ref - ref.mean(-2, keepdim=True)).unbind(-1))  # (68,)
    s = (a.conj() * b).sum(-1) / (a.conj() * a).sum(-1).real.clamp(min=1e-12)  # (N,) scale * rotation
    shape = (s[:, None] * a - b).abs().mean(-1) / iod
    return shift.float(), shape.float()


class LandmarkProvider:
    """Maps uint8 images (N, C, H, W) to (landmarks (N, 68, 2) float32, ok (N,) bool)."""

    name = "provider"

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """JSON-able settings that change the output (part of the cache key)."""
        return {"name": self.name}


class DatasetLandmarks(LandmarkProvider):
    """The data set's own landmarks (e.g. the synthetic faces' exact ones); rows with NaNs are not ok."""

    name = "dataset"

    def __init__(self, landmarks: torch.Tensor) -> None:
        self.landmarks = landmarks.float()  # (N, 68, 2)

    @classmethod
    def of(cls, dataset: FaceDataset) -> DatasetLandmarks:
        if dataset.landmarks is None:
            raise ConfigError(f"{dataset.name} has no landmarks of its own; use the dlib or template provider")
        return cls(dataset.landmarks)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored rows; `images` must be the N images they belong to (only their count is checked)."""
        if len(images) != len(self.landmarks):
            raise ConfigError(f"{len(images)} images but {len(self.landmarks)} stored landmark rows")
        return self.landmarks, torch.isfinite(self.landmarks).flatten(1).all(1)


class TemplateLandmarks(LandmarkProvider):
    """One 68-point template for every image, scaled to the image size: for when no detector is installed."""

    name = "template"

    def __init__(self, template: torch.Tensor | None = None) -> None:
        self.template = default_template() if template is None else template.float()  # (68, 2) unit square

    @classmethod
    def from_landmarks(
        cls, landmarks: torch.Tensor, size: tuple[int, int], ok: torch.Tensor | None = None
    ) -> TemplateLandmarks:
        """The mean of (N, 68, 2) pixel landmarks on (H, W) images, e.g. a data set's training split."""
        return cls(to_unit(mean_landmarks(landmarks, ok), size))

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, size = len(images), tuple(images.shape[-2:])
        lm = from_unit(self.template, size)[None].expand(n, 68, 2).contiguous()
        return lm, torch.ones(n, dtype=torch.bool)

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "template": self.template.tolist()}


def dlib_available() -> bool:
    """Whether dlib and the face-recognition-models shape predictor are both installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("dlib", "face_recognition_models"))


def shape_predictor_path() -> Path:
    """The 68-point .dat inside face-recognition-models, found without importing it (its pkg_resources fails)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("face-recognition-models is not installed: pip install 'facexai[landmarks]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.exists():
        raise ConfigError(f"face-recognition-models has no 68-point shape predictor at {path}")
    return path


@functools.lru_cache(maxsize=1)
def _shape_predictor(path: str) -> Any:
    """dlib's predictor, loaded once per process (reading the 100 MB .dat takes seconds)."""
    import dlib

    return dlib.shape_predictor(path)


class DlibLandmarks(LandmarkProvider):
    """dlib's 68-point shape predictor on pre-cropped faces (the whole image is the face box).

    Images smaller than `min_size` are upsampled `upsample` times (bilinear) first: on 48x48 FER
    crops that is what makes the predictor land well on frontal faces (it does badly on profiles).
    Rows are not ok when they are far from a reference shape (`outlier_scores`): shift above
    `max_shift` or shape above `max_shape` IODs. The reference is the coordinate-wise median of the
    call's detections (at least 20 images), else `reference` or the default template.
    Defaults were set by eye on 2,000 FER+ training faces: the shape test flags about 5%, mostly
    profiles and three-quarter views fitted badly; the shift test only gross misplacements (FER crops
    vary in scale, so a frontal face drawn small in its crop is still ok).
    """

    name = "dlib"

    def __init__(
        self,
        upsample: int = 4,
        min_size: int = 128,
        max_shift: float = 1.0,
        max_shape: float = 0.12,
        reference: torch.Tensor | None = None,
        chunk: int = 256,
    ) -> None:
        try:
            import dlib
        except ImportError:
            raise ConfigError("dlib landmarks need the optional extra: pip install 'facexai[landmarks]'") from None
        self._dlib = dlib
        self._path = str(shape_predictor_path())  # read on first use: a cached call never needs it (1.1 s)
        self.upsample, self.min_size, self.chunk = upsample, min_size, chunk
        self.max_shift, self.max_shape = max_shift, max_shape
        self.reference = reference  # (68, 2) unit square, or None

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dlib": getattr(self._dlib, "__version__", "?"),
            "upsample": self.upsample,
            "min_size": self.min_size,
            "max_shift": self.max_shift,
            "max_shape": self.max_shape,
            "reference": None if self.reference is None else self.reference.tolist(),
        }

    def detect(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 68, 2) float32 raw predictions, no outlier check."""
        n, c, h, w = images.shape
        f = self.upsample if min(h, w) < self.min_size else 1
        out = np.empty((n, 68, 2), np.float32)
        box = self._dlib.rectangle(0, 0, w * f - 1, h * f - 1)
        predictor = _shape_predictor(self._path)
        for start in range(0, n, self.chunk):
            batch = images[start : start + self.chunk].cpu()
            if f > 1:
                batch = torch.nn.functional.interpolate(batch.float(), scale_factor=f, mode="bilinear")
                batch = batch.round().clamp(0, 255).to(torch.uint8)
            arrays = batch[:, 0].numpy() if c == 1 else batch[:, :3].permute(0, 2, 3, 1).numpy()  # (B, H, W[, 3])
            for i, a in enumerate(arrays):
                shape = predictor(np.ascontiguousarray(a), box)
                out[start + i] = [(p.x, p.y) for p in shape.parts()]
        return torch.from_numpy((out + 0.5) / f - 0.5)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lm = self.detect(images)
        size = tuple(images.shape[-2:])
        if len(lm) >= 20:
            ref = lm.median(0).values
        else:
            ref = from_unit(default_template() if self.reference is None else self.reference, size)
        shift, shape = outlier_scores(lm, ref)
        ok = torch.isfinite(lm).flatten(1).all(1) & (shift <= self.max_shift) & (shape <= self.max_shape)
        return lm, ok


def _dataset_key(dataset: FaceDataset, provider: LandmarkProvider) -> str:
    """Fingerprint of a data set's meta, ids, size and pixels plus the provider's settings."""
    ids = hashlib.sha256("\0".join(dataset.ids).encode()).hexdigest()
    pixels = hashlib.sha256(dataset.images.contiguous().numpy().tobytes()).hexdigest()
    facts = {"name": dataset.name, "meta": dataset.meta, "size": dataset.size, "n": len(dataset)}
    return fingerprint([], {"landmarks": provider.settings(), **facts, "ids": ids, "pixels": pixels})


def _cached_call(
    dataset: FaceDataset, provider: LandmarkProvider, use_cache: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """provider(dataset.images), saved atomically under the cache folder and reused while nothing changed."""
    if not use_cache:
        return provider(dataset.images)
    path = cache_dir() / f"landmarks-{dataset.name}-{provider.name}-{_dataset_key(dataset, provider)}.pt"
    if path.exists():
        try:
            state = torch.load(path, weights_only=True)
            if state["landmarks"].shape == (len(dataset), 68, 2) and state["ok"].shape == (len(dataset),):
                return state["landmarks"], state["ok"]
        except Exception:  # a damaged cache is recomputed, never trusted
            pass
        path.unlink(missing_ok=True)
    lm, ok = provider(dataset.images)
    atomic_save({"landmarks": lm, "ok": ok}, path)
    return lm, ok


def fallback_template(dataset: FaceDataset, landmarks: torch.Tensor, ok: torch.Tensor) -> TemplateLandmarks:
    """The mean of the ok training-split rows (else all ok rows) if there are enough, else the default template."""
    train = dataset.split == SPLITS.index("train")
    for rows in (ok & train, ok):
        if int(rows.sum()) >= MIN_TEMPLATE_FACES:
            return TemplateLandmarks.from_landmarks(landmarks, dataset.size, rows)
    return TemplateLandmarks()


def landmarks_for(
    dataset: FaceDataset, provider: str = "auto", use_cache: bool = True
) -> tuple[torch.Tensor, torch.Tensor, str, dict[str, int]]:
    """Landmarks for every image of a data set: (landmarks (N, 68, 2), ok (N,), provider name, counts).

    auto: the data set's own landmarks if it has them, else dlib if installed, else the template.
    Rows the provider could not answer (missing, or flagged as outliers) are filled from
    `fallback_template` and have ok False; counts = {provider name: rows it answered, "template": filled}.
    The template provider answers every row with the shipped default template. dlib results are cached.
    """
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown landmark provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    if provider == "auto":
        provider = "dataset" if dataset.landmarks is not None else "dlib" if dlib_available() else "template"
    if provider == "template":
        lm, ok = TemplateLandmarks()(dataset.images)
        return lm, ok, "template", {"template": len(dataset)}
    if provider == "dataset":
        lm, ok = DatasetLandmarks.of(dataset)(dataset.images)
    else:
        lm, ok = _cached_call(dataset, DlibLandmarks(), use_cache)
    lm, ok = lm.clone(), ok.clone()
    missing = ~ok
    if missing.any():
        lm[missing] = fallback_template(dataset, lm, ok)(dataset.images[missing])[0]
    return lm, ok, provider, {provider: int(ok.sum()), "template": int(missing.sum())}
