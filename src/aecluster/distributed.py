"""Training across processes with `torchrun`: who this process is, and the few collective steps
the training loop needs.

`torchrun --nproc_per_node=N -m aecluster train ...` starts N copies of the command with RANK,
LOCAL_RANK and WORLD_SIZE set; each joins one process group (gloo on CPUs, nccl on CUDA). Every
process reads the same images and takes its share of each global batch; DistributedDataParallel
averages the gradients, so the recipe's batch size and learning rate hold for the whole group.
Process 0 writes checkpoints and metrics and runs the phases after the autoencoder's epochs.
Without torchrun (WORLD_SIZE unset or 1) every helper here is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

# a checkpoint's metrics embed every training image on process 0 while the others wait
TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class Group:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's share of a global batch of indices."""
        return batch.tensor_split(self.size)[self.rank]

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process on a machine: process `local_rank` takes `cuda:local_rank`."""
        if self.size > 1 and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def sum(self, value: float) -> float:
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item())

    def broadcast(self, obj: object) -> object:
        """Process 0's `obj` on every process."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def launched_group() -> Group:
    """This process's place in a torchrun launch (a group of one without torchrun)."""
    env = os.environ
    return Group(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                 int(env.get("LOCAL_RANK", 0)))  # fmt: skip


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Group]:
    """Join torchrun's process group, once per process (nothing to join without it)."""
    group = launched_group()
    if group.size == 1 or dist.is_initialized():
        yield group
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    yield group
    # all leave together: a process that closes its connections while process 0 is still
    # writing can make gloo abort process 0 (on an error torchrun stops the others instead).
    # The group is left to the process's exit: destroying it raced with gloo's threads and
    # aborted a process now and then ("terminate called without an active exception").
    dist.barrier()


def wrap(module: torch.nn.Module, group: Group, device: torch.device) -> torch.nn.Module:
    """The module, wrapped in DistributedDataParallel when there is more than one process."""
    if group.size == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)
