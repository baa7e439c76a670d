"""Procedural faces whose emotion evidence is known by construction.

Every image is drawn from one parameter record (`FaceParams`): identity (face shape, feature
sizes, colours), nuisance (pose, lighting, background clutter, pixel noise) and FACS action-unit
(AU) intensities. Only the AU intensities depend on the emotion, and each AU moves landmarks or
draws only inside its own face regions (`AU_REGIONS`), so the regions that separate the emotions
are known exactly and stored as `meta["evidence"]`. Faces are drawn in a canonical frame (the
image is [-1, 1]^2, y down) and mapped to pixels by one similarity transform per image; the 68
iBUG landmarks go through the same transform, so they stay exact. Polygons are filled by a batched
numpy scanline rasteriser (the skimage.draw.polygon rule: a pixel is in when its centre is) at 2x
and block-averaged, so a batch of faces is drawn at once (about 1 ms per 48x48 face).

Each AU's effect in each region can be switched off on its own (`FaceParams.gate`), so a face can
be re-rendered with one region neutral and everything else identical (`neutral_region`): the
intervention that measures which regions a model uses. Three variants, by name (`VARIANTS`):

- "facs": each emotion shows its FACS prototype AUs (`facs.PROTOTYPES`), which span several regions.
- "single-region": each of the six expressions differs from neutral in exactly one region, a
  different one per emotion (`SINGLE_REGION`), so no constant answer fits them all. Region-confined
  deformations are AUs gated to one of their regions: an inner-brow raise of the brows only (AU1
  without its forehead wrinkles), furrows of the glabella only (AU4 without moving the brows), a
  jaw drop of the chin only (AU26 with the mouth closed).
- "shortcut": the facs faces plus a planted cue, a dark patch on the chin (`CUE_REGION`), put on
  every training face of `SHORTCUT_CLASS` and on other training faces so that the cue predicts
  that class with probability `shortcut_rate`; on validation and test faces it is on half of
  every class, independent of the emotion. FACS names no chin movement for sadness, so a model
  that learns the cue uses a region no FACS table names for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from facexai.config import DataConfig
from facexai.data.base import FaceDataset, stratified_split
from facexai.data.cache import cached, fingerprint
from facexai.emotions import SEVEN, Emotion
from facexai.errors import ConfigError
from facexai.facs import AU_NAMES, AU_REGIONS, PROTOTYPES, FaceRegion, evidence

GENERATOR_VERSION = 5  # bump when the pictures (or what a data set stores) change for the same options

R = FaceRegion
VARIANTS = ("facs", "single-region", "shortcut")
# single-region: each expression's AUs, and the one region they may act in (others stay neutral)
SINGLE_REGION: dict[Emotion, tuple[tuple[str, ...], FaceRegion]] = {
    Emotion.NEUTRAL: ((), R.MOUTH),  # no AU: the region is never used
    Emotion.HAPPINESS: (("AU12",), R.MOUTH),  # lip corners up
    Emotion.SURPRISE: (("AU5",), R.EYES),  # upper lids up
    Emotion.SADNESS: (("AU1",), R.BROWS),  # inner brows up, no forehead wrinkles
    Emotion.ANGER: (("AU4",), R.GLABELLA),  # vertical furrows, the brows stay where they are
    Emotion.DISGUST: (("AU9",), R.NOSE),  # nose wrinkles, nostrils up
    Emotion.FEAR: (("AU26",), R.CHIN),  # jaw and chin lowered, the mouth stays closed
}
SHORTCUT_CLASS = Emotion.SADNESS
CUE_REGION = R.CHIN

# Per-image AU intensity noise: prototype AUs ~ U(AU_ON), any other AU is on with
# probability SPURIOUS_P at ~ U(0, SPURIOUS_MAX); the two ranges never overlap.
AU_ON = (0.6, 1.0)
SPURIOUS_P = 0.15
SPURIOUS_MAX = 0.2

# Identity geometry, canonical units, sampled uniformly: the same ranges for every emotion.
GEOMETRY: dict[str, tuple[float, float]] = {
    "face_w": (0.56, 0.66),  # half-width of the jaw
    "chin_y": (0.64, 0.72),
    "jaw_sq": (0.7, 1.0),  # < 1: squarer jaw
    "head_top": (-0.98, -0.86),
    "hairline": (-0.72, -0.62),
    "hair_len": (-0.2, 0.9),  # how far down the back hair reaches
    "brow_y": (-0.37, -0.31),
    "brow_arch": (0.015, 0.045),
    "brow_tilt": (-0.015, 0.015),  # resting inner-end height (+ = lower)
    "brow_th": (0.035, 0.06),
    "brow_in": (0.075, 0.11),
    "brow_out": (0.46, 0.54),
    "eye_x": (0.24, 0.29),
    "eye_y": (-0.19, -0.14),
    "eye_w": (0.095, 0.12),
    "eye_open": (0.035, 0.05),
    "iris_r": (0.032, 0.042),
    "gaze_x": (-0.015, 0.015),
    "gaze_y": (-0.008, 0.008),
    "nose_tip": (0.1, 0.16),
    "nose_w": (0.09, 0.12),
    "mouth_y": (0.36, 0.42),
    "mouth_w": (0.16, 0.21),
    "lip_u": (0.03, 0.048),
    "lip_l": (0.04, 0.062),
    "mouth_curve": (-0.015, 0.015),  # resting corner height (+ = up)
}

# RGB palettes, interpolated by a uniform tone in [0, 1].
SKIN = np.array([[0.96, 0.80, 0.69], [0.75, 0.56, 0.42], [0.36, 0.24, 0.17]])
HAIR = np.array([[0.08, 0.06, 0.05], [0.40, 0.26, 0.15], [0.85, 0.70, 0.45]])
IRIS = np.array([[0.22, 0.13, 0.07], [0.30, 0.45, 0.60]])
COLOURS = ("skin", "hair", "brow", "lip", "background", "sclera", "iris", "cloth")
LUMA = np.array([0.299, 0.587, 0.114])

SUPERSAMPLE = 2  # drawn at 2x and block-averaged: anti-aliased edges
CLUTTER = 6  # most background shapes per image


@dataclass(frozen=True)
class FaceParams:
    """N faces, everything `render` needs; only `aus` depends on the emotion."""

    aus: np.ndarray  # (N, len(AU_NAMES)) intensities in [0, 1]
    geometry: np.ndarray  # (N, len(GEOMETRY)) identity shape, canonical units
    colours: np.ndarray  # (N, len(COLOURS), 3) RGB in [0, 1]
    pose: np.ndarray  # (N, 4) scale, rotation (radians), shift x, shift y (canonical units)
    light: np.ndarray  # (N, 2) gradient direction (radians), gradient strength
    clutter: np.ndarray  # (N, CLUTTER, 12, 2) background shapes, canonical polygons
    clutter_colour: np.ndarray  # (N, CLUTTER, 3) RGB
    clutter_alpha: np.ndarray  # (N, CLUTTER) opacity, 0 for an absent shape
    noise: np.ndarray  # (N,) pixel noise standard deviation, [0, 1] intensity units
    seed: np.ndarray  # (N,) int64 seed of each image's pixel noise
    gate: np.ndarray | None = None  # (N, A, R) float32: 1 = AU a acts in region r, 0 = neutral there; None = all 1
    cue: np.ndarray | None = None  # (N,) float32 opacity of the shortcut cue (0 = none); None = no cue

    def __len__(self) -> int:
        return len(self.aus)

    def __getitem__(self, index: slice | np.ndarray) -> FaceParams:
        """The faces picked by a slice or an index array."""
        return FaceParams(**{k: None if v is None else v[index] for k, v in vars(self).items()})

    def au(self, name: str, region: FaceRegion) -> np.ndarray:
        """(N,) intensity of AU `name` where it acts in `region` (0 where the region is neutral)."""
        a = self.aus[:, AU_NAMES.index(name)]
        return a if self.gate is None else a * self.gate[:, AU_NAMES.index(name), list(FaceRegion).index(region)]

    def cue_alpha(self) -> np.ndarray:
        return np.zeros(len(self), np.float32) if self.cue is None else self.cue

    def with_aus(self, aus: dict[str, float]) -> FaceParams:
        """The same faces showing the AU intensities `aus` (others 0): the emotion swapped, nothing else."""
        row = np.array([aus.get(name, 0.0) for name in AU_NAMES], dtype=np.float32)
        return replace(self, aus=np.broadcast_to(row, self.aus.shape).copy())

    def neutral_region(self, region: FaceRegion) -> FaceParams:
        """The same faces with every AU's effect in `region` switched off (and the cue removed if it lies
        there): the intervention whose effect on a model is the region's true effect."""
        gate = np.ones((len(self), len(AU_NAMES), len(FaceRegion)), np.float32) if self.gate is None else self.gate
        gate = gate.copy()
        gate[:, :, list(FaceRegion).index(FaceRegion(region))] = 0
        cue = None if self.cue is None or FaceRegion(region) != CUE_REGION else np.zeros_like(self.cue)
        return replace(self, gate=gate, cue=self.cue if cue is None else cue)


