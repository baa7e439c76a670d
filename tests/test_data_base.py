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
