"""report.md and its derived tables, from hand-made findings whose answer is known."""

import json
import math

import pytest

from facexai.errors import DataNotFoundError
from facexai.io.files import read_csv, write_csv
from facexai.report.findings import FINDING_COLUMNS
from facexai.report.report import agreement_rows, headline, method_scores, write_report

EMOTIONS = ["happiness", "disgust"]
REGIONS = ["brows", "eyes", "nose", "mouth"]


def rows(method, measure, scores, fill=""):
    """Tidy rows (group true) from {emotion: [score per region]}; CI = score -+ 0.1, n = 10."""
    return [
        {"group": "true", "emotion": e, "region": r, "method": method, "fill": fill, "measure": measure,
         "estimate": v, "ci_low": v - 0.1, "ci_high": v + 0.1, "n": 10}
        for e, vs in scores.items() for r, v in zip(REGIONS, vs, strict=True)
    ]  # fmt: skip


# happiness: mouth first everywhere; disgust: occlusion says nose, Grad-CAM says mouth
OCCLUSION = {"happiness": [0.0, 0.1, 0.2, 0.8], "disgust": [0.0, 0.1, 0.6, 0.3]}
GRADCAM = {"happiness": [0.2, 0.5, 1.0, 3.0], "disgust": [0.1, 0.5, 1.0, 3.0]}
IG_REVERSED = {e: [-v for v in vs] for e, vs in GRADCAM.items()}


def findings(folder, evidence=True):
    occ = rows("occlusion", "probability_drop", OCCLUSION, "blur")
    occ += rows("occlusion", "accuracy_drop", OCCLUSION, "blur")
    sal = rows("gradcam", "relevance", GRADCAM) + rows("ig", "relevance", IG_REVERSED)
    write_csv(folder / "occlusion.csv", occ, FINDING_COLUMNS)
    write_csv(folder / "saliency.csv", sal, FINDING_COLUMNS)
    if evidence:
        ev = {"happiness": {"regions": ["mouth"]}, "disgust": {"regions": ["nose", "mouth"]}}
        (folder / "evidence.json").write_text(json.dumps(ev))
    return read_csv(folder / "saliency.csv"), read_csv(folder / "occlusion.csv")


def test_agreement_is_one_for_the_same_ranking_and_minus_one_for_the_reverse(tmp_path):
    sal, occ = findings(tmp_path)
    agree = {
        (r["emotion"], r["method_a"], r["method_b"]): r["spearman"] for r in agreement_rows(method_scores(sal, occ))
    }
    assert agree[("happiness", "gradcam", "ig")] == pytest.approx(-1.0)
    assert agree[("happiness", "gradcam", "occlusion/blur")] == pytest.approx(1.0)
    assert agree[("disgust", "gradcam", "occlusion/blur")] == pytest.approx(0.8)  # nose and mouth swap


def test_headline_names_the_costliest_region_with_its_interval_and_who_agrees(tmp_path):
    sal, occ = findings(tmp_path)
    scores = method_scores(sal, occ)
    happy = headline("happiness", scores, occ, "blur")
    assert "occluding the **mouth** (blur fill)" in happy
    assert "0.80 [0.70, 0.90]" in happy and "n=10" in happy
    assert "Grad-CAM ranks the mouth first too" in happy and "integrated gradients: brows" in happy
    disgust = headline("disgust", scores, occ, "blur")
    assert "**nose**" in disgust and "Grad-CAM: mouth" in disgust


def test_headline_names_the_class_whose_probability_it_reports():
    occ = rows("occlusion", "probability_drop", OCCLUSION, "blur")
    scores = method_scores([], occ)
    # target pred (the default): each face's predicted class, which for misclassified faces is another class
    assert "the predicted class's probability drops by 0.80" in headline("happiness", scores, occ, "blur")
    assert "faces labelled happiness" in headline("happiness", scores, occ, "blur")
    assert "the happiness probability drops by 0.80" in headline("happiness", scores, occ, "blur", target="true")


def test_one_region_headline_says_what_was_measured_not_a_ranking():
    occ = [r for r in rows("occlusion", "probability_drop", {"happiness": [0, 0, 0, -0.3]}, "blur")
           if r["region"] == "mouth"]  # fmt: skip
    text = headline("happiness", method_scores([], occ), occ, "blur", target="true")
    assert "costs most" not in text
    assert "occluding the **mouth** (blur fill): the happiness probability rises by 0.30 [0.20, 0.40]" in text


