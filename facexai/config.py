"""Frozen settings for data and training: TOML in, JSON out, CLI overrides one field each."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import tomllib

from facexai.errors import ConfigError, DataNotFoundError, MalformedDataError

# Every data set by name, with the DataConfig settings it reads besides dataset, root, split_seed and cache:
# the one list of names (the loader of "x" is facexai.data.x; the CLI's choices and checks come from here).
DATASETS: dict[str, tuple[str, ...]] = {
    "ferplus": ("classes", "label_mode"),
    "fer2013": ("split",),
    "rafdb": ("val_fraction",),
    "synthetic": ("synthetic_n", "synthetic_size", "synthetic_channels", "synthetic_variant", "shortcut_rate"),
    "imagefolder": ("class_map", "image_size", "carve", "val_fraction"),
}


def check_dataset(name: str) -> str:
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    return name


def check_reads(dataset: str, **given: Any) -> None:
    """A data setting the data set never reads is an error, not a silently recorded choice.

    given: {setting: value}, None = not given; names may be spelled as command-line flags (--label-mode).
    """
    reads = DATASETS[check_dataset(dataset)]
    for flag, value in given.items():
        setting = flag.removeprefix("--").replace("-", "_")
        setting = {"variant": "synthetic_variant"}.get(setting, setting)  # the CLI's short name
        if value is not None and setting not in reads:
            owners = [n for n, reads in DATASETS.items() if setting in reads]
            raise ConfigError(f"{flag} applies to {' and '.join(owners)} only; {dataset} does not read it")


def check_fields(cfg: Any, limits: dict[str, tuple[float | None, float | None]]) -> None:
    """Each setting of the declared type (an int is no bool, a float may be an int) and within (low, high):
    a wrong value fails here, one line, before any folder is made (e.g. classes="8", epochs=0)."""
    hints = get_type_hints(type(cfg))
    for f in fields(cfg):
        value, kind = getattr(cfg, f.name), hints[f.name]
        origin = get_origin(kind)
        members = (kind,) if origin is None else get_args(kind) if origin in (Union, UnionType) else ()
        allowed = tuple(t for t in members if t in (int, float, bool, str, type(None)))
        if not allowed:
            continue  # nested tables check themselves
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        ok |= float in allowed and isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            names = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
            raise ConfigError(f"{f.name} must be {names}, got {value!r} ({type(value).__name__})")
        low, high = limits.get(f.name, (None, None))
        if value is not None and ((low is not None and value < low) or (high is not None and value > high)):
            bounds = f"at least {low}" if high is None else f"at most {high}" if low is None else f"{low} to {high}"
            raise ConfigError(f"{f.name} must be {bounds}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"  # a name in DATASETS
    root: str | None = None  # data set folder or file; synthetic needs none
    classes: int = 7  # FER+: 7 (seed B, no contempt) or 8 (Barsoum); others have 7
    label_mode: str = "soft"  # FER+: soft (train on the vote distributions) | majority | plurality (one-hot)
    split: str = "official"  # FER2013: official | seed-a (pooled, re-split 70/20/10)
    val_fraction: float = 0.1  # RAF-DB, imagefolder: validation share carved out of train (synthetic: 70/15/15)
    split_seed: int = 0  # seed of every re-split
    synthetic_n: int = 8400  # synthetic images in all splits together
    synthetic_size: int = 48  # synthetic image side, pixels (48 grey or 100 RGB)
    synthetic_channels: int = 1  # 1 grey, 3 RGB
    synthetic_variant: str = "facs"  # facs | single-region | shortcut (data/synthetic.py)
    shortcut_rate: float = 0.9  # shortcut variant: P(sadness | chin cue) on the training faces
    class_map: str | None = None  # imagefolder: TOML [classes] table folder = "emotion" (default: SYNONYMS)
    image_size: int = 100  # imagefolder: every image centre-cropped and resized to this side, pixels
    carve: bool = False  # imagefolder without split folders: carve train/val/test (else every image is test)
    cache: bool = True  # decode once, reuse the tensor file while the source is unchanged
    limit_train: int | None = None  # a stratified subset of N training faces, for a quick look at real data

    def __post_init__(self) -> None:
        limits = {"val_fraction": (0.0, 0.9), "synthetic_n": (1, None), "limit_train": (1, None)}
        check_fields(self, limits | {"synthetic_size": (8, None), "image_size": (8, None), "shortcut_rate": (0.0, 1.0)})
        if self.classes not in (7, 8):
            raise ConfigError(f"classes must be 7 or 8, got {self.classes!r}")
        if self.synthetic_channels not in (1, 3):
            raise ConfigError(f"synthetic_channels must be 1 or 3, got {self.synthetic_channels!r}")


@dataclass(frozen=True)
class AugmentConfig:
    rotation: float = 10.0  # degrees, uniform in [-rotation, rotation]
    scale: float = 0.1  # uniform factor in [1 - scale, 1 + scale]
    flip: bool = True  # horizontal flip with probability 0.5
    translate: float = 0.0  # shift along each axis, uniform in [-translate, translate] of the side of the source
    # image, applied before the zoom and rotation (so up to about 1.27x that in the output at scale 0.1, 10 deg)
    erase: float = 0.0  # probability of random erasing (Zhong et al. 2017): one box set to the mean

    def __post_init__(self) -> None:
        limits = {"rotation": (0.0, 180.0), "scale": (0.0, 0.9), "translate": (0.0, 0.5), "erase": (0.0, 1.0)}
        check_fields(self, limits)


@dataclass(frozen=True)
class TrainConfig:
    model: str = "seed_vgg"
    input_size: int | None = None  # model input side, pixels; None = the model's default
    in_channels: int | None = None  # None = the model's default
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.001
    optimizer: str = "adam"  # adam | adamw | sgd
    momentum: float = 0.0  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0
    schedule: str = "plateau"  # plateau (Keras' reduce-on-plateau, per epoch) | onecycle (per batch)
    warmup: float = 0.25  # onecycle: share of all steps spent raising the rate to `lr`, then annealed to ~0
    anneal: str = "cos"  # onecycle: cos | linear
    lr_factor: float = 0.1  # reduce-on-plateau multiplier
    lr_patience: int = 3  # epochs without improvement of `monitor` before lr *= lr_factor
    min_lr: float = 0.0
    early_stop_patience: int | None = None  # epochs without improvement before stopping; None = never
    monitor: str = "val_loss"  # val_loss | val_acc: picks the best epoch and drives the schedule
    restore_best: bool = True  # evaluate and keep the best epoch's weights, else the last epoch's
    label_smoothing: float = 0.0  # targets mixed with the uniform distribution by this share
    ema_decay: float | None = None  # per-step decay of an exponential moving average of the weights (None = off);
    # validation, the kept checkpoint and the test use the averaged weights
    tta_flip: bool = False  # evaluate on each image and its mirror image (mean of the logits); the checkpoint says so
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool | None = None  # bf16 autocast; None = on where supported
    channels_last: bool | None = None  # None = on
    threads: int | None = None  # torch CPU threads; None = torch's default
    sync_bn: bool = False  # under torchrun on GPUs: batch norm over the global batch (SyncBatchNorm; not on CPUs)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        limits = {"input_size": (8, None), "epochs": (1, None), "batch_size": (1, None), "lr": (0.0, None)}
        limits |= {"warmup": (0.0, 0.99), "label_smoothing": (0.0, 0.99), "ema_decay": (0.0, 0.99999999)}
        check_fields(self, limits | {"threads": (1, None), "lr_patience": (0, None), "early_stop_patience": (0, None)})


_NESTED = {"augment": AugmentConfig, "data": DataConfig}
# Settings earlier versions wrote that are now read elsewhere: {name: value it must have, or None for any}.
# soft_labels: training uses the votes exactly when the data carries them (FER+'s label_mode soft).
_RETIRED = {"soft_labels": True}


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if cls is TrainConfig:
        values = dict(values)
        for name, allowed in _RETIRED.items():
            if name in values and values.pop(name) != allowed:
                raise ConfigError(f"{where}: {name} = false is no longer read; use [data] label_mode = \"plurality\"")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}"
        )
    kwargs = {}
    for key, value in values.items():
        if key in _NESTED and isinstance(value, dict):
            value = _build(_NESTED[key], value, f"{where} [{key}]")
        kwargs[key] = value
    return cls(**kwargs)


def load_config(path: str | Path) -> TrainConfig:
    """A TrainConfig from TOML: top-level training keys, [data] and [augment] tables."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"config file not found: {path}")
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise MalformedDataError(f"{path}: not valid TOML ({e})") from None
    values.pop("description", None)
    return _build(TrainConfig, values, str(path))


