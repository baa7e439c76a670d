"""How much pixel-identical train/test twins flatter a run's test accuracy.

    python experiments/twin_leak.py --data-root ../shared/data/fer2013 \
        --out results/fer2013-seed-a/duplicates RUN [RUN ...]

FER2013, and so FER+, holds groups of pixel-identical faces, and some copies land in train and
some in test: under the official split, and more or less under any re-split. For each run this
finds the test faces of its own split that have a twin in train (`facexai.data.base.train_twins`)
and scores the run's model on the test faces with and without one.

Writes `accuracy.csv` (run, data set, split, subset, faces, accuracy; subset `all` recomputes the
run's `metrics.json` accuracy from its checkpoint) and `provenance.json`. Exact pixel equality only:
near-duplicates are not found, so the leak is at least this.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from facexai.config import from_dict
from facexai.data import load_dataset
from facexai.data.base import SPLITS, FaceDataset, train_twins
from facexai.errors import FacexaiError, RunNotFoundError
from facexai.io.files import write_csv, write_json
from facexai.provenance import git_commit, now, provenance
from facexai.runs import open_run, resolve_device, run_data


def leak_rows(run: Path, data: FaceDataset, twins: torch.Tensor, device: str) -> list[dict]:
    """Rows `all`, `twin_in_train`, `no_twin` of one run scored on the test faces of `data`.

    `twins` is `train_twins(data)`, computed once per data set by the caller (it hashes every image).
    `twin_with_same_label` counts twinned test faces whose first train twin carries the same label.
    """
    test = data.split == SPLITS.index("test")
    twin = twins[test]  # (n_test,) index into data of a train twin, or -1
    has_twin = twin >= 0
    same = int((has_twin & (data.labels[twin] == data.labels[test])).sum())  # labels[-1] is masked out
    opened = open_run(run, device)
    run_data(opened, data)  # the model's classes are the data's
    cfg = opened.config
    logits = opened.predict(data.images[test])
    right = logits.argmax(1) == data.labels[test]  # (n_test,)
    rows = []
    for subset, m in (("all", torch.ones_like(has_twin)), ("twin_in_train", has_twin), ("no_twin", ~has_twin)):
        rows.append(
            {
                "run": run.name,
                "dataset": cfg.data.dataset,
                "split": cfg.data.split,
                "classes": len(data.classes),
                "subset": subset,
                "faces": int(m.sum()),
                "twin_with_same_label": same if subset == "twin_in_train" else "",
                "accuracy": float(right[m].float().mean()) if m.any() else float("nan"),
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    p.add_argument("--data-root", required=True, help="the runs' data set folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    started, commit = now(), git_commit()
    try:
        device = resolve_device(a.device)
        for r in a.runs:
            if not (r / "config.json").is_file() or not (r / "checkpoint.pt").is_file():
                raise RunNotFoundError(f"{r} is not a finished run folder (expected config.json and checkpoint.pt)")
        rows, loaded = [], {}
        for run in a.runs:
            cfg = from_dict(json.loads((run / "config.json").read_text()))
            data_cfg = dataclasses.replace(cfg.data, root=a.data_root)
            if data_cfg not in loaded:
                data = load_dataset(data_cfg)
                loaded[data_cfg] = data, train_twins(data)
            rows += leak_rows(run, *loaded[data_cfg], str(device))
            print(*(f"{r['subset']} {r['faces']}: {r['accuracy']:.4f}" for r in rows[-3:]), sep="  ", flush=True)
    except FacexaiError as e:
        raise SystemExit(f"error: {e}") from None
    # both files only once every run has been scored: no accuracy.csv without its provenance
    prov = provenance({"runs": [str(r) for r in a.runs]}, device, started, commit)
    write_csv(a.out / "accuracy.csv", rows)
    write_json(a.out / "provenance.json", prov)


if __name__ == "__main__":
    main()
