"""fit(config) -> Run: the earlier projects' recipes (and faster ones) on in-memory uint8 tensors.

The whole data set sits on the training device; each batch is gathered by index,
warped by one affine grid and standardised there (no DataLoader workers). A run
is written to `.<name>.partial/` with a resumable `state.pt` after every epoch
and renamed to `<name>/` when it is complete, so a run folder is never half-written.
A later multi-GPU mode would shard `epoch_order` per rank and wrap the model in DDP.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel as DDP

from facexai import metrics as M
from facexai import parallel
from facexai.config import TrainConfig, from_dict, to_dict
from facexai.data import FaceDataset, load_dataset
from facexai.data.augment import Preprocess, channel_stats, erase, prepare, random_affine, random_boxes
from facexai.errors import ConfigError, RunNotFoundError
from facexai.io import figures
from facexai.io.files import atomic_save, load_torch, write_csv, write_json
from facexai.io.progress import progress_bar
from facexai.metrics import soft_cross_entropy
from facexai.models import create_model, get_spec
from facexai.provenance import command, git_commit, now, provenance
from facexai.runs import Engine, Run, predict, resolve_device

HISTORY_COLUMNS = [
    "epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_s", "gflop",
]  # fmt: skip


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


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    raise ConfigError(f"optimizer must be adam, adamw or sgd, got {cfg.optimizer!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """The recipe's learning-rate schedule: Keras' plateau rule (stepped per epoch with the monitored score)
    or torch's OneCycleLR (stepped per batch: `warmup` of the steps up to `lr`, then annealed)."""
    if cfg.schedule == "plateau":
        return plateau_scheduler(optimizer, cfg)
    if cfg.schedule == "onecycle":
        if not 0 < cfg.warmup < 1 or cfg.anneal not in ("cos", "linear"):
            raise ConfigError(f"onecycle needs 0 < warmup < 1 and anneal cos or linear, got {cfg.warmup}, {cfg.anneal}")
        total, warmup = cfg.epochs * steps_per_epoch, cfg.warmup
        if warmup * total == 1:  # OneCycleLR divides by zero on a warm-up of exactly one step (4 steps x 0.25)
            warmup = (1 + 1e-6) / total  # still one step
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=cfg.lr,
            epochs=cfg.epochs,
            steps_per_epoch=steps_per_epoch,
            pct_start=warmup,
            anneal_strategy=cfg.anneal,
            cycle_momentum=cfg.optimizer != "sgd" or cfg.momentum > 0,
        )
    raise ConfigError(f"schedule must be plateau or onecycle, got {cfg.schedule!r}")


def forward_gflop(model: torch.nn.Module, channels: int, size: int) -> float:
    """Forward GFLOP of one image at the model's input size, by torch's FLOP counter (a multiply-add is 2).

    Counted once per model and size on a CPU copy, so the training device and precision do not matter.
    """
    from torch.utils.flop_counter import FlopCounterMode

    probe = copy.deepcopy(model).float().cpu().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        probe(torch.zeros(1, channels, size, size))
    return counter.get_total_flops() / 1e9


