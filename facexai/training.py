"""fit(config) -> run folder: the earlier projects' recipes on in-memory uint8 tensors.

The whole data set sits on the training device; each batch is gathered by index,
warped by one affine grid and standardised there (no DataLoader workers). A run
is written to `.<name>.partial/` with a resumable `state.pt` after every epoch
and renamed to `<name>/` when it is complete, so a run folder is never half-written.
A later multi-GPU mode would shard `epoch_order` per rank and wrap the model in DDP.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from facexai import metrics as M
from facexai.config import TrainConfig, from_dict, to_dict
from facexai.data import FaceDataset, load_dataset
from facexai.data.augment import Preprocess, channel_stats, prepare, random_affine
from facexai.data.cache import atomic_save
from facexai.errors import ClassMismatchError, ConfigError, RunNotFoundError
from facexai.models import create_model, get_spec
from facexai.provenance import command, git_commit, now, provenance
from facexai.report import figures
from facexai.report.tables import read_csv, write_csv, write_json

HISTORY_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_s"]


@dataclass
class Run:
    path: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return device


def plateau_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    """Keras' ReduceLROnPlateau, which the reproduced recipes used: lr *= lr_factor once `lr_patience`
    epochs in a row fail to improve `monitor` by more than 1e-4 (absolute).

    PyTorch's scheduler reduces only after patience + 1 such epochs (num_bad_epochs > patience), so a
    recipe's patience is passed on minus one.
    """
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min" if cfg.monitor == "val_loss" else "max",
        factor=cfg.lr_factor,
        patience=max(cfg.lr_patience - 1, 0),
        threshold=1e-4,
        threshold_mode="abs",
        min_lr=cfg.min_lr,
    )


def bf16_supported(device: torch.device, cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """bf16 autocast pays off only with hardware bf16 (CUDA Ampere+, or CPUs with AVX-512 BF16 / AMX).

    oneDNN's own check (`_is_mkldnn_bf16_supported`) is true on any AVX-512 CPU, where bf16 is
    emulated and slower than fp32; so on Linux the CPU flags decide (x86 avx512_bf16 / amx_bf16,
    Arm bf16), and oneDNN's check only where they cannot be read.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = {
            f for line in Path(cpuinfo).read_text().splitlines() if line.startswith(("flags", "Features"))
            for f in line.split(":", 1)[1].split()
        }  # fmt: skip
    except OSError:
        flags = set()
    if flags:
        return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k t_k log softmax(z)_k; targets (B, K) are distributions."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def epoch_order(n: int, epoch: int, seed: int) -> torch.Tensor:
    """The shuffled training order of one epoch, a function of (seed, epoch) alone (resumable)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


@dataclass(frozen=True)
class Engine:
    """Where and how tensors flow: device, precision, memory format."""

    device: torch.device
    bf16: bool
    channels_last: bool

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Engine:
        device = resolve_device(cfg.device)
        bf16 = bf16_supported(device) if cfg.bf16 is None else cfg.bf16
        return cls(device, bf16, True if cfg.channels_last is None else cfg.channels_last)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


@torch.no_grad()
def predict(
    model: torch.nn.Module, images: torch.Tensor, pre: Preprocess, engine: Engine, batch: int = 256
) -> torch.Tensor:
    """(N, K) float32 logits on the CPU for uint8 (N, C, H, W) images."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = engine.input(prepare(images[i : i + batch].to(engine.device, non_blocking=True), pre))
        with engine.autocast():
            out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.empty(0, 0)


def _scores(logits: torch.Tensor, data: FaceDataset) -> tuple[float, float]:
    return float(soft_cross_entropy(logits, data.targets())), float((logits.argmax(1) == data.labels).float().mean())


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def _checkpoint(state_dict: dict, cfg: TrainConfig, data: FaceDataset, pre: Preprocess, epoch: int) -> dict:
    return {
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "meta": {
            "model": cfg.model,
            "classes": [str(c) for c in data.classes],
            "preprocess": pre.to_dict(),
            "dataset": data.name,
            "data": to_dict(cfg.data),
            "epoch": epoch,
        },
    }


