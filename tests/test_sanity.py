"""Cascading model randomisation (Adebayo et al. 2018) on a tiny conv net, with answers known by construction.

- gradient x input of a net whose fc layer weighs every pixel separately: the maps follow the
  weights, so randomising the net decorrelates them (not flagged);
- a "method" that returns the input's edges and never looks at the model: identical maps after
  every step, rho = SSIM = 1 (flagged);
- the caller's model, its mode and the global RNG are left exactly as they were.
"""

import pytest
import torch
from torch import nn

from facexai.explain.sanity import (
    cascading_randomization,
    compare_maps,
    flag_insensitive,
    parametrised_layers,
    reinitialise,
)

S = 16


class Tiny(nn.Module):
    """conv -> ReLU -> conv -> ReLU -> per-pixel linear head; fc is registered first on purpose."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4 * S * S, 3)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(h.flatten(1))


X = torch.randn(6, 1, S, S, generator=torch.Generator().manual_seed(1))


def grad_x_input(model: nn.Module) -> torch.Tensor:
    """(N, H, W) gradient x input of logit 0 (summed over channels)."""
    x = X.clone().requires_grad_(True)
    model(x)[:, 0].sum().backward()
    return (x.grad * x).sum(1).detach()


def edges(model: nn.Module) -> torch.Tensor:
    """(N, H, W) gradient magnitude of the input image: ignores the model entirely."""
    x = X[:, 0]
    gy, gx = torch.gradient(x, dim=(1, 2))
    return (gx**2 + gy**2).sqrt()


def tiny(seed: int = 10) -> Tiny:
    torch.manual_seed(seed)
    return Tiny()


def test_layers_randomised_from_the_output_down_in_execution_order():
    model = tiny()
    assert parametrised_layers(model) == ["fc", "conv1", "conv2"]  # registration order
    results = cascading_randomization(model, grad_x_input, seed=0)
    assert [r["layer"] for r in results] == ["fc", "conv2", "conv1"]
    assert [r["step"] for r in results] == [1, 2, 3]


def test_model_dependent_maps_decorrelate_and_are_not_flagged():
    results = cascading_randomization(tiny(), grad_x_input, seed=0)
    for r in results:
        assert abs(r["spearman"]) < 0.3 and r["spearman_abs"] < 0.3
        assert r["ssim"] is not None and r["ssim"] < 0.5
    assert not flag_insensitive(results)


def test_model_independent_method_is_flagged():
    results = cascading_randomization(tiny(), edges, seed=0)
    assert len(results) == 3
    for r in results:
        assert r["spearman"] == pytest.approx(1.0) and r["ssim"] == pytest.approx(1.0)
    assert flag_insensitive(results)
    assert not flag_insensitive(results, threshold=1.0)  # strictly above the threshold


def test_original_model_mode_and_rng_untouched():
    model = tiny().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    cascading_randomization(model, grad_x_input, seed=0)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training
    assert all(p.grad is None for p in model.parameters())  # maps were computed on the copy
    assert torch.equal(torch.get_rng_state(), rng)


def test_deterministic_from_seed_and_explicit_layers():
    model = tiny()
    a = cascading_randomization(model, grad_x_input, seed=3, layers=["fc"], ssim=False)
    b = cascading_randomization(model, grad_x_input, seed=3, layers=["fc"], ssim=False)
    c = cascading_randomization(model, grad_x_input, seed=4, layers=["fc"], ssim=False)
    assert a == b and a != c
    assert [r["layer"] for r in a] == ["fc"] and a[0]["ssim"] is None
    with pytest.raises(ValueError, match="not parametrised"):
        cascading_randomization(model, grad_x_input, layers=["nope"])


def test_reinitialise_changes_every_parameter_reproducibly():
    a, b = tiny(), tiny()
    reinitialise(a, seed=5)
    reinitialise(b, seed=5)
    for (name, p), q, orig in zip(a.named_parameters(), b.parameters(), tiny().parameters(), strict=True):
        assert torch.equal(p, q), name
        assert not torch.equal(p, orig), name


def test_compare_maps_known_answers():
    m = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 8, 8)
    same = compare_maps(m, 3 * m + 1)  # monotone transform: same ranks, same min-max scaled maps
    assert same["spearman"] == pytest.approx(1.0) and same["ssim"] == pytest.approx(1.0)
    flipped = compare_maps(m, -m, ssim=False)
    assert flipped["spearman"] == pytest.approx(-1.0) and flipped["spearman_abs"] == pytest.approx(1.0)
    assert flipped["ssim"] is None
    small = compare_maps(m[:, :5, :5], m[:, :5, :5])  # under skimage's 7x7 window: no SSIM
    assert small["ssim"] is None
    const = compare_maps(m, torch.zeros_like(m), ssim=False)  # a constant map has no ranks: NaN, not flagged
    assert const["spearman"] != const["spearman"]
    assert not flag_insensitive([{"layer": "x", **const}])
    with pytest.raises(ValueError):
        compare_maps(m, m[:1])


def test_the_check_s_size_follows_the_run_s():
    from facexai.explain.analysis import ExplainConfig, sanity_size

    assert [sanity_size(ExplainConfig(), n) for n in (1, 50, 400, 3572)] == [1, 2, 8, 16]  # 2% of the faces, 2..16
    assert sanity_size(ExplainConfig(sanity_n=0), 3572) == 0 and sanity_size(ExplainConfig(sanity_n=40), 30) == 30