def sample_aus(
    labels: np.ndarray, rng: np.random.Generator, prototypes: dict[Emotion, tuple[str, ...]] = PROTOTYPES
) -> np.ndarray:
    """(N, A) float32 AU intensities: prototype AUs strong, occasional weak spurious ones."""
    proto = np.array([[au in prototypes[e] for au in AU_NAMES] for e in SEVEN])[labels]  # (N, A)
    strong = rng.uniform(*AU_ON, proto.shape)
    weak = rng.uniform(0.0, SPURIOUS_MAX, proto.shape) * (rng.random(proto.shape) < SPURIOUS_P)
    return np.where(proto, strong, weak).astype(np.float32)


def _lerp(palette: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(N, 3) colours at positions t in [0, 1] along a piecewise-linear palette."""
    pos = t * (len(palette) - 1)
    i = np.minimum(pos.astype(int), len(palette) - 2)
    f = (pos - i)[:, None]
    return palette[i] * (1 - f) + palette[i + 1] * f


def _sample_clutter(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background blobs, discs and sticks: 2 to CLUTTER per image, anywhere (the head covers some)."""
    shape = (n, CLUTTER)
    stick = rng.random(shape) < 0.4
    rx = np.where(stick, rng.uniform(0.2, 0.6, shape), rng.uniform(0.05, 0.35, shape))
    ry = np.where(stick, rng.uniform(0.01, 0.03, shape), rx * rng.uniform(0.5, 1.0, shape))
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    radius = 1 + rng.uniform(0, 0.4, shape + (1,)) * rng.uniform(-1, 1, shape + (12,))  # (N, K, 12) wobble
    x, y = rx[..., None] * radius * np.cos(t), ry[..., None] * radius * np.sin(t)
    turn = rng.uniform(0, np.pi, shape + (1,))
    centre = rng.uniform(-1, 1, shape + (1, 2))
    poly = centre + np.stack([np.cos(turn) * x - np.sin(turn) * y, np.sin(turn) * x + np.cos(turn) * y], -1)
    alpha = rng.uniform(0.4, 1.0, shape) * (np.arange(CLUTTER) < rng.integers(2, CLUTTER + 1, (n, 1)))
    return poly, rng.random(shape + (3,)), alpha


def sample_params(labels: np.ndarray, seed: int, variant: str = "facs") -> FaceParams:
    """Parameter records for faces of the given class indices (into SEVEN), deterministic in `seed`.

    The variants draw the same identities, poses and nuisances from the same seed; only the
    expressions differ (the shortcut's cue is added by `add_cue`, which needs the split)."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown synthetic variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    rng = np.random.default_rng([seed, 0x5EED])
    n = len(labels)
    lo, hi = np.array(list(GEOMETRY.values())).T
    geometry = lo + (hi - lo) * rng.random((n, len(GEOMETRY)))
    skin = _lerp(SKIN, rng.random(n)) + rng.normal(0, 0.02, (n, 3))
    hair = _lerp(HAIR, rng.random(n))
    colours = np.stack(
        [
            skin,
            hair,
            0.5 * hair + 0.5 * skin * rng.uniform(0.3, 0.55, (n, 1)),  # brows: always darker than skin
            skin * [0.85, 0.58, 0.58] * rng.uniform(0.8, 1.0, (n, 1)),  # lips
            rng.random((n, 3)),  # background
            [0.93, 0.92, 0.9] * rng.uniform(0.85, 1.0, (n, 1)),  # sclera
            _lerp(IRIS, rng.random(n)),
            rng.random((n, 3)),  # clothes
        ],
        1,
    )
    pose = np.stack(
        [rng.uniform(0.88, 1.04, n), np.radians(rng.uniform(-6, 6, n)), *rng.uniform(-0.05, 0.05, (2, n))], 1
    )
    light = np.stack([rng.uniform(0, 2 * np.pi, n), rng.uniform(0.0, 0.35, n)], 1)
    clutter, clutter_colour, clutter_alpha = _sample_clutter(n, rng)
    single = variant == "single-region"
    prototypes = {e: aus for e, (aus, _) in SINGLE_REGION.items()} if single else PROTOTYPES
    params = FaceParams(
        aus=sample_aus(labels, rng, prototypes),
        geometry=geometry,
        colours=np.clip(colours, 0, 1),
        pose=pose,
        light=light,
        clutter=clutter,
        clutter_colour=clutter_colour,
        clutter_alpha=clutter_alpha,
        noise=rng.uniform(0.01, 0.04, n),
        seed=rng.integers(0, 2**62, n),
    )
    return _confine(params, labels) if single else params


def _confine(p: FaceParams, labels: np.ndarray) -> FaceParams:
    """single-region: each face's expression AUs act only in its emotion's region (spurious AUs as usual)."""
    gate = np.ones((len(p), len(AU_NAMES), len(FaceRegion)), np.float32)
    for k, emo in enumerate(SEVEN):
        aus, region = SINGLE_REGION[emo]
        for au in aus:
            i = AU_NAMES.index(au)
            gate[labels == k, i, :] = 0
            gate[labels == k, i, list(FaceRegion).index(region)] = 1
    return replace(p, gate=gate)


def add_cue(p: FaceParams, labels: np.ndarray, split: np.ndarray, rate: float, seed: int) -> FaceParams:
    """shortcut: the chin cue on every training face of SHORTCUT_CLASS and on enough other training faces
    that P(SHORTCUT_CLASS | cue) = rate; on validation and test faces on half of each class."""
    if not 0 < rate <= 1:
        raise ConfigError(f"shortcut_rate must lie in (0, 1], got {rate}")
    rng = np.random.default_rng([seed, 0xC0E])
    k = SEVEN.index(SHORTCUT_CLASS)
    train = split == 0
    cue = np.zeros(len(p), np.float32)
    cue[train & (labels == k)] = 1
    others = np.flatnonzero(train & (labels != k))
    extra = min(len(others), round(int((train & (labels == k)).sum()) * (1 - rate) / rate))
    cue[rng.choice(others, extra, replace=False)] = 1
    held = ~train
    cue[held] = (rng.random(int(held.sum())) < 0.5).astype(np.float32)
    return replace(p, cue=cue)


def canonical_landmarks(p: FaceParams) -> np.ndarray:
    """(N, 68, 2) iBUG landmarks in the canonical frame ([-1, 1]^2, y down), AUs applied."""
    g = {k: v[:, None] for k, v in zip(GEOMETRY, p.geometry.T, strict=True)}  # each (N, 1)

    def a(name: str, region: FaceRegion) -> np.ndarray:  # (N, 1) intensity of an AU where it acts in region
        return p.au(name, region)[:, None]

    n = len(p)
    pts = np.zeros((n, 68, 2))

    # jaw 0-16, image left to right through the chin; AU26 lowers 4-12 (the chin region)
    t = np.linspace(0, np.pi, 17)
    top = g["eye_y"] + 0.05
    pts[:, 0:17, 0] = -g["face_w"] * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** g["jaw_sq"]
    pts[:, 0:17, 1] = top + (g["chin_y"] - top) * np.sin(t)
    pts[:, 4:13, 1] += 0.12 * a("AU26", R.CHIN) * np.sin(np.linspace(0, np.pi, 9))

    # brows: v = 0 at the inner end, 1 at the outer; right brow 17-21 runs outer -> inner
    v = np.linspace(0, 1, 5)
    for idx, side, vv in ((slice(17, 22), -1, v[::-1]), (slice(22, 27), 1, v)):
        x = g["brow_in"] + (g["brow_out"] - g["brow_in"]) * vv - 0.05 * a("AU4", R.BROWS) * (1 - vv)
        y = g["brow_y"] - g["brow_arch"] * (1 - ((vv - 0.6) / 0.6) ** 2) + g["brow_tilt"] * (1 - vv)
        y = (
            y
            - 0.09 * a("AU1", R.BROWS) * (1 - vv) ** 1.5
            - 0.08 * a("AU2", R.BROWS) * vv**1.2
            + 0.06 * a("AU4", R.BROWS) * (1 - 0.5 * vv)
        )
        pts[:, idx, 0], pts[:, idx, 1] = side * x, y

    # eyes: u = 0 at the outer corner, 1 at the inner; AU5 lifts the upper lid, AU7 the lower one
    upper = g["eye_open"] + 0.045 * a("AU5", R.EYES) - 0.01 * a("AU7", R.EYES)
    lower = 0.75 * g["eye_open"] - 0.03 * a("AU7", R.EYES)
    u = np.array([0, 1 / 3, 2 / 3, 1, 2 / 3, 1 / 3])  # 36..41: outer corner, upper lid x2, inner, lower lid x2
    is_upper = np.array([False, True, True, False, False, False])
    for start, side, uu in ((36, -1, u), (42, 1, u[[3, 2, 1, 0, 5, 4]])):  # 42..47 start at the inner corner
        x = side * (g["eye_x"] + g["eye_w"] * (1 - 2 * uu))
        y = g["eye_y"] + np.sin(np.pi * uu) * np.where(is_upper, -upper, lower)
        pts[:, start : start + 6, 0], pts[:, start : start + 6, 1] = x, y

    # nose: bridge 27-30, base 31-35; AU9 pulls the nostrils up and out
    pts[:, 27:31, 1] = g["eye_y"] - 0.03 + (g["nose_tip"] - g["eye_y"] + 0.03) * np.linspace(0, 1, 4)
    pts[:, 31:36, 0] = (
        g["nose_w"] * np.array([-1, -0.5, 0, 0.5, 1]) * (1 + 0.1 * a("AU9", R.NOSE) * np.array([1, 0, 0, 0, 1]))
    )
    pts[:, 31:36, 1] = (
        g["nose_tip"]
        + np.array([0.045, 0.06, 0.065, 0.06, 0.045])
        - 0.03 * a("AU9", R.NOSE) * np.array([1, 0.8, 0.5, 0.8, 1])
    )

    # mouth: h = -1 at the right corner (48), +1 at the left (54); outer 48-59, inner 60-67
    h = np.array([-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3, 1, 2 / 3, 1 / 3, 0, -1 / 3, -2 / 3])
    h = np.concatenate([h, [-0.85, -1 / 3, 0, 1 / 3, 0.85, 1 / 3, 0, -1 / 3]])  # (20,)
    lip = np.array([0, -1, -1, -1, -1, -1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])  # -1 upper, 1 lower outline
    is_lower = np.isin(np.arange(48, 68), [*range(55, 60), *range(65, 68)])  # moved by AU16 and AU26
    thin = (1 - 0.3 * a("AU20", R.MOUTH)) * (1 - 0.55 * a("AU23", R.MOUTH))
    bow = 1 - 0.15 * np.exp(-((h / 0.15) ** 2))  # cupid's bow dip
    edge = np.sqrt(np.clip(1 - h**2, 0, 1)) * np.where(lip < 0, -g["lip_u"] * bow, g["lip_l"]) * thin
    x = h * (
        g["mouth_w"]
        + 0.045 * a("AU12", R.MOUTH)
        - 0.01 * a("AU15", R.MOUTH)
        + 0.08 * a("AU20", R.MOUTH)
        - 0.03 * a("AU23", R.MOUTH)
    )
    corner = h**2  # corners move most
    y = (
        g["mouth_y"]
        + edge
        - corner
        * (g["mouth_curve"] + 0.09 * a("AU12", R.MOUTH) - 0.075 * a("AU15", R.MOUTH) - 0.015 * a("AU20", R.MOUTH))
    )
    y = (
        y
        + 0.03 * a("AU26", R.MOUTH) * corner
        + is_lower * (0.06 * a("AU16", R.MOUTH) * (1 - h**2) + 0.12 * a("AU26", R.MOUTH) * (1 - 0.6 * h**2))
    )
    pts[:, 48:68, 0], pts[:, 48:68, 1] = x, y
    return pts


Index = slice | np.ndarray  # which faces of a batch
ALL = slice(None)


def _to_pixels(pts: np.ndarray, pose: np.ndarray, size: float) -> np.ndarray:
    """(N, M, 2) canonical points -> continuous pixel coordinates on size x size images (edges at 0 and size)."""
    scale, angle, tx, ty = (pose[:, i, None] for i in range(4))  # each (N, 1)
    c, s = np.cos(angle), np.sin(angle)
    x, y = pts[..., 0], pts[..., 1]
    q = np.stack([scale * (c * x - s * y) + tx, scale * (s * x + c * y) + ty], -1)
    return (q + 1) / 2 * size


def landmarks(p: FaceParams, size: int) -> np.ndarray:
    """(N, 68, 2) float32 landmarks in pixel index coordinates (the top-left pixel's centre is (0, 0))."""
    return (_to_pixels(canonical_landmarks(p), p.pose, size) - 0.5).astype(np.float32)


def _curve(a: np.ndarray, b: np.ndarray, bend: np.ndarray | float, n: int = 8) -> np.ndarray:
    """(N, n, 2) points from a to b (each (N, 2)), bowed sideways by `bend` (canonical units)."""
    t = np.linspace(0, 1, n)[None, :, None]
    d = (b - a)[:, None]  # (N, 1, 2)
    normal = np.concatenate([-d[..., 1:], d[..., :1]], -1) / (np.linalg.norm(d, axis=-1, keepdims=True) + 1e-9)
    return a[:, None] + t * d + np.reshape(bend, (-1, 1, 1)) * 4 * t * (1 - t) * normal


def _ellipse(centre: np.ndarray, rx: np.ndarray | float, ry: np.ndarray | float, n: int = 16) -> np.ndarray:
    """(N, n, 2) polygon of axis-aligned ellipses around (N, 2) centres."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return centre[:, None] + np.stack([np.reshape(rx, (-1, 1)) * np.cos(t), np.reshape(ry, (-1, 1)) * np.sin(t)], -1)


def _stroke(pts: np.ndarray, width: np.ndarray | float) -> np.ndarray:
    """(N, 2M, 2) outline of polylines (N, M, 2) drawn `width` wide (scalar, (N, 1) or tapered (N, M))."""
    d = np.gradient(pts, axis=1)
    normal = np.stack([-d[..., 1], d[..., 0]], -1) / (np.linalg.norm(d, axis=-1, keepdims=True) + 1e-9)
    off = normal * (np.asarray(width)[..., None] / 2)
    return np.concatenate([pts + off, (pts - off)[:, ::-1]], 1)


Mask = tuple[slice, slice, np.ndarray]  # rows, cols and (n, R, W) bool coverage inside that window


class _Canvas:
    """N supersampled float32 canvases (N, H, W, C), drawn in canonical coordinates through each face's pose."""

    def __init__(self, p: FaceParams, size: int, channels: int):
        self.side = SUPERSAMPLE * size
        self.pose = p.pose
        self.img = np.zeros((len(p), self.side, self.side, channels), np.float32)
        colours = p.colours if channels == 3 else p.colours @ LUMA[:, None]  # (N, len(COLOURS), C)
        self.col = {name: colours[:, i] for i, name in enumerate(COLOURS)}  # each (N, C)
        self.min_width = 1.5 / (self.side * p.pose[:, :1] / 2)  # (N, 1) canonical width of 1.5 canvas pixels

    def mask(self, poly: np.ndarray, sel: Index = ALL, window: tuple[slice, slice] | None = None) -> Mask:
        """Even-odd scanline fill of the (N, V, 2) canonical polygons of faces `sel`, sampled at pixel centres."""
        xy = _to_pixels(poly[sel], self.pose[sel], self.side) - 0.5  # (n, V, 2) canvas index coordinates
        if window is None:
            (c0, r0), (c1, r1) = np.floor(xy.min((0, 1))), np.ceil(xy.max((0, 1))) + 1
            window = slice(int(max(r0, 0)), int(min(r1, self.side))), slice(int(max(c0, 0)), int(min(c1, self.side)))
        rows, cols = window
        n, h, w = len(xy), max(rows.stop - rows.start, 0), max(cols.stop - cols.start, 0)
        x0, y0 = xy[..., 0], xy[..., 1]  # (n, V)
        x1, y1 = np.roll(x0, -1, 1), np.roll(y0, -1, 1)
        ys = np.arange(rows.start, rows.start + h)[None, :, None]  # (1, R, 1)
        i, r, e = np.nonzero((y0[:, None] <= ys) != (y1[:, None] <= ys))  # edges crossing each row, grouped by row
        x = x0[i, e] + (ys[0, r, 0] - y0[i, e]) * (x1[i, e] - x0[i, e]) / (y1[i, e] - y0[i, e])
        row = i * h + r
        rank = np.arange(len(row)) - np.searchsorted(row, row)  # crossing number within its row
        cuts = np.full((n, h, rank.max(initial=-1) + 1), w, np.int64)  # first column right of each crossing
        cuts[i, r, rank] = np.clip(np.ceil(x).astype(np.int64) - cols.start, 0, w)
        cuts.sort(-1)
        span, cover = np.arange(w), np.zeros((n, h, w), bool)
        for k in range(0, cuts.shape[-1], 2):  # inside between crossings 0-1, 2-3, ...
            cover |= (span >= cuts[..., k, None]) & (span < cuts[..., k + 1, None])
        return rows, cols, cover

    def paint(self, m: Mask, colour: np.ndarray, alpha: np.ndarray | None = None, sel: Index = ALL) -> None:
        """Blend (N, C) colours with opacity alpha ((N,), None = opaque) into the masked pixels of faces `sel`."""
        rows, cols, cover = m
        faces = np.arange(len(self.img))[sel]
        if cover.sum() < 0.25 * cover.size:  # sparse: touch only the covered pixels
            k, r, c = np.nonzero(cover)
            at = faces[k], r + rows.start, c + cols.start
            new = colour[faces[k]]
            if alpha is not None:
                old = self.img[at]
                new = old + alpha[faces[k], None] * (new - old)
            self.img[at] = new
            return
        win = self.img[sel, rows, cols]  # (n, R, W, C): a view for ALL, a copy for an index array
        colour = colour[sel, None, None, :].astype(np.float32)
        if alpha is None:
            np.copyto(win, colour, where=cover[..., None])
        else:
            win += cover[..., None] * alpha[sel, None, None, None].astype(np.float32) * (colour - win)
        if sel is not ALL:
            self.img[sel, rows, cols] = win

    def fill(self, poly: np.ndarray, colour: np.ndarray, alpha: np.ndarray | float | None = None) -> None:
        """Fill polygons; faces whose alpha is 0 are skipped and stay exactly as they were."""
        sel: Index = ALL
        if alpha is not None:
            alpha = np.broadcast_to(np.asarray(alpha, np.float64), (len(self.img),))
            sel = np.flatnonzero(alpha > 0)
            if len(sel) == 0:
                return
        self.paint(self.mask(poly, sel), colour, alpha, sel)

    def line(self, pts: np.ndarray, width: float, colour: np.ndarray, alpha: np.ndarray | float | None = None) -> None:
        self.fill(_stroke(pts, np.maximum(width, self.min_width)), colour, alpha)


def _pair(x: float, y: np.ndarray) -> np.ndarray:
    """(N, 2) points (x, y[i])."""
    return np.stack([np.full_like(y, x), y], -1)


def render(p: FaceParams, size: int = 48, channels: int = 1) -> np.ndarray:
    """(N, C, size, size) uint8 images of the faces in `p` (their points come from `landmarks`)."""
    n = len(p)
    g = dict(zip(GEOMETRY, p.geometry.T, strict=True))  # each (N,)

    def a(name: str, region: FaceRegion) -> np.ndarray:  # (N,) float64 intensity of an AU where it acts in region
        return p.au(name, region).astype(np.float64)

    lm = canonical_landmarks(p)  # (N, 68, 2)
    cv = _Canvas(p, size, channels)
    col = cv.col
    skin = col["skin"]
    wrinkle = skin * 0.55

    # background: colour, clutter, clothes, back hair, neck, ears; then the head and the hair cap
    cv.img[:] = col["background"][:, None, None]
    clutter_col = p.clutter_colour if channels == 3 else p.clutter_colour @ LUMA[:, None]
    for k in range(CLUTTER):
        cv.fill(p.clutter[:, k], clutter_col[:, k], p.clutter_alpha[:, k])
    clothes = np.array([[-1.2, 1.3], [-1.0, 0.85], [-0.35, 0.7], [0.35, 0.7], [1.0, 0.85], [1.2, 1.3]])
    cv.fill(np.broadcast_to(clothes, (n, 6, 2)), col["cloth"])
    skull = np.linspace(0, np.pi, 20)[1:-1]
    fw, top = g["face_w"][:, None], (g["eye_y"] + 0.05)[:, None]  # (N, 1)
    height = g["head_top"][:, None] - top
    crown = np.stack([fw * np.cos(skull), top + height * np.sin(skull)], -1)  # (N, 18, 2) right to left
    back = np.stack([1.12 * fw * np.cos(skull), top + 1.1 * height * np.sin(skull)], -1)
    ends = [np.stack([side * 1.12 * fw[:, 0], g["hair_len"]], -1)[:, None] for side in (1, -1)]
    cv.fill(np.concatenate([ends[0], back, ends[1]], 1), col["hair"])
    cv.fill(np.broadcast_to([[-0.24, 0.2], [0.24, 0.2], [0.27, 0.95], [-0.27, 0.95]], (n, 4, 2)), skin * 0.8)
    for side in (-1, 1):
        cv.fill(_ellipse(np.stack([side * fw[:, 0], top[:, 0] + 0.06], -1), 0.06, 0.11), skin * 0.88)
    cv.fill(np.concatenate([lm[:, 0:17], crown], 1), skin)
    hairline = np.stack([fw * np.cos(skull), g["hairline"][:, None] + 0.25 * np.cos(skull) ** 4], -1)
    cv.fill(np.concatenate([1.03 * crown - [0, 0.02], hairline[:, ::-1]], 1), col["hair"])

    # forehead (AU1 central, AU2 lateral wrinkles), between the resting brows and the hairline
    brow_top = g["brow_y"] - g["brow_arch"]
    for f in (0.3, 0.5, 0.7):
        y = brow_top + f * (g["hairline"] + 0.03 - brow_top)
        cv.line(_curve(_pair(-0.2, y), _pair(0.2, y), 0.02), 0.014, wrinkle, 0.6 * a("AU1", R.FOREHEAD))
        for side in (-1, 1):
            cv.line(
                _curve(_pair(side * 0.16, y + 0.01), _pair(side * 0.42, y + 0.03), side * 0.015),
                0.014,
                wrinkle,
                0.6 * a("AU2", R.FOREHEAD),
            )
    # glabella (AU4): vertical furrows between the inner brow ends, down to the nasion
    for side in (-1, 1):
        furrow = np.stack([_pair(side * 0.025, lm[:, 21, 1] + 0.01), _pair(side * 0.03, lm[:, 27, 1] - 0.005)], 1)
        cv.line(furrow, 0.016, wrinkle, 0.7 * a("AU4", R.GLABELLA))

    # nose: side shadow, base, nostrils; AU9 wrinkles across the bridge
    cv.line(_curve(lm[:, 27] + [0.045, 0.02], lm[:, 30] + [0.055, 0.0], 0.01), 0.02, skin * 0.8, 0.5)
    cv.line(_curve(lm[:, 31], lm[:, 35], -0.03), 0.012, skin * 0.6, 0.5)
    for i in (32, 34):
        cv.fill(_ellipse(lm[:, i] - [0, 0.008], 0.022, 0.012, 10), skin * 0.3, 0.8)
    for f in (0.25, 0.45, 0.65):
        y = lm[:, 28, 1] + f * (lm[:, 30, 1] - lm[:, 28, 1])
        cv.line(_curve(_pair(-0.05, y), _pair(0.05, y), -0.012), 0.012, wrinkle, 0.7 * a("AU9", R.NOSE))

    # cheeks (AU6): raised-cheek highlight and a crease under each eye
    for side in (-1, 1):
        bulge = _ellipse(np.stack([side * (g["eye_x"] + 0.02), g["eye_y"] + 0.17], -1), 0.1, 0.06)
        cv.fill(bulge, skin * 1.25, 0.35 * a("AU6", R.CHEEKS))
        y = g["eye_y"] + 0.75 * g["eye_open"] + 0.04
        inner = np.stack([side * (g["eye_x"] - 0.3 * g["eye_w"]), y], -1)
        outer = np.stack([side * (g["eye_x"] + 1.1 * g["eye_w"]), y - 0.02], -1)
        cv.line(_curve(inner, outer, side * 0.02), 0.014, wrinkle, 0.6 * a("AU6", R.CHEEKS))

    # eyes: sclera, iris and pupil inside the lids, lash line, lower lid, lid fold
    for start in (36, 42):
        eye = lm[:, start : start + 6]  # corner, upper x2, corner, lower x2
        sclera = cv.mask(eye)
        cv.paint(sclera, col["sclera"])
        centre = eye[:, [0, 3]].mean(1) + np.stack([g["gaze_x"], g["gaze_y"]], -1)
        for radius, colour in ((g["iris_r"], col["iris"]), (0.45 * g["iris_r"], col["iris"] * 0.2)):
            rows, cols, cover = cv.mask(_ellipse(centre, radius, radius, 14), window=sclera[:2])
            cv.paint((rows, cols, cover & sclera[2]), colour)
        cv.line(eye[:, 0:4], 0.02, col["hair"] * 0.4, 0.9)
        cv.line(eye[:, [3, 4, 5, 0]], 0.008, skin * 0.5, 0.5)
        cv.line(eye[:, 1:3] - [0, 0.028], 0.01, skin * 0.6, 0.4)

    # brows: thick strokes tapering to the outer end
    taper = g["brow_th"][:, None] * np.linspace(0.6, 1.0, 5)  # (N, 5) outer -> inner
    cv.fill(_stroke(lm[:, 17:22], taper), col["brow"])
    cv.fill(_stroke(lm[:, 22:27], taper[:, ::-1]), col["brow"])

    # mouth: lips, dark opening, lip line
    cv.fill(lm[:, 48:60], col["lip"])
    cv.fill(lm[:, 60:68], skin * 0.12)
    cv.line(lm[:, 60:65], 0.012, skin * 0.3, 0.7)

    # the shortcut cue: a dark patch on the chin, halfway between the lower lip and the chin tip
    if p.cue is not None:
        cv.fill(_ellipse((lm[:, 57] + lm[:, 8]) / 2, 0.07, 0.045, 12), skin * 0.15, p.cue)

    # block-average the supersampled canvas, then a lighting gradient and pixel noise
    k = SUPERSAMPLE
    img = sum(cv.img[:, i::k, j::k] for i in range(k) for j in range(k)) / k**2  # (N, H, W, C)
    xy = np.linspace(-1, 1, size)
    angle, strength = p.light[:, 0, None, None, None], p.light[:, 1, None, None, None]
    img = img * (1 + strength * (np.cos(angle) * xy[None, None, :, None] + np.sin(angle) * xy[None, :, None, None]))
    for i in range(n):
        img[i] += np.random.default_rng(int(p.seed[i])).normal(0, p.noise[i], img.shape[1:])
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8).transpose(0, 3, 1, 2)


def variant_evidence(variant: str) -> dict[str, dict[str, list[str]]]:
    """{emotion: {"regions", "aus"}}: where each emotion's evidence is drawn in a variant (an expectation of
    what a model may use; the truth of what it uses comes from intervention, explain/truth.py)."""
    if variant != "single-region":
        ev = evidence()
        if variant == "shortcut":
            ev[SHORTCUT_CLASS.value]["regions"] = sorted({*ev[SHORTCUT_CLASS.value]["regions"], CUE_REGION.value},
                                                         key=[r.value for r in FaceRegion].index)  # fmt: skip
        return ev
    return {e.value: {"regions": [r.value] if aus else [], "aus": list(aus)} for e, (aus, r) in SINGLE_REGION.items()}


PARAM_FIELDS = ("aus", "geometry", "colours", "pose", "light", "clutter", "clutter_colour", "clutter_alpha", "noise",
                "seed", "gate", "cue")  # fmt: skip


def params_to_extras(p: FaceParams) -> dict[str, torch.Tensor]:
    """FaceParams as per-image tensors (FaceDataset.extras "params.<field>"), so every face can be re-rendered."""
    return {f"params.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k in PARAM_FIELDS
            if (v := getattr(p, k)) is not None}  # fmt: skip


def params_of(data: FaceDataset) -> FaceParams:
    """The parameter records of a synthetic data set's faces (in its row order)."""
    if "params.aus" not in data.extras:
        raise ConfigError(f"{data.name}: no face parameters (only synthetic faces can be re-rendered)")
    return FaceParams(**{k: data.extras[f"params.{k}"].numpy() if f"params.{k}" in data.extras else None
                         for k in PARAM_FIELDS})  # fmt: skip


def render_faces(p: FaceParams, size: int, channels: int) -> np.ndarray:
    """(N, C, size, size) uint8, rendered in chunks that bound the float canvas to about 32 MB."""
    images = np.empty((len(p), channels, size, size), np.uint8)
    chunk = max(16, 2**21 // (size * size * channels))
    for start in range(0, len(p), chunk):
        images[start : start + chunk] = render(p[start : start + chunk], size, channels)
    return images


def generate(
    n: int,
    size: int = 48,
    channels: int = 1,
    seed: int = 0,
    variant: str = "facs",
    split: np.ndarray | None = None,
    shortcut_rate: float = 0.9,
) -> FaceDataset:
    """n faces, classes balanced over SEVEN in shuffled order, of a variant; split: (n,) split indices (default
    every image in split 0, train; the shortcut variant places its cue by split)."""
    if channels not in (1, 3) or size < 16 or n < 0:
        raise ConfigError(f"synthetic faces need n >= 0, size >= 16 and 1 or 3 channels; got {n}, {size}, {channels}")
    labels = face_labels(n, seed)
    split = np.zeros(n, np.int64) if split is None else np.asarray(split)
    p = sample_params(labels, seed, variant)
    if variant == "shortcut":
        p = add_cue(p, labels, split, shortcut_rate, seed)
    options = {"n": n, "size": size, "channels": channels, "seed": seed, "version": GENERATOR_VERSION,
               "variant": variant} | ({"shortcut_rate": shortcut_rate} if variant == "shortcut" else {})  # fmt: skip
    notes = {
        "facs": "regions drawn by each emotion's FACS AUs; neutral (no AUs): the regions moved by more than half "
        "of the other emotions",
        "single-region": "each expression's AUs act in one region only (SINGLE_REGION); neutral has none",
        "shortcut": f"FACS faces plus a chin cue that predicts {SHORTCUT_CLASS.value} in training at rate "
        f"{shortcut_rate} and is independent of the emotion on validation and test faces",
    }
    return FaceDataset(
        name="synthetic",
        classes=SEVEN,
        images=torch.from_numpy(render_faces(p, size, channels)),
        labels=torch.from_numpy(labels.astype(np.int64)),
        split=torch.from_numpy(split.astype(np.int64)),
        ids=[f"synthetic:{seed}:{i}" for i in range(n)],
        landmarks=torch.from_numpy(landmarks(p, size)),
        extras=params_to_extras(p),
        meta={
            "source": "synthetic",
            "options": options,
            "au_names": list(AU_NAMES),
            "au_regions": {au: [r.value for r in rs] for au, rs in AU_REGIONS.items()},
            "evidence": variant_evidence(variant),
            "evidence_note": notes[variant],
            "landmark_format": "ibug68, (x, y) pixel index coordinates",
        },
    )


def face_labels(n: int, seed: int) -> np.ndarray:
    """(n,) class indices into SEVEN, balanced, in an order shuffled by `seed`."""
    return np.random.default_rng([seed, 0x1AB]).permutation(np.arange(n) % len(SEVEN))


def load(cfg: DataConfig) -> FaceDataset:
    """cfg.synthetic_n faces of cfg.synthetic_variant, split 70/15/15 (stratified, cfg.split_seed), cached by
    their options."""
    options = {
        "n": cfg.synthetic_n,
        "size": cfg.synthetic_size,
        "channels": cfg.synthetic_channels,
        "seed": cfg.split_seed,
        "version": GENERATOR_VERSION,
        "variant": cfg.synthetic_variant,
        "shortcut_rate": cfg.shortcut_rate,
    }

    def build() -> FaceDataset:
        labels = torch.from_numpy(face_labels(cfg.synthetic_n, cfg.split_seed))
        split = stratified_split(labels, (0.7, 0.15, 0.15), cfg.split_seed).numpy()
        return generate(cfg.synthetic_n, cfg.synthetic_size, cfg.synthetic_channels, cfg.split_seed,
                        cfg.synthetic_variant, split, cfg.shortcut_rate)  # fmt: skip

    return cached("synthetic", fingerprint([], options), build, cfg.cache)
