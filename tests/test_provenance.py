"""What produced a result is recorded: command, config, commit, versions, device, times."""

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from facexai.provenance import command, device_info, git_commit, provenance, versions

ROOT = Path(__file__).resolve().parents[1]


def test_a_record_holds_everything_a_result_needs_to_be_rerun():
    rec = provenance({"epochs": 3}, "cpu", "2026-01-01T00:00:00+00:00", "abc123", bf16=False)
    assert rec["config"] == {"epochs": 3} and rec["git_commit"] == "abc123" and rec["bf16"] is False
    assert rec["started"] == "2026-01-01T00:00:00+00:00" and rec["finished"] >= rec["started"]
    assert {"python", "torch", "captum", "grad-cam"} <= set(rec["versions"]) == set(versions())
    assert rec["command"] == command()


def test_the_cpu_is_named_with_its_thread_count_and_vector_capability():
    info = device_info("cpu")
    assert info["type"] == "cpu" and info["name"] and info["threads"] == torch.get_num_threads()
    assert info["capability"] == torch.backends.cpu.get_cpu_capability()


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_the_commit_is_head_marked_dirty_when_tracked_files_changed():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()  # fmt: skip
    assert git_commit() == head + ("-dirty" if dirty else "")
