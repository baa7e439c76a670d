"""Region importance statistics with answers worked out by hand.

Masks: a 4x4 image, a face of 12 pixels in three regions (A: 2, B: 4, C: 6 pixels) and 4
background pixels, so the area shares are 1/6, 1/3, 1/2.
"""

import math

import pytest
import torch

from facexai.emotions import SEVEN, Emotion
from facexai.explain.importance import (
    agreement,
    attribution_map,
    bootstrap_group_means,
    map_relevance,
    rank_regions,
    recovered,
    region_mass,
    tidy_rows,
    truth_scores,
)
from facexai.facs import FaceRegion, evidence

NAN = float("nan")
LAYOUT = torch.tensor([[1, 1, 2, 2], [2, 2, 3, 3], [3, 3, 3, 3], [0, 0, 0, 0]])  # 0 = background
SHARES = torch.tensor([2, 4, 6], dtype=torch.float64) / 12


def masks(n: int = 1) -> torch.Tensor:
    m = LAYOUT[None] == torch.arange(1, 4)[:, None, None]  # (3, 4, 4)
    return m[None].expand(n, -1, -1, -1).clone()


def close(a, b):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               equal_nan=True)  # fmt: skip


def test_attribution_map_sums_channels_then_clips():
    attr = torch.tensor([[1.0, -3.0], [2.0, 0.5]]).view(1, 2, 1, 2)  # channels (1, -3) and (2, 0.5) per pixel
    close(attribution_map(attr), [[[3.0, 0.0]]])  # pixel 2: -3 + 0.5 < 0 -> 0
    close(attribution_map(attr, "abs"), [[[3.0, 2.5]]])
    close(attribution_map(torch.tensor([[[-1.0, 2.0]]])), [[[0.0, 2.0]]])
    with pytest.raises(ValueError):
        attribution_map(attr, "signed")


def test_uniform_map_over_the_face_has_relevance_one():
    face = (LAYOUT > 0).double()[None]  # (1, 4, 4); background attribution would be ignored anyway
    close(map_relevance(face, masks()), [[1.0, 1.0, 1.0]])
    close(map_relevance(torch.ones(1, 4, 4) * 7, masks()), [[1.0, 1.0, 1.0]])  # background is left out
    close(region_mass(face, masks()), SHARES[None])


@pytest.mark.parametrize("k", [0, 1, 2])
def test_map_inside_one_region_gives_inverse_area_share(k):
    m = masks()[0, k].float()[None] * 0.3  # (1, 4, 4), all attribution in region k
    expected = torch.zeros(3, dtype=torch.float64)
    expected[k] = 1 / SHARES[k]
    close(map_relevance(m, masks())[0], expected)
    close((map_relevance(m, masks())[0] * SHARES).sum(), 1.0)  # area-weighted mean is 1


def test_zero_map_and_empty_region_give_nan():
    mk = masks(2)
    mk[1, 0] = False  # region A missing from image 1
    maps = torch.stack([torch.zeros(4, 4), torch.ones(4, 4)])
    maps[0, 3] = 5.0  # image 0: attribution on the background only -> none on the face
    rel = map_relevance(maps, mk)
    assert rel[0].isnan().all()
    assert rel[1, 0].isnan() and torch.isfinite(rel[1, 1:]).all()
    close(rel[1, 1:], [1.0, 1.0])  # face = B + C, uniform map
    close(region_mass(maps, mk)[1], [0.0, 0.4, 0.6])
    with pytest.raises(ValueError):
        map_relevance(maps, mk[:1])


def test_negative_attribution_does_not_count():
    m = torch.where(LAYOUT == 1, -5.0, 1.0)[None]  # A negative, B and C uniform
    close(map_relevance(m, masks()), [[0.0, 1.2, 1.2]])  # B gets 4/10 of the mass for 1/3 of the area


