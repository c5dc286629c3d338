"""Several experiments on one machine with several GPUs: each stage takes GPUs that no other running stage holds.

DVC's queue runs several experiments at once (``dreaming-data curve --jobs 4``) but assigns them no GPUs: without this
every stage would use GPU 0. A stage with ``runtime.device: auto`` that sees more than one GPU takes one (``runtime.nproc``
for a torchrun stage) by an exclusive lock on a file per GPU in a folder every process of the machine shares. The
kernel releases a lock when its process exits, also after a kill: no stale lock outlives its stage.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path

LOCKS_ENV = "DREAMING_DATA_GPU_LOCKS"  # the folder of the lock files (default: one per user in the temp folder)
_HELD: dict[str, int] = {}  # GPU id -> open lock file descriptor, kept until this process exits


def lock_dir() -> Path:
    return Path(os.environ.get(LOCKS_ENV) or Path(tempfile.gettempdir()) / f"dreaming-data-gpus-{os.getuid()}")


def visible_ids(count: int) -> list[str]:
    """The ids of the ``count`` GPUs this process sees, as the machine names them (CUDA_VISIBLE_DEVICES'
    entries when set), so that processes that see different subsets still lock the same files."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [i.strip() for i in env.split(",") if i.strip()] if env else []
    return ids[:count] if len(ids) >= count else [str(i) for i in range(count)]


def _try(gpu: str, folder: Path) -> bool:
    fd = os.open(folder / f"gpu-{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
    _HELD[gpu] = fd
    return True


def take(n: int, count: int, folder: Path | None = None, poll_s: float = 5.0, timeout_s: float | None = None) -> list[int]:
    """Indices (into the ``count`` visible GPUs) of ``n`` GPUs no other process holds, locked until this process
    exits; the same ones again if this process already holds them. Waits, saying so once, while fewer are free."""
    if n > count:
        from dreaming_data.errors import UserError

        raise UserError(f"runtime.nproc: {n} processes, but this machine shows {count} GPU(s)")
    folder = folder or lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    ids = visible_ids(count)
    start, said = time.monotonic(), False
    while True:
        held = [i for i, g in enumerate(ids) if g in _HELD]
        for i, gpu in enumerate(ids):
            if len(held) < n and gpu not in _HELD and _try(gpu, folder):
                held.append(i)
        if len(held) >= n:
            return sorted(held)[:n]
        for i in held:  # not enough free: give back what was taken, so that two waiting stages cannot deadlock
            os.close(_HELD.pop(ids[i]))
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"no {n} free GPU(s) of {count} within {timeout_s} s")
        if not said:
            print(f"gpu: waiting for {n} of the {count} GPUs that other stages hold ({folder})", file=sys.stderr,
                  flush=True)
            said = True
        time.sleep(poll_s)


def release_all() -> None:
    for gpu in list(_HELD):
        os.close(_HELD.pop(gpu))
