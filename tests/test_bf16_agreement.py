"""experiments/bf16_agreement.py: how far a bf16 analysis moved an fp32 one's region scores."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from facexai.errors import FacexaiError
from facexai.io.files import write_csv

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bf16_agreement.py"
spec = importlib.util.spec_from_file_location("bf16_agreement", SCRIPT)
bf16_agreement = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bf16_agreement)

REGIONS = ("brows", "eyes", "mouth")


def findings(folder: Path, bf16: bool, mouth_shift: float = 0.0, swap_anger: bool = False, n_images=9) -> Path:
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
    entry = {"run": "runs/r", "data": "ferplus", "n_images": n_images, "config": {"split": "test", "bf16": bf16}}
    (folder / "provenance.json").write_text(json.dumps({"analyses": {"saliency": entry, "occlusion": entry}}))
    return folder


def test_a_small_shift_is_measured_against_the_interval_and_keeps_the_ranking(tmp_path):
    rows = bf16_agreement.agreement(findings(tmp_path / "a", False), findings(tmp_path / "b", True, mouth_shift=0.05))
    assert [(r["method"], r["measure"]) for r in rows] == [("gradcam", "relevance"), ("occlusion", "probability_drop")]
    for r in rows:
        assert r["max_abs_shift"] == pytest.approx(0.05) and r["max_shift_in_ci"] == pytest.approx(0.25)
        assert (r["same_top_region"], r["emotions"], r["min_spearman"]) == (2, 2, 1.0)


def test_a_reversed_ranking_is_reported(tmp_path):
    rows = bf16_agreement.agreement(findings(tmp_path / "a", False), findings(tmp_path / "b", True, swap_anger=True))
    assert all(r["same_top_region"] == 1 and r["min_spearman"] == pytest.approx(-1.0) for r in rows)


def test_analyses_of_other_images_or_of_the_same_precision_are_refused(tmp_path):
    fp32 = findings(tmp_path / "a", False)
    with pytest.raises(FacexaiError, match="n_images differs: 9 in .*, 8 in"):
        bf16_agreement.agreement(fp32, findings(tmp_path / "b", True, n_images=8))
    with pytest.raises(FacexaiError, match="expected fp32 in .* and --bf16 in"):
        bf16_agreement.agreement(fp32, findings(tmp_path / "c", False))


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_bad_input_is_one_line_exit_1_and_nothing_written(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_script(findings(tmp_path / "a", False), tmp_path / "empty", "--out", tmp_path / "out")
    assert result.returncode == 1 and not (tmp_path / "out").exists()
    assert result.stderr.strip() == f"error: {tmp_path / 'empty'}: no saliency.csv, occlusion.csv, provenance.json; " \
        "expected a saliency and occlude output folder"  # fmt: skip
    result = run_script(tmp_path / "a", findings(tmp_path / "b", True), "--out", tmp_path / "a")
    assert result.returncode == 1 and "is an input folder" in result.stderr and len(result.stderr.splitlines()) == 1
    (tmp_path / "b" / "saliency.csv").write_text("group,emotion\ntrue,anger\n")  # no method column
    result = run_script(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "out")
    assert result.returncode == 1 and "malformed" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()
