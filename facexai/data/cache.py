"""Decode a data set once; cache it as a tensor file keyed by a fingerprint of the source."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from facexai.data.base import FaceDataset
from facexai.io.files import atomic_save

CACHE_VERSION = 2  # bump when a loader's output changes for the same source


def cache_dir() -> Path:
    """$FACEXAI_CACHE, else ~/.cache/facexai."""
    return Path(os.environ.get("FACEXAI_CACHE", Path.home() / ".cache" / "facexai"))


def fingerprint(files: Iterable[Path], options: dict[str, Any]) -> str:
    """sha256 over every source file's path, size and mtime plus the loader options."""
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, **options}, sort_keys=True, default=str).encode())
    for f in sorted(str(p) for p in files):
        st = os.stat(f)
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def tree_files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Every file under `root` whose name ends in one of `suffixes` (fast scandir walk)."""
    out: list[Path] = []
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir():
                    stack.append(e.path)
                elif e.name.lower().endswith(suffixes):
                    out.append(Path(e.path))
    return out


def cached(name: str, key: str, build: Callable[[], FaceDataset], use_cache: bool = True) -> FaceDataset:
    """Load `name-key.pt` from the cache, or build, save atomically and return it."""
    if not use_cache:
        return build()
    path = cache_dir() / f"{name}-{key}.pt"
    if path.exists():
        try:
            return FaceDataset.from_state(torch.load(path, weights_only=True))
        except Exception:  # a stale or damaged cache is rebuilt, never trusted
            path.unlink(missing_ok=True)
    ds = build()
    atomic_save(ds.to_state(), path)
    return ds
