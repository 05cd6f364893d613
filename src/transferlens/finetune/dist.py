"""Multi-process data parallelism (CPU: gloo; GPUs: NCCL): the process group, this rank's samples, and reductions.

Launched under ``torchrun`` (``WORLD_SIZE`` > 1) a run joins a gloo process group; the model is wrapped in
``DistributedDataParallel`` by the caller. Sample order follows ``torch.utils.data.DistributedSampler``
(permutation seeded by ``seed + epoch``, padded to a multiple of the world size, rank ``r`` takes
positions ``r, r + W, ...``), so with a per-rank batch ``b`` the union of the ranks' i-th batches is the
single-process batch i of size ``W·b``, and the all-reduced (averaged) gradient is that batch's gradient
(exactly so for models without BatchNorm, whose batch statistics stay per rank).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class DistContext:
    """This process's rank and the world size; ``owns_group`` if :func:`join` created the group."""

    rank: int = 0
    world: int = 1
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise float64 sum over ranks (identity in a single process)."""
        t = torch.tensor(values, dtype=torch.float64)
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t]

    def max(self, value: float) -> float:
        """Maximum over ranks."""
        t = torch.tensor([value], dtype=torch.float64)
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t[0])

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Destroy the process group if this context created it."""
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owns_group = False


def join(device_type: str = "cpu") -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (gloo; with ``device_type="cuda"``, NCCL for CUDA
    tensors and gloo for the CPU reductions); a single-process context otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistContext()
    import torch.distributed as dist

    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("cpu:gloo,cuda:nccl" if device_type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), owns)


def epoch_positions(n: int, seed: int, epoch: int, ctx: DistContext) -> list[int]:
    """This rank's sample positions for ``epoch`` (DistributedSampler order; deterministic by seed)."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(n), num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)