def override(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """Apply CLI overrides; `data.root` style keys reach nested tables; None means 'not given'."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        if value is None:
            continue
        if "." in key:
            table, name = key.split(".", 1)
            nested.setdefault(table, {})[name] = value
        else:
            top[key] = value
    for table, values in nested.items():
        top[table] = dataclasses.replace(getattr(cfg, table), **values)
    return dataclasses.replace(cfg, **top)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(values: dict[str, Any]) -> TrainConfig:
    return _build(TrainConfig, values, "config")


# `facexai train DATASET` without --config runs that data set's reference recipe
# (the same settings as experiments/<recipe>.toml; a test keeps the two in step).
_SEED_A = {
    "batch_size": 128,
    "epochs": 50,
    "lr": 0.01,
    "early_stop_patience": 7,
    "lr_patience": 5,
    "input_size": 48,
    "in_channels": 1,
    "augment": {"rotation": 0.0, "scale": 0.0, "flip": False},
    "data": {"dataset": "fer2013", "split": "seed-a"},
}
RECIPES: dict[str, dict[str, Any]] = {
    "ferplus": {"lr": 0.01, "data": {"dataset": "ferplus"}},  # seed B, FER+
    "rafdb": {"lr": 0.001, "data": {"dataset": "rafdb"}},  # seed B, RAF-DB
    "fer2013": _SEED_A,  # seed A baseline
    # the demo's: 3 epochs of one-cycle Adam (peak 0.005) reach the 5 constant-rate epochs' accuracy (96.27% against
    # 96.19% test, one seed each), so `make demo` fits in 5 minutes on a CPU without hardware bf16
    "synthetic": {
        "epochs": 3, "input_size": 48, "in_channels": 1, "lr": 0.005, "schedule": "onecycle", "warmup": 0.25,
        "restore_best": False, "data": {"dataset": "synthetic"},
    },
    # the user's own labelled folder: the fast FER+ recipe's training (experiments/ferplus_fast.toml; a test
    # keeps them in step), on splits carved from a flat folder
    "imagefolder": {
        "model": "seed_vgg_gap", "input_size": 48, "in_channels": 3, "epochs": 26, "batch_size": 64, "lr": 0.01,
        "schedule": "onecycle", "warmup": 0.25, "restore_best": False, "ema_decay": 0.999, "tta_flip": True,
        "data": {"dataset": "imagefolder", "carve": True},
    },
}


def recipe(dataset: str) -> TrainConfig:
    """The default TrainConfig for a data set (each data set in DATASETS has one)."""
    return _build(TrainConfig, RECIPES[check_dataset(dataset)], f"recipe {dataset}")
