"""facexai: which face regions drive a facial-emotion CNN's predictions, measured."""

from facexai.config import DataConfig, TrainConfig, load_config, recipe
from facexai.data import FaceDataset, load_dataset
from facexai.emotions import Emotion
from facexai.models import create_model, list_models
from facexai.training import evaluate, fit, load_checkpoint

# `train` is the CLI's verb; fit is the same function
train = fit

__all__ = [
    "DataConfig",
    "Emotion",
    "FaceDataset",
    "TrainConfig",
    "create_model",
    "evaluate",
    "fit",
    "list_models",
    "load_checkpoint",
    "load_config",
    "load_dataset",
    "recipe",
    "train",
]
