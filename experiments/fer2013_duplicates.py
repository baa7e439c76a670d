"""How much exact duplicates between train and test flatter FER2013 test accuracy.

    python experiments/fer2013_duplicates.py --data-root ../shared/data/fer2013 \
        --out results/fer2013-seed-a/duplicates RUN [RUN ...]

FER2013 holds groups of pixel-identical faces. Seed A's split pools all images and re-splits
them, so a test face can have its twin in train. This counts, for both splits (seed-a, from the
runs' config, and official, from the file names), how many test faces have an identical face in
train, then scores each run's model on its split's test faces with and without such a twin.

Writes `counts.csv` (split, faces, twinned in train, of those with the same label),
`accuracy.csv` (run, subset, faces, accuracy) and `provenance.json`. Exact byte equality only:
near-duplicates (re-encoded, cropped) are not found, so this is a lower bound on the leak.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from facexai.config import from_dict
from facexai.data import load_dataset
from facexai.data.augment import Preprocess
from facexai.data.base import SPLITS
from facexai.provenance import git_commit, now, provenance
from facexai.report.tables import write_csv, write_json
from facexai.training import open_run, predict


def digests(images: torch.Tensor) -> list[str]:
    """One hex digest per (C, H, W) uint8 image; equal digests mean equal pixels."""
    return [hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in images]


def twinned(keys: list[str], labels: torch.Tensor, is_train: torch.Tensor, is_test: torch.Tensor):
    """(N,) bool masks: a test face with a pixel-identical train face, and one whose twin also has its label."""
    train_labels: dict[str, set[int]] = {}
    for k, y, t in zip(keys, labels.tolist(), is_train.tolist(), strict=True):
        if t:
            train_labels.setdefault(k, set()).add(y)
    rows = zip(keys, labels.tolist(), is_test.tolist(), strict=True)
    pairs = [(t and k in train_labels, t and y in train_labels.get(k, ())) for k, y, t in rows]
    return torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="finished FER2013 run folders (either split)")
    p.add_argument("--data-root", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    started, commit = now(), git_commit()

    for r in a.runs:
        if not (r / "config.json").is_file() or not (r / "checkpoint.pt").is_file():
            raise SystemExit(f"error: {r} is not a finished run folder (expected config.json and checkpoint.pt)")
    cfgs = [from_dict(json.loads((r / "config.json").read_text())) for r in a.runs]
    seeds = {c.data.split_seed for c in cfgs if c.data.split == "seed-a"}
    if {c.data.dataset for c in cfgs} != {"fer2013"} or len(seeds) > 1:
        raise SystemExit(f"error: runs must all be FER2013, seed-a ones on one split_seed (got {sorted(seeds)})")
    # one load holds both splits: seed-a from the config, official from the file names
    data = load_dataset(
        dataclasses.replace(cfgs[0].data, root=a.data_root, split="seed-a", split_seed=min(seeds, default=0))
    )
    keys = digests(data.images)
    usage = [Path(i).name.split("_")[0] for i in data.ids]  # Training | PublicTest | PrivateTest
    views = {
        "seed-a": (data.split == SPLITS.index("train"), data.split == SPLITS.index("test")),
        "official": (torch.tensor([u == "Training" for u in usage]), torch.tensor([u == "PrivateTest" for u in usage])),
    }
    counts, twins = [], {}
    for name, (is_train, is_test) in views.items():
        any_twin, same = twinned(keys, data.labels, is_train, is_test)
        twins[name] = any_twin[is_test]  # (n_test,) over that split's test faces, in data order
        counts.append(
            {
                "split": name,
                "test_faces": int(is_test.sum()),
                "twin_in_train": int(any_twin.sum()),
                "twin_with_same_label": int(same.sum()),
                "share_twinned": float(any_twin.sum() / is_test.sum()),
            }
        )

    rows = []
    for run, cfg in zip(a.runs, cfgs, strict=True):
        test = views[cfg.data.split][1]
        twin = twins[cfg.data.split]
        _, engine, model, meta, _ = open_run(run, a.device, data=data)
        logits = predict(engine.model(model), data.images[test], Preprocess.from_dict(meta["preprocess"]), engine)
        right = logits.argmax(1) == data.labels[test]
        for subset, m in (("all", torch.ones_like(twin)), ("twin_in_train", twin), ("no_twin", ~twin)):
            rows.append(
                {
                    "run": run.name,
                    "split": cfg.data.split,
                    "lr": cfg.lr,
                    "restore_best": cfg.restore_best,
                    "subset": subset,
                    "faces": int(m.sum()),
                    "accuracy": float(right[m].float().mean()),
                }
            )
    write_csv(a.out / "counts.csv", counts)
    write_csv(a.out / "accuracy.csv", rows)
    write_json(a.out / "provenance.json", provenance({"runs": [str(r) for r in a.runs]}, a.device, started, commit))
    for r in counts:
        print(r)
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
