"""What every stage shares at run time: load params, check the instance, run the body with all its outputs or none,
record its seconds, turn a user mistake into one line. What only some stages use (torchrun, GPU locks) is in
``launch.py``, so that a change there re-runs only the stages that execute it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from dreaming_data.config import load_params
from dreaming_data.errors import INTERRUPTED, UserError
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


def check_instance(stage, params, params_path: str | Path, kw: dict) -> None:
    """``kw`` must be one of the stage's matrix instances under these params (a stage of their dvc.yaml)."""
    instances = stage.matrix(params)
    if kw not in instances:
        known = ", ".join(stage.label(**i) for i in instances) or "none"
        raise UserError(f"{stage.label(**kw)} is not a stage of {params_path} (its {stage.name} stages: {known})")


def leave() -> NoReturn:
    """End a stage's process after its body succeeded, without the interpreter's teardown: the exit handlers run and
    the streams are flushed, then ``os._exit(0)``. With torch loaded, the teardown (clearing thousands of modules'
    objects) took ~0.5 s of every stage process, ~25 s of the quickstart's 50 stages; every output is closed and in
    place before this (``outputs``), and a run under torchrun has left its process group (``dd.session``)."""
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_stage(stage, params_path: str | Path = "params.yaml", **kw: Any) -> Any:
    """Load params, run ``stage.run(params, **kw)`` in this process with every output or none; a ``UserError``
    becomes one line, exit 2. A stage that may run in several processes starts through ``launch.run_stage``."""
    label = stage.label(**kw)
    try:
        params = load_params(params_path)
        check_instance(stage, params, params_path, kw)
        started = time.perf_counter()
        with outputs():  # every output of the stage, or none
            result = stage.run(params, **kw)
        record_timing(label, time.perf_counter() - started, params_path)
        return result
    except (UserError, OSError) as exc:
        fail(one_line(exc, label))
    except KeyboardInterrupt:
        fail(INTERRUPTED)
