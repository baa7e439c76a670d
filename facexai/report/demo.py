"""The built-in main job after training: explain the demo model's test faces and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facexai.explain.analysis import ExplainConfig, SubjectConfig, load_subject
from facexai.provenance import git_commit, now
from facexai.report.findings import write_occlusion, write_saliency
from facexai.report.report import write_report


def analyse(run: str | Path, limit: int = 105, progress: bool = True) -> tuple[Path, list[dict[str, Any]]]:
    """Saliency (every map method, a 2-image sanity check), occlusion (mean, blur and noise fills) and the
    report over the first `limit` test faces, into <run>/analysis/. Returns report.md and the sanity rows.

    About a minute on 2 cores, so that `make demo` stays short; the commands default to more.
    """
    folder = Path(run) / "analysis"
    started, commit = now(), git_commit()
    cfg = ExplainConfig(fills=("mean", "blur", "noise"), sanity_n=2, progress=progress)
    subject = load_subject(run, SubjectConfig(limit=limit))
    _, sanity = write_saliency(folder, subject, cfg, started, commit)
    write_occlusion(folder, subject, cfg, now(), commit)
    return write_report(folder), sanity
