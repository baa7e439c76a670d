"""One verb for every method: `attribute(name, run, inputs, targets, masks, settings) -> Attribution`.

Checked on hand-built models against the libraries: a CAM on the probability score is
pytorch-grad-cam's ClassifierOutputSoftmaxTarget; IG on the probability score is captum's IG of the
softmax; a method added with one registry line is called by name.
"""

import pytest
import torch
from captum.attr import IntegratedGradients
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from torch import nn

from facexai.data.augment import Preprocess
from facexai.emotions import SEVEN
from facexai.errors import ConfigError
from facexai.explain import methods
from facexai.explain.base import Attribution, Settings, Target
from facexai.explain.methods import METHODS, attribute, register
from facexai.explain.references import REFERENCES, reference
from facexai.runs import Run

S = 12


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 7)).eval()  # fmt: skip


def run_of(model) -> Run:
    return Run.of(model, Preprocess(S, 1, (0.5,), (0.25,)), SEVEN, cam_layer="1", device="cpu", fine_cam_layer="0")


def halves(n: int) -> torch.Tensor:
    """(n, 2, S, S): region 0 the left half, region 1 the right half."""
    m = torch.zeros(n, 2, S, S, dtype=torch.bool)
    m[:, 0, :, : S // 2], m[:, 1, :, S // 2 :] = True, True
    return m


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_answers_with_region_scores_for_every_face_and_region(name):
    x, t = torch.randn(3, 1, S, S), torch.tensor([0, 3, 6])
    att = attribute(name, run_of(net()), x, t, halves(3), Settings(steps=4))
    assert isinstance(att, Attribution) and att.method == name
    assert att.regions.shape == (3, 2) and att.regions.dtype == torch.float64
    assert (att.maps is None) == (METHODS[name].kind == "perturbation")
    default = {"perturbation": "probability", "map": "logit", "null": "none"}[METHODS[name].kind]
    assert att.score == default  # each method states the score it explains


@pytest.mark.parametrize("name", list(METHODS))
def test_rows_per_pass_change_the_speed_not_the_answer(name):
    # a CPU runs 16 rows per pass, a GPU 512 (IG then sends 64 images per captum call instead of 2)
    torch.manual_seed(1)
    x, t = torch.randn(20, 1, S, S), torch.randint(0, 7, (20,))
    small = attribute(name, run_of(net()), x, t, halves(20), Settings(steps=8, batch_size=1))
    large = attribute(name, run_of(net()), x, t, halves(20), Settings(steps=8, batch_size=512))
    # a map that is zero everywhere has no relevance (NaN) at either size
    torch.testing.assert_close(small.regions, large.regions, atol=1e-6, rtol=1e-4, equal_nan=True)
    if small.maps is not None:
        torch.testing.assert_close(small.maps, large.maps, atol=1e-6, rtol=1e-4)


def test_a_cam_of_the_probability_is_the_library_s_softmax_target():
    model, x, t = net(), torch.randn(2, 1, S, S), torch.tensor([1, 5])
    att = attribute("gradcam", run_of(model), x, t, halves(2), Settings(score="probability"))
    with GradCAM(model=model, target_layers=[model[1]]) as cam:
        plain = cam(input_tensor=x, targets=[ClassifierOutputSoftmaxTarget(int(c)) for c in t])
    torch.testing.assert_close(att.maps, torch.from_numpy(plain))
    assert att.score == "probability"


def test_ig_of_the_probability_is_captum_s_ig_of_the_softmax():
    model, x, t = net(), torch.randn(2, 1, S, S), torch.tensor([1, 5])
    att = attribute("ig", run_of(model), x, t, halves(2), Settings(score="probability", reference="mean", steps=8))
    softmax = IntegratedGradients(lambda z: torch.softmax(model(z), 1))
    expected = softmax.attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=8).sum(1).clamp(min=0)
    torch.testing.assert_close(att.maps, expected, atol=1e-6, rtol=1e-4)


def test_targets_resolve_to_the_class_each_image_explains():
    preds, labels = torch.tensor([1, 2, 3]), torch.tensor([1, 0, 3])
    assert Target("pred").classes(preds, labels).tolist() == [1, 2, 3]
    assert Target("true").classes(preds, labels).tolist() == [1, 0, 3]
    assert Target("class", index=4).classes(preds, labels).tolist() == [4, 4, 4]
    with pytest.raises(ConfigError):
        Target("class")
    with pytest.raises(ConfigError, match="logit or probability"):
        Target(score="odds")


def test_one_reference_registry_serves_occlusion_and_integrated_gradients():
    x = torch.randn(5, 1, S, S)
    pre = Preprocess(S, 1, (0.5,), (0.25,))
    assert set(REFERENCES) == {"black", "mean", "blur", "blur_narrow", "blur_wide", "noise"}
    assert (reference(x, "black", pre) == -2.0).all() and (reference(x, "mean") == 0).all()
    assert torch.equal(reference(x, "noise", seed=3), reference(x, "noise", seed=3))  # seeded
    assert not torch.equal(reference(x, "noise", seed=3), reference(x, "noise", seed=4))
    blurred = reference(x, "blur")
    assert torch.allclose(blurred[1:3], reference(x[1:3], "blur"))  # per image, however batched


def test_a_new_method_is_one_function_and_one_registry_line(monkeypatch):
    monkeypatch.setattr(methods, "METHODS", dict(METHODS))

    def brightest(run, inputs, targets, masks, settings):
        """Region score: the mean input value inside the region (a content-only 'explainer')."""
        area = masks.flatten(2).sum(-1).double()
        inside = (inputs.mean(1, keepdim=True) * masks).flatten(2).sum(-1).double()
        return Attribution("brightest", inside / area, "mean_input", "none")

    register(methods.Method("brightest", "brightest region", "perturbation", brightest))
    x = torch.zeros(2, 1, S, S)
    x[..., S // 2 :] = 1.0
    att = methods.attribute("brightest", run_of(net()), x, torch.tensor([0, 0]), halves(2))
    assert att.regions.tolist() == [[0.0, 1.0], [0.0, 1.0]]
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        attribute("nope", run_of(net()), x, torch.tensor([0, 0]), halves(2))
