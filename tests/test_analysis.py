"""The analysis driver: one subject, each method call with its own regions, target and reference.

Uses the committed small synthetic model (tests/fixtures/synthetic-small) on 21 test faces, and hand-built
models held in memory (`Run.of`), whose answers are known by hand.
"""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from facexai.data.augment import Preprocess
from facexai.data.base import FaceDataset
from facexai.emotions import SEVEN
from facexai.errors import ConfigError
from facexai.explain.analysis import ExplainConfig, SubjectConfig, explain, load_subject, occlusion, saliency
from facexai.facs import FaceRegion
from facexai.runs import Run

RUN = Path(__file__).parent / "fixtures" / "synthetic-small"
QUIET = dict(n_boot=20, sanity_n=0, progress=False)


def test_occlusion_and_saliency_report_the_regions_asked_for(synthetic_subject):
    subject = synthetic_subject
    cfg = ExplainConfig(regions=(FaceRegion.MOUTH,), methods=("gradcam",), **QUIET)
    occ, _ = occlusion(subject, cfg)
    sal, tensors = saliency(subject, cfg)
    assert {r["region"] for r in occ + sal} == {"mouth"}  # before the redesign: all 8, whatever was asked
    assert tensors["gradcam/relevance"].shape == (21, 1)
    both = ExplainConfig(regions=(FaceRegion.MOUTH, FaceRegion.EYES), **QUIET)
    mouth_of_two = explain(subject, "occlusion", both).regions[:, 0]
    assert torch.allclose(mouth_of_two, explain(subject, "occlusion", cfg).regions[:, 0])  # a region's mask is its own


def test_the_target_is_each_call_s_own(synthetic_subject):
    subject = synthetic_subject
    assert not torch.equal(subject.preds, subject.labels)  # some faces are misclassified
    pred = explain(subject, "occlusion", ExplainConfig(target="pred", **QUIET))
    true = explain(subject, "occlusion", ExplainConfig(target="true", **QUIET))
    wrong = subject.preds != subject.labels
    assert torch.equal(pred.regions[~wrong], true.regions[~wrong])
    assert not torch.equal(pred.regions[wrong], true.regions[wrong])


def test_a_region_missing_from_a_face_is_no_information_not_zero(synthetic_subject):
    subject = synthetic_subject
    subject.index[0][subject.index[0] == list(FaceRegion).index(FaceRegion.MOUTH) + 1] = 0  # face 0 loses its mouth
    try:
        cfg = ExplainConfig(regions=(FaceRegion.MOUTH, FaceRegion.EYES), **QUIET)
        att = explain(subject, "occlusion", cfg)
        assert math.isnan(att.regions[0, 0]) and att.regions[1:, 0].isfinite().all()
        rows, _ = occlusion(subject, cfg)
        label = str(subject.data.classes[int(subject.labels[0])])
        cell = next(r for r in rows if (r["group"], r["emotion"], r["region"], r["measure"]) ==
                    ("true", label, "mouth", "accuracy_drop"))  # fmt: skip
        assert cell["n"] == int((subject.labels == subject.labels[0]).sum()) - 1  # face 0 is not counted as 0
    finally:
        subject.index.copy_(load_subject(subject.run, SubjectConfig(limit=21, device="cpu")).index)


class LeftHalf(nn.Module):
    """logit k = k * mean of the image's left half: only the left half carries evidence."""

    def forward(self, x):
        m = x[..., : x.shape[-1] // 2].mean((1, 2, 3))
        return m[:, None] * torch.arange(7.0)


def test_a_model_held_in_memory_is_explained_with_no_run_folder():
    n, s = 14, 16
    images = torch.zeros(n, 1, s, s, dtype=torch.uint8)
    images[..., : s // 2] = 200  # bright left half
    data = FaceDataset("mem", SEVEN, images, torch.arange(n) % 7, torch.full((n,), 2), [f"m{i}" for i in range(n)],
                       landmarks=None)  # fmt: skip
    run = Run.of(LeftHalf(), Preprocess(s, 1, (0.5,), (0.5,)), SEVEN, device="cpu")
    subject = load_subject(run, SubjectConfig(landmarks="template", device="cpu"), data=data)
    assert subject.preds.eq(6).all()  # the bright half makes the last class win
    att = explain(subject, "occlusion", ExplainConfig(fills=("mean",), **QUIET), "mean")
    assert att.regions.shape == (n, len(FaceRegion)) and att.measure == "probability_drop"
    with pytest.raises(ConfigError, match="needs a CAM layer"):
        explain(subject, "gradcam", ExplainConfig(**QUIET))


def test_settings_are_checked_when_they_are_made():
    with pytest.raises(ConfigError, match="not a map method"):
        ExplainConfig(methods=("occlusion",))
    with pytest.raises(ConfigError, match="unknown reference 'zeros'"):
        ExplainConfig(fills=("zeros",))
    with pytest.raises(ConfigError, match="target must be"):
        ExplainConfig(target="both")
    with pytest.raises(ConfigError, match="split must be"):
        SubjectConfig(split="validation")
