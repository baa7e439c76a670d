"""Figures drawn from tables (history rows, metrics dicts); files only, never shown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from facexai.io.files import atomic_write  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Write a figure (format from the suffix, PNG by default), whole or not at all, and close it."""
    try:
        kind = Path(path).suffix.lstrip(".") or "png"
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format=kind, dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)


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


def histories(runs: dict[str, Sequence[dict]], path: Path, title: str = "") -> None:
    """Validation loss, validation accuracy and learning rate per epoch, one line per run."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    for label, history in runs.items():
        epoch = [int(r["epoch"]) for r in history]
        for ax, key in zip(axes, ("val_loss", "val_acc", "lr"), strict=True):
            ax.plot(epoch, [float(r[key]) for r in history], "o-", ms=2.5, label=label)
    for ax, ylabel in zip(axes, ("validation loss", "validation accuracy", "learning rate"), strict=True):
        ax.set(xlabel="epoch", ylabel=ylabel)
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
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


def _value(v) -> float:
    """A float from a row value (number or CSV string); blanks and 'nan' become NaN."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _select(rows: Sequence[dict], **match) -> list[dict]:
    """Rows whose fields equal every non-None value in `match` (compared as strings, so CSV rows work)."""
    want = {k: str(v) for k, v in match.items() if v is not None}
    return [r for r in rows if all(str(r.get(k, "")) == v for k, v in want.items())]


def _describe(**match) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in match.items() if v is not None)


def attribution_grid(faces, maps, titles: Sequence[str], path: Path, title: str = "") -> Path:
    """Mean face per emotion in grey with its mean attribution map on top, each map scaled to its own max."""
    import torch
    import torch.nn.functional as F
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    faces = torch.as_tensor(faces).detach().cpu().float()  # (G, C, H, W) in [0, 255]
    if faces.ndim == 3:
        faces = faces[:, None]
    maps = torch.as_tensor(maps).detach().cpu().float()  # (G, h, w) non-negative
    g = len(titles)
    if faces.ndim != 4 or maps.ndim != 3 or faces.shape[0] != g or maps.shape[0] != g:
        raise ValueError(
            f"expected faces (G, C, H, W), maps (G, h, w) and G titles; got faces {tuple(faces.shape)}, "
            f"maps {tuple(maps.shape)} and {g} titles"
        )
    size = tuple(faces.shape[-2:])
    maps = torch.nan_to_num(maps).clamp_min(0)
    if tuple(maps.shape[-2:]) != size:
        maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]  # (G, H, W)
    peak = maps.flatten(1).amax(1).view(-1, 1, 1)  # (G, 1, 1)
    maps = torch.where(peak > 0, maps / peak.clamp_min(1e-12), torch.zeros_like(maps)).clamp(0, 1)
    grey = (faces.mean(1) / 255).clamp(0, 1)  # (G, H, W)
    cmap, norm = "inferno", Normalize(0, 1)
    fig, axes = plt.subplots(1, g, figsize=(2.0 * g + 1.2, 2.6), squeeze=False, layout="constrained")
    for ax, face, m, name in zip(axes[0], grey.numpy(), maps.numpy(), titles, strict=True):
        ax.imshow(face, cmap="gray", vmin=0, vmax=1)
        ax.imshow(m, cmap=cmap, norm=norm, alpha=0.5)
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.colorbar(ScalarMappable(norm, cmap), ax=axes[0].tolist(), shrink=0.8, label="relative attribution")
    fig.suptitle(title)
    return save_figure(fig, path)


