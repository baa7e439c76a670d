"""The whole analysis against known ground truth: a small CNN trained on synthetic faces is explained,
and every method is scored against the regions the faces' emotions were drawn in.

The model is committed (tests/fixtures/synthetic-small: small_cnn, 15 epochs on 4,200 synthetic 48x48
faces, 85% test accuracy; tests/fixtures/regression/make.py trains it), so the test spends its time on
the analysis rather than on training, which tests/test_training.py covers."""

from pathlib import Path

import pytest
import torch

from facexai.data import load_dataset
from facexai.explain import analysis
from facexai.explain.analysis import ExplainConfig, SubjectConfig, load_subject, occlusion, saliency
from facexai.explain.importance import recovered
from facexai.report.report import method_scores, truth_rows
from facexai.runs import open_run, predict


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(the committed synthetic run, its 4,200-face data set)."""
    torch.set_num_threads(1)
    run = open_run(Path(__file__).parent / "fixtures" / "synthetic-small", "cpu")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEXAI_CACHE", str(tmp_path_factory.mktemp("cache")))
        data = load_dataset(run.config.data)
    return run, data


def test_occlusion_and_a_map_method_recover_the_evidence_regions(trained):
    run, data = trained
    assert run.metrics["accuracy"] > 0.8
    cfg = ExplainConfig(methods=("gradcam", "hirescam"), fills=("blur",), n_boot=100, sanity_n=0, progress=False)
    subject = load_subject(run.path, SubjectConfig(limit=210), data=data)
    sal, _ = saliency(subject, cfg)
    occ, _ = occlusion(subject, cfg)
    truth = truth_rows(method_scores(sal, occ), data.meta["evidence"], sal)
    by = {m: [r for r in truth if r["method"] == m] for m in ("gradcam", "hirescam", "occlusion/blur")}
    assert all(len(rows) == 7 for rows in by.values())
    # top-ranked region is one of the emotion's evidence regions
    assert recovered(by["occlusion/blur"]) >= 6
    assert max(recovered(by["gradcam"]), recovered(by["hirescam"])) >= 6
    # stricter, since the mouth is evidence for every emotion: evidence regions outscore the others
    auc = {m: sum(r["evidence_auc"] for r in rows) / len(rows) for m, rows in by.items()}
    assert auc["occlusion/blur"] > 0.7
    assert max(auc["gradcam"], auc["hirescam"]) > 0.6


def test_bf16_analysis_finds_what_fp32_finds(trained):
    """bf16 autocast (opt-in, for speed) moves each per-emotion mean by a small part of its 95%
    interval and changes no emotion's top region."""
    run, data = trained
    kw = dict(methods=("gradcam", "ig"), fills=("blur",), n_boot=100, sanity_n=0, progress=False)
    found, engines = {}, []

    def fp32_only(model, images, pre, engine):
        engines.append(engine)
        return predict(model, images, pre, engine)

    for bf16 in (False, True):
        cfg = ExplainConfig(bf16=bf16, **kw)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(analysis, "predict", fp32_only)
            subject = load_subject(run.path, SubjectConfig(limit=210), data=data)
        sal, _ = saliency(subject, cfg)
        occ, _ = occlusion(subject, cfg)
        found[bf16] = (
            subject.preds,
            {
                (r["emotion"], r["region"], r["method"], r["measure"]): r
                for r in sal + occ
                if r["group"] == "true" and r["measure"] in ("relevance", "probability_drop")
            },
        )
    (p32, f32), (p16, f16) = found[False], found[True]
    assert [e.bf16 for e in engines] == [False, False]  # the explained classes are fp32 predictions either way
    assert torch.equal(p32, p16)
    assert f32.keys() == f16.keys()
    # measured here: at most 4% of the interval (relevance) and 7% (probability drop)
    shift = {
        k: abs(f32[k]["estimate"] - f16[k]["estimate"]) / max(r["ci_high"] - r["ci_low"], 1e-9) for k, r in f32.items()
    }
    assert 0 < max(shift.values()) < 0.2, max(shift, key=shift.get)  # > 0: bf16 did run

    def top(found):
        best = {}
        for (emotion, region, method, _), r in found.items():
            if r["estimate"] > best.get((emotion, method), ("", -1e9))[1]:
                best[(emotion, method)] = (region, r["estimate"])
        return {k: region for k, (region, _) in best.items()}

    assert len(top(f32)) == 3 * 7 and top(f32) == top(f16)


def test_occlusion_accuracy_drop_is_against_its_own_pass_s_intact_prediction(trained):
    """Under --bf16 the occlusion pass may predict an intact face differently from the fp32 model:
    accuracy lost by a region compares that pass with itself, not with subject.preds."""
    run, data = trained
    cfg = ExplainConfig(fills=("blur",), n_boot=10, sanity_n=0, progress=False)
    subject = load_subject(run.path, SubjectConfig(limit=70), data=data)

    def accuracy_drop(rows):
        return {
            (r["emotion"], r["region"]): r["estimate"]
            for r in rows
            if r["group"] == "true" and r["measure"] == "accuracy_drop"
        }

    before = accuracy_drop(occlusion(subject, cfg)[0])
    subject.preds = (subject.labels + 1) % len(data.classes)  # every intact prediction wrong
    assert accuracy_drop(occlusion(subject, cfg)[0]) == before
