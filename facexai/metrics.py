"""Classification metrics and the training loss: tensors in, JSON-able numbers out."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facexai.emotions import Emotion


def confusion_matrix(pred: torch.Tensor, true: torch.Tensor, k: int) -> torch.Tensor:
    """(k, k) int64 counts; rows are true classes, columns predicted."""
    return torch.bincount(true * k + pred, minlength=k * k).view(k, k)


def summarize(pred: torch.Tensor, true: torch.Tensor, classes: tuple[Emotion, ...], loss: float | None = None) -> dict:
    """Accuracy, per-class recall, confusion matrix and counts, every class named by word."""
    cm = confusion_matrix(pred.cpu(), true.cpu(), len(classes))
    support = cm.sum(1)
    recall = cm.diag().double() / support.clamp(min=1)
    out = {
        "n": int(support.sum()),
        "accuracy": float(cm.diag().sum() / max(int(support.sum()), 1)),
        "mean_class_recall": float(recall[support > 0].mean()) if (support > 0).any() else 0.0,
        "per_class_recall": {str(c): float(r) for c, r in zip(classes, recall, strict=True)},
        "counts": {str(c): int(s) for c, s in zip(classes, support, strict=True)},
        "classes": [str(c) for c in classes],
        "confusion_matrix": cm.tolist(),
    }
    if loss is not None:
        out["loss"] = loss
    return out


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k t_k log softmax(z)_k; targets (B, K) are distributions."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(1).mean()