def region_heatmap(
    rows: Sequence[dict],
    path: Path,
    measure: str,
    title: str = "",
    group: str = "true",
    method: str | None = None,
    fill: str | None = None,
    centre: float | None = None,
) -> Path:
    """Emotion x region table of estimates on a diverging scale centred on `centre` (1.0 for relevance, else 0).

    Non-negative ratios (relevance) map 0..centre and centre..max to the two halves of the colour scale.
    """
    from matplotlib.colors import TwoSlopeNorm

    match = {"group": group, "measure": measure, "method": method, "fill": fill}
    picked = _select(rows, **match)
    if not picked:
        raise ValueError(f"no rows match {_describe(**match)}")
    emotions = list(dict.fromkeys(r["emotion"] for r in picked))
    regions = list(dict.fromkeys(r["region"] for r in picked))
    value = np.full((len(emotions), len(regions)), np.nan)  # (E, R)
    seen = set()
    for r in picked:
        cell = (emotions.index(r["emotion"]), regions.index(r["region"]))
        if cell in seen:
            raise ValueError(
                f"several rows per emotion and region for {_describe(**match)}; choose a method and a fill"
            )
        seen.add(cell)
        value[cell] = _value(r["estimate"])
    if centre is None:
        centre = 1.0 if measure == "relevance" else 0.0
    finite = value[np.isfinite(value)]
    half = float(np.abs(finite - centre).max()) if finite.size else 0.0
    half = half if half > 0 else 1.0
    if centre > 0 and finite.size and finite.min() >= 0:
        # a ratio (relevance): 0 .. centre and centre .. max get the two halves of the scale
        norm = TwoSlopeNorm(vcenter=centre, vmin=0.0, vmax=max(float(finite.max()), 2 * centre))
    else:
        norm = TwoSlopeNorm(vcenter=centre, vmin=centre - half, vmax=centre + half)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="lightgrey")
    e, k = value.shape
    fig, ax = plt.subplots(figsize=(0.9 * k + 2.5, 0.5 * e + 1.5), layout="constrained")
    im = ax.imshow(np.ma.masked_invalid(value), cmap=cmap, norm=norm, aspect="auto")
    for i in range(e):
        for j in range(k):
            v = value[i, j]
            strong = np.isfinite(v) and abs(norm(v) - 0.5) > 0.3
            text = f"{v:.2f}" if np.isfinite(v) else "n/a"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if strong else "black")
    ax.set_xticks(range(k), regions, rotation=45, ha="right")
    ax.set_yticks(range(e), emotions)
    ax.set(xlabel="region", ylabel=f"emotion ({group})", title=title)
    fig.colorbar(im, ax=ax, label=measure.replace("_", " "))
    return save_figure(fig, path)


