"""Data sets by name: load_dataset("ferplus", root=...) -> FaceDataset."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from facexai.config import DATASETS, DataConfig, check_dataset
from facexai.data.base import SPLITS, FaceDataset


def list_datasets() -> list[str]:
    return list(DATASETS)


def load_dataset(name: str | DataConfig, root: str | None = None, **options: Any) -> FaceDataset:
    """Decode (or fetch from cache) a data set; options are DataConfig fields."""
    cfg = name if isinstance(name, DataConfig) else DataConfig(dataset=name, root=root, **options)
    if cfg.root is not None:
        cfg = dataclasses.replace(cfg, root=str(cfg.root))
    # the loader of data set "x" is the module facexai.data.x, with `load(cfg: DataConfig) -> FaceDataset`
    return importlib.import_module(f"facexai.data.{check_dataset(cfg.dataset)}").load(cfg)


__all__ = ["SPLITS", "FaceDataset", "DataConfig", "load_dataset", "list_datasets"]
