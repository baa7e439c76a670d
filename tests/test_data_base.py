import torch
from formats import random_image

from facexai.data.base import FaceDataset, train_twins
from facexai.emotions import SEVEN


def test_a_held_out_image_with_an_identical_train_image_points_at_it():
    a, b, c = random_image(1), random_image(2), random_image(3)
    near_b = b.clone()
    near_b[0, 0, 0] ^= 1  # one pixel off: not a twin
    images = torch.stack([a, b, a, a, near_b, c, b])  # (7, 1, 48, 48)
    split = torch.tensor([0, 0, 0, 2, 2, 1, 1])  # train, train, train (a again), test, test, val, val
    data = FaceDataset("twins", SEVEN, images, torch.zeros(7, dtype=torch.long), split, [f"i{i}" for i in range(7)])
    # test a -> first train a (0); test near_b -> none; val c -> none; val b -> train b (1); train rows -1
    assert train_twins(data).tolist() == [-1, -1, -1, 0, -1, -1, 1]


def test_limit_train_keeps_a_stratified_share_of_train_and_all_of_val_and_test():
    from facexai.data import limit_train

    labels = torch.arange(7).repeat_interleave(torch.tensor([40, 20, 10, 10, 10, 6, 4]))  # 100 train faces
    n = len(labels)
    data = FaceDataset("toy", SEVEN, torch.zeros(n + 14, 1, 4, 4, dtype=torch.uint8),
                       torch.cat([labels, torch.arange(7).repeat(2)]), torch.tensor([0] * n + [1] * 7 + [2] * 7),
                       [str(i) for i in range(n + 14)])  # fmt: skip
    small = limit_train(data, 50, seed=0)
    train = small.labels[small.split == 0]
    assert len(train) == 50 and torch.bincount(train, minlength=7).tolist() == [20, 10, 5, 5, 5, 3, 2]
    assert (small.split == 1).sum() == 7 and (small.split == 2).sum() == 7
    assert small.meta["limit_train"] == {"kept": 50, "of": 100}
    assert torch.equal(limit_train(data, 50, seed=0).labels, small.labels)  # seeded