def occlusion_bars(
    rows: Sequence[dict],
    path: Path,
    measure: str = "accuracy_drop",
    title: str = "",
    group: str = "true",
    fill: str | None = None,
) -> Path:
    """Occlusion effect per region, one panel per emotion, with bootstrap CIs as error bars."""
    match = {"method": "occlusion", "measure": measure, "group": group, "fill": fill}
    picked = _select(rows, **match)
    if not picked:
        raise ValueError(f"no rows match {_describe(**match)}")
    fills = list(dict.fromkeys(str(r.get("fill", "")) for r in picked))
    if len(fills) > 1:
        raise ValueError(f"rows hold several fills ({', '.join(fills)}); choose one with fill=")
    emotions = list(dict.fromkeys(r["emotion"] for r in picked))
    regions = list(dict.fromkeys(r["region"] for r in picked))
    ncols = min(4, len(emotions))
    nrows = -(-len(emotions) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.0 * ncols, 2.8 * nrows), sharey=True, squeeze=False, layout="constrained"
    )
    x = np.arange(len(regions))
    for ax, emotion in zip(axes.flat, emotions, strict=False):
        est, low, high = (np.full(len(regions), np.nan) for _ in range(3))  # (R,) each
        ns = set()
        for r in picked:
            if r["emotion"] == emotion:
                j = regions.index(r["region"])
                est[j], low[j], high[j] = _value(r["estimate"]), _value(r["ci_low"]), _value(r["ci_high"])
                ns.add(_value(r.get("n")))
        ok = np.isfinite(est)
        err = np.nan_to_num(np.stack([est - low, high - est])).clip(min=0)  # (2, R)
        ax.bar(x[ok], est[ok], color="C0")
        ax.errorbar(x[ok], est[ok], yerr=err[:, ok], fmt="none", ecolor="black", capsize=2, lw=1)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(x, regions, rotation=45, ha="right", fontsize=7)
        ax.set_xlim(-0.6, len(regions) - 0.4)  # the same slots when a region has no estimate
        n = ns.pop() if len(ns) == 1 else float("nan")
        ax.set_title(f"{emotion} (n={int(n)})" if np.isfinite(n) else emotion, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(measure.replace("_", " "))
    for ax in axes.flat[len(emotions) :]:
        ax.axis("off")
    fig.suptitle(title)
    return save_figure(fig, path)


def lift_chart(rows: Sequence[dict], path: Path, label=str, title: str = "") -> Path:
    """Per method (rows of kind "method", group "all"), its lift over the best blind null with the paired 95%
    interval, one panel per (part, metric); zero is the null."""
    picked = [r for r in rows if r["kind"] == "method" and r["group"] == "all"]
    panels = list(dict.fromkeys((r["part"], r["metric"]) for r in picked if r["metric"] != "spearman"))
    methods = list(dict.fromkeys(r["method"] for r in picked))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 2.5, 0.32 * len(methods) + 1.6),
                             sharey=True, squeeze=False, layout="constrained")  # fmt: skip
    y = np.arange(len(methods))
    for ax, (part, metric) in zip(axes[0], panels, strict=True):
        cell = {r["method"]: r for r in picked if (r["part"], r["metric"]) == (part, metric)}
        est = np.array([_value(cell[m]["blind_lift"]) if m in cell else np.nan for m in methods])
        low = np.array([_value(cell[m]["blind_lift_low"]) if m in cell else np.nan for m in methods])
        high = np.array([_value(cell[m]["blind_lift_high"]) if m in cell else np.nan for m in methods])
        ok = np.isfinite(est)
        colours = np.where(low > 0, "C2", "C3")
        ax.errorbar(est[ok], y[ok], xerr=np.nan_to_num(np.stack([est - low, high - est]))[:, ok], fmt="none",
                    ecolor="grey", lw=1)  # fmt: skip
        ax.scatter(est[ok], y[ok], c=colours[ok], zorder=3, s=18)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"{part}: {metric.replace('_', ' ')}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, [label(m) for m in methods], fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def face_panel(photo, face, masks, effects, heat, regions: Sequence[str], path: Path, title: str = "",
               effect_label: str = "effect", map_label: str = "map") -> Path:  # fmt: skip
    """Four panels for one face found in a photo ((H, W, 3) uint8): the photo with the face box and its
    landmarks, the aligned face, its regions coloured by effect (diverging, 0 = none), and the map over the
    aligned face."""
    import torch
    from matplotlib.colors import TwoSlopeNorm

    aligned = face.image.permute(1, 2, 0).numpy()
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), layout="constrained")
    axes[0].imshow(photo)
    left, top, right, bottom = face.box
    axes[0].add_patch(plt.Rectangle((left, top), right - left, bottom - top, fill=False, color="lime", lw=1.5))
    axes[0].scatter(face.photo_landmarks[:, 0], face.photo_landmarks[:, 1], s=2, c="red")
    axes[0].set_title("photo", fontsize=9)
    axes[1].imshow(aligned)
    axes[1].scatter(face.landmarks[:, 0], face.landmarks[:, 1], s=3, c="red")
    axes[1].set_title("aligned face", fontsize=9)
    e = torch.as_tensor(effects).double()
    painted = np.full(masks.shape[-2:], np.nan)
    for k in range(len(regions)):
        painted[masks[k].numpy()] = float(e[k])
    half = float(np.nanmax(np.abs(painted))) if np.isfinite(painted).any() else 1.0
    axes[2].imshow(aligned.mean(-1), cmap="gray")
    im = axes[2].imshow(np.ma.masked_invalid(painted), cmap="RdBu_r", alpha=0.65,
                        norm=TwoSlopeNorm(0.0, -half or -1, half or 1))  # fmt: skip
    fig.colorbar(im, ax=axes[2], shrink=0.8, label=effect_label)
    first = regions[int(torch.nan_to_num(e, nan=-1e9).argmax())]
    axes[2].set_title(f"regions (top: {first})", fontsize=9)
    axes[3].imshow(aligned.mean(-1), cmap="gray")
    if heat is not None:
        axes[3].imshow(np.asarray(heat), cmap="inferno", alpha=0.5)
    axes[3].set_title(map_label, fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def gallery(faces, maps, regions, titles: Sequence[str], path: Path, title: str = "", columns: int = 4) -> Path:
    """A grid of faces ((N, C, H, W) uint8) in grey, each with its map ((N, h, w), scaled to its own peak;
    None: no map) and the outlines of its face regions ((N, H', W') int region ids), one title per face."""
    import torch
    import torch.nn.functional as F

    faces = torch.as_tensor(faces).float()
    n = len(faces)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows + 0.4), squeeze=False,
                             layout="constrained")  # fmt: skip
    size = tuple(faces.shape[-2:])
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow((faces[i].mean(0) / 255).numpy(), cmap="gray", vmin=0, vmax=1)
        if maps is not None:
            m = torch.as_tensor(maps[i]).float()[None, None]
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)[0, 0]
            ax.imshow((m / m.max().clamp(min=1e-12)).numpy(), cmap="inferno", alpha=0.45, vmin=0, vmax=1)
        ids = torch.as_tensor(regions[i]).float()[None, None]
        ids = F.interpolate(ids, size=size, mode="nearest")[0, 0].numpy()
        ax.contour(ids, levels=np.arange(0.5, ids.max() + 1), colors="cyan", linewidths=0.5)
        ax.set_title(titles[i], fontsize=7)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
