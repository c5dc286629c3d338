"""How a stage that may use several processes or GPUs starts: under torchrun when ``runtime.nproc x runtime.nnodes
> 1`` (this process becomes the launcher, ``distributed.launch``), on GPUs no other running stage holds
(``gpus.py``), and as a torchrun worker. Only those stages import it (their ``__main__`` and the library code they
run), so that an edit of the launching or locking code re-runs them and no other stage (``runner.py`` is what every
stage shares)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from dreaming_data import distributed as dd, gpus
from dreaming_data.config import RuntimeConfig, load_params
from dreaming_data.errors import INTERRUPTED, UserError
from dreaming_data.io import outputs
from dreaming_data.runner import check_instance, fail, one_line, record_timing
from dreaming_data.runtime import resolve_device, use_device


def claim_device(cfg: RuntimeConfig) -> torch.device:
    """This process's device: in a torchrun world the GPU of its local rank (the launcher took them); alone on a
    machine with several GPUs and ``runtime.device: auto``, one that no other running stage holds; else
    ``runtime.resolve_device``'s."""
    device = resolve_device(cfg)
    if device.type == "cuda" and dd.world_size() > 1:
        device = torch.device("cuda", dd.local_rank())  # one GPU per process (the launcher took them)
    elif device.type == "cuda" and cfg.device == "auto" and torch.cuda.device_count() > 1:
        device = torch.device("cuda", take_gpus(1))
        torch.cuda.set_device(device)
    return use_device(device)


def take_gpus(n: int) -> int | list[int]:
    """``n`` of this machine's GPUs that no other running stage holds (``gpus.take``), said once: the index of one,
    or the indices of several."""
    count = torch.cuda.device_count()
    first = not gpus._HELD
    taken = gpus.take(n, count)
    if first:
        print(f"gpu: this stage took GPU {', '.join(gpus.visible_ids(count)[i] for i in taken)} of {count} "
              f"(runtime.device: auto; no other running stage holds it)", flush=True)
    return taken[0] if n == 1 else taken


def pin_gpus(runtime: RuntimeConfig) -> None:
    """A torchrun stage on one node with runtime.device auto: its workers get ``runtime.nproc`` GPUs that no other
    running stage holds (CUDA_VISIBLE_DEVICES of the workers; the locks last until this launcher exits)."""
    if runtime.device != "auto" or runtime.nnodes > 1:
        return
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        count = torch.cuda.device_count()
        ids = gpus.visible_ids(count)
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids[i] for i in take_gpus(runtime.nproc))


def run_stage(stage, params_path: str | Path = "params.yaml", **kw: Any) -> Any:
    """``runner.run_stage`` for a stage that may run in several processes: with ``runtime.nproc x runtime.nnodes >
    1`` it is relaunched under torchrun (the same module, one process per GPU) and this process waits; inside a
    worker it joins the process group. A ``UserError`` becomes one line, exit 2 (said once, by the launcher)."""
    worker = dd.in_worker()
    if worker:
        dd.die_with_parent()  # torchrun's SIGTERM is Ctrl-C already: Stage.main, every stage process's entry
    # a worker of our launcher leaves its reason for the launcher to say once; of a plain torchrun, rank 0 says it
    reason = worker and bool(os.environ.get(dd.ERRORS_ENV))
    silent = worker and (reason or os.environ.get("RANK", "0") != "0")
    try:
        params = load_params(params_path)
        check_instance(stage, params, params_path, kw)
        label = stage.label(**kw)
        started = time.perf_counter()
        if stage.distributed and params.runtime.world_size > 1 and not worker:
            pin_gpus(params.runtime)
            result = dd.launch(params.runtime, label, stage.command(params_path, kw))
        else:
            with dd.session(params.runtime), outputs():  # every output of the stage, or none
                result = stage.run(params, **kw)
        if not worker:
            record_timing(label, time.perf_counter() - started, params_path)
        return result
    except (UserError, OSError) as exc:
        message = one_line(exc, stage.label(**kw))
        if reason:
            dd.leave_reason(message)
        if silent:
            raise SystemExit(2) from None
        fail(message)
    except KeyboardInterrupt:
        if reason:
            dd.leave_reason(INTERRUPTED)
        if silent:
            raise SystemExit(2) from None
        fail(INTERRUPTED)
