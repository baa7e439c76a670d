import pytest
import torch

from facexai.errors import ConfigError
from facexai.models import cam_layer, count_parameters, create_model, get_spec, list_models


def test_seed_network_has_seed_b_parameter_count():
    model = create_model("seed_vgg", num_classes=7, in_channels=3)
    assert count_parameters(model) == 670_183  # Keras' count: weights + batch-norm running statistics
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 668_583
    bn_channels = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert bn_channels == 800


def test_seed_network_spatial_path_is_100_33_11_3():
    model = create_model("seed_vgg").eval()
    x = torch.zeros(1, 3, 100, 100)
    sizes = []
    for block in model.features:
        x = block(x)
        sizes.append(x.shape[-1])
    assert sizes == [33, 11, 3]
    assert model(torch.zeros(2, 3, 100, 100)).shape == (2, 7)


@pytest.mark.parametrize("name", ["seed_vgg", "seed_vgg_gap", "seed_vgg_wide", "small_cnn", "resnet18"])
@pytest.mark.parametrize("size,channels", [(48, 1), (100, 3)])
def test_registered_models_take_small_inputs_and_name_a_cam_layer(name, size, channels):
    model = create_model(name, num_classes=8, in_channels=channels).eval()
    acts = {}
    layer = cam_layer(model, name)
    handle = layer.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    out = model(torch.zeros(2, channels, size, size))
    handle.remove()
    assert out.shape == (2, 8)
    assert acts["a"].ndim == 4 and acts["a"].shape[-1] >= 3  # a spatial map Grad-CAM can use
    assert get_spec(name).input_size == (48 if name in ("small_cnn", "seed_vgg_wide") else 100)


def test_the_gap_variant_has_the_seed_weights_and_averages_every_cell_of_the_last_block():
    seed, gap = create_model("seed_vgg"), create_model("seed_vgg_gap")
    assert count_parameters(gap) == count_parameters(seed)
    gap.load_state_dict(seed.state_dict())  # the same weights by name
    gap.eval()
    acts = {}
    cam_layer(gap, "seed_vgg_gap").register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    logits = gap(torch.randn(2, 3, 48, 48))
    assert acts["a"].shape[-2:] == (5, 5)  # 48 -> 16 -> 5, and no pooling after the last block
    assert torch.allclose(logits, gap.head(acts["a"].mean((2, 3))), atol=1e-5)


def test_the_wide_variant_stays_compact_and_widens_only_the_channels():
    wide = create_model("seed_vgg_wide")
    assert count_parameters(wide) == 1_298_759 <= 1_500_000  # the compact budget of issue 20's item 3
    convs = [m.out_channels for m in wide.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [64] * 2 + [128] * 3 + [192] * 3
    assert wide.head.in_features == 192 and len(wide.features[2]) == 9  # no pooling after the last block


def test_resnet18_is_never_pretrained():
    a, b = create_model("resnet18"), create_model("resnet18")
    assert not torch.equal(a.conv1.weight, b.conv1.weight)  # fresh random init each time, nothing downloaded


def test_unknown_model_names_the_choices():
    with pytest.raises(ConfigError, match="unknown model 'vgg99'.*seed_vgg"):
        create_model("vgg99")
    assert [s.name for s in list_models()] == ["seed_vgg", "seed_vgg_gap", "seed_vgg_wide", "small_cnn", "resnet18"]


def test_small_cnn_is_small_and_keeps_a_12x12_cam_map_at_48px():
    model = create_model("small_cnn").eval()
    assert count_parameters(model) == 24_199
    acts = {}
    cam_layer(model, "small_cnn").register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    model(torch.zeros(1, 1, 48, 48))
    assert acts["a"].shape == (1, 64, 12, 12)
