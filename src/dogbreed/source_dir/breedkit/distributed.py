"""torch.distributed data parallel, set up from the launcher's environment.

torchrun (and SageMaker's `torch_distributed` distribution, which runs torchrun) sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Without them the job is one process and
every helper here is a no-op, so the training loop has one code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(world: World, requested: str = "auto") -> torch.device:
    """cuda > mps > cpu, or what --device asks for; one GPU per local rank."""
    if requested == "auto":
        if torch.cuda.is_available():
            requested = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            requested = "mps"
        else:
            requested = "cpu"
    if requested == "cuda":
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return torch.device(requested)


def init(world: World, device: torch.device) -> None:
    if world.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=world.rank, world_size=world.size)


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def sum_across(world: World, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over all ranks (float64, so counts stay exact)."""
    if not world.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_object(world: World, value: object) -> object:
    """Rank 0's value on every rank (e.g. the checkpoint it read)."""
    if not world.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_objects(world: World, value: object) -> list[object]:
    """Every rank's value, in rank order, on every rank."""
    if not world.distributed:
        return [value]
    holder: list[object] = [None] * world.size
    dist.all_gather_object(holder, value)
    return holder
