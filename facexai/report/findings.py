"""Write an analysis's tidy tables and provenance into one folder, whole or not at all."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from facexai.io.files import write_csv, write_json
from facexai.provenance import provenance

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
    extra: dict[str, Sequence[dict[str, Any]]] | None = None,
    figures: Sequence[Path] = (),
) -> list[Path]:
    """<out>/<name>.csv (tidy findings), <name>_per_image.csv (if given), extra tables, evidence.json (where the
    data set knows its evidence regions), and `analyses.<name>` in provenance.json. extra: {file name: rows}."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{name}.csv"]
    write_csv(written[0], rows, FINDING_COLUMNS)
    tables = {f"{name}_per_image.csv": per_image, **(extra or {})}
    for file, table in tables.items():
        if table:
            written.append(out / file)
            write_csv(written[-1], table)
        else:  # an earlier analysis's table must not pass for this one's
            (out / file).unlink(missing_ok=True)
    if "evidence" in subject.data.meta:
        written.append(out / "evidence.json")
        write_json(written[-1], subject.data.meta["evidence"])
    written += figures
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


def attribution_grids(out: Path, subject: Any, maps: dict[str, torch.Tensor]) -> list[Path]:
    """saliency_<method>.png per method: the mean map of each true emotion over that emotion's mean face.

    maps: {method: (N, S, S)}; each image's map is scaled to its own maximum before averaging, so
    every face counts the same.
    """
    from facexai.explain.analysis import mean_by_emotion
    from facexai.io.figures import attribution_grid

    k = len(subject.data.classes)
    faces, n = mean_by_emotion(subject.data.images.float(), subject.labels, k)  # (K, C, H, W), (K,)
    keep = n > 0
    titles = [f"{c} (n={int(m)})" for c, m, ok in zip(subject.data.classes, n, keep, strict=True) if ok]
    written = []
    for method, m in maps.items():
        peak = m.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
        mean_maps, _ = mean_by_emotion(m / peak, subject.labels, k)  # (K, S, S)
        path = out / f"saliency_{method}.png"
        written.append(attribution_grid(faces[keep], mean_maps[keep], titles, path, f"{method}: mean map per emotion"))
    return written


def write_saliency(
    folder: Path, subject: Any, cfg: Any, started: str, commit: str | None
) -> tuple[list[Path], list[dict[str, Any]]]:
    """Every method in cfg over the subject: saliency.csv, the sanity check (sanity.csv), IG's per-image delta,
    the attribution grids and provenance, into `folder`. Returns the files written and the sanity rows."""
    from facexai.explain.analysis import saliency, sanity

    rows, tensors = saliency(subject, cfg)
    sanity_rows = [row for m in cfg.methods for row in sanity(subject, m, cfg)]
    pictures = attribution_grids(folder, subject, {m: tensors[f"{m}/maps"] for m in cfg.methods})
    per_image = []
    if "ig/delta" in tensors:
        per_image = [
            {"id": i, "ig_delta": float(d)} for i, d in zip(subject.data.ids, tensors["ig/delta"], strict=True)
        ]
    extra = {"sanity.csv": sanity_rows}
    paths = write_findings(folder, "saliency", rows, cfg, subject, started, commit, per_image, extra, pictures)
    return paths, sanity_rows


def write_occlusion(folder: Path, subject: Any, cfg: Any, started: str, commit: str | None) -> list[Path]:
    """Every region and fill in cfg occluded over the subject: occlusion.csv and provenance, into `folder`."""
    from facexai.explain.analysis import occlusion

    rows, _ = occlusion(subject, cfg)
    return write_findings(folder, "occlusion", rows, cfg, subject, started, commit)
