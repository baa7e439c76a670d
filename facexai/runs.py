"""A trained model and how it runs: finished run folders (open, load, evaluate) and the engine they run on.

A `Run` is what training returns and what every analysis takes: the model in eval mode, its
checkpoint metadata (model name, classes, preprocessing, data set, epoch) and the engine (device,
precision, memory format). `open_run` reads one from a run folder; `Run.of` wraps a model held in
memory, with no folder at all.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facexai import metrics as M
from facexai.config import TrainConfig, check_reads, from_dict
from facexai.data import FaceDataset, load_dataset
from facexai.data.augment import Preprocess, prepare
from facexai.emotions import Emotion
from facexai.errors import ClassMismatchError, ConfigError, DataNotFoundError, MalformedDataError, RunNotFoundError
from facexai.io.files import atomic_save, load_torch, read_csv, staged, write_json
from facexai.models import create_model, get_spec
from facexai.provenance import git_commit, now, provenance


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):  # e.g. mps: untested, no float64 for the epoch sums
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return device


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

    def facts(self) -> dict[str, str]:
        """How a pass ran, for provenance: precision and memory format."""
        return {"precision": "bf16 autocast" if self.bf16 else "fp32",
                "memory_format": "channels_last" if self.channels_last else "contiguous"}  # fmt: skip


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images: torch.Tensor,
    pre: Preprocess,
    engine: Engine,
    batch: int | None = None,
    tta_flip: bool = False,
) -> torch.Tensor:
    """(N, K) float32 logits on the CPU for uint8 (N, C, H, W) images.

    tta_flip: the mean of the logits of each image and its mirror image (test-time augmentation).
    batch: images per pass; by default 32 on a CPU, where 256-image passes spill the caches (the FER+
    validation split at 48x48 with flip TTA on a 2-core Zen 4: 13.6 s at 256, 6.5 s at 32 in bf16, the
    same logits), and 256 elsewhere.
    """
    batch = batch or (32 if engine.device.type == "cpu" else 256)
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = engine.input(prepare(images[i : i + batch].to(engine.device, non_blocking=True), pre))
        with engine.autocast():
            logits = model(x).float()
            if tta_flip:
                logits = (logits + model(x.flip(-1)).float()) / 2
        out.append(logits.cpu())
    return torch.cat(out) if out else torch.empty(0, 0)


@dataclass
class Run:
    """A trained model ready to predict and be explained; `path` is its run folder (None: held in memory).

    meta: the checkpoint's metadata: model (registry name), classes, preprocess, data, epoch, tta_flip,
    and cam_layer where the model is not a registered one.
    """

    path: Path | None
    model: nn.Module  # eval mode, on engine.device
    meta: dict[str, Any]
    engine: Engine
    config: TrainConfig | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pre(self) -> Preprocess:
        return Preprocess.from_dict(self.meta["preprocess"])

    @property
    def classes(self) -> tuple[Emotion, ...]:
        return tuple(Emotion(c) for c in self.meta["classes"])

    @property
    def cam_layer(self) -> str | None:
        """Dotted path of the module the CAM methods use (the registry's choice for registered models)."""
        if "cam_layer" in self.meta:
            return self.meta["cam_layer"]
        return get_spec(self.meta["model"]).cam_layer

    @property
    def fine_cam_layer(self) -> str | None:
        """An earlier layer with a finer map (the registry's choice), for CAMs at a higher resolution."""
        if "fine_cam_layer" in self.meta or "cam_layer" in self.meta:
            return self.meta.get("fine_cam_layer")
        return get_spec(self.meta["model"]).fine_cam_layer

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else f"<{self.meta['model']} in memory>"

    @classmethod
    def of(
        cls,
        model: nn.Module,
        pre: Preprocess,
        classes: tuple[Emotion, ...],
        cam_layer: str | None = None,
        device: str = "auto",
        fine_cam_layer: str | None = None,
    ) -> Run:
        """A model held in memory, e.g. a notebook's own: its preprocessing, classes and (for the CAM
        methods) the dotted path of its CAM layer (and of an earlier, finer one)."""
        engine = Engine(resolve_device(device), bf16=False, channels_last=False)
        meta = {"model": type(model).__name__, "classes": [str(Emotion(c)) for c in classes],
                "preprocess": pre.to_dict(), "cam_layer": cam_layer, "fine_cam_layer": fine_cam_layer,
                "epoch": None}  # fmt: skip
        return cls(None, model.to(engine.device).eval(), meta, engine)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """(N, K) float32 logits on the CPU for uint8 (N, C, H, W) images, as the run was evaluated."""
        return predict(self.model, images, self.pre, self.engine, tta_flip=self.meta.get("tta_flip", False))


IMPORT_FORMATS = {".pt": "torchscript", ".pth": "torchscript", ".pt2": "export"}


class _Exported(nn.Module):
    """A `torch.export` module: its graph keeps the mode it was exported in and refuses train()/eval(), so
    switching modes stops here instead of failing."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.inner = module

    def train(self, mode: bool = True) -> _Exported:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def _load_imported(file: Path, kind: str) -> nn.Module:
    """A TorchScript (`torch.jit.load`) or `torch.export` (`torch.export.load(...).module()`) model file."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript in favour of export; both are read here
            warnings.simplefilter("ignore")
            if kind == "torchscript":
                return torch.jit.load(str(file), map_location="cpu")
            return _Exported(torch.export.load(str(file)).module())
    except Exception as e:  # the libraries raise RuntimeError, ValueError, zipfile errors...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MalformedDataError(f"{file}: not a {kind} model file ({first[:120]})") from None


def import_model(
    file: str | Path,
    out: str | Path,
    input_size: int,
    channels: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    classes: tuple[Emotion, ...],
) -> Path:
    """A run folder for a model trained elsewhere: a TorchScript (.pt) or torch.export (.pt2) file, its
    preprocessing (input side, channels, per-channel mean and std of [0, 1] pixels) and classes.

    The model is checked on two batch sizes of (C, S, S) inputs (an export needs a dynamic batch
    dimension) and must return (N, len(classes)) logits. Gradient and perturbation methods accept it; the
    CAM methods need an nn.Module whose layers take hooks, which neither format keeps.
    """
    file = Path(file)
    if not file.is_file():
        raise DataNotFoundError(f"model file not found: {file}")
    kind = IMPORT_FORMATS.get(file.suffix.lower())
    if kind is None:
        raise MalformedDataError(f"{file}: expected a TorchScript .pt or a torch.export .pt2 file")
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(f"--mean and --std need {channels} values (one per channel), got {len(mean)} and {len(std)}")
    model = _load_imported(file, kind).eval()
    for n in (2, 3):
        try:
            with torch.no_grad():
                logits = model(torch.zeros(n, channels, input_size, input_size))
        except Exception as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            shape = f"({n}, {channels}, {input_size}, {input_size})"
            raise ConfigError(f"{file}: does not run on {shape} inputs (wrong --input-size or --channels, or an "
                              f"export without a dynamic batch?): {first}") from None  # fmt: skip
        if tuple(logits.shape) != (n, len(classes)):
            raise ConfigError(f"{file}: returns {tuple(logits.shape)} for {n} inputs, expected ({n}, {len(classes)}) "
                              f"logits for the classes {', '.join(map(str, classes))}")  # fmt: skip
    pre = Preprocess(input_size, channels, tuple(map(float, mean)), tuple(map(float, std)))
    meta = {"model": "imported", "format": kind, "file": f"model{file.suffix.lower()}",
            "classes": [str(Emotion(c)) for c in classes], "preprocess": pre.to_dict(), "cam_layer": None,
            "fine_cam_layer": None, "epoch": None, "imported_from": str(file)}  # fmt: skip
    out = Path(out)
    with staged(out) as stage:
        shutil.copyfile(file, stage / meta["file"])
        atomic_save({"state_dict": {}, "meta": meta}, stage / "checkpoint.pt")
        write_json(stage / "config.json", {"imported": meta})
        write_json(stage / "provenance.json", provenance({"imported": meta}, "cpu", now(), git_commit()))
    return out


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """A trained model (eval mode) and its metadata from a run folder or a checkpoint file."""
    path = Path(path)
    file = path / "checkpoint.pt" if path.is_dir() else path
    if not file.is_file():
        raise RunNotFoundError(f"no checkpoint at {file} (a finished run folder holds checkpoint.pt)")
    ckpt = load_torch(file)
    if not isinstance(ckpt, dict) or "meta" not in ckpt:
        raise MalformedDataError(f"{file}: not a facexai checkpoint (no meta); expected one written by train")
    meta = ckpt["meta"]
    if meta["model"] == "imported":
        return _load_imported(file.parent / meta["file"], meta["format"]).to(device).eval(), meta
    model = create_model(meta["model"], len(meta["classes"]), meta["preprocess"]["channels"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), meta


def open_run(run: str | Path, device: str = "auto", bf16: bool = False) -> Run:
    """A finished run folder: its model (eval mode) on the device, config, metadata, metrics and history.

    Its predictions (Run.predict: scoring, the analysed classes) run in fp32 unless `bf16` asks for autocast,
    whatever the training used: one rule for every scoring pass."""
    path = Path(run)
    if not (path / "config.json").is_file():
        raise RunNotFoundError(f"not a run folder (no config.json): {path}")
    saved = json.loads((path / "config.json").read_text())
    if "imported" in saved:  # a model trained elsewhere: no recipe, no data set of its own
        engine = Engine(resolve_device(device), bf16=False, channels_last=False)
        model, meta = load_checkpoint(path, engine.device)
        return Run(path, model, meta, engine)
    cfg = from_dict(saved)
    engine = Engine.from_config(dataclasses.replace(cfg, device=device, bf16=bf16))
    model, meta = load_checkpoint(path, engine.device)
    metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}
    history = read_csv(path / "history.csv") if (path / "history.csv").is_file() else []
    return Run(path, engine.model(model), meta, engine, cfg, metrics, history)


def adapt_classes(data: FaceDataset, classes: tuple[Emotion, ...], strict: bool = False) -> FaceDataset:
    """A labelled folder's images relabelled in a model's class order. Images of classes the model lacks
    (contempt for a 7-class model) are left out and counted in meta["excluded"], or refused (`strict`);
    meta["absent"] names the model's classes the data has no image of."""
    if tuple(data.classes) == tuple(classes):
        return dataclasses.replace(data, meta={**data.meta, "excluded": {}, "absent": _absent(data, classes)})
    known = torch.tensor([c in classes for c in data.classes])
    keep = known[data.labels]
    excluded = {str(c): int((data.labels == k).sum()) for k, c in enumerate(data.classes) if not known[k]}
    excluded = {c: n for c, n in excluded.items() if n}
    if strict and excluded:
        raise ClassMismatchError(
            f"{data.meta.get('source', data.name)}: {', '.join(f'{n} {c}' for c, n in excluded.items())} image(s) "
            f"of classes the model does not predict ({', '.join(map(str, classes))})"
        )
    part = data.select(keep)
    lut = torch.tensor([classes.index(c) if c in classes else -1 for c in data.classes])
    out = dataclasses.replace(part, classes=tuple(classes), labels=lut[part.labels], votes=None)
    return dataclasses.replace(out, meta={**data.meta, "excluded": excluded, "absent": _absent(out, classes)})


def _absent(data: FaceDataset, classes: tuple[Emotion, ...]) -> list[str]:
    present = set(data.labels.unique().tolist())
    return [str(c) for k, c in enumerate(classes) if k not in present]


def run_data(
    run: Run,
    data: FaceDataset | None = None,
    data_root: str | None = None,
    label_mode: str | None = None,
    strict_classes: bool = False,
) -> FaceDataset:
    """The data set a run was trained on (`data` if given, checked against the model's classes); with
    `label_mode`, its votes read that way instead (FER+). A labelled image folder given as `data` is
    relabelled to the model's classes (`adapt_classes`)."""
    if label_mode is not None:
        if run.config is None:
            raise ConfigError(f"{run.name}: label_mode re-reads the run's data set; a model in memory has none")
        check_reads(run.config.data.dataset, **{"--label-mode": label_mode})
        if data is not None:
            raise ConfigError("label_mode re-reads the run's data set from disk; pass it or data, not both")
    if data is None:
        if run.config is None:
            raise ConfigError(f"{run.name}: a model in memory has no data set of its own; pass data")
        changes = {k: v for k, v in (("root", data_root), ("label_mode", label_mode)) if v is not None}
        data = load_dataset(dataclasses.replace(run.config.data, **changes))
    if data.name == "imagefolder":
        data = adapt_classes(data, run.classes, strict_classes)
    if [str(c) for c in data.classes] != run.meta["classes"]:
        raise ClassMismatchError(
            f"{run.name}: model predicts {run.meta['classes']}, data has {[str(c) for c in data.classes]}"
        )
    return data


def evaluate(
    run: str | Path | Run,
    split: str = "test",
    data_root: str | None = None,
    device: str = "auto",
    data: FaceDataset | None = None,
    label_mode: str | None = None,
    bf16: bool = False,
) -> dict[str, Any]:
    """Metrics of a run's model on one split of the data set it was trained on (or of `data`), in fp32
    unless `bf16` (autocast); `precision` and `memory_format` say how it ran.

    `label_mode` scores against the votes read another way (FER+): Barsoum et al. score every
    training mode on the majority-vote val and test faces.
    """
    run = run if isinstance(run, Run) else open_run(run, device, bf16)
    data = run_data(run, data, data_root, label_mode)
    if data.name == "imagefolder":
        data = adapt_classes(data, run.classes)
    part = data.subset(split)
    logits = run.predict(part.images)
    loss = float(M.soft_cross_entropy(logits, part.targets()))
    summary = M.summarize(logits.argmax(1), part.labels, data.classes, loss)
    return {"split": split, **({"label_mode": label_mode} if label_mode else {}), **summary,
            "epoch": run.meta["epoch"], **run.engine.facts()}  # fmt: skip


def write_evaluation(
    run: str | Path, split: str = "test", data_root: str | None = None, device: str = "auto",
    label_mode: str | None = None, data: FaceDataset | None = None, out: str | Path | None = None,
    bf16: bool = False, threads: int | None = None,
) -> tuple[dict[str, Any], Path]:  # fmt: skip
    """`evaluate` written with its own provenance as metrics-<split>[-<label mode>].json into the run folder
    (the run's provenance.json stays its training's), or as metrics.json into `out` (data from elsewhere,
    e.g. a labelled image folder, goes there: `out` is required with `data`). Returns the metrics and the file."""
    if data is not None and out is None:
        raise ConfigError("evaluating a run on other data writes into --out; give a folder")
    started, commit = now(), git_commit()
    if threads is not None:
        torch.set_num_threads(threads)
    m = evaluate(run, split, data_root, device, data=data, label_mode=label_mode, bf16=bf16)
    settings = {"run": str(run), "split": split, "label_mode": label_mode, "data_root": data_root, "bf16": bf16,
                "threads": threads}  # fmt: skip
    if data is not None:
        settings["data"] = {"name": data.name, "source": data.meta.get("source"), "n": m["n"]}
        m |= {"excluded": data.meta.get("excluded", {}), "absent": data.meta.get("absent", [])}
    m["provenance"] = provenance(settings, resolve_device(device), started, commit, bf16=bf16,
                                 precision=m["precision"], memory_format=m["memory_format"])
    name = f"metrics-{split}{f'-{label_mode}' if label_mode else ''}.json"
    path = write_json(Path(out) / "metrics.json" if out is not None else Path(run) / name, m)
    return m, path


def newest_run(root: str | Path = "runs", dataset: str | None = None) -> Path | None:
    """The most recently finished run folder under `root` (any depth), optionally of one data set."""
    runs = [p.parent for p in Path(root).glob("**/metrics.json") if not p.parent.name.startswith(".")]
    if dataset is not None:
        runs = [r for r in runs if r.name.startswith(f"{dataset}-")]
    return max(runs, key=lambda r: (r / "metrics.json").stat().st_mtime, default=None)
