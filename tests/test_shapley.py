"""Exact region Shapley values, batched: against captum's ShapleyValues, and on models whose values are known
by hand (additive over region means: the values are the per-region effects; one multiplicative pair: its
interaction is recovered)."""

import pytest
import torch
from captum.attr import ShapleyValues
from torch import nn

from facexai.explain.shapley import coalition_values, coalitions, interaction, shapley_weights

S = 8  # image side


def quarters(n: int) -> torch.Tensor:
    """(n, 4, S, S) masks: the four quadrants, covering the whole image (no background)."""
    m = torch.zeros(n, 4, S, S, dtype=torch.bool)
    h = S // 2
    m[:, 0, :h, :h], m[:, 1, :h, h:], m[:, 2, h:, :h], m[:, 3, h:, h:] = True, True, True, True
    return m


class RegionMeans(nn.Module):
    """logits from the four quadrant means: class 0 = w . means + c * m0 * m1; the other classes' logits 0."""

    def __init__(self, w, c=0.0):
        super().__init__()
        self.w, self.c = torch.tensor(w), c

    def forward(self, x):
        h = S // 2
        m = torch.stack([x[..., :h, :h].mean((1, 2, 3)), x[..., :h, h:].mean((1, 2, 3)),
                         x[..., h:, :h].mean((1, 2, 3)), x[..., h:, h:].mean((1, 2, 3))], 1)  # fmt: skip
        logit = m @ self.w + self.c * m[:, 0] * m[:, 1]
        return torch.stack([logit, torch.zeros_like(logit), torch.zeros_like(logit)], 1)


def smooth_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(12, 3)).eval()  # fmt: skip


def test_efficiency_holds_by_construction():
    values = torch.randn(5, 16, dtype=torch.float64)
    phi = values @ shapley_weights(4).T
    torch.testing.assert_close(phi.sum(1), values[:, -1] - values[:, 0])
    assert coalitions(3).tolist()[5] == [True, False, True]  # bit i of the row number holds region i


def test_batched_values_equal_captum_shapley_values():
    model, x = smooth_net(), torch.randn(3, 1, S, S)
    targets, ref = torch.tensor([0, 2, 1]), torch.zeros(3, 1, S, S)
    values = coalition_values(model, x, targets, quarters(3), reference=ref, batch_size=7)
    phi = values @ shapley_weights(4).T
    feature_mask = (quarters(1).long() * torch.arange(4).view(1, 4, 1, 1)).sum(1, keepdim=True)  # ids 0..3
    probs = ShapleyValues(lambda z: torch.softmax(model(z), 1))
    for i in range(3):
        a = probs.attribute(x[i : i + 1], baselines=ref[i : i + 1], target=int(targets[i]), feature_mask=feature_mask)
        captum = torch.stack([a[0, 0][quarters(1)[0, k]][0] for k in range(4)]).double()
        torch.testing.assert_close(phi[i], captum, atol=1e-6, rtol=1e-5)


def test_an_additive_model_s_values_are_its_region_effects():
    w = [2.0, -1.0, 0.5, 0.0]
    x = torch.randn(4, 1, S, S)
    values = coalition_values(RegionMeans(w), x, torch.zeros(4, dtype=torch.long), quarters(4), reference="mean",
                              score="logit")  # fmt: skip
    phi = values @ shapley_weights(4).T
    h = S // 2
    means = torch.stack([x[..., :h, :h].mean((1, 2, 3)), x[..., :h, h:].mean((1, 2, 3)),
                         x[..., h:, :h].mean((1, 2, 3)), x[..., h:, h:].mean((1, 2, 3))], 1).double()  # fmt: skip
    torch.testing.assert_close(phi, means * torch.tensor(w, dtype=torch.float64), atol=1e-6, rtol=1e-5)


def test_one_multiplicative_pair_is_recovered_as_their_interaction():
    x = torch.randn(3, 1, S, S)
    values = coalition_values(RegionMeans([0.0] * 4, c=3.0), x, torch.zeros(3, dtype=torch.long), quarters(3),
                              reference="mean", score="logit")  # fmt: skip
    h = S // 2
    m0, m1 = x[..., :h, :h].mean((1, 2, 3)).double(), x[..., :h, h:].mean((1, 2, 3)).double()
    # I = c (m0 - b0)(m1 - b1), and the mean reference b is 0 in model space
    torch.testing.assert_close(interaction(values, 0, 1), 3.0 * m0 * m1, atol=1e-6, rtol=1e-5)
    assert interaction(values, 2, 3).abs().max() < 1e-9  # an additive (here: absent) pair does not interact


def test_too_many_regions_are_refused():
    with pytest.raises(ValueError, match="at most 12"):
        masks = torch.zeros(1, 13, S, S, dtype=torch.bool)
        coalition_values(smooth_net(), torch.randn(1, 1, S, S), torch.tensor([0]), masks)


def test_the_inpainting_reference_fills_each_removal_from_its_surroundings():
    from facexai.explain.references import MASKED, check_reference

    x = torch.linspace(0, 1, S).view(1, 1, 1, S).expand(2, 1, S, S).contiguous()  # a smooth ramp
    removed = torch.zeros(2, 1, S, S, dtype=torch.bool)
    removed[0, :, 2:5, 2:5] = True
    filled = MASKED["inpaint"](x, removed)
    torch.testing.assert_close(filled, x, atol=1e-3, rtol=0)  # a ramp is continued exactly, nothing else moves
    values = coalition_values(smooth_net(), torch.randn(2, 1, S, S), torch.tensor([0, 1]), quarters(2),
                              reference="inpaint")  # fmt: skip
    assert values.shape == (2, 16) and values.isfinite().all()
    with pytest.raises(Exception, match="unknown reference 'inpaint'"):
        check_reference("inpaint")  # no removal mask, no inpainting (an IG baseline, say)
