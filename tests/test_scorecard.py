"""The scorecard measures the measurers: hand-built models whose true region effects are known by hand, the
tie-aware scores on rankings small enough to score by hand, and one small scorecard end to end."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from facexai.data import synthetic as syn
from facexai.data.augment import Preprocess
from facexai.emotions import SEVEN
from facexai.explain import scores as S
from facexai.explain.base import Settings
from facexai.explain.methods import attribute
from facexai.explain.truth import intervention_effects
from facexai.faces.regions import region_masks
from facexai.facs import FaceRegion
from facexai.runs import Run

SIZE = 48
PRE = Preprocess(SIZE, 1, (0.5,), (0.25,))


def box(x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
    """Pixel rows and columns of a canonical-frame box ([-1, 1]^2, y down) at the identity pose."""
    to = lambda v: int(round((v + 1) / 2 * SIZE))  # noqa: E731
    return slice(to(y0), to(y1)), slice(to(x0), to(x1))


MOUTH_BOX = box(-0.04, 0.04, 0.37, 0.41)  # between the lips
EYE_BOX = box(-0.29, -0.24, -0.19, -0.14)  # the right eye
CUE_BOX = box(-0.04, 0.04, 0.54, 0.58)  # the middle of the chin cue


class BoxReader(nn.Module):
    """logit of class 0 = sum_k w_k * mean of the model input inside box k; the other classes' logits are 0."""

    def __init__(self, boxes, weights):
        super().__init__()
        self.boxes, self.weights = boxes, weights

    def forward(self, x):
        logit = sum(w * x[:, :, r, c].mean((1, 2, 3)) for (r, c), w in zip(self.boxes, self.weights, strict=True))
        return torch.cat([logit[:, None], torch.zeros(len(x), 6)], 1)


def faces(labels, seed=0, **changes) -> syn.FaceParams:
    """Faces of one face shape (the middle of every range) at the identity pose, so the boxes above stay inside
    their features; colours, lighting, clutter and noise vary as usual."""
    p = syn.sample_params(np.asarray(labels), seed)
    pose = np.tile([1.0, 0.0, 0.0, 0.0], (len(p), 1))
    shape = np.tile(np.array(list(syn.GEOMETRY.values())).mean(1), (len(p), 1))
    return replace(p, pose=pose, geometry=shape, **changes)


def dataset(p: syn.FaceParams):
    from facexai.data.base import FaceDataset

    images = torch.from_numpy(syn.render_faces(p, SIZE, 1))
    n = len(p)
    return FaceDataset("synthetic", SEVEN, images, torch.zeros(n, dtype=torch.long), torch.full((n,), 2),
                       [f"f{i}" for i in range(n)], landmarks=torch.from_numpy(syn.landmarks(p, SIZE)),
                       extras=syn.params_to_extras(p))  # fmt: skip


def hand_probability(model: BoxReader, images: torch.Tensor) -> torch.Tensor:
    """p(class 0) computed by hand from the box means, without the model's forward or the toolkit's prepare."""
    x = (images.double() / 255 - 0.5) / 0.25
    logit = sum(w * x[:, :, r, c].mean((1, 2, 3)) for (r, c), w in zip(model.boxes, model.weights, strict=True))
    return torch.softmax(torch.cat([logit[:, None], torch.zeros(len(x), 6, dtype=torch.float64)], 1), 1)[:, 0]


def test_a_mouth_and_eye_reader_s_truth_and_occlusion_are_the_hand_answer():
    p = faces([1, 2, 3, 4, 5, 6] * 2, seed=1)  # expressive faces: their mouths and eyes move
    data = dataset(p)
    model = BoxReader([MOUTH_BOX, EYE_BOX], [2.0, -1.5])
    run = Run.of(model, PRE, SEVEN, device="cpu")
    targets = torch.zeros(len(p), dtype=torch.long)
    truth = intervention_effects(run, data, targets)  # (N, R)
    base = hand_probability(model, data.images)
    for r, region in enumerate(FaceRegion):
        by_hand = base - hand_probability(model, torch.from_numpy(syn.render_faces(p.neutral_region(region), SIZE, 1)))
        torch.testing.assert_close(truth[:, r], by_hand, atol=1e-6, rtol=1e-5)
        if region not in (FaceRegion.MOUTH, FaceRegion.EYES):
            assert (truth[:, r] == 0).all(), region  # no other region's AUs reach the boxes
    assert (truth[:, list(FaceRegion).index(FaceRegion.MOUTH)] != 0).any()
    # occlusion with the mean fill sets a region to 0 in model space: by hand, the box drops out of the sum
    masks = region_masks(data.landmarks, (SIZE, SIZE))
    x = torch.cat([(data.images.float() / 255 - 0.5) / 0.25])
    occ = attribute("occlusion", run, x, targets, masks, Settings(reference="mean")).regions
    for r, region in enumerate(FaceRegion):
        kept = [(b, w) for b, w in zip(model.boxes, model.weights, strict=True)
                if not (region == FaceRegion.MOUTH and b is MOUTH_BOX or region == FaceRegion.EYES and b is EYE_BOX)]
        logit = sum((w * x[:, :, b[0], b[1]].double().mean((1, 2, 3)) for b, w in kept), torch.zeros(len(x)))
        occluded = torch.softmax(torch.cat([logit[:, None].double(), torch.zeros(len(x), 6, dtype=torch.float64)],
                                           1), 1)[:, 0]  # fmt: skip
        torch.testing.assert_close(occ[:, r], base - occluded, atol=1e-5, rtol=1e-4)