def test_bootstrap_constant_values_collapse_the_interval():
    values = torch.full((10, 3), 0.25)
    stats = bootstrap_group_means(values, torch.zeros(10, dtype=torch.long), 1, n_boot=200)
    for key in ("estimate", "low", "high"):
        close(stats[key], torch.full((1, 3), 0.25))
    assert stats["n"].tolist() == [[10, 10, 10]]


def test_bootstrap_interval_contains_mean_narrows_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(400, 2, generator=g, dtype=torch.float64)
    groups = torch.zeros(400, dtype=torch.long)
    groups[:40] = 1  # group 1: 40 images, group 0: 360
    s = bootstrap_group_means(values, groups, 2, n_boot=500, seed=1)
    close(s["estimate"][1], values[:40].mean(0))
    close(s["estimate"][0], values[40:].mean(0))
    assert s["n"].tolist() == [[360, 360], [40, 40]]
    assert (s["low"] < s["estimate"]).all() and (s["estimate"] < s["high"]).all()
    width = s["high"] - s["low"]  # (G, R); ~ 2 * 1.96 / sqrt(n)
    assert (width[0] < width[1]).all()
    assert 0.5 * 3.92 / math.sqrt(40) < width[1, 0] < 1.5 * 3.92 / math.sqrt(40)
    again = bootstrap_group_means(values, groups, 2, n_boot=500, seed=1)
    other = bootstrap_group_means(values, groups, 2, n_boot=500, seed=2)
    assert all(torch.equal(s[k], again[k]) for k in s)
    assert not torch.equal(s["low"], other["low"])
    # a group's interval does not depend on the other groups' images
    alone = bootstrap_group_means(values[:40], groups[:40], 2, n_boot=500, seed=1)
    assert torch.equal(alone["low"][1], s["low"][1])


def test_bootstrap_skips_nan_and_small_groups():
    values = torch.tensor([[1.0, NAN], [3.0, 2.0], [NAN, NAN], [5.0, 7.0], [4.0, NAN]])
    groups = torch.tensor([0, 0, 0, 1, 2])
    s = bootstrap_group_means(values, groups, 4, n_boot=100)
    assert s["n"].tolist() == [[2, 1], [1, 1], [1, 0], [0, 0]]
    close(s["estimate"], [[2.0, 2.0], [5.0, 7.0], [4.0, NAN], [NAN, NAN]])
    assert torch.isfinite(s["low"][0, 0]) and 1.0 <= s["low"][0, 0] <= 2.0 <= s["high"][0, 0] <= 3.0
    assert s["low"][0, 1].isnan() and s["high"][0, 1].isnan()  # one finite value: no interval
    assert s["low"][1:].isnan().all() and s["high"][1:].isnan().all()
    with pytest.raises(ValueError):
        bootstrap_group_means(values, torch.tensor([0, 0, 0, 1, 4]), 4)


def test_rank_regions_nan_last_and_ties_in_order():
    est = torch.tensor([[0.1, 0.5, NAN, 0.3], [NAN, NAN, 2.0, 2.0], [-1.0, -3.0, -2.0, NAN]])
    assert rank_regions(est).tolist() == [[3, 1, 4, 2], [3, 4, 1, 2], [1, 3, 2, 4]]


def test_agreement_identical_reversed_and_nan():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, NAN, 3.0, NAN, 5.0],
                      [1.0, NAN, NAN, NAN, 5.0], [2.0, 2.0, 2.0, 2.0, 2.0]])  # fmt: skip
    b = torch.tensor([[10.0, 20.0, 30.0, 40.0, 50.0], [5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 9.0, 2.0, 9.0, 3.0],
                      [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]])  # fmt: skip
    for kind in ("spearman", "kendall"):
        r = agreement(a, b, kind)
        close(r[:3], [1.0, -1.0, 1.0])  # row 2: the three regions finite in both agree
        assert r[3].isnan()  # only two regions finite in both
        assert r[4].isnan()  # constant scores have no ranks
    with pytest.raises(ValueError):
        agreement(a, b, "pearson")


