"""Several processes per stage (PyTorch DDP): torchrun launched by the stage itself, ranks, shares of the work,
agreement at safe points, one writer.

DVC runs a stage's command as one process and never spreads stages over machines, so with
``runtime.nproc x runtime.nnodes > 1`` that process becomes the launcher: it runs torchrun's own code
(``torch.distributed.run``) on the same stage script, one worker per GPU (or CPU process), and waits. Workers
join one process group (NCCL on CUDA, gloo on CPU); rank 0 writes every output and checkpoint. A worker that
stops on a user mistake or an interruption leaves its one-line reason in a folder the launcher reads, so the
user sees one line whichever rank stopped first. With one process nothing here starts: no launcher, no process
group, every helper is the identity. torch is imported only when needed, so that a stage script starts fast.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dreaming_data.config import RuntimeConfig
from dreaming_data.errors import INTERRUPTED, UserError

ERRORS_ENV = "DREAMING_DATA_ERRORS"  # the folder where workers leave their one-line reason for stopping
LAUNCHER_ENV = "DREAMING_DATA_LAUNCHER"  # the pid of the process that started the workers
_collective_device = None  # gloo reduces CPU tensors, NCCL CUDA ones


def _dist():
    import torch.distributed

    return torch.distributed


def in_worker() -> bool:
    """True inside a process that torchrun started (it sets these for every worker)."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ


def _initialized() -> bool:
    return "torch.distributed" in sys.modules and _dist().is_available() and _dist().is_initialized()


def rank() -> int:
    return _dist().get_rank() if _initialized() else 0


def world_size() -> int:
    return _dist().get_world_size() if _initialized() else 1


