"""Synthetic FACS faces: determinism, shapes, landmark geometry, AU ground truth and its locality."""

from dataclasses import replace
from itertools import combinations

import numpy as np
import pytest
import torch

from facexai import facs
from facexai.config import DataConfig
from facexai.data import load_dataset
from facexai.data import synthetic as syn
from facexai.data.base import SPLITS
from facexai.emotions import SEVEN, Emotion
from facexai.errors import ConfigError
from facexai.faces.regions import region_index
from facexai.facs import FaceRegion

# Each region as landmark index sets, one box per set; the forehead is the band above the brows.
REGION_POINTS = {
    "brows": [range(17, 22), range(22, 27)],
    "glabella": [(21, 22, 27)],
    "eyes": [range(36, 42), range(42, 48)],
    "cheeks": [(1, 2, 3, 31, 40, 41, 48), (13, 14, 15, 35, 46, 47, 54)],
    "nose": [range(27, 36)],
    "mouth": [range(48, 68)],
    "chin": [range(4, 13)],
}


def region_mask(landmarks: list[np.ndarray], regions: set[str], size: int) -> np.ndarray:
    """(size, size) bool: union of the regions' landmark boxes, dilated by 4% of the side plus a pixel."""
    margin = 0.04 * size + 1
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((size, size), bool)
    for lm in landmarks:  # (68, 2) each
        iod = np.linalg.norm(lm[36] - lm[45])
        boxes = [lm[list(ix)] for r in regions for ix in REGION_POINTS.get(r, [])]
        if "forehead" in regions:
            boxes.append(np.concatenate([lm[17:27], lm[17:27] - [0, 0.5 * iod]]))
        for pts in boxes:
            lo, hi = pts.min(0) - margin, pts.max(0) + margin
            out |= (xx >= lo[0]) & (xx <= hi[0]) & (yy >= lo[1]) & (yy <= hi[1])
    return out


def full(emotion: Emotion) -> dict[str, float]:
    return {au: 1.0 for au in facs.PROTOTYPES[emotion]}


def test_same_seed_same_bytes_other_seed_other_faces():
    a, b, c = syn.generate(21, seed=1), syn.generate(21, seed=1), syn.generate(21, seed=2)
    for x, y in ((a.images, b.images), (a.landmarks, b.landmarks), (a.extras["params.aus"], b.extras["params.aus"])):
        assert torch.equal(x, y)
    assert torch.equal(a.labels, b.labels) and a.ids == b.ids
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.landmarks, c.landmarks)


@pytest.mark.parametrize("size,channels", [(48, 1), (100, 3)])
def test_shapes_dtypes_and_metadata(size, channels):
    ds = syn.generate(14, size=size, channels=channels, seed=3)
    assert ds.images.shape == (14, channels, size, size) and ds.images.dtype == torch.uint8
    assert ds.landmarks.shape == (14, 68, 2) and ds.landmarks.dtype == torch.float32
    assert ds.extras["params.aus"].shape == (14, len(facs.AU_NAMES)) and ds.extras["params.aus"].dtype == torch.float32
    assert ds.name == "synthetic" and ds.classes == SEVEN and ds.votes is None
    assert ds.meta["source"] == "synthetic" and ds.meta["au_names"] == list(facs.AU_NAMES)
    assert ds.meta["options"] == {
        "n": 14,
        "size": size,
        "channels": channels,
        "seed": 3,
        "version": syn.GENERATOR_VERSION,
        "variant": "facs",
    }
    assert ds.images.float().std() > 20  # a picture, not a flat field


def test_classes_balanced():
    assert torch.bincount(syn.generate(70).labels).tolist() == [10] * 7
    counts = torch.bincount(syn.generate(75, size=16).labels)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 75


def test_landmarks_inside_in_ibug_order():
    size = 48
    lm = syn.generate(140, size=size, seed=4).landmarks.numpy()  # (N, 68, 2)
    assert lm.min() >= 0 and lm.max() <= size - 1
    y = lm[..., 1]
    brows, eyes, tip, mouth, chin = y[:, 17:27].mean(1), y[:, 36:48].mean(1), y[:, 30], y[:, 48:68].mean(1), y[:, 8]
    assert (brows < eyes).all() and (eyes < tip).all() and (tip < mouth).all() and (mouth < chin).all()
    x = lm[..., 0]
    for left, right in ((0, 16), (17, 26), (21, 22), (36, 39), (39, 42), (42, 45), (31, 35), (48, 54), (60, 64)):
        assert (x[:, left] < x[:, right]).all(), (left, right)  # subject's right is the image's left
    assert (y[:, 37] < y[:, 41]).all() and (y[:, 44] < y[:, 46]).all()  # upper lid above lower lid
    assert (y[:, 51] < y[:, 57]).all()  # upper lip above lower lip
    iod = np.linalg.norm(lm[:, 36] - lm[:, 45], axis=1)
    assert (iod > 0.25 * size).all() and (iod < 0.45 * size).all()


