"""A data set is decoded once and cached under a fingerprint of its source files and options."""

import os
from pathlib import Path

import torch
from formats import cache_files, touch

from facexai.data.base import FaceDataset
from facexai.data.cache import cache_dir, cached, fingerprint
from facexai.emotions import SEVEN


def tiny() -> FaceDataset:
    n = 4
    return FaceDataset("tiny", SEVEN, torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.arange(n),
                       torch.zeros(n, dtype=torch.long), [f"i{i}" for i in range(n)])  # fmt: skip


def test_the_fingerprint_follows_the_files_size_time_and_the_options(tmp_path):
    f = tmp_path / "a.png"
    f.write_bytes(b"x")
    key = fingerprint([f], {"size": 48})
    assert fingerprint([f], {"size": 48}) == key
    assert fingerprint([f], {"size": 100}) != key
    touch(f)
    assert fingerprint([f], {"size": 48}) != key


def test_a_cached_data_set_is_built_once_and_read_back_equal():
    calls = []

    def build():
        calls.append(1)
        return tiny()

    a = cached("tiny", "k1", build)
    b = cached("tiny", "k1", build)
    assert len(calls) == 1 and torch.equal(a.images, b.images) and b.ids == a.ids
    assert [p.name for p in cache_files()] == ["tiny-k1.pt"]
    assert cache_dir() == cache_files()[0].parent == Path(os.environ["FACEXAI_CACHE"])


def test_a_damaged_cache_file_is_rebuilt_and_the_cache_can_be_switched_off():
    cached("tiny", "k2", tiny)
    (path,) = cache_files()
    path.write_bytes(b"not a tensor file")
    assert cached("tiny", "k2", tiny).ids == tiny().ids  # rebuilt, never trusted
    assert path.read_bytes()[:4] != b"not "
    cached("tiny", "k3", tiny, use_cache=False)
    assert [p.name for p in cache_files()] == ["tiny-k2.pt"]  # nothing written
