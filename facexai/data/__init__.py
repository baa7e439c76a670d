"""Data sets by name: load_dataset("ferplus", root=...) -> FaceDataset."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from facexai.config import DataConfig
from facexai.data.base import SPLITS, FaceDataset
from facexai.errors import ConfigError

# name -> module with `load(cfg: DataConfig) -> FaceDataset`
_LOADERS = {
    "ferplus": "facexai.data.ferplus",
    "fer2013": "facexai.data.fer2013",
    "rafdb": "facexai.data.rafdb",
    "synthetic": "facexai.data.synthetic",
}


def list_datasets() -> list[str]:
    return list(_LOADERS)


def load_dataset(name: str | DataConfig, root: str | None = None, **options: Any) -> FaceDataset:
    """Decode (or fetch from cache) a data set; options are DataConfig fields."""
    cfg = name if isinstance(name, DataConfig) else DataConfig(dataset=name, root=root, **options)
    if cfg.dataset not in _LOADERS:
        raise ConfigError(f"unknown data set {cfg.dataset!r}; expected one of {', '.join(_LOADERS)}")
    if cfg.root is not None:
        cfg = dataclasses.replace(cfg, root=str(cfg.root))
    return importlib.import_module(_LOADERS[cfg.dataset]).load(cfg)


__all__ = ["SPLITS", "FaceDataset", "DataConfig", "load_dataset", "list_datasets"]
