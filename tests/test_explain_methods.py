"""Attribution methods on tiny hand-weighted models whose right answers are known by hand.

- MouthReader reads only the mean of one box ("the mouth"): occlusion importance must sit in the
  region covering that box and be exactly 0 elsewhere; IG must be 0 outside the box.
- TwoBoxes: a 1x1 conv copies the image into 2 channels, channel k is gated to box k, ReLU, GAP,
  identity head, so logit k reads box k only: Grad-CAM for target k must peak in box k.
- Constant: output independent of the input: zero drop, zero IG.
"""

import copy
import os

import pytest
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from facexai.data.augment import Preprocess
from facexai.errors import ConfigError
from facexai.explain.gradcam import CAM_METHODS, cam_maps
from facexai.explain.integrated import integrated_gradients
from facexai.explain.occlusion import occlude, occlude_reference
from facexai.explain.references import reference
from facexai.models import cam_layer, create_model

S = 16  # image side
MOUTH = (slice(10, 14), slice(5, 11))  # rows, cols of the box MouthReader reads
BOX0, BOX1 = (slice(2, 6), slice(2, 6)), (slice(9, 14), slice(8, 14))  # TwoBoxes' boxes


def box_mask(box, size=S) -> torch.Tensor:
    m = torch.zeros(size, size, dtype=torch.bool)
    m[box] = True
    return m


class MouthReader(nn.Module):
    """logits = (2m, -2m) with m the mean of the mouth box over channels and pixels."""

    def forward(self, x):
        m = x[:, :, MOUTH[0], MOUTH[1]].mean((1, 2, 3))
        return torch.stack([2 * m, -2 * m], 1)


class BoxGate(nn.Module):
    def __init__(self, *boxes):
        super().__init__()
        self.register_buffer("masks", torch.stack([box_mask(b).float() for b in boxes]))  # (K, S, S)

    def forward(self, x):  # (B, K, S, S): channel k kept inside box k only
        return x * self.masks


