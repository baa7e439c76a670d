"""Figures drawn from tables (history rows, metrics dicts); files only, never shown."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Write a figure to a temp file beside `path` and rename it: never a half-written PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
        return path
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)


def curves(history: Sequence[dict], path: Path, title: str = "") -> None:
    """Loss, accuracy and learning rate per epoch (train and validation)."""
    epoch = [int(r["epoch"]) for r in history]
    col = lambda k: [float(r[k]) for r in history]  # noqa: E731
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        ax.plot(epoch, col(f"train_{key}"), "o-", ms=3, label="train")
        ax.plot(epoch, col(f"val_{key}"), "o-", ms=3, label="validation")
        ax.set(xlabel="epoch", ylabel=label)
        ax.legend()
        ax.grid(alpha=0.3)
    axes[2].plot(epoch, col("lr"), "o-", ms=3, color="C2")
    axes[2].set(xlabel="epoch", ylabel="learning rate", yscale="log")
    axes[2].grid(alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, path)


def confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str = "") -> None:
    """Row-normalised confusion matrix (true x predicted), with counts in each cell."""
    cm = np.asarray(matrix, dtype=float)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 * k + 2, 1.0 * k + 1))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{share[i, j]:.2f}\n({int(cm[i, j])})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if share[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    save_figure(fig, path)
