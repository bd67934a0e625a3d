"""Data parallelism for predictor training (``torchrun --nproc-per-node N -m simjepa_cli train ...``).

Every rank holds identical weights: rank 0's initial weights are broadcast, each rank computes the
gradient of its shard of the global batch, and gradients are averaged with one flat all-reduce.
(Explicit all-reduce instead of the DDP wrapper because one step calls the predictor several times
before ``backward``: teacher forcing then rollout.)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .checkpoints import weights_hash


@dataclass
class Dist:
    """This process's place in the run: its rank, the number of processes and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def device_problem(device: str) -> str | None:
    """Why ``device`` (cpu, cuda, cuda:1 ...) cannot hold tensors here, in one line; None when it can.
    Asked before a long run starts, so a missing GPU is a message, not a traceback minutes in."""
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        return str(exc).splitlines()[0]
    return None


def init_distributed() -> Dist:
    """Join the process group torchrun set up (WORLD_SIZE > 1): nccl on GPU, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return Dist(device=torch.device("cuda" if cuda else "cpu"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    device = torch.device("cpu")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return Dist(rank, dist.get_world_size(), device)


def broadcast_from_main(model: torch.nn.Module, d: Dist) -> None:
    """Give every rank rank 0's weights (a fresh run's random init)."""
    if d.world > 1:
        for p in model.parameters():
            dist.broadcast(p.data, 0)


def all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    """Average ``tensors`` (gradients) over the ranks in place, with one flat all-reduce."""
    if world <= 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    i = 0
    for t in tensors:
        t.copy_(flat[i : i + t.numel()].view_as(t))
        i += t.numel()


def any_rank(flag: bool, d: Dist) -> bool:
    """Whether ``flag`` holds on any rank (so all ranks skip a batch together)."""
    if d.world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def rank_weight_hashes(model: torch.nn.Module, d: Dist) -> list[str]:
    """Every rank's weights hash (they must all be equal)."""
    h = weights_hash({k: v.cpu() for k, v in model.state_dict().items()})
    if d.world <= 1:
        return [h]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, h)
    return out
