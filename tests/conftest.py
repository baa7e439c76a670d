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
