"""facexai: which face regions drive a facial-emotion CNN's predictions, measured.

Everything a notebook needs is one attribute away and loaded on first use (PEP 562), so that
`import facexai` and `facexai --help` stay fast:

    run = facexai.open_run("results/ferplus-seed-b-48")
    subject = facexai.load_subject(run, facexai.SubjectConfig(limit=32), data_root="data/ferplus")
    rows, _ = facexai.saliency(subject, facexai.ExplainConfig(methods=("gradcam", "ig")))

(README: Python API.)
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

# public name -> the module that defines it
_API = {
    # settings and names
    "TrainConfig": "facexai.config", "DataConfig": "facexai.config", "recipe": "facexai.config",
    "load_config": "facexai.config", "override": "facexai.config", "DATASETS": "facexai.config",
    "Emotion": "facexai.emotions", "FaceRegion": "facexai.facs",
    # data and models
    "FaceDataset": "facexai.data", "load_dataset": "facexai.data", "create_model": "facexai.models",
    "list_models": "facexai.models",
    # runs and training
    "Run": "facexai.runs", "open_run": "facexai.runs", "evaluate": "facexai.runs",
    "load_checkpoint": "facexai.runs", "fit": "facexai.training",
    # explaining
    "SubjectConfig": "facexai.explain.analysis", "ExplainConfig": "facexai.explain.analysis",
    "load_subject": "facexai.explain.analysis", "explain": "facexai.explain.analysis",
    "saliency": "facexai.explain.analysis", "occlusion": "facexai.explain.analysis",
    "attribute": "facexai.explain.methods", "METHODS": "facexai.explain.methods",
    "Attribution": "facexai.explain.base", "Settings": "facexai.explain.base", "Target": "facexai.explain.base",
    "REFERENCES": "facexai.explain.references",
    # tables
    "region_table": "facexai.report.report",
}  # fmt: skip
_ALIASES = {"train": "fit"}  # `train` is the CLI's verb; fit is the same function

__all__ = sorted([*_API, *_ALIASES])


def __getattr__(name: str) -> Any:
    target = _ALIASES.get(name, name)
    if target not in _API:
        if importlib.util.find_spec(f"facexai.{name}") is not None:  # a submodule: facexai.config, ...
            return importlib.import_module(f"facexai.{name}")
        raise AttributeError(f"module 'facexai' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[target]), target)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
