"""Face regions, named once for the whole toolkit, and per-image region masks from 68 landmarks.

Every region is a polygon (or two) built from iBUG 68-point landmarks in the face's own frame:
`x` runs from the centre of the subject's right eye (image left) to the left eye, `up` is
perpendicular to it, and lengths are in units of the inter-ocular distance (IOD, between the eye
centres), so masks scale and rotate with the face. `margin` (IOD units) grows the feature regions
(eyes, mouth, nose, brows, glabella, forehead top) beyond their landmark outline. Regions:

- EYES: each eye's 6-point outline, grown outward by the margin.
- BROWS: a band around each brow's 5 points, 0.06 IOD above and 0.10 below (iBUG brow points sit
  on the brow's upper half) plus the margin, extended by the margin past both ends.
- GLABELLA: between the inner brow ends (21, 22), widened by the margin on each side, from the margin
  above them down to the nasion (27): where AU4 (brow lowerer) draws its furrows.
- NOSE: from the nasion (27) down the bridge (27-30), 0.08 IOD + margin to each side, widening to the
  nostril wings at the tip's height, and the base (31-35) grown by the margin.
- CHEEKS: on each side, below the lower eyelid, between the jaw line (0-5 / 11-16) and the nose
  wing and mouth corner; no margin (it is bounded by the landmarks on every side).
- MOUTH: the outer lip outline (48-59) grown by the margin.
- CHIN: below the lower lip, above the jaw line (5-11); no margin.
- FOREHEAD: above the brows (17-26, extended by the margin at both ends) up to 0.5 IOD + margin
  above each brow point, about 1.5 brow-to-eye distances: the lower forehead, where AU1/AU2
  wrinkles show. The upper forehead (up to about 0.9 IOD on adult faces) is left out: FER crops
  often cut it off or hair covers it.

Polygons may overlap; each pixel goes to the first region covering it in PRIORITY (small,
landmark-dense features before the large residual areas): eyes, mouth, nose, glabella, brows,
cheeks, chin, forehead. Priority is resolved over all regions whatever subset is requested, so a
region's mask never depends on which other regions were asked for. Pixels are inside a polygon
when their centre is (`skimage.draw.polygon`); everything is clipped to the image.

Coordinates: landmarks are (x, y) in pixel index coordinates (the top-left pixel's centre is
(0, 0)). Landmarks found on one image size serve another through `from_size`: they are rescaled
with x' = (x + 0.5) * W' / W - 0.5, the convention of torchvision's resize (align_corners=False).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from skimage.draw import polygon as draw_polygon

from facexai.data.base import SPLITS
from facexai.errors import ConfigError
from facexai.faces.landmarks import landmarks_for
from facexai.facs import FaceRegion
from facexai.io.figures import save_figure

# iBUG 300-W 68-point index ranges (end exclusive)
LANDMARK_GROUPS: dict[str, range] = {
    "jaw": range(0, 17),
    "right_brow": range(17, 22),
    "left_brow": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_base": range(31, 36),
    "right_eye": range(36, 42),
    "left_eye": range(42, 48),
    "outer_lip": range(48, 60),
    "inner_lip": range(60, 68),
}

R = FaceRegion
# A pixel covered by several region polygons goes to the region listed first.
PRIORITY: tuple[FaceRegion, ...] = (R.EYES, R.MOUTH, R.NOSE, R.GLABELLA, R.BROWS, R.CHEEKS, R.CHIN, R.FOREHEAD)

# Region geometry in inter-ocular distances (before the margin is added).
BROW_UP = 0.06  # brow band above the brow points
BROW_DOWN = 0.10  # ... and below them
NOSE_BRIDGE_HALF = 0.08  # half-width of the nose bridge
FOREHEAD_HEIGHT = 0.5  # forehead top above the brow points

# Overlay colours (RGB in [0, 1]), fixed per region so every figure and legend agrees.
REGION_COLOURS: dict[FaceRegion, tuple[float, float, float]] = {
    R.FOREHEAD: (0.12, 0.47, 0.71),
    R.BROWS: (1.00, 0.50, 0.05),
    R.GLABELLA: (0.84, 0.15, 0.16),
    R.EYES: (0.17, 0.63, 0.17),
    R.NOSE: (0.58, 0.40, 0.74),
    R.CHEEKS: (0.89, 0.47, 0.76),
    R.MOUTH: (0.74, 0.74, 0.13),
    R.CHIN: (0.09, 0.75, 0.81),
}


def rescale_landmarks(landmarks: torch.Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> torch.Tensor:
    """(N, 68, 2) landmarks found on (H, W) images moved onto (H', W') images of the same picture."""
    (h0, w0), (h1, w1) = from_size, to_size
    ratio = torch.tensor([w1 / w0, h1 / h0], dtype=landmarks.dtype, device=landmarks.device)
    return (landmarks + 0.5) * ratio - 0.5


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _grow(poly: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(N, V, 2) polygons with every vertex pushed m (N,) away from the polygon's centroid."""
    return poly + m[:, None, None] * _unit(poly - poly.mean(1, keepdims=True))


