"""`facexai explain PHOTO_OR_DIR`: every face in a user's photos found, aligned, classified and explained.

Per face: the prediction and every class's probability, region effects (the drop in the predicted class's
probability when each region, drawn from that face's own landmarks, is blurred: occlusion), and a map;
faces.csv holds one row per face and face_<n>.png shows the photo with the box and landmarks, the
aligned face, the regions coloured by effect and the map. Whole or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from facexai.data.augment import prepare
from facexai.data.imagefolder import SUFFIXES
from facexai.data.images import decode_one
from facexai.errors import DataNotFoundError, EmptySplitError
from facexai.explain.base import Settings
from facexai.explain.methods import attribute
from facexai.faces.detect import Face, faces_in
from facexai.faces.regions import region_masks
from facexai.facs import FaceRegion
from facexai.io import figures
from facexai.io.files import staged, write_csv, write_json
from facexai.io.progress import progress_bar
from facexai.provenance import provenance
from facexai.runs import Run


def photo_files(paths: Sequence[str | Path]) -> list[Path]:
    """The image files named, and those inside the folders named (sorted), each checked to exist."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.suffix.lower() in SUFFIXES and f.is_file())
            if not inside:
                raise EmptySplitError(f"{p}: no images ({', '.join(SUFFIXES)}) in this folder")
            files += inside
        elif p.is_file():
            files.append(p)
        else:
            raise DataNotFoundError(f"photo not found: {p}")
    return files


def explain_face(run: Run, face: Face, method: str, map_method: str) -> dict[str, Any]:
    """Prediction, probabilities (K,), region effects (R,) and a map (S, S) of one aligned face."""
    x = run.engine.input(prepare(face.image[None].to(run.engine.device), run.pre))  # (1, C, S, S)
    with torch.no_grad():
        probs = torch.softmax(run.model(x).float(), 1)[0].cpu()
    target = probs.argmax()[None]
    masks = region_masks(face.landmarks[None], (run.pre.size, run.pre.size))  # (1, R, S, S): its own landmarks
    effects = attribute(method, run, x, target, masks, Settings(reference="blur")).regions[0]
    heat = attribute(map_method, run, x, target, masks, Settings(reference="blur")).maps
    return {"probs": probs, "pred": int(target), "effects": effects, "map": heat[0] if heat is not None else None,
            "masks": masks[0]}  # fmt: skip


def explain_photos(
    paths: Sequence[str | Path],
    run: Run,
    out: str | Path,
    started: str,
    commit: str | None,
    threshold: float = 0.5,
    detect: bool = True,
    method: str = "occlusion",
    map_method: str = "ig_blur",  # the scorecard trusts IG with a blur baseline; the CAM family reads the centre
    progress: bool = True,
    say=print,
) -> tuple[Path, list[Path]]:
    """faces.csv and face_<n>.png for every face in the photos, into `out`; returns faces.csv and the photos
    in which no face was found (listed and skipped; none found anywhere is an error)."""
    files = photo_files(paths)
    rows, skipped, results = [], [], []
    with progress_bar(progress) as bar:
        task = bar.add_task("photos", total=len(files))
        for file in files:
            found = faces_in(file, run.pre.size, threshold, detect)
            if not found:
                skipped.append(file)
                if len(files) > 1:  # one photo without a face is the error below
                    say(f"no face found in {file} (score threshold {threshold}); skipped")
            for k, face in enumerate(found):
                results.append((face, explain_face(run, face, method, map_method)))
                rows.append(_row(file, k, face, results[-1][1], run))
            bar.update(task, advance=1)
    if not results:
        where = files[0] if len(files) == 1 else f"any of {len(files)} photos"
        raise EmptySplitError(f"no face found in {where} (score threshold {threshold}); try --threshold or --no-detect")
    with staged(out) as stage:
        write_csv(stage / "faces.csv", rows)
        for n, (face, res) in enumerate(results):
            title = f"{face.file.name}, face {n}: {run.classes[res['pred']]} ({float(res['probs'][res['pred']]):.2f})"
            photo = decode_one(face.file, 3).permute(1, 2, 0).numpy()
            figures.face_panel(photo, face, res["masks"], res["effects"], res["map"], [r.value for r in FaceRegion],
                               stage / f"face_{n}.png", title, f"{method} (blur)", map_method)  # fmt: skip
        write_json(stage / "provenance.json", provenance(
            {"photos": [str(p) for p in paths], "threshold": threshold, "detect": detect, "method": method,
             "map_method": map_method}, run.engine.device, started, commit, run=run.name,
            faces=len(results), skipped=[str(p) for p in skipped]))  # fmt: skip
    return Path(out) / "faces.csv", skipped


def _row(file: Path, k: int, face: Face, res: dict[str, Any], run: Run) -> dict[str, Any]:
    row: dict[str, Any] = {"file": str(file), "face": k, "box": " ".join(map(str, face.box)),
                           "score": round(face.score, 3), "prediction": str(run.classes[res["pred"]])}  # fmt: skip
    row |= {f"p_{c}": float(p) for c, p in zip(run.classes, res["probs"], strict=True)}
    row |= {f"effect_{r.value}": float(e) for r, e in zip(FaceRegion, res["effects"], strict=True)}
    return row
