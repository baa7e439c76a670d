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


def test_faces_stream_through_in_chunks_with_the_answer_of_one_pass(synthetic_subject, monkeypatch):
    import facexai.explain.analysis as A

    cfg = ExplainConfig(methods=("gradcam", "ig"), ig_steps=4, **QUIET)
    whole = saliency(synthetic_subject, cfg), occlusion(synthetic_subject, cfg)
    subject = load_subject(synthetic_subject.run, SubjectConfig(limit=21, device="cpu"))
    assert subject.index.dtype == torch.uint8  # a byte per pixel of region ids, not eight
    monkeypatch.setattr(A, "CHUNK", 8)  # 21 faces: chunks of 8, 8 and 5
    chunked = saliency(subject, cfg), occlusion(subject, cfg)
    assert "inputs" not in vars(subject)  # the whole split's inputs were never made, only each chunk's
    for one, many in zip(whole, chunked, strict=True):
        assert len(one[0]) == len(many[0])  # the same tidy rows (batches differ, so floats to rounding)
        for a, b in zip(one[0], many[0], strict=True):
            assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], abs=1e-6, nan_ok=True) for k in a)
        assert one[1].keys() == many[1].keys()
        for key, value in one[1].items():
            assert torch.allclose(value, many[1][key], atol=1e-6, equal_nan=True), key
    means, n = whole[0][1]["gradcam/mean_maps"], torch.bincount(subject.labels, minlength=7)
    assert means.shape == (7, 48, 48) and (means[n == 0] == 0).all() and (means[n > 0].amax((1, 2)) <= 1).all()