def test_a_cue_reader_s_truth_is_the_chin_exactly_where_the_cue_is():
    labels = np.array([0, 1, 3] * 4)  # no AU26: the chin does not move
    cue = np.tile([1.0, 0.0], 6).astype(np.float32)
    p = faces(labels, seed=2, cue=cue)
    jaw = np.arange(len(syn.AU_NAMES)) == syn.AU_NAMES.index("AU26")
    p = replace(p, aus=np.where(jaw, 0, p.aus).astype(np.float32))  # not even a spurious jaw drop
    model = BoxReader([CUE_BOX], [-3.0])  # a dark patch raises class 0
    run, targets = Run.of(model, PRE, SEVEN, device="cpu"), torch.zeros(len(p), dtype=torch.long)
    truth = intervention_effects(run, dataset(p), targets)
    chin = list(FaceRegion).index(syn.CUE_REGION)
    assert (truth[cue > 0, chin] > 0.1).all() and (truth[cue == 0, chin] == 0).all()
    assert (np.delete(truth.numpy(), chin, axis=1) == 0).all()


def test_scores_are_tie_aware_and_known_by_hand():
    truth = torch.tensor([[0.5, 0.1, 0.0, 0.0], [0.3, 0.28, 0.0, 0.0], [0.2, 0.4, 0.1, 0.0]], dtype=torch.float64)
    method = torch.tensor([[9.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 0.0, 0.0]])
    hit = S.top_hit(method, truth, margin=0.05)
    assert hit[0] == 1.0 and hit[1].isnan() and hit[2] == 0.5  # a clear top; no clear top (0.02 apart); a tie of two
    uniform = torch.ones(3, 4)
    assert S.top_hit(uniform, truth)[0] == 0.25  # a uniform map has no ranking: a quarter of the credit
    gains, d = truth[0], 1 / torch.log2(torch.arange(2, 6, dtype=torch.float64))
    ideal = (gains.sort(descending=True).values * d).sum()
    assert S.ndcg(method, truth)[0] == pytest.approx(float((0.5 * d[0] + 0.1 * d[3]) / ideal))
    assert S.ndcg(uniform, truth)[0] == pytest.approx(float((0.6 * d.mean()) / ideal))  # every place equally likely
    assert S.ndcg(truth, truth).tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert S.ndcg(method, torch.zeros(3, 4)).isnan().all()  # no positive effect, nothing to rank


def test_the_best_constant_ranking_is_fitted_on_the_other_half():
    truth = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0], [0.0, 7.0]], dtype=torch.float64)
    groups = torch.tensor([0, 0, 1, 1])
    const = S.constant_ranking(truth, groups, seed=0)
    fold = torch.randperm(4, generator=torch.Generator().manual_seed(0)) % 2
    for i in range(4):
        other = (groups == groups[i]) & (fold != fold[i])
        expected = truth[other].mean(0) if other.any() else torch.zeros(2, dtype=torch.float64)
        assert torch.equal(const[i], expected)


def test_a_small_scorecard_has_every_method_null_metric_and_a_verdict(synthetic_subject, tmp_path):
    from facexai.explain.scorecard import ScorecardConfig
    from facexai.io.files import read_csv
    from facexai.report.scorecard import write_scorecard

    cfg = ScorecardConfig(methods=("gradcam", "occlusion", "shapley"), faithfulness_n=14, road_n=7, ig_steps=4,
                          n_boot=20, progress=False)  # fmt: skip
    md = write_scorecard(tmp_path, synthetic_subject, cfg, "t0", "abc").read_text()
    rows = read_csv(tmp_path / "scorecard.csv")
    names = {r["method"] for r in rows}
    assert names >= {"gradcam", "occlusion", "shapley", "uniform", "centre", "random", "constant",
                     "gradcam@random-model", "shapley@random-model"}
    assert {r["metric"] for r in rows} == {"top_hit", "ndcg", "spearman", "deletion_auc", "insertion_auc", "road",
                                           "class_sensitivity", "facs_mass", "pointing"}  # fmt: skip
    assert {r["best_blind_null"] for r in rows if r["method"] == "gradcam"} <= {"uniform", "centre", "random",
                                                                                "gradcam@random-model", ""}  # fmt: skip
    assert "## Verdict per method" in md and md.count("| Grad-CAM |") == 3 and "## Neutral faces" in md
    assert "## Further checks" in md  # verdict, constant ranking and further checks: one row each
    assert "| region Shapley values |" in md
    assert (tmp_path / "scorecard.png").read_bytes()[:4] == b"\x89PNG"
    assert len(read_csv(tmp_path / "intervention_truth.csv")) == len(synthetic_subject.data) * len(FaceRegion)


def test_the_scorecard_passes_the_devices_rows_unless_told_a_batch_size():
    from facexai.explain.scorecard import ScorecardConfig

    assert ScorecardConfig().explain_config(512).batch_size == 512  # e.g. rows_per_pass on a GPU
    assert ScorecardConfig(batch_size=8).explain_config(512).batch_size == 8