def fit(
    cfg: TrainConfig,
    out: str | Path = "runs",
    data: FaceDataset | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    console: Console | None = None,
    threads: int | None = None,
) -> Run:
    """Train by `cfg`, evaluate the chosen epoch on the test split, and return the finished run folder.

    `threads` overrides `cfg.threads` (also on resume, where the saved recipe is otherwise kept); each
    segment of the run records the thread count it ran with, since float sums may differ in the last bits.
    """
    console = console or Console(stderr=True)
    started, commit = now(), git_commit()
    if resume is not None:
        partial = Path(resume)
        if not (partial / "state.pt").is_file():
            raise RunNotFoundError(f"cannot resume: {partial / 'state.pt'} not found (only unfinished runs resume)")
        state = torch.load(partial / "state.pt", weights_only=True)
        cfg = from_dict(state["config"])
        final = partial.parent / partial.name.removeprefix(".").removesuffix(".partial")
    else:
        state = None
        name = data.name if data is not None else cfg.data.dataset
        final = Path(out) / f"{name}-{cfg.model}-s{cfg.seed}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        partial = final.parent / f".{final.name}.partial"
        if final.exists() or partial.exists():
            raise ConfigError(f"run folder already exists: {final}")
    if cfg.monitor not in ("val_loss", "val_acc"):
        raise ConfigError(f"monitor must be val_loss or val_acc, got {cfg.monitor!r}")
    if cfg.optimizer not in ("adam", "sgd"):
        raise ConfigError(f"optimizer must be adam or sgd, got {cfg.optimizer!r}")
    if threads or cfg.threads:
        torch.set_num_threads(threads or cfg.threads)
    torch.manual_seed(cfg.seed)
    engine = Engine.from_config(cfg)
    spec = get_spec(cfg.model)

    data = data if data is not None else load_dataset(cfg.data)
    train, val, test = (data.subset(s) for s in ("train", "val", "test"))
    if not cfg.soft_labels:
        train, val, test = (dataclasses.replace(d, votes=None) for d in (train, val, test))
    channels = cfg.in_channels or spec.in_channels
    pre = Preprocess(cfg.input_size or spec.input_size, channels, *channel_stats(train.images, channels))

    model = engine.model(create_model(cfg.model, len(data.classes), channels))
    opt_cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
    optimizer = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    mode = "min" if cfg.monitor == "val_loss" else "max"
    scheduler = plateau_scheduler(optimizer, cfg)
    history: list[dict[str, Any]] = []
    best = {"epoch": 0, "score": None, "state_dict": None}
    # each start and resume of the run: a resumed segment may run other code than the start
    segments = [{"command": command(), "git_commit": commit, "started": started, "after_epoch": 0}]
    segments[0]["threads"] = torch.get_num_threads()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, best = state["history"], state["best"]
        older = {"command": None, "git_commit": state.get("commit"), "started": state.get("started"), "after_epoch": 0}
        segments = [*state.get("segments", [older]), {**segments[0], "after_epoch": len(history)}]
        started, commit = segments[0]["started"], segments[0]["git_commit"]  # the run's, not this resume's
        console.print(f"resuming {partial} after epoch {len(history)}")
    partial.mkdir(parents=True, exist_ok=True)
    config = to_dict(cfg)
    write_json(partial / "config.json", config)

    images = train.images.to(engine.device)  # (N, C, H, W) uint8 on the device
    targets = train.targets().to(engine.device)  # (N, K)
    labels = train.labels.to(engine.device)
    n, steps = len(train), -(-len(train) // cfg.batch_size)
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    with _progress(progress) as bar:
        task = bar.add_task("epochs", total=cfg.epochs, completed=len(history), info="")
        batch_task = bar.add_task("batches", total=steps, info="")
        for epoch in range(len(history) + 1, cfg.epochs + 1):
            model.train()
            t0 = time.perf_counter()
            gen = torch.Generator(engine.device).manual_seed(cfg.seed * 100_003 + epoch)
            order = epoch_order(n, epoch, cfg.seed).to(engine.device)
            loss_sum = correct = 0.0
            bar.reset(batch_task, total=steps)
            for i in range(0, n, cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                theta = random_affine(len(idx), cfg.augment, gen, engine.device)
                x = engine.input(prepare(images[idx], pre, theta))
                with engine.autocast():
                    logits = model(x)
                loss = soft_cross_entropy(logits, targets[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(idx)
                correct += float((logits.argmax(1) == labels[idx]).sum())
                bar.update(batch_task, advance=1, info=f"loss {loss_sum / (i + len(idx)):.3f}")
            seconds = time.perf_counter() - t0
            val_loss, val_acc = _scores(predict(model, val.images, pre, engine), val)
            lr = optimizer.param_groups[0]["lr"]
            row = {
                "epoch": epoch,
                "lr": lr,
                "train_loss": loss_sum / n,
                "train_acc": correct / n,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "seconds": round(seconds, 2),
                "images_per_s": round(n / seconds, 1),
            }
            history.append(row)
            score = val_loss if mode == "min" else val_acc
            if best["score"] is None or better(score, best["score"]):
                best = {
                    "epoch": epoch,
                    "score": score,
                    "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                }
            scheduler.step(score)
            write_csv(partial / "history.csv", history, HISTORY_COLUMNS)
            atomic_save(
                {
                    "config": config,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "history": history,
                    "best": best,
                    "segments": segments,  # the first one's start and commit are the run's
                },
                partial / "state.pt",
            )
            bar.update(task, advance=1, info=f"val loss {val_loss:.3f} acc {val_acc:.3f} (best epoch {best['epoch']})")
            console.print(
                f"epoch {epoch}/{cfg.epochs}  lr {lr:.2g}  train {row['train_loss']:.4f}/{row['train_acc']:.4f}"
                f"  val {val_loss:.4f}/{val_acc:.4f}  {seconds:.0f}s {row['images_per_s']:.0f} img/s"
            )
            if cfg.early_stop_patience is not None and epoch - best["epoch"] >= cfg.early_stop_patience:
                console.print(f"early stop: no {cfg.monitor} improvement for {cfg.early_stop_patience} epochs")
                break

    chosen = best["epoch"] if cfg.restore_best else len(history)
    last_epoch = None
    if cfg.restore_best and chosen != len(history):
        # What keeping the last epoch would have given: the restore-best question, answered by one run.
        # (When the best epoch is the last, the result below is that answer; no second test pass.)
        last_logits = predict(model, test.images, pre, engine)
        last_epoch = {
            "epoch": len(history),
            "accuracy": M.summarize(last_logits.argmax(1), test.labels, data.classes, 0.0)["accuracy"],
            "loss": _scores(last_logits, test)[0],
            "val_accuracy": history[-1]["val_acc"],
            "val_loss": history[-1]["val_loss"],
        }
    if cfg.restore_best:
        model.load_state_dict(best["state_dict"])
    ckpt = _checkpoint(model.state_dict(), cfg, data, pre, chosen)
    atomic_save(ckpt, partial / "checkpoint.pt")
    test_logits = predict(model, test.images, pre, engine)
    test_loss, _ = _scores(test_logits, test)
    val_loss, val_acc = _scores(predict(model, val.images, pre, engine), val)
    result = {
        "split": "test",
        **M.summarize(test_logits.argmax(1), test.labels, data.classes, test_loss),
        "epoch": chosen,
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "val_accuracy": val_acc,
        "val_loss": val_loss,
    }
    if cfg.restore_best:
        kept = {"epoch": chosen, "accuracy": result["accuracy"], "loss": test_loss}
        result["last_epoch"] = last_epoch or {**kept, "val_accuracy": val_acc, "val_loss": val_loss}
    write_json(partial / "metrics.json", result)
    title = f"{data.name} / {cfg.model} / seed {cfg.seed}"
    figures.curves(history, partial / "curves.png", title)
    figures.confusion(
        result["confusion_matrix"],
        result["classes"],
        partial / "confusion.png",
        f"{title}: test accuracy {result['accuracy']:.4f}",
    )
    seconds = sum(r["seconds"] for r in history)
    write_json(
        partial / "provenance.json",
        provenance(
            config,
            engine.device,
            started,
            commit,
            bf16=engine.bf16,
            channels_last=engine.channels_last,
            data={
                "name": data.name,
                "meta": data.meta,
                "sizes": {s: len(d) for s, d in (("train", train), ("val", val), ("test", test))},
            },
            train_seconds=round(seconds, 1),
            resumed=state is not None,
            segments=segments,
        ),
    )
    (partial / "state.pt").unlink()
    partial.rename(final)
    return Run(final, result, history)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """A trained model (eval mode) and its metadata from a run folder or a checkpoint file."""
    path = Path(path)
    file = path / "checkpoint.pt" if path.is_dir() else path
    if not file.is_file():
        raise RunNotFoundError(f"no checkpoint at {file} (a finished run folder holds checkpoint.pt)")
    ckpt = torch.load(file, map_location="cpu", weights_only=True)
    meta = ckpt["meta"]
    model = create_model(meta["model"], len(meta["classes"]), meta["preprocess"]["channels"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), meta


def open_run(
    run: str | Path,
    device: str = "auto",
    data: FaceDataset | None = None,
    data_root: str | None = None,
    label_mode: str | None = None,
) -> tuple[TrainConfig, Engine, torch.nn.Module, dict[str, Any], FaceDataset]:
    """A finished run's config, engine, model (eval mode) and metadata, and the data set it was trained on
    (with `label_mode`, its votes read that way instead)."""
    run = Path(run)
    if not (run / "config.json").is_file():
        raise RunNotFoundError(f"not a run folder (no config.json): {run}")
    cfg = from_dict(json.loads((run / "config.json").read_text()))
    engine = Engine.from_config(dataclasses.replace(cfg, device=device))
    model, meta = load_checkpoint(run, engine.device)
    if label_mode is not None and cfg.data.dataset != "ferplus":
        raise ConfigError(f"{run}: --label-mode reads FER+ votes; this run is on {cfg.data.dataset}")
    if label_mode is not None and data is not None:
        raise ConfigError("label_mode re-reads the run's data set from disk; pass it or data, not both")
    if data is None:
        changes = {k: v for k, v in (("root", data_root), ("label_mode", label_mode)) if v is not None}
        data = load_dataset(dataclasses.replace(cfg.data, **changes))
    if [str(c) for c in data.classes] != meta["classes"]:
        raise ClassMismatchError(f"{run}: model predicts {meta['classes']}, data has {[str(c) for c in data.classes]}")
    return cfg, engine, model, meta, data


def evaluate(
    run: str | Path,
    split: str = "test",
    data_root: str | None = None,
    device: str = "auto",
    data: FaceDataset | None = None,
    label_mode: str | None = None,
) -> dict[str, Any]:
    """Metrics of a finished run's model on one split of the data set it was trained on.

    `label_mode` scores against the votes read another way (FER+): Barsoum et al. score every
    training mode on the majority-vote val and test faces.
    """
    _, engine, model, meta, data = open_run(run, device, data, data_root, label_mode)
    part = data.subset(split)
    logits = predict(engine.model(model), part.images, Preprocess.from_dict(meta["preprocess"]), engine)
    loss, _ = _scores(logits, part)
    summary = M.summarize(logits.argmax(1), part.labels, data.classes, loss)
    return {"split": split, **({"label_mode": label_mode} if label_mode else {}), **summary, "epoch": meta["epoch"]}


def read_history(run: str | Path) -> list[dict[str, str]]:
    return read_csv(Path(run) / "history.csv")