def epoch_order(n: int, epoch: int, seed: int) -> torch.Tensor:
    """The shuffled training order of one epoch, a function of (seed, epoch) alone (resumable)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def _scores(logits: torch.Tensor, data: FaceDataset) -> tuple[float, float]:
    return float(soft_cross_entropy(logits, data.targets())), float((logits.argmax(1) == data.labels).float().mean())


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
            "tta_flip": cfg.tta_flip,
        },
    }


@dataclass
class _Loop:
    """What training changes epoch by epoch, and what `state.pt` keeps so that a run resumes bit for bit."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: torch.optim.swa_utils.AveragedModel | None  # averaged weights, when the recipe asks for them
    history: list[dict[str, Any]]
    best: dict[str, Any]  # epoch, score, state_dict of the best epoch so far (of the evaluated weights)

    @property
    def net(self) -> torch.nn.Module:
        """The model itself (unwrapped where several processes train it together)."""
        return self.model.module if isinstance(self.model, DDP) else self.model

    @property
    def evaluated(self) -> torch.nn.Module:
        """The weights validation and test see: the average where there is one."""
        return self.ema.module if self.ema is not None else self.net

    def state(self) -> dict[str, Any]:
        out = {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": self.history,
            "best": self.best,
        }
        return out | ({"ema": self.ema.state_dict()} if self.ema is not None else {})

    def load(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.history, self.best = state["history"], state["best"]


def _check(cfg: TrainConfig) -> None:
    get_spec(cfg.model)  # an unknown model is refused before any data is loaded
    if cfg.monitor not in ("val_loss", "val_acc"):
        raise ConfigError(f"monitor must be val_loss or val_acc, got {cfg.monitor!r}")
    if cfg.optimizer not in ("adam", "adamw", "sgd"):
        raise ConfigError(f"optimizer must be adam, adamw or sgd, got {cfg.optimizer!r}")
    if not 0 <= cfg.label_smoothing < 1:
        raise ConfigError(f"label_smoothing must lie in [0, 1), got {cfg.label_smoothing}")
    if cfg.ema_decay is not None and not 0 < cfg.ema_decay < 1:
        raise ConfigError(f"ema_decay must lie in (0, 1), got {cfg.ema_decay}")


def _folders(cfg: TrainConfig, out: str | Path, name: str, resume: str | Path | None):
    """(config, partial folder, final folder, saved state or None): a new run's folders, or a resumed one's."""
    if resume is not None:
        partial = Path(resume)
        if not (partial / "state.pt").is_file():
            raise RunNotFoundError(f"cannot resume: {partial / 'state.pt'} not found (only unfinished runs resume)")
        state = load_torch(partial / "state.pt")
        final = partial.parent / partial.name.removeprefix(".").removesuffix(".partial")
        return from_dict(state["config"]), partial, final, state
    final = Path(out) / f"{name}-{cfg.model}-s{cfg.seed}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    partial = final.parent / f".{final.name}.partial"
    if final.exists() or partial.exists():
        raise ConfigError(f"run folder already exists: {final}")
    return cfg, partial, final, None


def _splits(cfg: TrainConfig, data: FaceDataset) -> tuple[FaceDataset, FaceDataset, FaceDataset, Preprocess]:
    """Train, val and test (their votes, where the data carries them, are the targets) and the model's
    preprocessing."""
    train, val, test = (data.subset(s) for s in ("train", "val", "test"))
    spec = get_spec(cfg.model)
    channels = cfg.in_channels or spec.in_channels
    pre = Preprocess(cfg.input_size or spec.input_size, channels, *channel_stats(train.images, channels))
    return train, val, test, pre


def _loop(cfg: TrainConfig, engine: Engine, classes: int, channels: int, steps_per_epoch: int) -> _Loop:
    model = engine.model(create_model(cfg.model, classes, channels))
    ema = None
    if cfg.ema_decay is not None:  # torch's averaging, buffers (batch-norm statistics) included
        avg = torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay)
        ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=avg, use_buffers=True)
    if parallel.world().size > 1:
        # each process normalises its own part of the batch: SyncBatchNorm runs on GPUs only (cfg.sync_bn)
        if cfg.sync_bn and engine.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = DDP(model, device_ids=[engine.device.index] if engine.device.type == "cuda" else None)
    optimizer = make_optimizer(model, cfg)
    best = {"epoch": 0, "score": None, "state_dict": None}
    return _Loop(model, optimizer, make_scheduler(optimizer, cfg, steps_per_epoch), ema, [], best)


def _segments(state: dict | None, started: str, commit: str | None, after: int) -> list[dict[str, Any]]:
    """Each start and resume of the run: a resumed segment may run other code than the start."""
    here = {"command": command(), "git_commit": commit, "started": started, "after_epoch": after}
    here["threads"] = torch.get_num_threads()
    if state is None:
        return [here]
    older = {"command": None, "git_commit": state.get("commit"), "started": state.get("started"), "after_epoch": 0}
    return [*state.get("segments", [older]), here]