def test_evidence_metadata():
    evidence = syn.generate(7).meta["evidence"]
    assert list(evidence) == [e.value for e in SEVEN]
    regions = {r.value for r in FaceRegion}
    for emo in SEVEN:
        entry = evidence[emo.value]
        assert entry["aus"] == list(facs.PROTOTYPES[emo])
        assert entry["regions"] and set(entry["regions"]) <= regions
        if entry["aus"]:
            assert set(entry["regions"]) == {r.value for au in entry["aus"] for r in facs.AU_REGIONS[au]}
    assert evidence["happiness"] == {"regions": ["cheeks", "mouth"], "aus": ["AU6", "AU12"]}
    assert evidence["disgust"]["regions"] == ["nose", "mouth"]
    assert evidence["anger"]["regions"] == ["brows", "glabella", "eyes", "mouth"]
    assert evidence["neutral"] == {"regions": ["brows", "mouth"], "aus": []}


def test_au_intensities_follow_prototypes():
    labels = np.arange(7000) % 7
    aus = syn.sample_params(labels, seed=5).aus  # (N, A)
    for c, emo in enumerate(SEVEN):
        mean = aus[labels == c].mean(0)
        for j, au in enumerate(facs.AU_NAMES):
            if au in facs.PROTOTYPES[emo]:
                assert mean[j] > 0.6, (emo, au)
            else:
                assert mean[j] < 0.05, (emo, au)
    happy = aus[:, facs.AU_NAMES.index("AU12")]
    assert happy[labels == 1].min() > happy[labels != 1].max()  # prototype and spurious ranges never overlap


def test_nuisance_is_shared_across_classes():
    """Identity, pose, lighting and clutter are drawn independently of the class: same distribution for all."""
    labels = np.arange(7000) % 7
    p = syn.sample_params(labels, seed=6)
    for field in (p.geometry, p.pose, p.light, p.colours.reshape(len(p), -1), p.noise[:, None]):
        means = np.stack([field[labels == c].mean(0) for c in range(7)])
        spread = field.std(0) / np.sqrt(1000)
        assert (np.abs(means - means.mean(0)) < 5 * spread + 1e-12).all()


@pytest.mark.parametrize("size,channels", [(48, 1), (100, 3)])
def test_each_au_changes_pixels_only_in_its_regions(size, channels):
    p = syn.sample_params(np.zeros(6, int), seed=7)
    rest = p.with_aus({})
    base, base_lm = syn.render(rest, size, channels), syn.landmarks(rest, size)
    for au in facs.AU_NAMES:
        moved = p.with_aus({au: 1.0})
        img, lm = syn.render(moved, size, channels), syn.landmarks(moved, size)
        allowed = {r.value for r in facs.AU_REGIONS[au]}
        for i in range(len(p)):
            diff = (img[i] != base[i]).any(0)
            assert diff.any(), au
            assert not (diff & ~region_mask([lm[i], base_lm[i]], allowed, size)).any(), (au, i)


def test_two_emotions_differ_only_in_their_evidence_regions():
    """The ground truth by construction: swapping the emotion of a face changes only its AU regions."""
    size = 48
    p = syn.sample_params(np.zeros(8, int), seed=8)
    faces = {e: p.with_aus(full(e)) for e in SEVEN}
    images = {e: syn.render(q, size) for e, q in faces.items()}
    points = {e: syn.landmarks(q, size) for e, q in faces.items()}
    for a, b in combinations(SEVEN, 2):
        allowed = {r.value for e in (a, b) for au in facs.PROTOTYPES[e] for r in facs.AU_REGIONS[au]}
        for i in range(len(p)):
            diff = (images[a][i] != images[b][i]).any(0)
            assert diff.any(), (a, b)
            assert not (diff & ~region_mask([points[a][i], points[b][i]], allowed, size)).any(), (a, b, i)


def test_au_pixels_fall_in_the_toolkits_region_masks():
    """The analysis layer's landmark masks (faces.regions) give most of each AU's change to its own regions."""
    size = 100
    p = syn.sample_params(np.zeros(6, int), seed=10)
    base = syn.render(p.with_aus({}), size, 3).astype(int)
    order = ["none"] + [r.value for r in FaceRegion]  # region_index ids
    for au in facs.AU_NAMES:
        moved = p.with_aus({au: 1.0})
        change = np.abs(syn.render(moved, size, 3) - base).max(1)  # (N, H, W)
        ids = region_index(torch.from_numpy(syn.landmarks(moved, size)), (size, size)).numpy()
        mine = np.isin(ids, [order.index(r.value) for r in facs.AU_REGIONS[au]])
        assert (change * mine).sum() > 2 / 3 * change.sum(), au


