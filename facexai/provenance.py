"""What produced a result: command, config, commit, versions, device, times."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("torch", "torchvision", "captum", "grad-cam", "scikit-image", "matplotlib", "numpy", "typer", "rich")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    """HEAD of the checkout the package runs from, with '-dirty' if it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def device_info(device: torch.device | str = "cpu") -> dict[str, str | int]:
    device = torch.device(device)
    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device)}
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "type": "cpu",
        "name": cpu,
        "threads": torch.get_num_threads(),
        "capability": torch.backends.cpu.get_cpu_capability(),
    }


def command() -> str:
    """This process's command line, program by its file name."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def provenance(config: dict, device: torch.device | str, started: str, commit: str | None, **extra) -> dict:
    """`commit` is taken when the work starts: HEAD may move while a long run goes on."""
    return {
        "command": command(),
        "config": config,
        "git_commit": commit,
        "versions": versions(),
        "device": device_info(device),
        "started": started,
        "finished": now(),
        **extra,
    }