def region_polygons(landmarks: np.ndarray, margin: float = 0.1) -> dict[FaceRegion, list[np.ndarray]]:
    """{region: [(N, V, 2) polygons]} in (x, y) pixel coordinates for (N, 68, 2) landmarks."""
    p = landmarks.astype(np.float64)
    right_eye, left_eye = p[:, 36:42].mean(1), p[:, 42:48].mean(1)  # (N, 2)
    iod = np.linalg.norm(left_eye - right_eye, axis=-1)  # (N,)
    ex = _unit(left_eye - right_eye)  # (N, 2) face x axis, image left to right
    down = np.stack([-ex[:, 1], ex[:, 0]], -1)  # (N, 2) face down axis (y grows downward)
    m = margin * iod  # (N,)

    def at(i: int | list[int]) -> np.ndarray:
        return p[:, i]

    def off(v: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Offset along direction v (N, 2) by distance d (N,): broadcast to (N, 1, 2) or (N, 2)."""
        return v[:, None] * d[:, None, None]

    # brows: outer -> inner for the right brow, inner -> outer for the left; both run image left to right
    hu, hd = BROW_UP * iod + m, BROW_DOWN * iod + m
    brows = []
    for b in (p[:, 17:22], p[:, 22:27]):
        b = np.concatenate(
            [b[:, :1] - off(_unit(b[:, 1] - b[:, 0]), m), b, b[:, -1:] + off(_unit(b[:, -1] - b[:, -2]), m)], 1
        )
        brows.append(np.concatenate([b + off(-down, hu), (b + off(down, hd))[:, ::-1]], 1))

    inner_r, inner_l = at(21) - off(ex, m)[:, 0], at(22) + off(ex, m)[:, 0]  # (N, 2) glabella's sides
    glabella = np.stack(
        [inner_r - down * m[:, None], inner_l - down * m[:, None], inner_l + down * hd[:, None], at(27),
         inner_r + down * hd[:, None]],
        1,
    )  # fmt: skip

    wb = (NOSE_BRIDGE_HALF * iod + m)[:, None]
    wing = (np.linalg.norm(at(35) - at(31), axis=-1) / 2 + m)[:, None]
    top = at(27)  # the nasion: the glabella owns everything above it
    nose = np.stack(
        [top - ex * wb, top + ex * wb, at(30) + ex * wing, at(35) + ex * m[:, None],
         at(34) + down * m[:, None], at(33) + down * m[:, None], at(32) + down * m[:, None],
         at(31) - ex * m[:, None], at(30) - ex * wing],
        1,
    )  # fmt: skip

    cheek_r = at([0, 36, 41, 40, 39, 31, 48, 5, 4, 3, 2, 1])
    cheek_l = at([16, 45, 46, 47, 42, 35, 54, 11, 12, 13, 14, 15])
    chin = at([5, 6, 7, 8, 9, 10, 11, 54, 55, 56, 57, 58, 59, 48])

    edge = p[:, 17:27]  # (N, 10, 2) brow points, image left to right
    edge = np.concatenate([edge[:, :1] - off(ex, m), edge, edge[:, -1:] + off(ex, m)], 1)
    forehead = np.concatenate([edge, (edge + off(-down, FOREHEAD_HEIGHT * iod + m))[:, ::-1]], 1)

    return {
        R.FOREHEAD: [forehead],
        R.BROWS: brows,
        R.GLABELLA: [glabella],
        R.EYES: [_grow(p[:, 36:42], m), _grow(p[:, 42:48], m)],
        R.NOSE: [nose],
        R.CHEEKS: [cheek_r, cheek_l],
        R.MOUTH: [_grow(p[:, 48:60], m)],
        R.CHIN: [chin],
    }


def region_index(
    landmarks: torch.Tensor,
    size: tuple[int, int],
    regions: Sequence[FaceRegion] = tuple(FaceRegion),
    margin: float = 0.1,
    from_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """(N, H, W) int64 region ids: 0 = no region, i + 1 = regions[i] (captum's `feature_mask`).

    landmarks: (N, 68, 2) (x, y) pixels on images of `from_size` (default: `size`); faces with
    non-finite landmarks or coinciding eye centres get no regions.
    """
    h, w = size
    if from_size is not None and tuple(from_size) != (h, w):
        landmarks = rescale_landmarks(landmarks, from_size, size)
    lm = landmarks.detach().cpu().double().numpy()  # (N, 68, 2)
    n = len(lm)
    regions = [FaceRegion(r) for r in regions]
    # id in the requested order for each region in FaceRegion order (0 = not requested)
    lut = np.zeros(len(FaceRegion) + 1, np.int64)
    for i, r in enumerate(regions):
        lut[list(FaceRegion).index(r) + 1] = i + 1
    out = np.zeros((n, h, w), np.int64)
    if n == 0:
        return torch.from_numpy(out)
    valid = np.isfinite(lm).all((1, 2))
    lm = np.where(valid[:, None, None], lm, 0.0)
    eyes = lm[:, 42:48].mean(1) - lm[:, 36:42].mean(1)
    valid &= np.linalg.norm(eyes, axis=-1) > 1e-6
    polys = region_polygons(lm, margin)
    # paint the lowest priority first so that higher-priority regions overwrite it
    order = [(list(FaceRegion).index(r) + 1, poly) for r in reversed(PRIORITY) for poly in polys[r]]
    for k in np.flatnonzero(valid):
        label = out[k]
        for rid, poly in order:
            rr, cc = draw_polygon(poly[k, :, 1], poly[k, :, 0], (h, w))
            label[rr, cc] = rid
    return torch.from_numpy(lut[out])


def region_masks(
    landmarks: torch.Tensor,
    size: tuple[int, int],
    regions: Sequence[FaceRegion] = tuple(FaceRegion),
    margin: float = 0.1,
    from_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """(N, R, H, W) bool masks, one per requested region, disjoint and inside the image."""
    index = region_index(landmarks, size, regions, margin, from_size)  # (N, H, W)
    ids = torch.arange(1, len(regions) + 1)
    return index[:, None] == ids[None, :, None, None]


def masks_to_index(masks: torch.Tensor) -> torch.Tensor:
    """(N, R, H, W) disjoint bool masks -> (N, H, W) int64 ids (0 = none, i + 1 = mask i)."""
    ids = torch.arange(1, masks.shape[1] + 1, device=masks.device)
    return (masks.long() * ids[None, :, None, None]).sum(1)


def region_area_share(masks: torch.Tensor) -> torch.Tensor:
    """(N, R) float32 share of the face area in each region; rows sum to 1 (0 for a face with no regions).

    The face area is the union of the given masks, so shares say how the analysed face is divided
    (e.g. to compare an attribution share with a region's size). Pass all regions for the whole face.
    """
    area = masks.flatten(2).sum(-1).float()  # (N, R)
    return area / area.sum(1, keepdim=True).clamp(min=1)


def draw_regions(
    image: torch.Tensor, masks: torch.Tensor, regions: Sequence[FaceRegion] | None = None, alpha: float = 0.45
) -> torch.Tensor:
    """(3, H, W) uint8: the (C, H, W) uint8 image in grey with the (R, H, W) masks tinted in their region colours.

    regions names the masks (default: all of FaceRegion, in order, which is what region_masks returns).
    An image of another size than the masks is resized to theirs (bilinear), e.g. 48x48 under 100x100 masks.
    """
    from skimage.color import label2rgb, rgb2gray

    regions = list(FaceRegion)[: masks.shape[0]] if regions is None else [FaceRegion(r) for r in regions]
    img = image.detach().cpu().float().div(255)  # (C, H, W)
    if img.shape[-2:] != masks.shape[-2:]:
        img = torch.nn.functional.interpolate(img[None], size=tuple(masks.shape[-2:]), mode="bilinear")[0]
    img = img.clamp(0, 1).permute(1, 2, 0).numpy()  # (H, W, C)
    grey = img[..., 0] if img.shape[-1] == 1 else rgb2gray(img[..., :3])  # (H, W): colours show the regions only
    img = np.repeat(grey[..., None], 3, -1)  # (H, W, 3)
    label = masks_to_index(masks[None].cpu())[0].numpy()  # (H, W)
    colours = [REGION_COLOURS[r] for r in regions]
    out = label2rgb(label, image=img, colors=colours, alpha=alpha, bg_label=0, image_alpha=1, saturation=0)
    out[label == 0] = img[label == 0]  # label2rgb darkens the background; keep it as it was
    return torch.from_numpy(np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)).permute(2, 0, 1)


def regions_figure(
    images: torch.Tensor,
    masks: torch.Tensor,
    path: str | Path,
    regions: Sequence[FaceRegion] | None = None,
    titles: Sequence[str] | None = None,
    columns: int = 8,
) -> Path:
    """Write a PNG grid of faces (N, C, H, W) uint8 with their (N, R, H, W) masks and a colour legend.

    Written whole or not at all (io.figures.save_figure).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    path = Path(path)
    regions = list(FaceRegion)[: masks.shape[1]] if regions is None else [FaceRegion(r) for r in regions]
    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(1.6 * cols, 1.6 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i < n:
            ax.imshow(draw_regions(images[i], masks[i], regions).permute(1, 2, 0).numpy(), interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=7)
    handles = [Patch(color=REGION_COLOURS[r], label=r.value) for r in regions]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(regions), 8), fontsize=8, frameon=False)
    return save_figure(fig, path)


def show_regions(
    data, path: str | Path, n: int = 16, split: str = "test", provider: str = "auto", margin: float = 0.1
) -> tuple[Path, str, dict[str, int]]:
    """The region masks over the first `n` faces of a split of `data` (a FaceDataset), drawn to check them
    by eye; faces whose landmarks came from the template are titled so. Returns the PNG, the landmark
    provider and its counts."""
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    keep = data.split == SPLITS.index(split)
    part = data.select(keep & (keep.long().cumsum(0) <= n))
    lm, ok, used, counts = landmarks_for(part, provider)
    masks = region_masks(lm, part.size, margin=margin)
    titles = [f"{part.classes[int(y)]}{'' if good else ' (template)'}" for y, good in zip(part.labels, ok, strict=True)]
    return regions_figure(part.images, masks, path, titles=titles), used, counts