def _train_epoch(
    loop: _Loop, cfg: TrainConfig, engine: Engine, train: dict[str, torch.Tensor], pre: Preprocess, epoch: int, bar
) -> tuple[float, float]:
    """One pass over the training images in the epoch's order; (mean loss, accuracy) over the images.

    With several processes each takes its share (rank, rank + W, ...) of every global batch, with the
    augmentation drawn for the whole batch, so together they see what one process would; its loss is
    scaled so that the gradients DDP averages are those of the global batch's mean loss."""
    loop.model.train()
    images, targets, labels = train["images"], train["targets"], train["labels"]  # on the device
    n = len(images)
    w = parallel.world()
    gen = torch.Generator(engine.device).manual_seed(cfg.seed * 100_003 + epoch)
    order = epoch_order(n, epoch, cfg.seed).to(engine.device)
    per_batch = cfg.schedule == "onecycle"
    # Sums stay on the device (float64: the same numbers as adding Python floats) so that no step waits
    # for a GPU-to-CPU copy; the bar's running loss is read every 25 steps and at the end.
    sums = torch.zeros(2, dtype=torch.float64, device=engine.device)  # (loss x images, correct)
    for step, i in enumerate(range(0, n, cfg.batch_size)):
        idx = order[i : i + cfg.batch_size]
        theta = random_affine(len(idx), cfg.augment, gen, engine.device)
        boxes = random_boxes(len(idx), pre.size, cfg.augment.erase, gen, engine.device)  # None when off
        if w.size > 1:
            idx, theta = idx[w.rank :: w.size], theta[w.rank :: w.size]
            boxes = boxes[w.rank :: w.size] if boxes is not None else None
        x = engine.input(erase(prepare(images[idx], pre, theta), boxes))
        with engine.autocast():
            logits = loop.model(x)
        loss = soft_cross_entropy(logits, targets[idx])
        scaled = loss * (len(idx) * w.size / min(cfg.batch_size, n - i)) if w.size > 1 else loss
        loop.optimizer.zero_grad(set_to_none=True)
        scaled.backward()
        loop.optimizer.step()
        if per_batch:
            loop.scheduler.step()
        if loop.ema is not None:
            loop.ema.update_parameters(loop.net)
        sums[0] += loss.detach().double() * len(idx)
        sums[1] += (logits.argmax(1) == labels[idx]).sum()
        done = min(i + cfg.batch_size, n)  # global images so far (idx is this process's share under torchrun)
        info = {"info": f"loss {float(sums[0]) / done:.3f}"} if step % 25 == 0 or done >= n else {}
        bar.update(bar.task_ids[1], advance=1, **info)
    loss_sum, correct = parallel.all_sum(sums.tolist())  # over every process's share
    parallel.broadcast_buffers(loop.net)  # rank 0's running statistics everywhere: one model to evaluate and save
    if loop.ema is not None:
        parallel.broadcast_buffers(loop.ema)
    return loss_sum / n, correct / n


def _smoothed(targets: torch.Tensor, share: float) -> torch.Tensor:
    """(N, K) targets mixed with the uniform distribution: label smoothing for one-hot and vote targets alike."""
    return targets if share == 0 else (1 - share) * targets + share / targets.shape[1]


