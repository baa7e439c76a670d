"""A claim is robust only if it holds in every run, under every reference, after FDR, against the runner-up
and against the size-matched null; the study names what failed. The null: removing random face patches of
a region's area."""

import pytest
import torch

from facexai.explain.claims import size_matched_drops
from facexai.facs import FaceRegion
from facexai.report.study import robust_claims


def claim(measure, emotion, region, estimate, rank, significant=True, on_sample="", null=""):
    return {"measure": measure, "emotion": emotion, "region": region, "estimate": estimate, "rank": rank,
            "significant": str(significant), "on_sample": on_sample, "size_null_p95": null}  # fmt: skip


def head(measure, emotion, top, runner_up, diff_low):
    return {"measure": measure, "emotion": emotion, "top": top, "runner_up": runner_up, "diff_low": diff_low}


def run(mouth_rank=1, mean_significant=True, diff_low=0.02, occlusion=0.3):
    rows, heads = [], []
    for ref in ("shapley/blur", "shapley/mean"):
        sig = mean_significant or ref != "shapley/mean"
        rows += [claim(ref, "happiness", "mouth", 0.4, mouth_rank, sig), claim(ref, "happiness", "eyes", 0.1,
                                                                             3 - mouth_rank)]  # fmt: skip
        top = "mouth" if mouth_rank == 1 else "eyes"
        heads.append(head(ref, "happiness", top, "eyes" if top == "mouth" else "mouth", diff_low))
    rows += [claim("occlusion/blur", "happiness", "mouth", 0.3, 1, on_sample=occlusion, null=0.1),
             claim("occlusion/blur", "happiness", "eyes", 0.05, 2, on_sample=0.05, null=0.1)]  # fmt: skip
    return rows, heads


def robust(*runs):
    per_run = {f"s{i}": r[0] for i, r in enumerate(runs)}
    per_heads = {f"s{i}": r[1] for i, r in enumerate(runs)}
    return {(c["claim"], c["region"]): c for c in robust_claims(per_run, per_heads)}


def test_a_claim_that_holds_everywhere_is_robust_and_one_that_fails_anywhere_is_not():
    out = robust(run(), run())
    assert out[("top", "mouth")]["robust"] and out[("driver", "mouth")]["robust"]
    assert not out[("driver", "eyes")]["robust"]  # below the size-matched null
    assert "occlusion within the size-matched null" in out[("driver", "eyes")]["why_not"]


def test_each_failure_is_named():
    split = robust(run(), run(mouth_rank=2))[("top", "mouth")]["why_not"]  # the first run's top is the candidate
    assert "s1 shapley/blur: eyes ranks first" in split and "s1 shapley/mean: eyes ranks first" in split
    why = robust(run(), run(mean_significant=False))[("top", "mouth")]["why_not"]
    assert why == "s1 shapley/mean: not significant after FDR"
    why = robust(run(diff_low=-0.01), run())[("top", "mouth")]["why_not"]
    assert "s0 shapley/blur: not clearly ahead of eyes (paired interval)" in why
    small = robust(run(occlusion=0.05), run())[("top", "mouth")]["why_not"]
    assert small == "s0: occlusion within the size-matched null"


class _Reads(torch.nn.Module):
    """Two classes; class 0's logit is 10 x the mean input over `where` (a (S, S) bool mask)."""

    def __init__(self, where):
        super().__init__()
        self.where = where

    def forward(self, x):  # (B, 1, S, S) -> (B, 2)
        m = x[:, 0][:, self.where].mean(1)
        return torch.stack([10 * m, torch.zeros_like(m)], 1)


def _known_region(size=32):
    """One face filling the image: region 0 a 3x3 block in a corner (9 pixels), region 1 the rest."""
    corner = torch.zeros(size, size, dtype=torch.bool)
    corner[1:4, 1:4] = True
    masks = torch.stack([corner, ~corner]).unsqueeze(0)  # (1, 2, S, S)
    x, fills = torch.ones(1, 1, size, size), torch.zeros(1, 1, size, size)
    return masks, x, fills, corner


def _region_drop(model, x, fills, region):
    p = lambda v: torch.softmax(model(v), 1)[0, 0].item()  # noqa: E731
    return p(x) - p(torch.where(region, fills, x))


def test_a_region_that_the_model_reads_beats_random_patches_of_its_area():
    masks, x, fills, corner = _known_region()
    model = _Reads(corner)
    null = size_matched_drops(model, x, fills, torch.tensor([0]), masks, k=40, seed=1)  # (1, 2, 40)
    own = _region_drop(model, x, fills, corner)  # sigmoid(10) - sigmoid(0)
    assert own == pytest.approx(torch.sigmoid(torch.tensor(10.0)).item() - 0.5, abs=1e-6)
    assert torch.nanquantile(null[0, 0], 0.95) < own / 2  # most 9-pixel patches miss the corner


def test_a_region_that_matters_only_by_its_size_is_matched_by_its_null():
    masks, x, fills, corner = _known_region()
    model = _Reads(torch.ones_like(corner))  # reads every face pixel alike
    null = size_matched_drops(model, x, fills, torch.tensor([0]), masks, k=10, seed=1)
    own = _region_drop(model, x, fills, corner)
    assert own > 0 and null[0, 0] == pytest.approx(torch.full((10,), own, dtype=torch.float64), abs=1e-6)


def test_the_study_streams_faces_through_in_chunks_with_the_answer_of_one_pass(synthetic_subject, monkeypatch):
    import facexai.explain.analysis as A
    from facexai.explain.claims import StudyConfig, effects

    cfg = StudyConfig(others=("mean",), per_emotion=2, patches=2, map_method="gradcam", progress=False)
    whole = effects(synthetic_subject, cfg)  # 21 faces, one chunk
    subject = A.load_subject(synthetic_subject.run, A.SubjectConfig(limit=21, device="cpu"))
    monkeypatch.setattr(A, "CHUNK", 8)  # chunks of 8, 8 and 5
    chunked = effects(subject, cfg)
    assert "inputs" not in vars(subject)  # the whole split's inputs were never made, only each chunk's
    assert list(whole["effects"]) == list(chunked["effects"]) == [
        "shapley/blur", "shapley_area/blur", "shapley/mean", "shapley_area/mean", "occlusion/blur", "map/gradcam"]
    for key, value in whole["effects"].items():
        assert value.shape == (21, len(FaceRegion)), key
        torch.testing.assert_close(value, chunked["effects"][key], atol=1e-6, rtol=1e-5, equal_nan=True)
    torch.testing.assert_close(whole["patches"], chunked["patches"], equal_nan=True)
    assert whole["interactions"].keys() == chunked["interactions"].keys()
