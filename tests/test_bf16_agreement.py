"""experiments/bf16_agreement.py: how far a bf16 analysis moved an fp32 one's region scores."""

import importlib.util
from pathlib import Path

import pytest

from facexai.errors import FacexaiError
from facexai.report.tables import write_csv

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bf16_agreement.py"
spec = importlib.util.spec_from_file_location("bf16_agreement", SCRIPT)
bf16_agreement = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bf16_agreement)

REGIONS = ("brows", "eyes", "mouth")


def findings(folder: Path, mouth_shift: float = 0.0, swap_anger: bool = False) -> Path:
    """Two emotions x three regions, Grad-CAM relevance and blur-occlusion drop; intervals 0.2 wide."""
    sal, occ = [], []
    for emotion, scores in (("happiness", [1.0, 2.0, 3.0]), ("anger", [3.0, 2.0, 1.0])):
        if swap_anger and emotion == "anger":
            scores = [1.0, 2.0, 3.0]
        for region, s in zip(REGIONS, scores, strict=True):
            s += mouth_shift if region == "mouth" else 0.0
            base = {"group": "true", "emotion": emotion, "region": region, "ci_low": s - 0.1, "ci_high": s + 0.1}
            sal.append(base | {"method": "gradcam", "fill": "", "measure": "relevance", "estimate": s, "n": 9})
            occ.append(base | {"method": "occlusion", "fill": "blur", "measure": "probability_drop", "estimate": s})
    folder.mkdir()
    write_csv(folder / "saliency.csv", sal)
    write_csv(folder / "occlusion.csv", occ)
    return folder


def test_a_small_shift_is_measured_against_the_interval_and_keeps_the_ranking(tmp_path):
    rows = bf16_agreement.agreement(findings(tmp_path / "a"), findings(tmp_path / "b", mouth_shift=0.05))
    assert [r["method"] for r in rows] == ["gradcam", "occlusion/blur"]
    for r in rows:
        assert r["max_abs_shift"] == pytest.approx(0.05) and r["max_shift_in_ci"] == pytest.approx(0.25)
        assert (r["same_top_region"], r["emotions"], r["min_spearman"]) == (2, 2, 1.0)


def test_a_reversed_ranking_is_reported(tmp_path):
    rows = bf16_agreement.agreement(findings(tmp_path / "a"), findings(tmp_path / "b", swap_anger=True))
    assert all(r["same_top_region"] == 1 and r["min_spearman"] == pytest.approx(-1.0) for r in rows)


def test_a_folder_without_findings_is_an_error_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacexaiError, match="empty: no saliency.csv or occlusion.csv"):
        bf16_agreement.agreement(findings(tmp_path / "a"), tmp_path / "empty")
