import math

import pytest
import torch

from facexai.config import AugmentConfig
from facexai.data.augment import (
    Preprocess,
    channel_stats,
    erase,
    match_channels,
    prepare,
    random_affine,
    random_boxes,
)

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


def test_without_shift_or_erasing_the_random_stream_is_unchanged():
    # recipes written before these options existed draw the same augmentation, so their runs still resume
    gen = torch.Generator().manual_seed(3)
    theta = random_affine(6, AugmentConfig(), gen, torch.device("cpu"))
    assert random_boxes(6, 48, 0.0, gen, torch.device("cpu")) is None
    after = torch.rand(1, generator=gen)
    gen = torch.Generator().manual_seed(3)
    torch.rand(6, 3, generator=gen)  # the rotation, zoom and flip draws, nothing more
    assert torch.equal(theta[:, :, 2], torch.zeros(6, 2)) and torch.equal(torch.rand(1, generator=gen), after)


def test_shift_moves_the_image_by_the_drawn_fraction_of_its_side():
    cfg = AugmentConfig(rotation=0.0, scale=0.0, flip=False, translate=0.25)
    theta = random_affine(1000, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    shift = theta[:, :, 2] / 2  # normalised [-1, 1] coordinates -> fraction of the side
    assert shift.abs().max() <= 0.25 + 1e-6 and shift.abs().max() > 0.24
    one = torch.tensor([[[1.0, 0, 0.5], [0, 1, 0]]])  # a quarter of the side: 8 of 32 pixels
    y = prepare(left_half_bright(1), PLAIN, one)  # output x reads input x + 8: the bright half now ends at 8
    assert torch.allclose(y[0, 0, :, :7], torch.ones(32, 7)) and torch.allclose(y[0, 0, :, 9:], torch.zeros(32, 23))


def test_erasing_boxes_follow_torchvisions_ranges_and_probability():
    size, n = 48, 4000
    boxes = random_boxes(n, size, 0.5, torch.Generator().manual_seed(0), torch.device("cpu"))
    top, left, h, w = boxes.unbind(1)
    kept = h > 0
    assert 0.45 < kept.float().mean() < 0.55
    area = (h * w)[kept].float() / size**2
    assert area.min() > 0.01 and area.max() < 0.40  # 2-33% before rounding and clipping
    assert bool(((top + h <= size) & (left + w <= size) & (top >= 0) & (left >= 0)).all())
    tk, lk, hk, wk = top[kept], left[kept], h[kept], w[kept]
    assert (tk == 0).any() and (tk + hk == size).any() and (lk == 0).any() and (lk + wk == size).any()  # edges reached
    aspect = hk.float() / wk
    assert aspect.min() < 0.4 and aspect.max() > 2.5  # 0.3 to 3.3, log-uniform


def test_erase_matches_torchvision_box_by_box():
    from torchvision.transforms.v2.functional import erase as tv_erase

    x = torch.randn(5, 3, 20, 20)
    boxes = random_boxes(5, 20, 0.6, torch.Generator().manual_seed(2), torch.device("cpu"))
    assert (boxes[:, 2] > 0).any() and (boxes[:, 2] == 0).any()  # some faces erased, some not
    y = erase(x, boxes)
    for img, out, (top, left, h, w) in zip(x, y, boxes.tolist(), strict=True):
        want = tv_erase(img, top, left, h, w, torch.tensor(0.0)) if h else img
        assert torch.equal(out, want)
    assert erase(x, None) is x
