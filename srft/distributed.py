"""The processes of a run and what they share.

A run started by accelerate's launcher has one process per device. Every process runs the same
code; a number that drives a decision is reduced over all of them first, so that every process
decides alike, and only the main process writes artifacts. A plain process is a world of one:
every function here is then the identity, and none of them imports torch (a process that has not
imported torch has no process group).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def _group() -> Any | None:
    """torch.distributed when a process group is up, else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def world_size() -> int:
    """How many processes run this pipeline."""
    dist = _group()
    return dist.get_world_size() if dist is not None else 1


def rank() -> int:
    """This process's number, 0 for the main process."""
    dist = _group()
    return dist.get_rank() if dist is not None else 0


def is_main() -> bool:
    """Whether this is the process that writes artifacts."""
    return rank() == 0


def barrier() -> None:
    """Wait until every process is here (after the main process wrote what the others read)."""
    dist = _group()
    if dist is not None and dist.get_world_size() > 1:
        dist.barrier()


def leave() -> None:
    """Wait for every process, then take this one out of the process group: a process that
    exits with the group up can abort at interpreter exit, while gloo's threads still hold
    tensors."""
    dist = _group()
    if dist is not None:
        barrier()
        dist.destroy_process_group()


def all_sum(values: Sequence[float]) -> list[float]:
    """The element-wise sums of `values` over all processes (float64)."""
    dist = _group()
    if dist is None or dist.get_world_size() == 1:
        return [float(v) for v in values]
    import torch

    totals = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device())
    dist.all_reduce(totals)
    return totals.tolist()


def all_gather(obj: T) -> list[T]:
    """Every process's `obj`, in rank order, on every process."""
    dist = _group()
    if dist is None or dist.get_world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def from_main(obj: T) -> T:
    """The main process's `obj`, on every process."""
    dist = _group()
    if dist is None or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def by_main(work: Callable[[], T]) -> T:
    """`work()` done by the main process alone (a judge's calls, which may cost money, need not
    be made once per process), its result on every process."""
    return from_main(work() if is_main() else None)


def gather_chunks(
    n_chunks: int, work: Callable[[int], T], idle: Callable[[], object] | None = None
) -> list[T]:
    """`work(c)` for every chunk c in 0..n_chunks-1, each chunk done by one process (c modulo
    the number of processes), returned in chunk order on every process. The result does not
    depend on how many processes share the work when `work(c)` depends on c alone. With
    `idle` (for work that runs only with every process at once, such as a sharded model's
    forward), a process with a chunk fewer than the others calls `idle` in its place."""
    size = world_size()
    mine = {c: work(c) for c in range(rank(), n_chunks, size)}
    if idle is not None:
        for _ in range(-(-n_chunks // size) - len(mine)):
            idle()
    if size == 1:
        return [mine[c] for c in range(n_chunks)]
    merged: dict[int, T] = {}
    for part in all_gather(mine):
        merged.update(part)
    return [merged[c] for c in range(n_chunks)]


def share(items: Sequence[T]) -> list[T]:
    """This process's equal, contiguous share of `items` (whose length the number of processes
    divides: a global batch)."""
    size = world_size()
    if len(items) % size:
        raise ValueError(f"{len(items)} items do not split evenly over {size} processes")
    per = len(items) // size
    start = rank() * per
    return list(items[start : start + per])


def _device() -> Any:
    import torch

    dist = _group()
    if dist is not None and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