def is_main() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0)) if _initialized() else 0


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
    """Several nodes (a SLURM allocation): the same node launcher on every node (``python -m
    dreaming_data.distributed``: torchrun's own code, quiet), meeting at ``runtime.rdzv_endpoint``."""
    return ["srun", f"--nodes={runtime.nnodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            sys.executable, "-m", "dreaming_data.distributed", *torchrun_args(runtime, run_id, script)]


def _quiet_torchrun() -> None:
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # its notes on failures and signals: said once, below


def run_torchrun(args: list[str]) -> tuple[int, int] | None:
    """torchrun with ``args`` in this process: None when every worker succeeded, else the first failure's
    (rank, exit code; negative: killed by that signal). Raises ``KeyboardInterrupt`` when this process was sent
    SIGINT or SIGTERM (torchrun passed it on to the workers and waited up to 30 s for them to save and stop)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)}
    _quiet_torchrun()
    os.environ[LAUNCHER_ENV] = str(os.getpid())
    try:
        run(parse_args(args))
        return None
    except SignalException:
        raise KeyboardInterrupt from None
    except ChildFailedError as exc:
        r, failure = exc.get_first_failure()
        return r, failure.exitcode
    finally:
        del os.environ[LAUNCHER_ENV]
        for s, h in handlers.items():  # torchrun's handlers would outlive it (a later in-process stage)
            signal.signal(s, h)


def launch(runtime: RuntimeConfig, label: str, script: list[str]) -> None:
    """Run ``script`` (``[path, *args]``) in ``runtime.nproc`` processes per node under torchrun and wait.

    Raises ``UserError`` (one line) when a worker stopped: its own reason (a user mistake) or which process failed
    how (a crash, whose traceback is above); ``KeyboardInterrupt`` when the run was interrupted."""
    threads = runtime.num_workers or max(1, (os.cpu_count() or 1) // runtime.nproc)
    Path(".dreaming-data").mkdir(exist_ok=True)  # in the project folder: every node sees it
    with tempfile.TemporaryDirectory(prefix="errors-", dir=".dreaming-data") as errors:
        saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", ERRORS_ENV, "TORCH_CPP_LOG_LEVEL")}
        os.environ["OMP_NUM_THREADS"] = str(threads)  # torchrun would set 1 and say so
        os.environ[ERRORS_ENV] = os.path.abspath(errors)
        # c10d's C++ warnings (a store client seeing its server go when another process stopped first: a dozen
        # lines of stack frames) would bury the one line this launcher says; a user's own level stays
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
        try:
            if runtime.nnodes > 1:
                try:
                    rc = subprocess.call(launch_command(runtime, label.replace("@", "-"), script))
                except FileNotFoundError:
                    raise UserError("runtime.nnodes > 1 launches with srun (SLURM), which is not on PATH; run inside "
                                    "a SLURM allocation or set runtime.nnodes: 1") from None
                failure = None if rc == 0 else (-1, rc)
            else:
                failure = run_torchrun(torchrun_args(runtime, label, script))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        if failure is None:
            return
        reasons = [p.read_text().strip() for p in sorted(Path(errors).glob("rank*.txt"))]
    user = [r for r in reasons if r and r != INTERRUPTED]
    if user:
        raise UserError(user[0])
    if reasons:
        print(file=sys.stderr)  # a worker's progress bar may end mid-line
        raise KeyboardInterrupt
    r, code = failure
    who = f"process {r} of {runtime.world_size}" if r >= 0 else f"srun on {runtime.nnodes} nodes"
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    raise UserError(f"{label}: {who} {how} (its output is above)")


def leave_reason(message: str) -> None:
    """In a worker: write why it stops (one line) where the launcher reads it."""
    folder = os.environ.get(ERRORS_ENV)
    if folder:
        with contextlib.suppress(OSError):
            Path(folder, f"rank{int(os.environ.get('RANK', 0)):05d}.txt").write_text(message + "\n")


def die_with_parent() -> None:
    """In a worker: be killed when the launcher dies (torchrun starts workers in their own session, so a SIGKILL
    of the stage would leave them running: they would go on writing beside a rerun)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    launcher = os.environ.get(LAUNCHER_ENV)
    if launcher and os.getppid() != int(launcher):  # the launcher died before that
        os._exit(1)


@contextlib.contextmanager
def session(runtime: RuntimeConfig) -> Iterator[None]:
    """Inside a torchrun worker: join the process group (NCCL on CUDA, gloo on CPU) for the block; ranks other
    than 0 print nothing to stdout. Outside torchrun: nothing."""
    global _collective_device
    if not in_worker():
        yield
        return
    import torch

    dist = _dist()
    cuda = runtime.device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    _collective_device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
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
        _dist().barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    _dist().all_gather_object(out, obj)
    return out


def _all_reduce(values, op: str):
    import torch

    dist = _dist()
    t = torch.as_tensor(values, dtype=torch.float64).to(_collective_device)
    dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
    return t


def sum_over_ranks(value):
    """The sum of a tensor over ranks, in float64 (a copy; the tensor itself with one process)."""
    if world_size() == 1:
        return value
    return _all_reduce(value.detach().double(), "SUM").to(value.device)


def mean_over_ranks(value):
    """The mean of a tensor over ranks (the tensor itself with one process)."""
    return value if world_size() == 1 else sum_over_ranks(value) / world_size()


class Agreement:
    """When the ranks of a training loop agree on stopping and saving: at every step with one process; with several,
    at steps spaced so that a check comes about every ``seconds`` (rank 0's clock sets the spacing, which every rank
    receives with the flags: one small all-reduce). torchrun waits 30 s for workers to stop after Ctrl-C."""

    def __init__(self, step: int, seconds: float = 3.0):
        self.seconds, self.next, self.every = seconds, step + 1, 1
        self.t_last, self.s_last = time.monotonic(), step

    def due(self, step: int) -> bool:
        return world_size() == 1 or step >= self.next

    def __call__(self, step: int, *flags: bool) -> list[bool]:
        """Each flag, true on every rank when it is true on any (call when ``due``, on every rank)."""
        if world_size() == 1:
            return list(flags)
        now = time.monotonic()
        per_step = (now - self.t_last) / max(1, step - self.s_last)
        proposal = max(1, min(100, int(self.seconds / max(per_step, 1e-6)))) if is_main() else 0
        agreed = _all_reduce([float(f) for f in flags] + [proposal], "MAX").tolist()
        self.every = int(agreed[-1])
        self.next, self.t_last, self.s_last = step + self.every, now, step
        return [bool(v) for v in agreed[:-1]]


def share(n: int, parts: int | None = None, index: int | None = None) -> slice:
    """This rank's contiguous share of ``range(n)``: sizes differ by at most one, the larger ones first."""
    parts = world_size() if parts is None else parts
    index = rank() if index is None else index
    size, extra = divmod(n, parts)
    start = index * size + min(index, extra)
    return slice(start, start + size + (index < extra))


def main() -> None:
    """A node's launcher on several nodes (``srun ... python -m dreaming_data.distributed TORCHRUN-ARGS``): torchrun
    without its log lines; exit 0, 2 (a worker left its reason, or an interruption) or 1."""
    try:
        failure = run_torchrun(sys.argv[1:])
    except KeyboardInterrupt:
        raise SystemExit(2) from None
    raise SystemExit(0 if failure is None else 2 if any(Path(os.environ.get(ERRORS_ENV, "/nonexistent")).glob("*"))
                     else 1)


if __name__ == "__main__":
    main()