def test_truth_scores_and_recovered():
    regions = list(FaceRegion)  # forehead brows glabella eyes nose cheeks mouth chin
    classes = [Emotion.HAPPINESS, Emotion.DISGUST, Emotion.NEUTRAL]
    ev = evidence()  # happiness: cheeks, mouth; disgust: nose, mouth; neutral: brows, mouth
    est = torch.zeros(3, 8, dtype=torch.float64)
    est[0, regions.index(FaceRegion.MOUTH)] = 3.0  # happiness: top = mouth (evidence)
    est[1, regions.index(FaceRegion.EYES)] = 2.0  # disgust: top = eyes (not evidence), nose second
    est[1, regions.index(FaceRegion.NOSE)] = 1.0
    est[2] = NAN  # neutral: nothing scored
    mass = torch.full((3, 8), 0.1, dtype=torch.float64)
    mass[:, 0] = 0.3  # forehead 0.3, every other region 0.1: rows sum to 1
    rows = truth_scores(est, regions, classes, ev, mass)
    assert [r["emotion"] for r in rows] == ["happiness", "disgust", "neutral"]
    assert [r["top_region"] for r in rows] == ["mouth", "eyes", ""]
    assert [r["top_is_evidence"] for r in rows] == [True, False, False]
    assert [r["best_evidence_rank"] for r in rows] == [1, 2, 0]
    assert rows[0]["evidence_regions"] == "cheeks;mouth" and rows[1]["evidence_regions"] == "nose;mouth"
    assert [r["evidence_mass_share"] for r in rows] == pytest.approx([0.2, 0.2, 0.2])
    assert recovered(rows) == 1
    # happiness: mouth beats all 6 others, cheeks ties them -> 9/12; disgust: nose loses only to eyes,
    # mouth ties 5 and loses to eyes -> 7.5/12
    assert [r["evidence_auc"] for r in rows[:2]] == pytest.approx([0.75, 0.625])
    assert [r["chance_top"] for r in rows[:2]] == pytest.approx([0.25, 0.25])
    assert math.isnan(rows[2]["evidence_auc"]) and math.isnan(rows[2]["chance_top"])
    no_mass = truth_scores(est, regions, classes, ev)
    assert all(math.isnan(r["evidence_mass_share"]) for r in no_mass)
    # contempt has no evidence entry in the synthetic set: skipped
    assert len(truth_scores(torch.zeros(1, 8), regions, [Emotion.CONTEMPT], ev)) == 0
    with pytest.raises(ValueError):
        truth_scores(est[:, :3], regions, classes, ev)


def test_tidy_rows():
    regions = [FaceRegion.EYES, FaceRegion.MOUTH]
    values = torch.tensor([[1.0, 2.0], [3.0, NAN], [1.0, 0.0]])
    stats = bootstrap_group_means(values, torch.tensor([0, 0, 1]), 2, n_boot=50)
    rows = tidy_rows(stats, SEVEN[:2], regions, "ig", fill="black", measure="relevance")
    assert len(rows) == 4
    assert rows[0] == {"emotion": "neutral", "region": "eyes", "method": "ig", "fill": "black",
                       "measure": "relevance", "estimate": 2.0, "ci_low": rows[0]["ci_low"],
                       "ci_high": rows[0]["ci_high"], "n": 2}  # fmt: skip
    assert [(r["emotion"], r["region"], r["n"]) for r in rows] == [
        ("neutral", "eyes", 2), ("neutral", "mouth", 1), ("happiness", "eyes", 1), ("happiness", "mouth", 1)
    ]  # fmt: skip
    assert math.isnan(rows[1]["ci_low"]) and rows[1]["estimate"] == 2.0
    with pytest.raises(ValueError):
        tidy_rows(stats, SEVEN[:3], regions, "ig")
