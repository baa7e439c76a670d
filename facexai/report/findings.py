"""Write an analysis's tidy tables, figures and provenance into one folder, whole or not at all.

Everything an analysis writes is computed and drawn into a staging folder first (`io.files.staged`);
only then do its files replace the folder's, so a failure part way leaves the previous analysis whole.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from facexai import parallel
from facexai.explain.analysis import (
    ExplainConfig,
    Subject,
    gallery_faces,
    mean_by_emotion,
    occlusion,
    saliency,
    sanity,
)
from facexai.io import figures
from facexai.io.figures import attribution_grid
from facexai.io.files import staged, write_csv, write_json
from facexai.provenance import provenance

FINDING_COLUMNS = ["group", "emotion", "region", "method", "fill", "measure", "estimate", "ci_low", "ci_high", "n"]


def _config(subject: Subject, cfg: ExplainConfig) -> dict[str, Any]:
    """The subject's and the method's settings as one JSON-able dict (tuples as lists of names)."""
    both = {**dataclasses.asdict(subject.config), **dataclasses.asdict(cfg)}
    return {k: (list(map(str, v)) if isinstance(v, tuple) else v) for k, v in both.items()}


def write_findings(
    out: Path,
    name: str,
    rows: Sequence[dict[str, Any]],
    cfg: ExplainConfig,
    subject: Subject,
    started: str,
    commit: str | None,
    tables: dict[str, Sequence[dict[str, Any]]] | None = None,
    draw=None,
) -> list[Path]:
    """<out>/<name>.csv (tidy findings), further tables ({file name: rows}; an empty one removes an earlier
    analysis's file of that name), evidence.json (where the data set knows its evidence regions), the
    figures `draw(stage) -> [paths]` draws, and `analyses.<name>` in provenance.json."""
    tables = tables or {}
    if not parallel.world().main:  # under torchrun rank 0 writes; every process computed the same rows
        return []
    empty = [file for file, table in tables.items() if not table]  # an earlier analysis's table must not pass
    with staged(out, remove=empty) as stage:
        names = [f"{name}.csv"]
        write_csv(stage / names[0], rows, FINDING_COLUMNS)
        for file, table in tables.items():
            if table:
                write_csv(stage / file, table)
                names.append(file)
        if "evidence" in subject.data.meta:
            write_json(stage / "evidence.json", subject.data.meta["evidence"])
            names.append("evidence.json")
        names += [p.name for p in (draw(stage) if draw else [])]
        entry = provenance(
            _config(subject, cfg),
            subject.run.engine.device,
            started,
            commit,
            run=subject.run.name,
            data=subject.data.name,
            n_images=len(subject.data),
            landmarks=subject.landmarks,
            outputs=names,
        )
        # one provenance.json per folder: a training run's stays on top, each analysis adds its own entry
        path = out / "provenance.json"
        existing = json.loads(path.read_text()) if path.is_file() else {}
        existing.setdefault("analyses", {})[name] = entry
        write_json(stage / "provenance.json", existing)
    return [out / n for n in names]


def attribution_grids(out: Path, subject: Subject, mean_maps: dict[str, torch.Tensor]) -> list[Path]:
    """saliency_<method>.png per method: the mean map of each true emotion over that emotion's mean face.

    mean_maps: {method: (K, S, S)} as `saliency` returns them (each face's map scaled to its own maximum
    before averaging, so every face counts the same).
    """
    k = len(subject.data.classes)
    faces, n = mean_by_emotion(subject.data.images.float(), subject.labels, k)  # (K, C, H, W), (K,)
    keep = n > 0
    titles = [f"{c} (n={int(m)})" for c, m, ok in zip(subject.data.classes, n, keep, strict=True) if ok]
    written = []
    for method, m in mean_maps.items():
        path = out / f"saliency_{method}.png"
        written.append(attribution_grid(faces[keep], m[keep], titles, path, f"{method}: mean map per emotion"))
    return written


def galleries(out: Path, subject: Subject, maps: torch.Tensor | None, method: str, k: int = 4) -> list[Path]:
    """gallery_<emotion>.png per true emotion: its k most confident faces (highest probability of the emotion)
    and its k most confused (lowest), with `method`'s map and the face regions' outlines.

    maps: (G, S, S) the maps of the `gallery_faces(subject, k)` in their order (`saliency`'s gallery_maps),
    or None for faces and outlines only."""
    written = []
    classes = subject.data.classes
    start = 0
    for e, picked in gallery_faces(subject, k).items():
        emotion = classes[e]
        titles = [f"{'confident' if j < k else 'confused'}: p={float(subject.probs[i, e]):.2f}, "
                  f"pred {classes[int(subject.preds[i])]}" for j, i in enumerate(picked)]  # fmt: skip
        path = out / f"gallery_{emotion}.png"
        heading = f"{emotion}: most confident and most confused faces ({method} map)"
        chosen = None if maps is None else maps[start : start + len(picked)]
        start += len(picked)
        written.append(figures.gallery(subject.data.images[picked], chosen, subject.index[picked], titles, path,
                                       heading))  # fmt: skip
    return written


def write_saliency(
    folder: Path, subject: Subject, cfg: ExplainConfig, started: str, commit: str | None
) -> tuple[list[Path], list[dict[str, Any]]]:
    """Every method in cfg over the subject: saliency.csv, the sanity check (sanity.csv), IG's per-image delta,
    the attribution grids and provenance, into `folder`. Returns the files written and the sanity rows."""
    rows, tensors = saliency(subject, cfg)
    sanity_rows = [row for m in cfg.methods for row in sanity(subject, m, cfg)]
    per_image = []
    if "ig/delta" in tensors:
        per_image = [
            {"id": i, "ig_delta": float(d)} for i, d in zip(subject.data.ids, tensors["ig/delta"], strict=True)
        ]
    tables = {"saliency_per_image.csv": per_image, "sanity.csv": sanity_rows}
    mean_maps = {m: tensors[f"{m}/mean_maps"] for m in cfg.methods}

    def draw(stage: Path) -> list[Path]:
        pictures = attribution_grids(stage, subject, mean_maps)
        if cfg.galleries and cfg.methods:
            first = cfg.methods[0]
            pictures += galleries(stage, subject, tensors[f"{first}/gallery_maps"], first)
        return pictures

    paths = write_findings(folder, "saliency", rows, cfg, subject, started, commit, tables, draw=draw)
    return paths, sanity_rows


def write_occlusion(folder: Path, subject: Subject, cfg: ExplainConfig, started: str, commit: str | None) -> list[Path]:
    """Every region and fill in cfg occluded over the subject: occlusion.csv and provenance, into `folder`."""
    rows, _ = occlusion(subject, cfg)
    return write_findings(folder, "occlusion", rows, cfg, subject, started, commit)
