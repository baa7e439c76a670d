import math

import pytest
import torch

from facexai.config import AugmentConfig
from facexai.data.augment import Preprocess, channel_stats, match_channels, prepare, random_affine

NONE = AugmentConfig(rotation=0.0, scale=0.0, flip=False)
PLAIN = Preprocess(size=32, channels=1, mean=(0.0,), std=(1.0,))


def left_half_bright(n=4, size=32):
    x = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    x[..., : size // 2] = 255
    return x


def test_prepare_resizes_replicates_grey_and_standardises():
    pre = Preprocess(size=100, channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = torch.full((2, 1, 48, 48), 255, dtype=torch.uint8)
    y = prepare(x, pre)
    assert y.shape == (2, 3, 100, 100) and y.dtype == torch.float32
    assert torch.allclose(y, torch.full_like(y, 2.0))  # (1 - 0.5) / 0.25


def test_identity_affine_equals_plain_resize():
    x = (torch.rand(3, 1, 48, 48) * 255).to(torch.uint8)
    theta = random_affine(3, NONE, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.allclose(theta, torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(3, 2, 3))
    warped = prepare(x, Preprocess(48, 1, (0.0,), (1.0,)), theta)
    assert torch.allclose(warped, x.float() / 255, atol=1e-5)


def test_flip_mirrors_and_keeps_shapes():
    x = left_half_bright()
    theta = random_affine(
        4, AugmentConfig(rotation=0.0, scale=0.0, flip=True), torch.Generator().manual_seed(1), torch.device("cpu")
    )
    flipped = theta[:, 0, 0] < 0
    assert 0 < int(flipped.sum()) < 4  # drawn per sample
    y = prepare(x, PLAIN, theta)
    assert y.shape == (4, 1, 32, 32)
    left, right = y[..., :16].mean((1, 2, 3)), y[..., 16:].mean((1, 2, 3))
    assert torch.all(torch.where(flipped, right > left, left > right))


def test_rotation_and_scale_stay_in_their_ranges():
    cfg = AugmentConfig(rotation=10.0, scale=0.1, flip=False)
    theta = random_affine(1000, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    a, c = theta[:, 0, 0], theta[:, 1, 0]
    angle = torch.atan2(c, a).abs().max()
    zoom = 1 / torch.sqrt(a**2 + c**2)
    assert angle <= math.radians(10) + 1e-6 and angle > math.radians(9)
    assert zoom.min() >= 0.9 - 1e-6 and zoom.max() <= 1.1 + 1e-6


def test_same_generator_seed_gives_same_augmentation():
    draw = lambda: random_affine(8, AugmentConfig(), torch.Generator().manual_seed(5), torch.device("cpu"))  # noqa: E731
    assert torch.equal(draw(), draw())


def test_channel_stats_match_direct_computation():
    x = (torch.rand(10, 1, 8, 8) * 255).to(torch.uint8)
    mean, std = channel_stats(x, 3, chunk=3)
    ref = x.double() / 255
    assert mean == pytest.approx((ref.mean().item(),) * 3)
    assert std == pytest.approx((ref.std(unbiased=False).item(),) * 3)


def test_rgb_to_grey_uses_luma():
    rgb = torch.zeros(1, 3, 2, 2)
    rgb[:, 1] = 1.0
    assert torch.allclose(match_channels(rgb, 1), torch.full((1, 1, 2, 2), 0.587))
