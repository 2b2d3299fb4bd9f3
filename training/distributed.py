"""Devices and DistributedDataParallel: which device a run uses, and the few collective calls the loop makes.

A plain `python -m training.run` is a world of one and never touches torch.distributed;
`torchrun --nproc_per_node=N -m training.run ...` sets RANK/WORLD_SIZE/LOCAL_RANK (NCCL on CUDA,
gloo on CPU).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available (use --device auto or cpu)")
    return torch.device(name)


def check_amp(amp: str, device: torch.device) -> None:
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device (its loss scaling is CUDA-only); on CPU use --amp bf16")


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_from_env() -> Distributed:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; a plain `python -m` run is a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Distributed(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(dist_info: Distributed, device: torch.device) -> torch.device:
    """Join the process group (a no-op for a world of one); the device this rank trains on."""
    if not dist_info.enabled:
        return device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def close_distributed(dist_info: Distributed) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(dist_info: Distributed) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_mean(values: list[float], device: torch.device) -> list[float]:
    """The mean over ranks of a few floats (the log window's sums)."""
    import torch.distributed as dist

    t = torch.tensor(values, device=device)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def wrap_ddp(module: nn.Module, dist_info: Distributed, device: torch.device) -> nn.Module:
    """`module` wrapped in DistributedDataParallel when the world is larger than one, else itself."""
    if not dist_info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(module, device_ids=[device.index] if device.type == "cuda" else None)
