"""Finished training runs side by side: one tidy row per run, and mean +- std over runs that differ only in seed."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facexai.config import from_dict, to_dict
from facexai.errors import ConfigError, RunNotFoundError
from facexai.io import figures
from facexai.io.files import read_csv, staged, write_csv, write_json
from facexai.provenance import git_commit, now, provenance

# Fields that say how a run was executed, not what was trained: runs differing only in these (and the seed)
# are repeats of one recipe.
EXECUTION_FIELDS = ("seed", "threads", "device")

RUN_COLUMNS = (
    "label",
    "run",
    "dataset",
    "model",
    "seed",
    "test_accuracy",
    "test_loss",
    "mean_class_recall",
    "val_accuracy",
    "epoch",
    "best_epoch",
    "epochs_run",
    "last_epoch_test_accuracy",
    "val_loss_reversals",
    "train_seconds",
    "recipe",
)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunNotFoundError(f"{path.parent}: not a finished run folder ({path.name} not found)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunNotFoundError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None


def recipe_key(config: dict[str, Any]) -> str:
    """The config without execution fields and data location, as canonical JSON: equal keys = one recipe.

    Settings a run's config.json predates are filled with their defaults (what the run did), so a
    run written before a setting existed still groups with later runs of its recipe.
    """
    try:
        config = to_dict(from_dict(config))
    except (ConfigError, TypeError):
        pass  # not a config this version can read: compare it as it stands
    cfg = {k: v for k, v in config.items() if k not in EXECUTION_FIELDS}
    cfg["data"] = {k: v for k, v in cfg.get("data", {}).items() if k != "root"}
    return json.dumps(cfg, sort_keys=True)


def reversals(values: Sequence[float]) -> int:
    """How often a curve turns (rise after fall or fall after rise): a plain count of how jagged it is."""
    steps = [b - a for a, b in zip(values, values[1:], strict=False) if b != a]
    return sum(1 for a, b in zip(steps, steps[1:], strict=False) if (a > 0) != (b > 0))


def read_run(path: str | Path, label: str | None = None) -> dict[str, Any]:
    """One finished run folder as a flat row (RUN_COLUMNS) plus its `history` (rows of history.csv)."""
    path = Path(path)
    metrics, config = _read_json(path / "metrics.json"), _read_json(path / "config.json")
    prov = _read_json(path / "provenance.json")
    history = read_csv(path / "history.csv") if (path / "history.csv").is_file() else []
    last = metrics.get("last_epoch", {})
    for name, have, need in (
        (
            "metrics.json",
            metrics,
            ("accuracy", "loss", "mean_class_recall", "val_accuracy", "epoch", "best_epoch", "epochs_run"),
        ),
        ("config.json", config, ("data", "model", "seed", "restore_best")),
    ):
        missing = [k for k in need if k not in have]
        if missing:
            raise RunNotFoundError(f"{path / name}: missing {', '.join(missing)} (not written by facexai train?)")
    return {
        "label": label or path.name,
        "run": str(path),
        "dataset": config["data"]["dataset"],
        "model": config["model"],
        "seed": config["seed"],
        "test_accuracy": metrics["accuracy"],
        "test_loss": metrics["loss"],
        "mean_class_recall": metrics["mean_class_recall"],
        "val_accuracy": metrics["val_accuracy"],
        "epoch": metrics["epoch"],
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "last_epoch_test_accuracy": last.get("accuracy", metrics["accuracy"] if not config["restore_best"] else ""),
        "val_loss_reversals": reversals([float(r["val_loss"]) for r in history]),
        "train_seconds": prov.get("train_seconds", ""),
        "recipe": recipe_key(config),
        "history": history,
        "confusions": confusions(metrics),
    }


def confusions(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The test confusion matrix as tidy rows: true class, predicted class, count, share of the true class."""
    classes, matrix = metrics.get("classes", []), metrics.get("confusion_matrix", [])
    rows = []
    for true, counts in zip(classes, matrix, strict=False):
        total = sum(counts)
        for pred, n in zip(classes, counts, strict=True):
            rows.append({"true": true, "predicted": pred, "count": n, "share": n / total if total else 0.0})
    return rows


def seed_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, sample std, min and max of test and validation accuracy over each group of same-recipe runs."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["recipe"], []).append(row)
    out = []
    for members in groups.values():
        test = [r["test_accuracy"] for r in members]
        val = [r["val_accuracy"] for r in members]
        std = lambda xs: statistics.stdev(xs) if len(xs) > 1 else float("nan")  # noqa: E731
        out.append(
            {
                "runs": " ".join(r["label"] for r in members),
                "n": len(members),
                "seeds": " ".join(str(r["seed"]) for r in members),
                "test_accuracy_mean": statistics.fmean(test),
                "test_accuracy_std": std(test),
                "test_accuracy_min": min(test),
                "test_accuracy_max": max(test),
                "val_accuracy_mean": statistics.fmean(val),
                "val_accuracy_std": std(val),
            }
        )
    return out


def write_comparison(
    runs: Sequence[str | Path], out: str | Path, labels: Sequence[str] | None = None, title: str = ""
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """runs.csv (a row per run), seeds.csv (mean +- std per recipe), confusions.csv, histories.png and
    provenance.json in `out`, whole or not at all. Returns the run rows and the seed summary."""
    started, commit = now(), git_commit()
    if labels and len(labels) != len(runs):
        raise ConfigError(f"--label given {len(labels)} times for {len(runs)} runs; give one per run or none")
    rows = [read_run(r, lb) for r, lb in zip(runs, labels or [None] * len(runs), strict=True)]
    if len({r["label"] for r in rows}) != len(rows):
        raise ConfigError("run labels must differ; pass --label once per run")
    summary = seed_summary(rows)
    with staged(out) as stage:
        write_csv(stage / "runs.csv", [{k: r[k] for k in RUN_COLUMNS} for r in rows], RUN_COLUMNS)
        write_csv(stage / "seeds.csv", summary)
        write_csv(stage / "confusions.csv", [{"label": r["label"], **c} for r in rows for c in r["confusions"]])
        figures.histories({r["label"]: r["history"] for r in rows}, stage / "histories.png", title)
        write_json(stage / "provenance.json", provenance({"runs": [str(r) for r in runs]}, "cpu", started, commit))
    return rows, summary