def two_boxes() -> nn.Sequential:
    conv = nn.Conv2d(1, 2, 1, bias=False)
    nn.init.ones_(conv.weight)
    return nn.Sequential(conv, BoxGate(BOX0, BOX1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class Constant(nn.Module):
    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([0.3, -0.2, 0.1]))

    def forward(self, x):
        return self.logits + 0 * x.mean((1, 2, 3))[:, None]  # depends on x in the graph, not in value


def smooth_net(channels=3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        nn.Softplus(),
        nn.Conv2d(4, 6, 3, stride=2),
        nn.Tanh(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).eval()


def mouth_inputs(n=4, channels=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = 0.1 * torch.randn(n, channels, S, S, generator=g)
    x[:, :, MOUTH[0], MOUTH[1]] += 3.0  # a bright mouth: class 0, confidently
    return x


def face_regions(n=4) -> torch.Tensor:
    """(n, S, S): 1 = mouth area (covers MOUTH), 2 = eyes, 3 = left cheek, 0 = the rest."""
    r = torch.zeros(n, S, S, dtype=torch.int64)
    r[:, 9:15, 4:12] = 1
    r[:, 1:6, :] = 2
    r[:, 6:9, 0:4] = 3
    return r


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# --- occlusion ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fill", ["mean", "blur", "noise"])
def test_occlusion_importance_is_all_in_the_region_covering_the_mouth(fill):
    x, regions = mouth_inputs(), face_regions()
    out = occlude(MouthReader(), x, torch.zeros(4, dtype=torch.int64), regions, 3, fill=fill)
    assert (out["drop"][:, 0] > 0).all()
    if fill != "blur":  # blurring keeps most of the mouth's brightness, so its drop is small
        assert (out["drop"][:, 0] > 0.3).all()  # p(class 0) ~ 1 -> ~0.5 when the mouth is averaged away
    assert (out["drop"][:, 1:] == 0).all()  # eyes and cheek: exactly no effect
    assert out["drop"].shape == out["prob"].shape == out["flipped"].shape == (4, 3)
    torch.testing.assert_close(out["drop"], out["base_prob"][:, None] - out["prob"])
    assert not out["flipped"][:, 1:].any()


def test_occlusion_flags_a_flipped_prediction():
    x = mouth_inputs()
    fill = torch.full((1, S, S), -3.0)  # a dark mouth: class 1 wins
    out = occlude(MouthReader(), x, torch.zeros(4, dtype=torch.int64), face_regions(), 3, fill=fill)
    assert out["flipped"][:, 0].all() and not out["flipped"][:, 1:].any()
    assert (out["prob"][:, 0] < 0.5).all()


def test_constant_model_gets_zero_occlusion_drop_and_zero_ig():
    x, t = torch.randn(3, 3, S, S), torch.tensor([0, 1, 2])
    out = occlude(Constant(), x, t, face_regions(3), 3, fill="noise")
    assert (out["drop"] == 0).all() and not out["flipped"].any()
    attr, delta = integrated_gradients(Constant(), x, t, baseline="mean", n_steps=8)
    assert (attr == 0).all() and (delta.abs() < 1e-6).all()


def test_absent_region_has_zero_drop():
    regions = face_regions()
    regions[0][regions[0] == 1] = 0  # image 0 has no mouth region
    out = occlude(MouthReader(), mouth_inputs(), torch.zeros(4, dtype=torch.int64), regions, 3)
    assert out["drop"][0, 0] == 0 and (out["drop"][1:, 0] > 0).all()


@pytest.mark.parametrize("fill", ["mean", "blur", "noise"])
def test_batched_occlusion_equals_captum_feature_ablation(fill):
    torch.manual_seed(3)
    model, x = smooth_net(), torch.randn(5, 3, S, S)
    regions = torch.randint(0, 5, (5, S, S))
    regions[1][regions[1] == 4] = 2  # region 4 (id 4) absent from image 1
    t = torch.tensor([0, 1, 2, 0, 1])
    fast = occlude(model, x, t, regions, 4, fill=fill, batch_size=7)
    ref = occlude_reference(model, x, t, regions, 4, fill=fill, batch_size=2)
    for key in ("base_prob", "prob", "drop"):
        torch.testing.assert_close(fast[key], ref[key], atol=1e-6, rtol=1e-5)
    assert torch.equal(fast["flipped"], ref["flipped"])
    assert fast["drop"][1, 3] == 0


def test_occlusion_rejects_bad_arguments():
    x, t = mouth_inputs(2), torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ConfigError, match="unknown reference .zeros.; expected one of black, mean, blur"):
        occlude(MouthReader(), x, t, face_regions(2), 3, fill="zeros")
    with pytest.raises(ValueError, match="0..2"):
        occlude(MouthReader(), x, t, face_regions(2), 2)


# --- integrated gradients ----------------------------------------------------------------------


def test_ig_on_the_mouth_reader_is_exact_and_zero_outside_the_box():
    x = mouth_inputs()
    attr, delta = integrated_gradients(MouthReader(), x, torch.zeros(4, dtype=torch.int64), baseline="mean", n_steps=4)
    inside = box_mask(MOUTH)
    assert (attr[..., ~inside] == 0).all()
    n = inside.sum()
    torch.testing.assert_close(attr[..., inside], 2 * x[..., inside] / n)  # linear model: (x - 0) * df/dx
    assert (delta.abs() < 1e-5).all()


def test_ig_completeness_within_the_reported_delta():
    model, x = smooth_net(), torch.randn(3, 3, S, S)
    t = torch.tensor([2, 0, 1])
    pre = Preprocess(S, 3, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
    for baseline in ("black", "blur"):
        attr, delta = integrated_gradients(model, x, t, baseline=baseline, pre=pre, n_steps=64)
        b = reference(x, baseline, pre)
        with torch.no_grad():
            change = model(x).gather(1, t[:, None]).squeeze(1) - model(b).gather(1, t[:, None]).squeeze(1)
        gap = (attr.sum((1, 2, 3)) - change).abs()
        assert (gap <= delta.abs() + 1e-5).all()
        assert (delta.abs() < 1e-3 * change.abs().clamp(min=1)).all()


def _rss() -> int:
    """This process's resident memory in bytes (Linux)."""
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads resident memory from /proc")
def test_ig_memory_does_not_grow_with_the_images_under_bf16_autocast():
    # A whole split under one autocast context, as `--bf16` runs it. With autocast's cast cache on,
    # each batch's path points (32 x 128^2 per image) stayed cached: 1.4 GB over 400 images, so
    # about 0.7 GB over the 200 here.
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x, t = torch.randn(200, 1, 128, 128), torch.zeros(200, dtype=torch.int64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        integrated_gradients(model, x[:2], t[:2], baseline="mean", n_steps=32)  # warm-up allocations
        before = _rss()
        integrated_gradients(model, x, t, baseline="mean", n_steps=32)
        grown = _rss() - before
        assert torch.is_autocast_cache_enabled()  # the caller's setting is back
    assert grown < 100 * 2**20, f"grew {grown / 2**20:.0f} MB over 200 images"


def test_named_references():
    x = torch.randn(2, 3, S, S)
    pre = Preprocess(S, 3, (0.5, 0.4, 0.3), (0.25, 0.2, 0.5))
    black = reference(x, "black", pre)
    torch.testing.assert_close(black[0, :, 0, 0], torch.tensor([-2.0, -2.0, -0.6]))  # (0 - mean) / std
    assert (reference(x, "mean") == 0).all()
    blurred = reference(x, "blur")
    assert blurred.shape == x.shape and blurred.std() < 0.5 * x.std()
    mean_image = torch.randn(3, S, S)
    assert torch.equal(reference(x, mean_image)[1], mean_image)
    with pytest.raises(ConfigError, match="Preprocess"):
        integrated_gradients(smooth_net(), x, torch.zeros(2, dtype=torch.int64), baseline="black")
    with pytest.raises(ConfigError, match="black, mean, blur, blur_narrow, blur_wide, noise"):
        integrated_gradients(smooth_net(), x, torch.zeros(2, dtype=torch.int64), baseline="white")


# --- Grad-CAM ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_gradcam_for_target_k_peaks_in_box_k(method):
    model = two_boxes()
    x = torch.rand(1, 1, S, S).expand(4, -1, -1, -1) + 0.1  # the same positive image four times
    maps = cam_maps(model, model[2], x, torch.tensor([0, 1, 0, 1]), method=method)
    assert maps.shape == (4, S, S) and maps.dtype == torch.float32
    assert 0 <= maps.min() and maps.max() <= 1
    for k, box in enumerate((box_mask(BOX0), box_mask(BOX1))):
        m = maps[k]
        assert box.flatten()[m.argmax()]
        assert m[box].sum() > 0.95 * m.sum()
    assert not torch.allclose(maps[0], maps[1])  # per-sample targets give different maps
    torch.testing.assert_close(maps[0], maps[2])


def test_gradcam_on_the_seed_network_uses_its_registered_layer():
    from facexai.models import cam_layer, create_model

    model = create_model("seed_vgg", 3, 1)
    maps = cam_maps(model, cam_layer(model, "seed_vgg"), torch.randn(2, 1, 48, 48), torch.tensor([0, 2]))
    assert maps.shape == (2, 48, 48) and 0 <= maps.min() and maps.max() <= 1
    assert model.training  # the caller's mode is restored


@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_gradcam_graph_cut_gives_the_library_s_own_maps(method):
    """cam_maps backpropagates only down to the CAM layer; the plain library goes through every weight."""
    model, x, t = smooth_net(), torch.randn(3, 3, S, S), torch.tensor([2, 0, 1])
    with CAM_METHODS[method](model=model, target_layers=[model[3]]) as cam:
        plain = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in t])
    torch.testing.assert_close(cam_maps(model, model[3], x, t, method=method), torch.from_numpy(plain))


def test_gradcam_layer_may_be_followed_by_an_inplace_op():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert cam_maps(net, net[0], torch.randn(2, 1, S, S), torch.tensor([0, 3])).shape == (2, S, S)


def test_gradcam_unknown_method_names_the_choices():
    model = two_boxes()
    with pytest.raises(ConfigError, match="gradcam, gradcampp, hirescam"):
        cam_maps(model, model[2], torch.rand(1, 1, S, S), torch.tensor([0]), method="scorecam")


def test_gradcam_releases_hooks_and_restores_the_model_also_after_an_error():
    model = two_boxes()
    x = torch.rand(2, 1, S, S)
    cam_maps(model, model[2], x, torch.tensor([0, 1]))
    assert hook_count(model) == 0
    with pytest.raises(RuntimeError):  # wrong channel count: fails inside the library's forward
        cam_maps(model, model[2], torch.rand(2, 3, S, S), torch.tensor([0, 1]))
    assert hook_count(model) == 0
    with pytest.raises(ValueError, match="indexing"):  # class 5 of 2: the library would swallow this IndexError
        cam_maps(model, model[2], x, torch.tensor([0, 5]))
    assert hook_count(model) == 0
    assert all(p.requires_grad for p in model.parameters()) and model.training


# --- batching ----------------------------------------------------------------------------------


def test_results_do_not_depend_on_batch_size():
    model, x = smooth_net(), torch.randn(5, 3, S, S)
    t, regions = torch.tensor([0, 1, 2, 0, 1]), torch.randint(0, 4, (5, S, S))
    torch.testing.assert_close(
        cam_maps(model, model[3], x, t, batch_size=2), cam_maps(model, model[3], x, t, batch_size=64)
    )
    per_image_baseline = torch.randn(5, 3, S, S)
    torch.testing.assert_close(
        integrated_gradients(model, x, t, baseline=per_image_baseline, n_steps=8, batch_size=2)[0],
        integrated_gradients(model, x, t, baseline=per_image_baseline, n_steps=8, batch_size=64)[0],
    )
    a2, d2 = integrated_gradients(model, x, t, baseline="blur", n_steps=16, batch_size=2, internal_batch_size=8)
    a64, d64 = integrated_gradients(model, x, t, baseline="blur", n_steps=16, batch_size=64)
    torch.testing.assert_close(a2, a64, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(d2, d64, atol=1e-5, rtol=1e-3)
    for fill in ("blur", "noise"):
        o2 = occlude(model, x, t, regions, 3, fill=fill, batch_size=2)
        o64 = occlude(model, x, t, regions, 3, fill=fill, batch_size=64)
        for key in o2:
            torch.testing.assert_close(o2[key], o64[key])


@pytest.mark.parametrize("net", ["smooth_net", "seed_vgg"])
def test_results_do_not_depend_on_memory_format(net):
    """The analysis runs channels_last (which --bf16 needs to be fast); the numbers are the contiguous ones."""
    if net == "seed_vgg":  # batch norm, max-pooling, in-place ReLU; random weights and statistics
        torch.manual_seed(0)
        model, x = create_model("seed_vgg", 3, 3), torch.randn(3, 3, 48, 48)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 2)
        model, layer_of = model.eval(), lambda m: cam_layer(m, "seed_vgg")
    else:
        model, x, layer_of = smooth_net(), torch.randn(3, 3, S, S), lambda m: m[3]
    t, regions = torch.tensor([0, 1, 2]), torch.randint(0, 4, (3, *x.shape[-2:]))
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    cl_x = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cam_maps(model, layer_of(model), x, t), cam_maps(cl_model, layer_of(cl_model), cl_x, t))
    a, d = integrated_gradients(model, x, t, baseline="blur", n_steps=8)
    cl_a, cl_d = integrated_gradients(cl_model, cl_x, t, baseline="blur", n_steps=8)
    # summation order differs; through seed_vgg's max-pooling single pixels move by ~0.1% of the largest
    torch.testing.assert_close(a, cl_a, atol=1e-3 * float(a.abs().max()), rtol=1e-4)
    torch.testing.assert_close(d, cl_d, atol=1e-5, rtol=1e-3)
    o, cl_o = occlude(model, x, t, regions, 3, fill="blur"), occlude(cl_model, cl_x, t, regions, 3, fill="blur")
    for key in o:
        torch.testing.assert_close(o[key], cl_o[key])