def test_landmarks_track_the_drawing():
    """An open mouth is dark between the inner lips; the skin of the nose bridge is not."""
    p = syn.sample_params(np.zeros(20, int), seed=9).with_aus({"AU26": 1.0})
    img, lm = syn.render(p, 100, 1)[:, 0].astype(float), syn.landmarks(p, 100)
    faces = np.arange(len(p))

    def at(pts: np.ndarray) -> np.ndarray:  # (N, 2) points -> (N,) pixel values
        col, row = np.round(pts).astype(int).T
        return img[faces, row, col]

    mouth, bridge = at((lm[:, 62] + lm[:, 66]) / 2), at(lm[:, 28])
    assert (mouth < 0.5 * bridge).all()


def test_load_splits_and_caches():
    cfg = DataConfig(dataset="synthetic", synthetic_n=140, synthetic_size=32, split_seed=2)
    ds = load_dataset(cfg)
    assert ds.counts() == {s: {e.value: n for e in SEVEN} for s, n in zip(SPLITS, (14, 3, 3), strict=True)}
    again = load_dataset(cfg)
    assert torch.equal(ds.images, again.images) and torch.equal(ds.split, again.split)
    assert again.meta["evidence"] == ds.meta["evidence"] and again.meta["options"]["seed"] == 2


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        syn.generate(7, channels=2)
    with pytest.raises(ConfigError):
        syn.generate(7, size=8)


# --- variants and intervention -------------------------------------------------------------------


def test_re_rendering_a_data_set_s_faces_without_intervention_is_bit_for_bit():
    for variant in syn.VARIANTS:
        ds = syn.generate(21, size=32, seed=11, variant=variant, split=np.arange(21) % 3)
        assert np.array_equal(syn.render_faces(syn.params_of(ds), 32, 1), ds.images.numpy()), variant


@pytest.mark.parametrize("region", list(FaceRegion))
def test_a_neutral_region_changes_pixels_only_there(region):
    size = 48
    p = syn.sample_params(np.array([2, 3, 4, 5, 6] * 2), seed=12)  # expressive faces: every region acts somewhere
    base, base_lm = syn.render(p, size, 1), syn.landmarks(p, size)
    q = p.neutral_region(region)
    img, lm = syn.render(q, size, 1), syn.landmarks(q, size)
    changed = 0
    for i in range(len(p)):
        diff = (img[i] != base[i]).any(0)
        changed += diff.any()
        assert not (diff & ~region_mask([lm[i], base_lm[i]], {region.value}, size)).any(), (region, i)
    assert changed > 0, region


def test_single_region_expressions_differ_from_neutral_in_exactly_one_region_each():
    regions = [r for e, (aus, r) in syn.SINGLE_REGION.items() if aus]
    assert len(regions) == len(set(regions)) == 6  # one region per expression, a different one each
    ev = syn.variant_evidence("single-region")
    assert all(len(ev[e.value]["regions"]) == (e != Emotion.NEUTRAL) for e in SEVEN)
    size = 48
    for k, emo in enumerate(SEVEN[1:], start=1):
        p = syn.sample_params(np.full(6, k), seed=13, variant="single-region")
        face = replace(p, aus=np.where(p.aus > syn.SPURIOUS_MAX, p.aus, 0).astype(np.float32))  # expression only
        still = p.with_aus({})
        diff = (syn.render(face, size, 1) != syn.render(still, size, 1)).any(1)  # (N, H, W)
        lm = [syn.landmarks(face, size), syn.landmarks(still, size)]
        region = syn.SINGLE_REGION[emo][1].value
        for i in range(len(p)):
            assert diff[i].any() and not (diff[i] & ~region_mask([lm[0][i], lm[1][i]], {region}, size)).any(), emo


def test_the_shortcut_cue_predicts_its_class_in_training_only():
    n = 1400
    labels = syn.face_labels(n, 14)
    split = np.where(np.arange(n) % 10 < 7, 0, 2)
    p = syn.add_cue(syn.sample_params(labels, 14), labels, split, rate=0.8, seed=14)
    cue, k, train = p.cue > 0, SEVEN.index(syn.SHORTCUT_CLASS), split == 0
    assert cue[train & (labels == k)].all()
    assert (labels[train & cue] == k).mean() == pytest.approx(0.8, abs=0.01)
    for c in range(7):  # held out: about half of every class, whatever its emotion
        assert 0.3 < cue[~train & (labels == c)].mean() < 0.7
    removed = p.neutral_region(syn.CUE_REGION)
    assert not removed.cue.any() and p.neutral_region(FaceRegion.EYES).cue.sum() == p.cue.sum()


def test_the_cue_is_drawn_inside_the_toolkit_s_chin_region():
    size = 48
    p = syn.sample_params(np.arange(14) % 7, seed=15)
    with_cue = replace(p, cue=np.ones(len(p), np.float32))
    diff = (syn.render(with_cue, size, 1) != syn.render(p, size, 1)).any(1)  # (N, H, W)
    ids = region_index(torch.from_numpy(syn.landmarks(p, size)), (size, size)).numpy()
    chin = ids == list(FaceRegion).index(syn.CUE_REGION) + 1
    assert diff.any((1, 2)).all() and not (diff & ~chin).any()
