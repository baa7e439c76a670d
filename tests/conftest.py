from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Every test gets its own data cache and one torch thread (robust when the cores are shared)."""
    monkeypatch.setenv("FACEXAI_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(1)


def shared_data(*parts: str) -> Path:
    """A path in ../shared/data, or skip the test when a fresh clone has no such folder."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


@pytest.fixture(scope="session")
def real_data_cache(tmp_path_factory):
    """One decoded-data cache for every test that reads ../shared/data, so a real data set decodes once
    per test session (FER+: about 15 s) however many tests read it."""
    return tmp_path_factory.mktemp("real-data-cache")


SYNTHETIC_RUN = Path(__file__).resolve().parent / "fixtures" / "synthetic-small"


@pytest.fixture(scope="module")
def synthetic_subject(tmp_path_factory):
    """The committed small synthetic model (small_cnn, 85% test accuracy) and its first 21 test faces."""
    from facexai.explain.analysis import SubjectConfig, load_subject
    from facexai.runs import open_run

    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEXAI_CACHE", str(tmp_path_factory.mktemp("cache")))
        return load_subject(open_run(SYNTHETIC_RUN, "cpu"), SubjectConfig(limit=21, device="cpu"))
