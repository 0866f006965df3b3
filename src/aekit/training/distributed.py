"""Several processes and machines through PyTorch's own engine: ``torchrun`` and DDP.

``torchrun --nproc-per-node N -m aekit train ...`` starts N copies of the CLI with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their environment; :func:`setup`
joins them into one process group (gloo on CPUs, NCCL on GPUs). There is no launcher of our own.

The trainer then wraps the model in ``DistributedDataParallel``; every rank draws the same
permutation (same seed) and takes its own contiguous share of each global batch, so that the
averaged gradient is the gradient of the whole global batch: the same step as one process
with ``--batch-size`` equal to the global batch. Only rank 0 writes checkpoints, logs, figures.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True in a single process, and on rank 0 of a group."""
    return rank() == 0


def setup(device: str = "auto") -> bool:
    """Join the process group torchrun describes in the environment; False when not under torchrun.

    The backend is NCCL when the processes train on CUDA GPUs, gloo otherwise.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def local_device(device: torch.device) -> torch.device:
    """Each rank on a GPU of its own (``LOCAL_RANK``) when training on CUDA."""
    if device.type == "cuda" and world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def from_main(value: str) -> str:
    """Rank 0's ``value`` on every rank (e.g. the run directory it chose); itself in one process."""
    if world_size() <= 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard() -> tuple[int, int] | None:
    """``(rank, world_size)`` under torchrun, for :class:`aekit.data.batches.Batches`; None alone."""
    return (rank(), world_size()) if world_size() > 1 else None


def _collective_device() -> torch.device:
    """NCCL reduces tensors on this rank's GPU; gloo on the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_true(flag: bool) -> bool:
    """True on every rank only if ``flag`` is true on every rank."""
    if world_size() <= 1:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def mean_across_ranks(values: dict[str, float], weight: float) -> dict[str, float]:
    """Weighted means of ``values`` over the ranks (each rank's ``weight`` is its sample count)."""
    if world_size() <= 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor(
        [values[k] * weight for k in keys] + [weight], dtype=torch.float64, device=_collective_device()
    )
    dist.all_reduce(t)
    return {k: float(v) / float(t[-1]) for k, v in zip(keys, t[:-1], strict=True)}
