"""Statistics for region claims, on data whose answers are known: a constructed difference, a textbook
Benjamini-Hochberg example, sign-flip p-values of a shifted and a centred sample, and patches of a given area."""

import numpy as np
import pytest
import torch

from facexai.explain import statistics as st


def test_the_paired_bootstrap_finds_a_constructed_difference():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(400, generator=g, dtype=torch.float64)
    a, b = base + 0.3 + 0.05 * torch.randn(400, generator=g, dtype=torch.float64), base
    d = st.paired_difference(a, b, n_boot=1000)
    assert d["low"] < 0.3 < d["high"] and d["high"] - d["low"] < 0.03  # pairing removes the shared spread
    assert d["estimate"] == pytest.approx(float((a - b).mean()))


def test_benjamini_hochberg_on_a_textbook_example():
    # Benjamini & Hochberg (1995)'s 15 p-values: at q = 0.05 the four smallest are rejected
    p = torch.tensor([0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719,
                      0.6528, 0.7590, 1.0000])  # fmt: skip
    adjusted, rejected = st.benjamini_hochberg(p, q=0.05)
    assert rejected.tolist() == [True] * 4 + [False] * 11
    assert adjusted[0] == pytest.approx(0.0015) and adjusted[3] == pytest.approx(0.0095 * 15 / 4)
    assert (adjusted.diff() >= 0).all()  # monotone in the p-values' order
    with_nan, _ = st.benjamini_hochberg(torch.tensor([0.01, float("nan"), 0.04]))
    assert with_nan[1].isnan() and with_nan[2] == pytest.approx(0.04)  # NaN is not in the family


def test_sign_flip_p_values_of_a_shifted_and_a_centred_sample():
    g = torch.Generator().manual_seed(1)
    x = torch.stack([torch.randn(200, generator=g) + 0.5, torch.randn(200, generator=g)], 1)
    p = st.sign_flip_pvalues(x, n_perm=2000)
    assert p[0] == pytest.approx(1 / 2001) and p[1] > 0.05


def test_the_region_that_ranks_first_does_so_in_most_replicates():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 3, generator=g, dtype=torch.float64) + torch.tensor([0.0, 1.0, 0.9])
    first = st.rank_first_probability(x, n_boot=500)
    assert first.sum() == pytest.approx(1.0) and first[0] == 0 and first[1] > first[2] > 0


def test_random_patches_have_the_area_asked_for_inside_the_face():
    face = torch.zeros(20, 20, dtype=torch.bool)
    face[3:17, 5:15] = True
    patches = st.random_patches(face, area=30, k=5, seed=3)
    assert patches.sum((1, 2)).tolist() == [30] * 5 and not (patches & ~face).any()
    assert len({tuple(np.nonzero(p.numpy())[0][:3]) for p in patches}) > 1  # not one patch five times
