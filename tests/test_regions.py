"""Region masks from 68 landmarks: disjoint, inside the image, in the right places, scaling with the face."""

import numpy as np
import pytest
import torch

from facexai import facs
from facexai.data.synthetic import generate
from facexai.faces.landmarks import default_template, from_unit
from facexai.faces.regions import (
    PRIORITY,
    draw_regions,
    masks_to_index,
    region_area_share,
    region_index,
    region_masks,
    regions_figure,
    rescale_landmarks,
)
from facexai.facs import FaceRegion

R = FaceRegion
ALL = tuple(FaceRegion)


@pytest.fixture(scope="module")
def faces():
    return generate(20, 48, 1, seed=3)


@pytest.fixture(scope="module")
def masks(faces):
    return region_masks(faces.landmarks, (48, 48))  # (N, R, H, W)


def mask_of(masks, region):
    return masks[:, ALL.index(region)]  # (N, H, W)


def contains(mask, points):
    """(N,) whether each (H, W) mask holds the pixel nearest to each (x, y) point."""
    x, y = points.round().long().unbind(-1)
    return mask[torch.arange(len(mask)), y, x]


def centre_y(mask):
    """(N,) mean row of each (H, W) mask."""
    rows = torch.arange(mask.shape[1], dtype=torch.float32)[None, :, None]
    return (mask * rows).flatten(1).sum(1) / mask.flatten(1).sum(1)


def face_at(scale, size=96):
    """(1, 68, 2) the default template's face scaled by `scale` about the centre of a size x size image."""
    lm = from_unit(default_template(), (48, 48))
    return ((lm - 23.5) * scale + (size - 1) / 2)[None]


def test_every_region_is_covered_by_the_priority_order():
    assert sorted(PRIORITY) == sorted(FaceRegion)


def test_masks_are_disjoint_boolean_and_the_image_size(masks):
    assert masks.shape == (20, len(ALL), 48, 48) and masks.dtype == torch.bool
    assert int(masks.sum(1).max()) == 1


def test_every_region_is_non_empty_on_frontal_faces(masks):
    assert (masks.flatten(2).sum(-1) > 0).all()


def test_features_sit_on_their_landmarks(faces, masks):
    lm = faces.landmarks
    assert contains(mask_of(masks, R.MOUTH), lm[:, 48:60].mean(1)).all()
    assert contains(mask_of(masks, R.EYES), lm[:, 36:42].mean(1)).all()
    assert contains(mask_of(masks, R.EYES), lm[:, 42:48].mean(1)).all()
    assert contains(mask_of(masks, R.GLABELLA), (lm[:, 21] + lm[:, 22]) / 2).all()
    assert contains(mask_of(masks, R.NOSE), lm[:, 30]).all()


def test_regions_are_stacked_top_to_bottom(masks):
    y = {r: centre_y(mask_of(masks, r)) for r in ALL}
    assert (y[R.FOREHEAD] < y[R.BROWS]).all()
    assert (y[R.BROWS] < y[R.EYES]).all()
    assert (y[R.EYES] < y[R.MOUTH]).all()
    assert (y[R.MOUTH] < y[R.CHIN]).all()
    assert (y[R.GLABELLA] < y[R.NOSE]).all()


def test_glabella_lies_between_the_inner_brow_ends(faces, masks):
    lm = faces.landmarks
    glabella = mask_of(masks, R.GLABELLA)
    cols = torch.arange(48.0)[None, None, :]
    x_mean = (glabella * cols).flatten(1).sum(1) / glabella.flatten(1).sum(1)
    assert ((x_mean > lm[:, 21, 0]) & (x_mean < lm[:, 22, 0])).all()


def test_cheeks_are_on_both_sides_of_the_nose(faces, masks):
    cheeks = mask_of(masks, R.CHEEKS)
    tip = faces.landmarks[:, 30, 0]  # (N,)
    cols = torch.arange(48.0)[None, None, :]
    assert ((cheeks & (cols < tip[:, None, None] - 3)).flatten(1).any(1)).all()
    assert ((cheeks & (cols > tip[:, None, None] + 3)).flatten(1).any(1)).all()


def test_masks_are_clipped_to_the_image():
    lm = face_at(1.0, 48) + torch.tensor([20.0, -18.0])  # the face hangs over the right and top edges
    m = region_masks(lm, (48, 48))
    assert m.shape == (1, len(ALL), 48, 48)
    assert m[0, ALL.index(R.MOUTH)].any() and not m[0, ALL.index(R.FOREHEAD)].any()


def test_a_face_twice_as_large_has_four_times_the_area():
    small, large = region_masks(torch.cat([face_at(0.8), face_at(1.6)]), (96, 96)).flatten(2).sum(-1).float()
    ratio = large / small  # (R,)
    assert ratio.sum() / 8 == pytest.approx(4.0, rel=0.1)
    for r in (R.FOREHEAD, R.EYES, R.NOSE, R.CHEEKS, R.MOUTH, R.CHIN):
        assert ratio[ALL.index(r)] == pytest.approx(4.0, rel=0.25), r


