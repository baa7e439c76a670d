"""Classification metrics and the loss, on cases small enough to count by hand."""

import pytest
import torch
import torch.nn.functional as F

from facexai.emotions import SEVEN
from facexai.metrics import confusion_matrix, soft_cross_entropy, summarize


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    true, pred = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 0, 2])
    assert confusion_matrix(pred, true, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_summary_names_every_class_by_word_and_skips_absent_classes_in_the_mean_recall():
    true, pred = torch.tensor([0, 0, 1, 1, 1, 3]), torch.tensor([0, 1, 1, 1, 0, 3])
    m = summarize(pred, true, SEVEN, loss=0.5)
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(4 / 6) and m["loss"] == 0.5
    assert m["per_class_recall"]["neutral"] == 0.5 and m["per_class_recall"]["happiness"] == pytest.approx(2 / 3)
    assert m["counts"]["surprise"] == 0 and m["per_class_recall"]["surprise"] == 0.0
    assert m["mean_class_recall"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)  # three classes have images
    assert m["classes"] == [str(e) for e in SEVEN] and len(m["confusion_matrix"]) == 7


def test_soft_cross_entropy_is_cross_entropy_for_one_hot_targets():
    logits, labels = torch.randn(5, 7), torch.tensor([0, 3, 6, 2, 2])
    assert soft_cross_entropy(logits, F.one_hot(labels, 7).float()) == pytest.approx(
        F.cross_entropy(logits, labels).item(), rel=1e-6
    )
    votes = torch.tensor([[0.5, 0.5, 0, 0, 0, 0, 0]])
    by_hand = -0.5 * (F.log_softmax(logits[:1], 1)[0, 0] + F.log_softmax(logits[:1], 1)[0, 1])
    assert soft_cross_entropy(logits[:1], votes) == pytest.approx(by_hand.item(), rel=1e-6)


