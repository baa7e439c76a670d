"""Many processes through torchrun: who this process is, and the few collective steps facexai needs.

`torchrun --nproc-per-node N -m facexai ...` starts N processes with RANK, WORLD_SIZE and LOCAL_RANK set;
`setup` joins them into one process group (gloo on the CPU, NCCL on GPUs). With WORLD_SIZE unset (a plain
`facexai ...`) there is one process and every function here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes files and prints (rank 0)."""
        return self.rank == 0


def world() -> World:
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))  # fmt: skip


def setup(device_type: str = "cpu") -> World:
    """Join the process group (once) when there are several processes."""
    w = world()
    if w.size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return w


def device(device: torch.device) -> torch.device:
    """On GPUs each process takes its own (cuda:LOCAL_RANK); on the CPU they share it."""
    w = world()
    if device.type == "cuda" and w.size > 1:
        return torch.device("cuda", w.local_rank)
    return device


def broadcast(obj: Any) -> Any:
    """Rank 0's value of a picklable object, on every rank."""
    if world().size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(values: list[float]) -> list[float]:
    """The element-wise sum over every rank of a few numbers (float64)."""
    if world().size == 1:
        return values
    # NCCL reduces only tensors on this process's GPU; gloo those on the CPU
    on = torch.device("cuda", world().local_rank) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=on)
    dist.all_reduce(t)
    return t.tolist()


def all_gather(obj: Any) -> list[Any]:
    """Every rank's object, in rank order, on every rank."""
    if world().size == 1:
        return [obj]
    out: list[Any] = [None] * world().size
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if world().size > 1:
        dist.barrier()


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (batch-norm running statistics) on every rank, in place: each process updates its own
    from its share of the batch, so they part after a training step."""
    if world().size == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)
