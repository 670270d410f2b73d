"""Multi-process training with PyTorch DistributedDataParallel under ``torchrun``.

``bso-deploy train`` checks the environment that torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``). With more than one process it joins the process group (gloo on CPU,
nccl on CUDA), wraps the per-step forward in ``DistributedDataParallel`` so that every backward pass
all-reduces (averages) the gradients before any optimizer step, and shards the training set with a
``DistributedSampler``. Identical averaged gradients and identical optimizer state mean every rank takes
the same flip decisions; :func:`assert_replicas_identical` checks that after each epoch. BatchNorm buffers
are broadcast from rank 0 at every forward (DDP's ``broadcast_buffers``). Only rank 0 writes files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_environment() -> DistributedContext:
    """The torchrun environment, or a single-process context when it is absent."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    return DistributedContext(rank=int(os.environ["RANK"]), world_size=world_size,
                              local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def initialize(context: DistributedContext, device: torch.device) -> None:
    if context.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


class _StepModule(nn.Module):
    """Presents ``model.step`` as ``forward`` so DDP can hook the per-step forward/backward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.step(x)


class DistributedStepper:
    """What the batch trainers see (``reset_state``/``step``) with DDP's gradient all-reduce inside."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model = model
        device_ids = [device.index] if device.type == "cuda" else None
        self.ddp = DistributedDataParallel(_StepModule(model), device_ids=device_ids, broadcast_buffers=True)

    def reset_state(self) -> None:
        self.model.reset_state()

    def step(self, x: Tensor) -> Tensor:
        return self.ddp(x)

    def train(self, mode: bool = True) -> DistributedStepper:
        self.model.train(mode)
        return self


def synchronize_buffers(context: DistributedContext, model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank. DDP broadcasts them at the start
    of each forward, so after the last forward of an epoch each rank still holds its own local update."""
    if context.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def replica_digest(model: nn.Module, optimizers) -> str:
    """SHA-256 over model state and both optimizers' tensor state (bitwise)."""
    digest = hashlib.sha256()
    tensors = list(model.state_dict().values())
    for optimizer in (optimizers.binary, optimizers.full_precision):
        for group in optimizer.param_groups:
            for p in group["params"]:
                tensors += [v for v in optimizer.state[p].values() if torch.is_tensor(v)]
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def assert_replicas_identical(context: DistributedContext, model: nn.Module, optimizers) -> None:
    """Raise on every rank if any rank's weights or optimizer state differ from rank 0's."""
    if not context.enabled:
        return
    digests: list[str | None] = [None] * context.world_size
    dist.all_gather_object(digests, replica_digest(model, optimizers))
    if len(set(digests)) != 1:
        raise RuntimeError(f"distributed replicas diverged: state digests per rank {digests}")