def test_region_index_agrees_with_the_masks(faces, masks):
    index = region_index(faces.landmarks, (48, 48))
    assert index.dtype == torch.int64 and index.shape == (20, 48, 48)
    assert torch.equal(index, masks_to_index(masks))
    assert torch.equal(index == 0, ~masks.any(1))


def test_a_subset_keeps_the_requested_order_and_the_same_pixels(faces, masks):
    index = region_index(faces.landmarks, (48, 48), regions=[R.MOUTH, R.CHIN])
    assert torch.equal(index == 1, mask_of(masks, R.MOUTH))
    assert torch.equal(index == 2, mask_of(masks, R.CHIN))
    assert int(index.max()) == 2


def test_masks_from_small_landmarks_line_up_at_a_larger_size(faces):
    large = generate(20, 100, 1, seed=3)  # the same faces drawn at 100x100
    moved = rescale_landmarks(faces.landmarks, (48, 48), (100, 100))
    assert torch.allclose(moved, large.landmarks, atol=1e-3)
    resized = region_index(faces.landmarks, (100, 100), from_size=(48, 48))
    assert torch.equal(resized, region_index(large.landmarks, (100, 100)))
    # and the 100x100 masks agree with the 48x48 ones where both are sampled
    small = region_masks(faces.landmarks, (48, 48)).float()
    big = region_masks(large.landmarks, (100, 100)).float()
    down = torch.nn.functional.interpolate(big, size=(48, 48), mode="area") > 0.5
    inter = (small.bool() & down).sum((0, 2, 3))
    union = (small.bool() | down).sum((0, 2, 3))
    assert (inter / union > 0.75).all()


def test_margin_grows_the_features(faces):
    tight, loose = (region_masks(faces.landmarks, (48, 48), margin=m).flatten(2).sum(-1) for m in (0.0, 0.2))
    for r in (R.EYES, R.MOUTH, R.NOSE):
        assert (loose[:, ALL.index(r)] > tight[:, ALL.index(r)]).all()


def test_faces_without_landmarks_get_no_regions(faces):
    lm = faces.landmarks[:3].clone()
    lm[1] = float("nan")
    m = region_masks(lm, (48, 48))
    assert not m[1].any() and m[0].any() and m[2].any()
    assert region_masks(torch.empty(0, 68, 2), (48, 48)).shape == (0, len(ALL), 48, 48)


def test_area_shares_sum_to_one(masks):
    share = region_area_share(masks)
    assert share.shape == (20, len(ALL))
    assert torch.allclose(share.sum(1), torch.ones(20))
    assert region_area_share(torch.zeros(1, 3, 8, 8, dtype=torch.bool)).sum() == 0


def test_draw_regions_tints_only_the_masked_pixels(faces, masks):
    out = draw_regions(faces.images[0], masks[0])
    assert out.shape == (3, 48, 48) and out.dtype == torch.uint8
    outside = ~masks[0].any(0)
    grey = faces.images[0, 0]
    assert (out[:, outside].int() - grey[outside].int()).abs().max() <= 1
    inside = masks[0, ALL.index(R.MOUTH)]
    assert (out[0, inside] != out[2, inside]).any()  # colour, not grey
    big = region_masks(faces.landmarks[:1], (96, 96), from_size=(48, 48))[0]
    assert draw_regions(faces.images[0], big).shape == (3, 96, 96)  # the image is resized to the masks


def test_regions_figure_writes_a_png_atomically(tmp_path, faces, masks):
    path = regions_figure(faces.images[:3], masks[:3], tmp_path / "figs" / "regions.png", titles=["a", "b", "c"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["regions.png"]


def test_hand_made_frontal_face_has_symmetric_regions():
    m = region_masks(face_at(1.5), (96, 96))[0].numpy()  # (R, H, W)
    for r in (R.EYES, R.BROWS, R.CHEEKS):
        half = m[ALL.index(r)]
        left, right = half[:, :48].sum(), half[:, 48:].sum()
        assert abs(left - right) <= 0.15 * max(left, right), r
    assert np.all(m.sum(0) <= 1)


def test_each_synthetic_action_unit_changes_pixels_inside_its_regions():
    """The masks agree with the generator's ground truth: an AU's pixel changes fall in its AU_REGIONS."""
    from facexai.data import synthetic as S

    p = S.sample_params(np.arange(14) % 7, seed=11)
    neutral = p.with_aus({})
    base = S.render(neutral, 48, 1).astype(int)[:, 0]  # (N, H, W)
    before = region_masks(torch.from_numpy(S.landmarks(neutral, 48)), (48, 48))
    for au in facs.AU_NAMES:
        on = p.with_aus({au: 1.0})
        changed = torch.from_numpy(np.abs(S.render(on, 48, 1).astype(int)[:, 0] - base) > 12)
        after = region_masks(torch.from_numpy(S.landmarks(on, 48)), (48, 48))
        idx = [ALL.index(r) for r in facs.AU_REGIONS[au]]
        inside = before[:, idx].any(1) | after[:, idx].any(1)
        assert (changed & inside).sum() >= 0.85 * changed.sum(), au
