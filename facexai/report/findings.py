"""Write an analysis's tidy tables and provenance into one folder, whole or not at all."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facexai.provenance import provenance
from facexai.report.tables import write_csv, write_json

FINDING_COLUMNS = ["group", "emotion", "region", "method", "fill", "measure", "estimate", "ci_low", "ci_high", "n"]


def newest_run(root: str | Path = "runs", dataset: str | None = None) -> Path | None:
    """The most recently finished run folder under `root` (any depth), optionally of one data set."""
    runs = [p.parent for p in Path(root).glob("**/metrics.json") if not p.parent.name.startswith(".")]
    if dataset is not None:
        runs = [r for r in runs if r.name.startswith(f"{dataset}-")]
    return max(runs, key=lambda r: (r / "metrics.json").stat().st_mtime, default=None)


def write_findings(
    out: Path,
    name: str,
    rows: Sequence[dict[str, Any]],
    cfg: Any,
    subject: Any,
    started: str,
    commit: str | None,
    per_image: Sequence[dict[str, Any]] = (),
) -> list[Path]:
    """<out>/<name>.csv (tidy findings), <name>_per_image.csv (if given), and `analyses.<name>` in provenance.json."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{name}.csv"]
    write_csv(written[0], rows, FINDING_COLUMNS)
    if per_image:
        written.append(out / f"{name}_per_image.csv")
        write_csv(written[-1], per_image)
    config = {k: (list(map(str, v)) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
    entry = provenance(
        config,
        subject.engine.device,
        started,
        commit,
        run=str(subject.run),
        data=subject.data.name,
        n_images=len(subject.data),
        landmarks=subject.landmarks,
        outputs=[p.name for p in written],
    )
    # one provenance.json per folder: a training run's stays on top, each analysis adds its own entry
    path = out / "provenance.json"
    existing = json.loads(path.read_text()) if path.is_file() else {}
    existing.setdefault("analyses", {})[name] = entry
    write_json(path, existing)
    return written