def _epochs(loop: _Loop, cfg: TrainConfig, engine: Engine, parts, pre, partial: Path, save, console, progress):
    """Train until the last epoch or an early stop, writing history.csv and state.pt after every epoch."""
    train, val = parts
    tensors = {
        "images": train.images.to(engine.device),  # (N, C, H, W) uint8 on the device
        "targets": _smoothed(train.targets(), cfg.label_smoothing).to(engine.device),  # (N, K)
        "labels": train.labels.to(engine.device),
    }
    n, steps = len(train), -(-len(train) // cfg.batch_size)
    gflop = forward_gflop(loop.net, pre.channels, pre.size)
    mode = "min" if cfg.monitor == "val_loss" else "max"
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    with progress_bar(progress, info=True) as bar:
        task = bar.add_task("epochs", total=cfg.epochs, completed=len(loop.history), info="")
        bar.add_task("batches", total=steps, info="")
        for epoch in range(len(loop.history) + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            lr = loop.optimizer.param_groups[0]["lr"]
            bar.reset(bar.task_ids[1], total=steps)
            train_loss, train_acc = _train_epoch(loop, cfg, engine, tensors, pre, epoch, bar)
            seconds = time.perf_counter() - t0
            val_loss, val_acc = _scores(predict(loop.evaluated, val.images, pre, engine, tta_flip=cfg.tta_flip), val)
            row = {
                "epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                "val_acc": val_acc, "seconds": round(seconds, 2), "images_per_s": round(n / seconds, 1),
                "gflop": round(epoch * n * gflop, 1),  # forward GFLOP of the training images seen so far
            }  # fmt: skip
            loop.history.append(row)
            score = val_loss if mode == "min" else val_acc
            if loop.best["score"] is None or better(score, loop.best["score"]):
                weights = {k: v.detach().cpu().clone() for k, v in loop.evaluated.state_dict().items()}
                loop.best = {"epoch": epoch, "score": score, "state_dict": weights}
            if cfg.schedule == "plateau":
                loop.scheduler.step(score)
            if parallel.world().main:
                write_csv(partial / "history.csv", loop.history, HISTORY_COLUMNS)
                save()
            bar.update(task, advance=1, info=f"val loss {val_loss:.3f} acc {val_acc:.3f} (best {loop.best['epoch']})")
            console.print(
                f"epoch {epoch}/{cfg.epochs}  lr {lr:.2g}  train {train_loss:.4f}/{train_acc:.4f}"
                f"  val {val_loss:.4f}/{val_acc:.4f}  {seconds:.0f}s {row['images_per_s']:.0f} img/s"
            )
            if cfg.early_stop_patience is not None and epoch - loop.best["epoch"] >= cfg.early_stop_patience:
                console.print(f"early stop: no {cfg.monitor} improvement for {cfg.early_stop_patience} epochs")
                break
    return gflop


def _last_epoch(loop: _Loop, cfg: TrainConfig, test: FaceDataset, pre: Preprocess, engine: Engine, classes):
    """What keeping the last epoch would have given: the restore-best question, answered by one run.

    None when the best epoch is the last (the kept model's result is that answer; no second test pass).
    """
    if not cfg.restore_best or loop.best["epoch"] == len(loop.history):
        return None
    logits = predict(loop.evaluated, test.images, pre, engine, tta_flip=cfg.tta_flip)
    return {
        "epoch": len(loop.history),
        "accuracy": M.summarize(logits.argmax(1), test.labels, classes, 0.0)["accuracy"],
        "loss": _scores(logits, test)[0],
        "val_accuracy": loop.history[-1]["val_acc"],
        "val_loss": loop.history[-1]["val_loss"],
    }


def _test_metrics(loop: _Loop, cfg: TrainConfig, parts, pre: Preprocess, engine: Engine, classes) -> dict[str, Any]:
    """The kept model (best or last epoch) scored on test and validation; with `last_epoch` under restore_best."""
    val, test = parts
    last_epoch = _last_epoch(loop, cfg, test, pre, engine, classes)
    chosen = loop.best["epoch"] if cfg.restore_best else len(loop.history)
    if cfg.restore_best:
        loop.evaluated.load_state_dict(loop.best["state_dict"])
    test_logits = predict(loop.evaluated, test.images, pre, engine, tta_flip=cfg.tta_flip)
    test_loss, _ = _scores(test_logits, test)
    val_loss, val_acc = _scores(predict(loop.evaluated, val.images, pre, engine, tta_flip=cfg.tta_flip), val)
    result = {
        "split": "test",
        **M.summarize(test_logits.argmax(1), test.labels, classes, test_loss),
        "epoch": chosen,
        "best_epoch": loop.best["epoch"],
        "epochs_run": len(loop.history),
        "val_accuracy": val_acc,
        "val_loss": val_loss,
    }
    if cfg.restore_best:
        kept = {"epoch": chosen, "accuracy": result["accuracy"], "loss": test_loss}
        result["last_epoch"] = last_epoch or {**kept, "val_accuracy": val_acc, "val_loss": val_loss}
    return result | _ablations(loop, cfg, test, pre, engine, classes)


def _ablations(loop: _Loop, cfg: TrainConfig, test: FaceDataset, pre: Preprocess, engine: Engine, classes) -> dict:
    """Test accuracy without the levers that do not change training, measured on this run's own weights:
    the kept weights without flip TTA, and the last epoch's raw weights instead of their moving average."""

    def accuracy(model: torch.nn.Module, tta: bool) -> float:
        logits = predict(model, test.images, pre, engine, tta_flip=tta)
        return M.summarize(logits.argmax(1), test.labels, classes)["accuracy"]

    out = {}
    if cfg.tta_flip:
        out["without_tta"] = {"accuracy": accuracy(loop.evaluated, False)}
    if loop.ema is not None:
        out["without_ema"] = {"epoch": len(loop.history), "accuracy": accuracy(loop.model, cfg.tta_flip)}
    return out


def _figures(partial: Path, history: list[dict[str, Any]], result: dict[str, Any], title: str) -> None:
    figures.curves(history, partial / "curves.png", title)
    matrix, classes = result["confusion_matrix"], result["classes"]
    figures.confusion(matrix, classes, partial / "confusion.png", f"{title}: test accuracy {result['accuracy']:.4f}")


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

    Under torchrun (several processes) the processes train one model data-parallel (DDP, gloo on the CPU,
    NCCL on GPUs): each takes its share of every global batch, and rank 0 writes the run folder.
    """
    w = parallel.setup(resolve_device(cfg.device).type)
    console = console or Console(stderr=True)
    console.quiet = console.quiet or not w.main
    progress = progress and w.main
    started, commit = now(), git_commit()
    name = data.name if data is not None else cfg.data.dataset
    cfg, partial, final, state = _folders(cfg, out, name, resume) if w.main else (cfg, None, None, None)
    cfg, partial, final = parallel.broadcast((cfg, partial, final))  # rank 0 names the run
    if state is None and resume is not None:
        state = load_torch(Path(partial) / "state.pt")
    _check(cfg)
    if threads or cfg.threads:
        torch.set_num_threads(threads or cfg.threads)
    torch.manual_seed(cfg.seed)
    engine = Engine.from_config(cfg)
    engine = Engine(parallel.device(engine.device), engine.bf16, engine.channels_last)
    data = data if data is not None else load_dataset(cfg.data)
    train, val, test, pre = _splits(cfg, data)
    loop = _loop(cfg, engine, len(data.classes), pre.channels, -(-len(train) // cfg.batch_size))
    segments = _segments(state, started, commit, 0)
    if state is not None:
        loop.load(state)
        segments[-1]["after_epoch"] = len(loop.history)
        started, commit = segments[0]["started"], segments[0]["git_commit"]  # the run's, not this resume's
        console.print(f"resuming {partial} after epoch {len(loop.history)}")
    config = to_dict(cfg)
    if w.main:
        partial.mkdir(parents=True, exist_ok=True)
        write_json(partial / "config.json", config)

    def save() -> None:  # the first segment's start and commit are the run's
        atomic_save({"config": config, **loop.state(), "segments": segments}, partial / "state.pt")

    if w.main and state is None:
        save()  # resumable from the start: a run stopped inside its first epoch continues from epoch 0
    try:
        gflop = _epochs(loop, cfg, engine, (train, val), pre, partial, save, console, progress)
    except KeyboardInterrupt:
        console.print(f"interrupted after {len(loop.history)} finished epoch(s); continue with: "
                      f"facexai train {name} --resume {partial}")  # fmt: skip
        raise
    scoring = Engine(engine.device, False, engine.channels_last)  # every scoring pass in fp32 (runs.open_run)
    result = _test_metrics(loop, cfg, (val, test), pre, scoring, data.classes) | scoring.facts()
    ckpt = _checkpoint(loop.evaluated.state_dict(), cfg, data, pre, result["epoch"])
    if w.main:
        _write_run(partial, final, loop, cfg, data, (train, val, test), pre, engine, result, ckpt,
                   {"config": config, "started": started, "commit": commit, "segments": segments, "gflop": gflop,
                    "resumed": state is not None})  # fmt: skip
    parallel.barrier()  # every process returns once the folder is complete
    return Run(final, loop.evaluated.eval(), ckpt["meta"], engine, cfg, result, loop.history)


def _write_run(partial, final, loop, cfg, data, parts, pre, engine, result, ckpt, facts) -> None:
    """The finished run's files, then the rename that makes the folder complete."""
    train, val, test = parts
    atomic_save(ckpt, partial / "checkpoint.pt")
    write_json(partial / "metrics.json", result)
    _figures(partial, loop.history, result, f"{data.name} / {cfg.model} / seed {cfg.seed}")
    sizes = {s: len(d) for s, d in (("train", train), ("val", val), ("test", test))}
    gflop = facts["gflop"]
    prov = provenance(
        facts["config"], engine.device, facts["started"], facts["commit"], bf16=engine.bf16,
        channels_last=engine.channels_last, data={"name": data.name, "meta": data.meta, "sizes": sizes},
        train_seconds=round(sum(r["seconds"] for r in loop.history), 1), resumed=facts["resumed"],
        segments=facts["segments"], forward_gflop_per_image=gflop, test_pass=engine.facts() | {"precision": "fp32"},
        train_pflop=round(len(loop.history) * len(train) * gflop / 1e6, 4), processes=parallel.world().size,
    )  # fmt: skip
    write_json(partial / "provenance.json", prov)
    (partial / "state.pt").unlink()
    partial.rename(final)
