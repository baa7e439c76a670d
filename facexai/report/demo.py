"""The built-in main job after training: explain the demo model's test faces, write the report, and score the
methods against the truth by intervention (the scorecard)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from facexai.explain.analysis import ExplainConfig, SubjectConfig, load_subject, rows_per_pass
from facexai.explain.scorecard import ScorecardConfig
from facexai.provenance import git_commit, now
from facexai.report.findings import write_occlusion, write_saliency
from facexai.report.report import write_report
from facexai.report.scorecard import write_scorecard

# the demo's scorecard: one method of each family, a small sample of faces (a minute or two on 2 cores)
DEMO_SCORECARD = ScorecardConfig(
    methods=("gradcam", "hirescam", "ig_blur", "occlusion"), faithfulness_n=70, road_n=14, ig_steps=16
)


def analyse(run: str | Path, limit: int = 105, progress: bool = True) -> tuple[Path, list[dict[str, Any]], Path]:
    """Saliency (every map method, a 2-image sanity check), occlusion (mean, blur and noise fills) and the
    report over the first `limit` test faces, into <run>/analysis/; the scorecard of four methods into
    <run>/scorecard/. Returns report.md, the sanity rows and scorecard.md.

    Kept short so that `make demo` stays short; the commands default to more.
    """
    folder = Path(run) / "analysis"
    started, commit = now(), git_commit()
    subject = load_subject(run, SubjectConfig(limit=limit))
    rows = rows_per_pass(subject.run.engine.device)
    cfg = ExplainConfig(fills=("mean", "blur", "noise"), sanity_n=2, batch_size=rows, progress=progress)
    _, sanity = write_saliency(folder, subject, cfg, started, commit)
    write_occlusion(folder, subject, cfg, now(), commit)
    report = write_report(folder)
    scorecard_cfg = dataclasses.replace(DEMO_SCORECARD, progress=progress)
    card = write_scorecard(Path(run) / "scorecard", subject, scorecard_cfg, now(), commit)
    return report, sanity, card
