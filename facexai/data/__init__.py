"""Data sets by name: load_dataset("ferplus", root=...) -> FaceDataset."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import torch

from facexai.config import DATASETS, DataConfig, check_dataset
from facexai.data.base import SPLITS, FaceDataset, stratified_split


def list_datasets() -> list[str]:
    return list(DATASETS)


def load_dataset(name: str | DataConfig, root: str | None = None, **options: Any) -> FaceDataset:
    """Decode (or fetch from cache) a data set; options are DataConfig fields."""
    cfg = name if isinstance(name, DataConfig) else DataConfig(dataset=name, root=root, **options)
    if cfg.root is not None:
        cfg = dataclasses.replace(cfg, root=str(cfg.root))
    # the loader of data set "x" is the module facexai.data.x, with `load(cfg: DataConfig) -> FaceDataset`
    data = importlib.import_module(f"facexai.data.{check_dataset(cfg.dataset)}").load(cfg)
    return data if cfg.limit_train is None else limit_train(data, cfg.limit_train, cfg.split_seed)


def limit_train(data: FaceDataset, n: int, seed: int) -> FaceDataset:
    """Only n training faces, stratified by class (seeded); val and test whole: a quick look at real data."""
    train = (data.split == SPLITS.index("train")).nonzero().flatten()
    if n >= len(train):
        return data
    part = stratified_split(data.labels[train], (n / len(train), 1 - n / len(train)), seed)
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[train[part == 1]] = False
    limited = data.select(keep)
    return dataclasses.replace(limited, meta={**data.meta, "limit_train": {"kept": n, "of": len(train)}})


__all__ = ["SPLITS", "FaceDataset", "DataConfig", "load_dataset", "list_datasets"]
