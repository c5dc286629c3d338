"""What every stage shares at run time: load params, check the instance, run the body (under torchrun when it asks
for several processes), record its seconds, turn a user mistake into one line."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from dreaming_data.config import load_params
from dreaming_data.errors import UserError
from dreaming_data.io import WriteError, outputs

TIMING = Path(".dreaming-data") / "timing.jsonl"  # one line per finished stage (git-ignored; `results collect` reads it)


def fail(message: str) -> None:
    """Print ``message`` as one line on stderr and exit 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def params_digest(params_path: str | Path) -> str:
    """SHA-256 of the params file's bytes: which params a timing line belongs to."""
    import hashlib

    return hashlib.sha256(Path(params_path).read_bytes()).hexdigest()


def record_timing(label: str, seconds: float, params_path: str | Path) -> None:
    """Append the wall time of a finished stage to ``TIMING`` (one JSON line, one ``write``: safe beside others)."""
    import datetime
    import json

    line = json.dumps({"stage": label, "seconds": round(seconds, 3), "params_sha256": params_digest(params_path),
                       "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    try:
        TIMING.parent.mkdir(exist_ok=True)
        with open(TIMING, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError as exc:  # a read-only project still gets its outputs
        print(f"warning: {TIMING}: could not record the stage's time ({exc.strerror})", file=sys.stderr)


def one_line(exc: Exception, label: str) -> str:
    """What the user reads: a ``UserError`` as it is; a file the environment did not let us write or read (disk
    full, file too large, permission denied) with the stage it stopped."""
    if isinstance(exc, WriteError):
        return f"{label}: {exc}; {rerun_hint(label)}"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{label}: {where}{exc.strerror or type(exc).__name__}"
    return str(exc)


def rerun_hint(label: str) -> str:
    """What to do after a write failed: free space and run the stage again, from its checkpoint when it has one."""
    from dreaming_data.paths import resume_dir

    kept = resume_dir(label)
    if kept.is_dir() and any(kept.iterdir()):
        return f"free disk space and run it again: {kept}/ is kept and the rerun resumes from it"
    return "free disk space and run it again (the previous outputs are untouched)"


def pin_gpus(runtime) -> None:
    """A torchrun stage on one node with runtime.device auto: its workers get ``runtime.nproc`` GPUs that no other
    running stage holds (CUDA_VISIBLE_DEVICES of the workers; the locks last until this launcher exits)."""
    if runtime.device != "auto" or runtime.nnodes > 1:
        return
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        from dreaming_data import gpus
        from dreaming_data.runtime import take_gpus

        count = torch.cuda.device_count()
        ids = gpus.visible_ids(count)
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids[i] for i in take_gpus(runtime.nproc))


def check_instance(stage, params, params_path: str | Path, kw: dict) -> None:
    """``kw`` must be one of the stage's matrix instances under these params (a stage of their dvc.yaml)."""
    instances = stage.matrix(params)
    if kw not in instances:
        known = ", ".join(stage.label(**i) for i in instances) or "none"
        raise UserError(f"{stage.label(**kw)} is not a stage of {params_path} (its {stage.name} stages: {known})")


def run_stage(stage, params_path: str | Path = "params.yaml", **kw: Any) -> Any:
    """Load params, run ``stage.run(params, **kw)``; a ``UserError`` becomes one line, exit 2.

    A ``distributed`` stage with ``runtime.nproc x runtime.nnodes > 1`` is relaunched under torchrun (the same
    module, one process per GPU) and this process waits for it."""
    from dreaming_data import distributed as dd

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
            dd.leave_reason(dd.INTERRUPTED)
        if silent:
            raise SystemExit(2) from None
        fail(dd.INTERRUPTED)
