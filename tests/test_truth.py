"""The whole analysis against known ground truth: a small CNN trained here on synthetic faces is
explained, and every method is scored against the regions the faces' emotions were drawn in."""

import pytest
import torch

from facexai.config import override, recipe
from facexai.data import load_dataset
from facexai.explain.analysis import AnalysisConfig, load_subject, occlusion, saliency
from facexai.explain.importance import recovered
from facexai.report.report import method_scores, truth_rows
from facexai.training import fit


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """small_cnn on 4,200 synthetic 48x48 faces, 15 epochs: about 90% test accuracy in under a minute."""
    torch.set_num_threads(1)
    cfg = override(
        recipe("synthetic"), model="small_cnn", epochs=15, batch_size=32, lr=0.01, **{"data.synthetic_n": 4200}
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEXAI_CACHE", str(tmp_path_factory.mktemp("cache")))
        data = load_dataset(cfg.data)
        run = fit(cfg, out=tmp_path_factory.mktemp("runs"), data=data, progress=False)
    return run, data


def test_occlusion_and_a_map_method_recover_the_evidence_regions(trained):
    run, data = trained
    assert run.metrics["accuracy"] > 0.8
    cfg = AnalysisConfig(
        methods=("gradcam", "hirescam"), fills=("blur",), limit=210, n_boot=100, sanity_n=0, progress=False
    )
    subject = load_subject(run.path, cfg, data=data)
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
