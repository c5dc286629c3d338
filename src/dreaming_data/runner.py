"""What every stage script shares: load params, run the stage function (under torchrun when it asks for several
processes), turn a user mistake into one line."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dreaming_data.config import load_params
from dreaming_data.errors import UserError

STAGES = Path("stages")  # the stage scripts, relative to the project root (the working directory)
TIMING = Path(".dreaming-data") / "timing.jsonl"  # one line per finished stage (git-ignored; `results collect` reads it)


def fail(message: str) -> None:
    """Print ``message`` as one line on stderr and exit 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def distributed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a stage function that runs in ``runtime.nproc x runtime.nnodes`` processes (DDP, sharded sampling)."""
    fn.distributed = True
    return fn


def script_args(fn: Callable[..., Any], params_path: str | Path, kwargs: dict) -> list[str]:
    """The stage script of ``fn`` with its arguments: ``stages/<name>.py ARGS... --params PATH``."""
    return [str(STAGES / f"{fn.__name__}.py"), *map(str, kwargs.values()), "--params", str(params_path)]


def stage_label(fn: Callable[..., Any], kwargs: dict) -> str:
    """The stage's name as ``dvc.yaml`` spells it: ``evaluate@resnet18-augmented-0``, ``compare``."""
    return fn.__name__ + ("@" + "-".join(map(str, kwargs.values())) if kwargs else "")


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


def run_stage(fn: Callable[..., Any], params_path: str | Path = "params.yaml", **kwargs: Any) -> Any:
    """Load params, call the stage function ``fn(params, **kwargs)``; a ``UserError`` becomes one line, exit 2.

    A stage marked ``distributed`` with ``runtime.nproc x runtime.nnodes > 1`` is relaunched under torchrun (the
    same script, one process per GPU) and this process waits for it."""
    from dreaming_data import distributed as dd

    worker = dd.in_worker()
    if worker:
        dd.die_with_parent()
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # torchrun's stop: interrupted, like Ctrl-C
    # a worker of our launcher leaves its reason for the launcher to say once; of a plain torchrun, rank 0 says it
    reason = worker and bool(os.environ.get(dd.ERRORS_ENV))
    silent = worker and (reason or os.environ.get("RANK", "0") != "0")
    try:
        params = load_params(params_path)
        label = stage_label(fn, kwargs)
        started = time.perf_counter()
        if getattr(fn, "distributed", False) and params.runtime.world_size > 1 and not worker:
            result = dd.launch(params.runtime, label, script_args(fn, params_path, kwargs))
        else:
            with dd.session(params.runtime):
                result = fn(params, **kwargs)
        if not worker:
            record_timing(label, time.perf_counter() - started, params_path)
        return result
    except UserError as exc:
        if reason:
            dd.leave_reason(str(exc))
        if silent:
            raise SystemExit(2) from None
        fail(str(exc))
    except KeyboardInterrupt:
        if reason:
            dd.leave_reason(dd.INTERRUPTED)
        if silent:
            raise SystemExit(2) from None
        fail(dd.INTERRUPTED)
