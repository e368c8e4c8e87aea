"""Data parallelism: several processes (GPUs, nodes) share one evaluation by user.

    torchrun --nproc_per_node 4 -m recbench zero-shot --model llama-3 ...
    accelerate launch --num_processes 4 -m recbench zero-shot --model llama-3 ...
    recbench zero-shot ... --shard 3/8          # one job of a SLURM array; then merge (below)

Each process scores the user groups whose index is its rank modulo the world size (a user's
candidates never split) into the shared SQLite score cache (WAL mode: concurrent writers on
one machine are safe). After a barrier, rank 0 reads every score back from the cache and
writes exactly the results file a single process writes. `--shard i/N` does the same without
a process group: each job scores its share and exits; rerunning the command without
`--shard` finds every score cached and writes the results (the merge step). Jobs on nodes
without a shared file system give each its own `--cache-dir` and merge the caches first with
`recbench cache merge`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, TypeVar

from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    launched: bool = False  # a process group (torchrun / accelerate) rather than --shard
    sharded_only: bool = False  # --shard i/N: score this share, write no results

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def take(self, items: Sequence[T]) -> List[T]:
        """This process's share: every world-th item starting at its rank."""
        return list(items[self.rank :: self.world]) if self.active else list(items)


def parse_shard(value: Optional[str]) -> Optional[Shard]:
    """'i/N' (0 <= i < N) -> Shard; None -> None."""
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
    if not m:
        raise ConfigError(f"--shard must look like i/N (e.g. 0/4), got {value!r}")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {value}: need 0 <= i < N")
    return Shard(rank=i, world=n, sharded_only=True)


def detect(shard_setting: Optional[str]) -> Shard:
    """The shard of this process: --shard, else the launcher's RANK/WORLD_SIZE, else single."""
    explicit = parse_shard(shard_setting)
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if explicit is not None:
        if world > 1:
            raise ConfigError("--shard is for separate jobs (e.g. a SLURM array); under torchrun/accelerate "
                              "the launcher's ranks already shard the work")
        return explicit
    if world <= 1:
        return Shard()
    return Shard(rank=int(os.environ.get("RANK", "0")), world=world,
                 local_rank=int(os.environ.get("LOCAL_RANK", "0")), launched=True)


class ProcessGroup:
    """The few collective calls the runner needs, over torch.distributed (gloo on CPU)."""

    def __init__(self, shard: Shard):
        self.shard = shard
        self._dist = None
        if shard.launched:
            try:
                import torch.distributed as dist
            except ImportError:
                raise ConfigError("data-parallel runs need torch (pip install 'recbench[hf]')") from None
            if not dist.is_initialized():
                dist.init_process_group(backend="gloo")
            self._dist = dist

    def barrier(self) -> None:
        if self._dist is not None:
            self._dist.barrier()

    def gather(self, value):
        """Every rank's value, on every rank (a list in rank order)."""
        if self._dist is None:
            return [value]
        out = [None] * self.shard.world
        self._dist.all_gather_object(out, value)
        return out

    def close(self) -> None:
        if self._dist is not None and self._dist.is_initialized():
            self._dist.barrier()
            self._dist.destroy_process_group()
