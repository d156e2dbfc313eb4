"""Distributed data parallel, switched on by torchrun's environment, or by SLURM's when ``srun``
starts one ``cvpt train`` per task (single process otherwise)."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from cvpt.errors import ConfigError

log = logging.getLogger("cvpt.train")

SLURM_PORT_BASE = 15000  # MASTER_PORT = base + job id mod 20000 when the job does not set one


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    launcher: str = "single process"  # torchrun | srun | single process

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> DistInfo:
    """``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; an ``srun`` task of a step with more
    than one task gets them from SLURM (:func:`slurm_environment`). NCCL on GPUs, gloo on
    CPUs. :class:`cvpt.errors.ConfigError` for an srun task whose rendezvous cannot be found."""
    launcher = "torchrun"
    if "RANK" not in os.environ:
        slurm = slurm_environment(os.environ)
        if slurm is None:
            return DistInfo()
        os.environ.update(slurm)  # env:// rendezvous reads them
        launcher = "srun"
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo()
    info = DistInfo(
        int(os.environ["RANK"]),
        int(os.environ["WORLD_SIZE"]),
        int(os.environ.get("LOCAL_RANK", "0")),
        launcher,
    )
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if launcher == "srun" and info.main:
        log.info(
            "srun: %d tasks, rendezvous %s:%s",
            info.world,
            os.environ["MASTER_ADDR"],
            os.environ["MASTER_PORT"],
        )
    return info


def slurm_environment(env) -> dict[str, str] | None:
    """torchrun's variables for an ``srun`` task: ``RANK`` = SLURM_PROCID, ``WORLD_SIZE`` =
    SLURM_STEP_NUM_TASKS (else SLURM_NTASKS), ``LOCAL_RANK`` = SLURM_LOCALID, ``MASTER_ADDR`` =
    the first host of the step's node list (where task 0 runs) unless set, ``MASTER_PORT`` =
    ``SLURM_PORT_BASE`` + job id mod 20000 unless set. ``None`` outside an srun step of more
    than one task: a batch script that runs ``cvpt train`` itself is one process whatever its
    ``--ntasks`` (only srun sets SLURM_STEP_NUM_TASKS). :class:`cvpt.errors.ConfigError` when the
    rendezvous host cannot be found."""
    tasks = env.get("SLURM_STEP_NUM_TASKS")
    if tasks is None or "SLURM_PROCID" not in env:
        return None
    if tasks == "1":
        return None
    out = {
        "RANK": env["SLURM_PROCID"],
        "WORLD_SIZE": tasks,
        "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
    }
    nodes = (
        env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    )
    addr = env.get("MASTER_ADDR") or (first_host(nodes) if nodes else None)
    addr = addr or env.get("SLURM_LAUNCH_NODE_IPADDR")
    if not addr:
        raise ConfigError(
            f"srun started {tasks} tasks, but neither MASTER_ADDR nor SLURM_STEP_NODELIST / "
            "SLURM_NODELIST says where task 0 runs: export MASTER_ADDR, or start one torchrun "
            "per node (docs/training.md, SLURM)"
        )
    job = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or "0"
    port = env.get("MASTER_PORT") or str(SLURM_PORT_BASE + int(job) % 20000)
    return {**out, "MASTER_ADDR": addr, "MASTER_PORT": port}


def first_host(nodelist: str) -> str:
    """The first host of a SLURM host list: ``'gpu[07-09,12],cpu3'`` → ``'gpu07'`` (ranges keep
    their zero padding; every bracket of the first entry takes its first value).
    :class:`cvpt.errors.ConfigError` for a list that is not one."""
    entry, depth = "", 0
    for ch in nodelist.strip():
        if ch == "," and depth == 0:
            break
        depth += {"[": 1, "]": -1}.get(ch, 0)
        entry += ch
    host = re.sub(r"\[([^\]\-,]+)[^\]]*\]", r"\1", entry)
    if not host or any(c in host for c in "[],"):
        raise ConfigError(f"SLURM node list {nodelist!r}: cannot read its first host")
    return host


def cuda_index(info: DistInfo) -> int:
    """This process's GPU: its local rank, or the only GPU it sees (srun --gpus-per-task gives
    each task one). :class:`cvpt.errors.ConfigError` when the local rank has no GPU."""
    count = torch.cuda.device_count()
    if info.local_rank < count:
        return info.local_rank
    if count == 1:
        return 0
    raise ConfigError(
        f"local rank {info.local_rank} ({info.launcher}) but this process sees {count} GPU(s): "
        "start as many processes per node as it has GPUs"
    )


def cleanup() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def all_gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world
    tdist.all_gather_object(out, obj)
    return out


def all_reduce_mean(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    tdist.all_reduce(t)
    return float(t.item()) / info.world


def any_true(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is on any (so that all ranks stop at the same step)."""
    if not info.enabled:
        return flag
    t = torch.tensor([int(flag)], dtype=torch.int64)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        tdist.barrier()
