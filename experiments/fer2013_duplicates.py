"""How much exact duplicates between train and test flatter FER2013 test accuracy.

    python experiments/fer2013_duplicates.py --data-root ../shared/data/fer2013 \
        --out results/fer2013-seed-a/duplicates RUN [RUN ...]

FER2013 holds groups of pixel-identical faces. Seed A's split pools all images and re-splits
them, so a test face can have its twin in train. This counts, for both splits (seed-a, from the
runs' config, and official, from the file names), how many test faces have an identical face in
train, then scores each run's model on its split's test faces with and without such a twin.

Writes `counts.csv` (split, test faces, those with a train twin, those whose first train twin has
the same label), `accuracy.csv` (run, subset, faces, accuracy) and `provenance.json`. Exact pixel
equality only (`facexai.data.base.train_twins`): near-duplicates are not found, so this is a lower
bound on the leak.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from facexai.config import from_dict
from facexai.data import load_dataset
from facexai.data.augment import Preprocess
from facexai.data.base import SPLITS, train_twins
from facexai.provenance import git_commit, now, provenance
from facexai.report.tables import write_csv, write_json
from facexai.training import open_run, predict


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
    usage = [Path(i).name.split("_")[0] for i in data.ids]  # Training | PublicTest | PrivateTest
    official = torch.tensor([("Training", "PublicTest", "PrivateTest").index(u) for u in usage])
    views = {"seed-a": data, "official": dataclasses.replace(data, split=official)}
    counts, twins = [], {}
    for name, view in views.items():
        test = view.split == SPLITS.index("test")
        twin = train_twins(view)[test]  # (n_test,) index of a train twin or -1, in data order
        twins[name] = twin >= 0
        counts.append(
            {
                "split": name,
                "test_faces": int(test.sum()),
                "twin_in_train": int((twin >= 0).sum()),
                "twin_with_same_label": int(((twin >= 0) & (view.labels[twin] == view.labels[test])).sum()),
                "share_twinned": float((twin >= 0).float().mean()),
            }
        )

    rows = []
    for run, cfg in zip(a.runs, cfgs, strict=True):
        test = views[cfg.data.split].split == SPLITS.index("test")
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