def test_report_scores_methods_against_known_evidence(tmp_path):
    findings(tmp_path)
    text = write_report(tmp_path).read_text()
    assert "## Against the known evidence" in text and "## Headline per emotion" in text
    truth = {(r["method"], r["emotion"]): r for r in read_csv(tmp_path / "truth.csv")}
    assert truth[("occlusion/blur", "happiness")]["top_is_evidence"] == "True"
    assert truth[("ig", "happiness")]["top_is_evidence"] == "False"
    assert float(truth[("ig", "happiness")]["evidence_auc"]) == 0.0
    assert float(truth[("occlusion/blur", "disgust")]["evidence_auc"]) == 1.0
    ranking = read_csv(tmp_path / "ranking.csv")
    disgust_occ = [r["region"] for r in ranking if r["method"] == "occlusion/blur" and r["emotion"] == "disgust"]
    assert disgust_occ == ["nose", "mouth", "eyes", "brows"]  # ranks 1..4 in order
    assert "| disgust | mouth > nose > eyes | brows > eyes > nose | nose > mouth > eyes |" in text
    for png in ("relevance_gradcam.png", "occlusion_blur_heat.png", "occlusion_blur_bars.png"):
        assert (tmp_path / png).stat().st_size > 0 and f"]({png})" in text
    assert json.loads((tmp_path / "provenance.json").read_text())["analyses"]["report"]["config"] == {"fill": "blur"}


def test_without_known_evidence_the_report_compares_with_facs_prototypes(tmp_path):
    findings(tmp_path, evidence=False)
    text = write_report(tmp_path).read_text()
    assert "## Compared with the FACS prototypes" in text and not (tmp_path / "truth.csv").exists()
    facs = read_csv(tmp_path / "facs.csv")
    assert {r["emotion"] for r in facs} == set(EMOTIONS)
    assert not math.isnan(float(facs[0]["evidence_auc"]))


def test_a_folder_without_findings_is_an_error_naming_it(tmp_path):
    with pytest.raises(DataNotFoundError, match=f"{tmp_path}: no saliency.csv or occlusion.csv"):
        write_report(tmp_path)
    assert list(tmp_path.iterdir()) == []
    findings(tmp_path)
    with pytest.raises(DataNotFoundError, match="no rows with fill 'noise'"):
        write_report(tmp_path, fill="noise")


def test_methods_in_any_order_and_an_emotion_without_images(tmp_path):
    nan = float("nan")
    occ = rows("occlusion", "probability_drop", OCCLUSION | {"fear": [nan] * 4}, "blur")
    sal = rows("ig", "relevance", IG_REVERSED) + rows("gradcam", "relevance", GRADCAM)  # ig first
    write_csv(tmp_path / "occlusion.csv", occ, FINDING_COLUMNS)
    write_csv(tmp_path / "saliency.csv", sal, FINDING_COLUMNS)
    ev = {e: {"regions": ["mouth"]} for e in ("happiness", "disgust", "fear")}
    (tmp_path / "evidence.json").write_text(json.dumps(ev))
    text = write_report(tmp_path).read_text()
    # the CAM-vs-IG row is found although agreement.csv stores the pair as (ig, gradcam)
    assert "| Grad-CAM vs integrated gradients | -1.00 | -1.00 | n/a |" in text
    assert "| fear | n/a | n/a | n/a |" in text  # no images: no ranking invented
    fear = [r for r in read_csv(tmp_path / "ranking.csv") if r["emotion"] == "fear"]
    assert {r["rank"] for r in fear} == {""}
    assert "| occlusion (blur fill) | 1/2 |" in text  # fear is not counted as missed


def test_sanity_section_shows_absolute_correlations_and_flags(tmp_path):
    findings(tmp_path)
    sanity = [
        {"method": m, "step": k, "layer": f"l{k}", "spearman": -rho, "spearman_abs": rho, "ssim": "", "flagged": flag}
        for m, rho, flag in (("gradcam", 0.1, False), ("ig", 0.8, True))
        for k in (1, 2)
    ]
    write_csv(tmp_path / "sanity.csv", sanity)
    text = write_report(tmp_path).read_text()
    assert "| Grad-CAM | 0.10 | 0.10 | 2 | passes |" in text
    assert "| integrated gradients | 0.80 | 0.80 | 2 | **flagged** |" in text


def test_a_rerun_leaves_no_stale_tables(tmp_path):
    findings(tmp_path)
    write_report(tmp_path)
    assert (tmp_path / "truth.csv").is_file()
    (tmp_path / "evidence.json").unlink()  # the folder now holds a real data set's findings
    write_report(tmp_path)
    assert not (tmp_path / "truth.csv").exists() and (tmp_path / "facs.csv").is_file()
