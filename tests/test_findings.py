"""An analysis folder is written whole or not at all, and each analysis adds its own provenance entry."""

import json
from pathlib import Path

import pytest

from facexai.explain.analysis import ExplainConfig
from facexai.io.files import staged
from facexai.report.findings import write_findings, write_occlusion

RUN = Path(__file__).parent / "fixtures" / "synthetic-small"


def test_each_analysis_adds_its_provenance_entry_beside_the_others(synthetic_subject, tmp_path):
    subject = synthetic_subject
    cfg = ExplainConfig(fills=("mean",), n_boot=10, sanity_n=0, progress=False)
    write_occlusion(tmp_path, subject, cfg, "2026-01-01T00:00:00+00:00", "abc")
    write_findings(tmp_path, "other", [], cfg, subject, "2026-01-01T00:00:00+00:00", "abc")
    analyses = json.loads((tmp_path / "provenance.json").read_text())["analyses"]
    assert set(analyses) == {"occlusion", "other"}
    occ = analyses["occlusion"]
    assert occ["config"]["split"] == "test" and occ["config"]["fills"] == ["mean"]  # subject and method settings
    assert occ["run"] == str(RUN) and occ["n_images"] == 21 and occ["outputs"] == ["occlusion.csv", "evidence.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evidence.json", "occlusion.csv", "other.csv",
                                                          "provenance.json"]  # fmt: skip


def test_a_failure_part_way_leaves_the_previous_analysis_whole(synthetic_subject, tmp_path):
    subject = synthetic_subject
    cfg = ExplainConfig(n_boot=10, sanity_n=0, progress=False)
    write_findings(tmp_path, "saliency", [], cfg, subject, "t0", "abc", {"sanity.csv": [{"method": "ig"}]})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_figure(stage):
        (stage / "half.png").write_bytes(b"\x89PNG")
        raise RuntimeError("the figure failed")

    with pytest.raises(RuntimeError):
        write_findings(tmp_path, "saliency", [{"group": "true"}], cfg, subject, "t1", "def", {"sanity.csv": []},
                       draw=broken_figure)  # fmt: skip
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no half.png, no staging folder


def test_an_empty_table_removes_an_earlier_analysis_s_file_of_that_name(tmp_path):
    (tmp_path / "sanity.csv").write_text("old\n")
    with staged(tmp_path, remove=["sanity.csv"]) as stage:
        (stage / "report.md").write_text("new\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
