"""Several processes per stage (PyTorch DDP): torchrun launched by the stage itself, ranks, shares of the work,
agreement at safe points, one writer.

DVC runs a stage's command as one process and never spreads stages over machines, so with
``runtime.nproc x runtime.nnodes > 1`` that process becomes the launcher: it runs torchrun's own code
(``torch.distributed.run``) on the same stage script, one worker per GPU (or CPU process), waits, and turns what
went wrong into one line. Workers join one process group (NCCL on CUDA, gloo on CPU); rank 0 writes every output
and checkpoint. With one process nothing here starts: no launcher, no process group, every helper is the identity.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from dreaming_data.config import RuntimeConfig
from dreaming_data.errors import UserError

USER_ERROR_EXIT = 2  # what a stage exits with after printing its one-line error (runner.fail)
_collective_device = torch.device("cpu")  # gloo reduces CPU tensors, NCCL CUDA ones


def in_worker() -> bool:
    """True inside a process that torchrun started (it sets these for every worker)."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0)) if dist.is_initialized() else 0


# ---------------------------------------------------------------------------------------------------------
# Launching


def torchrun_args(runtime: RuntimeConfig, run_id: str, script: list[str]) -> list[str]:
    """torchrun's command-line arguments for ``script`` (a stage script and its arguments)."""
    args = [f"--nproc-per-node={runtime.nproc}", f"--nnodes={runtime.nnodes}"]
    if runtime.nnodes == 1:
        args.append("--standalone")  # a free local port, no rendezvous server to name
    else:
        args += ["--rdzv-backend=c10d", f"--rdzv-endpoint={runtime.rdzv_endpoint}", f"--rdzv-id={run_id}"]
    return args + script


def launch_command(runtime: RuntimeConfig, run_id: str, script: list[str]) -> list[str]:
    """The command that runs torchrun on every node of a SLURM allocation (``runtime.nnodes`` > 1): the same
    torchrun on each node, meeting at ``runtime.rdzv_endpoint``."""
    return ["srun", f"--nodes={runtime.nnodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            sys.executable, "-m", "torch.distributed.run", *torchrun_args(runtime, run_id, script)]


def launch(runtime: RuntimeConfig, label: str, script: list[str]) -> None:
    """Run ``script`` (``[path, *args]``) in ``runtime.nproc`` processes per node under torchrun and wait.

    Raises ``UserError`` (one line) when a worker fails: a worker's own one-line error or traceback is already on
    stderr; ``KeyboardInterrupt`` when the launcher was interrupted (torchrun passed the signal to the workers,
    which save a checkpoint at their next safe point)."""
    if runtime.num_workers > 0:  # torchrun would otherwise set 1 thread per process on the CPU
        os.environ["OMP_NUM_THREADS"] = str(runtime.num_workers)
    if runtime.nnodes > 1:
        try:
            rc = subprocess.call(launch_command(runtime, label.replace("@", "-"), script))
        except FileNotFoundError:
            raise UserError("runtime.nnodes > 1 launches with srun (SLURM), which is not on PATH; run inside a SLURM "
                            "allocation or set runtime.nnodes: 1") from None
        if rc != 0:
            raise UserError(f"{label}: srun / torchrun on {runtime.nnodes} nodes exited with code {rc} (see above)")
        return
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed.elastic")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # its notes on failures and signals: said below, once
    try:
        run(parse_args(torchrun_args(runtime, label, script)))
    except SignalException:
        raise KeyboardInterrupt from None
    except ChildFailedError as exc:
        codes = {r: f.exitcode for r, f in exc.failures.items()}
        if codes.get(0) == USER_ERROR_EXIT:  # rank 0 printed the reason
            raise SystemExit(USER_ERROR_EXIT) from None
        r, code = min(codes.items())
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise UserError(f"{label}: process {r} of {runtime.world_size} {how} (its output is above)") from None


@contextlib.contextmanager
def session(runtime: RuntimeConfig) -> Iterator[None]:
    """Inside a torchrun worker: join the process group (NCCL on CUDA, gloo on CPU) for the block; ranks other
    than 0 print nothing to stdout. Outside torchrun: nothing."""
    global _collective_device
    if not in_worker():
        yield
        return
    cuda = runtime.device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        _collective_device = torch.device("cuda", torch.cuda.current_device())
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=60))
    quiet = None
    if dist.get_rank() != 0:
        quiet = open(os.devnull, "w")
        sys.stdout = quiet
    try:
        yield
    finally:
        dist.destroy_process_group()
        if quiet is not None:
            sys.stdout = sys.__stdout__
            quiet.close()


# ---------------------------------------------------------------------------------------------------------
# Collectives (identities with one process)


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def any_rank(*flags: bool) -> list[bool]:
    """Each flag, true on every rank when it is true on any (one all-reduce)."""
    if world_size() == 1:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=_collective_device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The sum of a tensor over ranks, in float64 (a copy; the tensor itself with one process)."""
    if world_size() == 1:
        return value
    t = value.detach().to(_collective_device, torch.float64).clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.to(value.device)


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over ranks (the tensor itself with one process)."""
    return value if world_size() == 1 else sum_over_ranks(value) / world_size()


def share(n: int, parts: int | None = None, index: int | None = None) -> slice:
    """This rank's contiguous share of ``range(n)``: sizes differ by at most one, the larger ones first."""
    parts = world_size() if parts is None else parts
    index = rank() if index is None else index
    size, extra = divmod(n, parts)
    start = index * size + min(index, extra)
    return slice(start, start + size + (index < extra))

