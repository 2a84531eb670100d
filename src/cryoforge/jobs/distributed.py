"""Many processes, one job: PyTorch's own ``torchrun`` + ``torch.distributed``, nothing home-made.

Under ``torchrun --nproc-per-node N -m cryoforge.cli …`` (or ``--nnodes M --node-rank K --rdzv-endpoint HOST:PORT``
over machines) every process runs the same command; ``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``, and :meth:`World.from_env` reads them. A :class:`World` of size 1 is a plain single-process run:
every helper here is then a no-op, so a job written for a world behaves exactly as before without one.

- Batch jobs split their items into contiguous blocks of whole batches (:func:`shard`), each rank does its block,
  and :func:`gather` brings the blocks to rank 0 in rank order, which is the single-process order.
- Trainers (:mod:`cryoforge.jobs.trainer`) wrap their networks in ``DistributedDataParallel``; only rank 0 writes
  checkpoints and validates; :func:`mean_over_ranks` averages the training metrics the progress shows.

The backend is gloo on CPU, NCCL on GPUs (one GPU per process: ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch



@dataclass(frozen=True)
class World:
    """The place of this process among the processes of one run: ``rank`` of ``size`` (``local_rank`` on its node)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> World:
        """The world ``torchrun`` describes in the environment (size 1 outside torchrun)."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size < 1:
            raise ValueError(f"WORLD_SIZE must be at least 1; got {size}")
        return cls(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))

    def device(self, device: str) -> str:
        """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per process); others unchanged."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.size > 1 else device


def start(world: World, device: str = "cpu") -> None:
    """Join the process group of ``world`` (NCCL for a CUDA device, gloo otherwise); nothing for a world of one or
    a group already joined."""
    if world.size == 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if str(device).startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group(backend, rank=world.rank, world_size=world.size)


def stop(world: World, wait: bool = True) -> None:
    """Leave the process group at the end of a command; with ``wait`` (a command that finished) once every rank has
    come here, without (a failure: the other ranks may never come) at once."""
    if world.size == 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        import gc

        gc.collect()  # the job's DistributedDataParallel wrappers (held in reference cycles) go before their group:
        # left to the interpreter's exit, one was destroyed after it and a rank aborted ("terminate called without an
        # active exception", once in a CI run of the regressor test)
        try:  # every rank leaves together: a rank tearing gloo down while another still talks aborted (1 run in 5)
            if wait:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def shard(n: int, world: World, unit: int = 1) -> range:
    """The contiguous block of this rank: of ``n`` items, cut at multiples of ``unit`` (a batch) so every batch is the one
    a single process would form; the blocks of ranks 0, 1, … in order are ``range(n)``, and rank 0's is never
    empty while there are items (it shows the first batch)."""
    if unit < 1:
        raise ValueError(f"unit must be positive; got {unit}")
    units = -(-n // unit)
    lo = -(-world.rank * units // world.size)  # rounded up: the lower ranks take the odd units, rank 0 first
    hi = -(-(world.rank + 1) * units // world.size)
    return range(min(n, lo * unit), min(n, hi * unit))


def block(batch: Any, world: World) -> Any:
    """The equal share of this rank in a step's global ``batch`` (indices, codes: anything sliceable whose length the world
    size divides): ranks 0, 1, … take consecutive blocks, so together they hold one process's batch."""
    b = len(batch) // world.size
    return batch[world.rank * b:(world.rank + 1) * b]


def gather(obj: Any, world: World) -> list[Any] | None:
    """Every rank's ``obj`` on rank 0 as a list in rank order (None on the other ranks); ``[obj]`` for one rank."""
    if world.size == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] | None = [None] * world.size if world.main else None
    dist.gather_object(obj, out, dst=0)
    return out


def all_gather(obj: Any, world: World) -> list[Any]:
    """Every rank's ``obj`` on every rank, as a list in rank order (``[obj]`` for one rank): for results every rank
    goes on with (the poses of an averaging iteration, a search's updates to a pose table)."""
    if world.size == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def all_cat(blocks: tuple[torch.Tensor, ...], world: World) -> tuple[torch.Tensor, ...]:
    """Each rank's block of rows of some tensors (this rank's :func:`shard` of a job's items) joined in rank order on
    every rank: the tensors a single process computes over all the items. On the device they came from."""
    if world.size == 1:
        return blocks
    import torch

    parts = all_gather(tuple(b.cpu() for b in blocks), world)
    return tuple(torch.cat([p[i] for p in parts]).to(b.device) for i, b in enumerate(blocks))


def broadcast(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if world.size == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(values: dict[str, float], world: World) -> dict[str, float]:
    """Each value averaged over the ranks (every rank must pass the same keys)."""
    if world.size == 1 or not values:
        return values
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / world.size for k, v in zip(keys, t.tolist(), strict=True)}


def any_rank(flag: bool, world: World) -> bool:
    """True on every rank when ``flag`` is true on any (a time limit reached, a stop asked for)."""
    if world.size == 1:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def parallel(module: torch.nn.Module, world: World) -> torch.nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` (gradients averaged over the ranks at ``backward``), or
    ``module`` itself in a world of one."""
    if world.size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    dev = next(module.parameters()).device
    return DistributedDataParallel(module, device_ids=[dev.index] if dev.type == "cuda" else None)


def parallel_loss(modules: dict[str, torch.nn.Module], loss: Callable[..., Any], world: World) -> Callable[..., Any]:
    """``loss`` (a function of a batch running ``modules``) made a ``DistributedDataParallel`` step: called the same
    way, its gradients are averaged over the ranks at ``backward``. For trainables whose networks are not called
    through their ``forward`` alone (a decoder's own methods). ``loss`` itself in a world of one."""
    if world.size == 1:
        return loss
    from torch import nn

    class Together(nn.Module):  # every network of the step, with the loss as forward: what DDP wraps
        def __init__(self) -> None:
            super().__init__()
            self.parts = nn.ModuleDict(modules)

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return loss(*args, **kwargs)

    return parallel(Together(), world)
