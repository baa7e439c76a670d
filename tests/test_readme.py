"""The README's Python API example runs exactly as printed (on the committed FER+ model; it needs the
FER+ data beside the repository and is skipped without it)."""

import os
import re
from pathlib import Path

import torch
from conftest import shared_data

ROOT = Path(__file__).resolve().parents[1]


def api_example() -> str:
    section = ROOT.joinpath("README.md").read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_api_example_runs_and_prints_one_table_per_method(monkeypatch, capsys, real_data_cache):
    shared_data("ferplus")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("FACEXAI_CACHE", str(real_data_cache))
    torch.set_num_threads(1)
    code = api_example()
    assert 8 <= len([line for line in code.splitlines() if line.strip()]) <= 12  # about ten lines
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.count("by true emotion") == 2 and "gradcam relevance" in printed
    assert "occlusion probability_drop (blur fill" in printed
    assert all(e in printed for e in ("neutral", "happiness", "surprise", "anger"))
    assert os.environ["FACEXAI_CACHE"] == str(real_data_cache)
