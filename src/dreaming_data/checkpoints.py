"""Resuming an interrupted stage: one mechanism for DDPM training, classifiers and chunked generation.

A stage run keeps what it resumes from in one folder under ``checkpoints/`` with an ``identity.json``: the code
(a hash of this package), the configuration and the inputs that determine the outputs. A later run resumes from
the folder only when its identity is equal; otherwise the folder is emptied first. When the stage has written its
outputs it deletes the folder (``finish``): a checkpoint exists to finish an *interrupted* run, so nothing a
finished run leaves behind can turn ``dvc repro -f`` or a code change into a no-op.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from dreaming_data import distributed as dd
from dreaming_data.errors import UserError
from dreaming_data.io import after_outputs, atomic_path, load_torch, save_torch
from dreaming_data.randomness import code_fingerprint

STATE = "state.pt"
CHECKPOINT_FORMAT = "dreaming-data checkpoint"


class ResumeDir:
    """The resumable state of one stage run, in ``folder``; ``identity`` is a JSON-able dict."""

    def __init__(self, folder: Path, identity: dict, label: str):
        self.folder, self.label = Path(folder), label
        self.identity = json.loads(json.dumps({"code": code_fingerprint(), **identity}))  # tuples as lists
        self._opened = False

    def extend(self, **parts: Any) -> None:
        """Add to the identity (before ``open``): what only the trainer knows, e.g. its device and thread count."""
        if self._opened:
            raise RuntimeError("extend() after open()")
        self.identity.update(json.loads(json.dumps(parts)))

    def open(self) -> bool:
        """Prepare the folder; True when it holds state of this very identity (the run resumes), else it is
        emptied (saying why when it held something) and False. With several processes rank 0 does it and the
        others wait for its answer."""
        self._opened = True
        return dd.broadcast(self._open() if dd.is_main() else None)

    def _open(self) -> bool:
        manifest = self.folder / "identity.json"
        if self.folder.is_file() or self.folder.is_symlink():
            self.folder.unlink()
        if self.folder.exists():
            try:
                old = json.loads(manifest.read_text())
            except (OSError, ValueError):
                old = None
            if old == self.identity:
                return True
            if isinstance(old, dict):
                changed = sorted(k for k in set(old) | set(self.identity) if old.get(k) != self.identity.get(k))
                print(f"{self.label}: starting fresh ({self.folder} was left by a run with different "
                      f"{', '.join(changed)})")
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(self.identity, indent=1, sort_keys=True))
        return False

    def path(self, name: str) -> Path:
        if not self._opened:
            raise RuntimeError("ResumeDir.open() first")
        return self.folder / name

    def save_state(self, state: dict) -> None:
        """Rank 0 writes ``state`` (the same on every rank, or gathered by the caller)."""
        if dd.is_main():
            save_torch(self.path(STATE), {"format": CHECKPOINT_FORMAT, "stage": self.label, **state})

    def load_state(self, device: Any) -> dict | None:
        """The saved training state, or None when there is none (or it cannot be read: the run starts over)."""
        if not self.path(STATE).exists():
            return None
        try:
            state = load_torch(self.path(STATE), CHECKPOINT_FORMAT, device)
        except UserError as exc:
            print(f"{self.label}: starting fresh ({exc})")
            return None
        if state.get("stage") != self.label:
            print(f"{self.label}: starting fresh ({self.path(STATE)} was saved by {state.get('stage')!r})")
            return None
        return state

    def finish(self) -> None:
        """The stage's outputs are written: the state has served its purpose (rank 0 deletes it when every rank
        is done with it)."""
        dd.barrier()
        if dd.is_main():  # once the outputs are in place: a failed rename must not lose the training
            after_outputs(lambda: shutil.rmtree(self.folder, ignore_errors=True))


class StopRequest:
    """Set by SIGINT/SIGTERM inside ``graceful_stop``; the loop checks ``requested`` at its safe points."""

    requested = False


@contextlib.contextmanager
def graceful_stop(label: str):
    """Defer Ctrl-C (and SIGTERM) to the training loop's next step boundary, where the state is consistent and
    can be saved; a second Ctrl-C stops at once. Outside the main thread signals cannot be caught: no-op."""
    stop = StopRequest()

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        if dd.is_main():
            print(f"\n{label}: stopping after this step to save a checkpoint (Ctrl-C again to stop at once)",
                  file=sys.stderr, flush=True)

    try:
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield stop
        return
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
