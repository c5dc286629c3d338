"""The resumable training loop that the DDPM and the classifiers both run.

A model's own code (a ``Trainer``) says what one optimizer step, the start and end of an epoch, and its checkpoint
are; this loop does the rest, once for both: resuming from an interrupted run's state, the progress bar, Ctrl-C and
SIGTERM deferred to a step boundary, the agreement of several processes on when to stop and save, periodic and
end-of-epoch checkpoints. A resumed run ends with the bytes of an uninterrupted one: every random draw comes from
generators whose states the checkpoint holds, and an epoch's data order from (seed, epoch) alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from dreaming_data import distributed as dd
from dreaming_data.checkpoints import ResumeDir, graceful_stop
from dreaming_data.errors import UserError
from dreaming_data.randomness import seed_for


class Trainer:
    """One model's training as the loop sees it. Subclasses set ``label``, ``total`` (optimizer steps),
    ``steps_per_epoch`` and ``seed`` (what reseeds a rank the saved run did not have) and implement the methods."""

    label: str
    total: int
    steps_per_epoch: int
    seed: int

    def parts(self) -> dict[str, Any]:
        """What a checkpoint saves by ``state_dict``: name -> model, EMA, optimizer or scheduler."""
        raise NotImplementedError

    def state(self) -> dict:
        """What else a checkpoint holds (losses so far, history). Every rank calls it: it may reduce over ranks."""
        return {}

    def load(self, state: dict) -> None:
        """Take back what ``state`` returned, on resuming."""

    def start_epoch(self, epoch: int) -> None:
        """Before the first step of ``epoch`` (0-based), also when a run resumes inside it: the epoch's data order."""

    def step(self, step: int, i: int) -> None:
        """Optimizer step ``step`` (0-based), the ``i``-th batch of its epoch."""
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> None:
        """After the last step of ``epoch`` (the last epoch may be cut short at ``total``). Every rank calls it."""

    def postfix(self, step: int, steps_per_s: float) -> dict | None:
        """What the progress bar shows after ``step`` steps (rank 0), or None to leave it."""
        return None

    def live(self, step: int, steps_per_s: float, due: bool) -> dict:
        """What DVCLive records at ``step`` (rank 0): the per-step metrics when ``due`` (every ``runtime.live_every``
        steps), the epoch's when the step ended one. Read-only: nothing here may change the training."""
        return {}


def check_loss(value: float, label: str, step: int, keys: str) -> None:
    """A loss that is no longer a finite number stops the run with one line (no model is written): the weights
    diverged, most often from a learning rate too high for the batch (``keys`` names the params to look at)."""
    if not math.isfinite(value):
        raise UserError(f"{label}: the training loss became {value} by optimizer step {step}: the model diverged "
                        f"(lower {keys}); no model was written")


@dataclass(frozen=True)
class LoopStats:
    resumed_from: int  # the step the run started at (0 unless it resumed)
    steps: int  # optimizer steps this process ran
    wall_s: float


def train(trainer: Trainer, resume: ResumeDir | None, device, runtime, gen, save_minutes: float | None = None,
          save_each_epoch: bool = False, on_step: Callable[[int], None] | None = None,
          live_stage: str | None = None) -> LoopStats:
    """Run ``trainer`` from step 0, or from the state an interrupted run of the same identity left in ``resume``, to
    ``trainer.total``. ``gen`` is the trainer's own generator (the same on every rank); the ranks' global generators
    (dropout) are saved too. Saves every ``save_minutes`` and after each epoch but the last when
    ``save_each_epoch``; on Ctrl-C or SIGTERM, at the next step boundary, then raises ``KeyboardInterrupt``.
    ``on_step(step)`` is called after every step (tests stop a run with it). With ``live_stage``, DVCLive records
    what ``trainer.live`` returns in ``dvclive/<live_stage>`` (``live.py``)."""
    from dreaming_data.live import LiveLog

    from dreaming_data.runtime import numerics, progress_bar

    step = 0
    if resume is not None:
        resume.extend(numerics=numerics(device, runtime))
    if resume is not None and resume.open() and (ckpt := resume.load_state(device)) is not None:
        step = ckpt["step"]
        restore_states(ckpt, trainer.parts(), gen, device, trainer.seed, step)
        trainer.load(ckpt)
        print(f"{trainer.label}: resuming from {resume.folder} at step {step}/{trainer.total}")
    resumed_from, total, per_epoch = step, trainer.total, trainer.steps_per_epoch
    live = LiveLog(live_stage, runtime.live_every if live_stage else 0, resumed_from,
                   resume.path("live") if resume is not None else None)

    def save() -> None:  # every rank calls it: the generators and the trainer's state may be gathered
        states, extra = rng_states(gen, device), trainer.state()
        if resume is not None:
            parts = {name: part.state_dict() for name, part in trainer.parts().items()}
            live.keep()  # first: a copy ahead of the state is cut back on resume, one behind would leave a gap
            resume.save_state({**parts, **states, **extra, "step": step})
        dd.barrier()  # written before any rank goes on (or stops)

    agree = dd.Agreement(step)
    t_start, last_save, epoch = time.perf_counter(), time.monotonic(), None
    with progress_bar(total=total, initial=step, desc=trainer.label, unit="step") as bar, \
            graceful_stop(trainer.label) as stop:
        while step < total:
            e, i = divmod(step, per_epoch)
            if e != epoch:
                trainer.start_epoch(e)
                epoch = e
            trainer.step(step, i)
            step += 1
            epoch_ended = step % per_epoch == 0 or step == total
            if epoch_ended:
                trainer.end_epoch(e)
            bar.update(1)
            if dd.is_main():
                rate = (step - resumed_from) / max(time.perf_counter() - t_start, 1e-9)
                shown = trainer.postfix(step, rate)
                if shown:
                    bar.set_postfix(shown, refresh=False)
                if live.live is not None and (logged := trainer.live(step, rate, live.due(step, step == total))):
                    live.log(step, logged)
            if epoch_ended and save_each_epoch and step < total:
                save()  # after the step's live row: the checkpoint's copy of the live files has it
                last_save = time.monotonic()
            if on_step is not None:
                on_step(step)
            if not agree.due(step) and step < total:
                continue
            due = save_minutes is not None and step < total and time.monotonic() - last_save > save_minutes * 60
            stop_now, save_now = agree(step, stop.requested, due and dd.is_main())  # rank 0's clock decides
            if stop_now:
                save()
                bar.close()
                where = resume.folder if resume is not None else "nowhere"
                print(f"{trainer.label}: stopped at step {step}/{total}; state saved in {where}")
                live.close()
                raise KeyboardInterrupt
            if save_now:
                save()
                last_save = time.monotonic()
    live.close()
    return LoopStats(resumed_from, step - resumed_from, time.perf_counter() - t_start)


# ---------------------------------------------------------------------------------------------------------
# Random state and gradients across ranks (identities with one process)


def rng_states(gen: torch.Generator, device: torch.device) -> dict:
    """Every generator a training loop draws from: its own ``gen`` (the same on every rank) and each rank's global
    ones (dropout), gathered from all ranks: a collective, every rank calls it."""
    mine = {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    return {"generator": gen.get_state(), "rank_rng": dd.gather(mine)}


def seed_rank(seed: int, step: int = 0) -> None:
    """Ranks other than 0 draw their own dropout masks: reseed their global generators from (seed, rank, step).
    Rank 0 keeps its stream, so one process trains exactly as without DDP."""
    if dd.rank() > 0:
        torch.manual_seed(seed_for(seed, 3, dd.rank(), step))


def restore_states(state: dict, parts: dict, gen: torch.Generator, device: torch.device, seed: int, step: int) -> None:
    """Load each of ``parts`` (name -> module, optimizer or scheduler) from ``state``, then the generators: this
    rank's saved global ones, or, for a rank the saved run did not have, fresh ones from (seed, rank, step)."""
    for name, part in parts.items():
        part.load_state_dict(state[name])
    gen.set_state(state["generator"].cpu())
    saved = state["rank_rng"]
    if dd.rank() < len(saved):
        torch.set_rng_state(saved[dd.rank()]["torch"].cpu())
        if device.type == "cuda" and saved[dd.rank()]["cuda"] is not None:
            torch.cuda.set_rng_state(saved[dd.rank()]["cuda"].cpu(), device)
    else:
        seed_rank(seed, step)


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` with several processes (gradients averaged over ranks in backward,
    rank 0's weights broadcast at the start); ``model`` itself with one."""
    if dd.world_size() == 1:
        return model
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    # 1x1 convolutions' gradients come in another (equivalent) stride order than DDP's buckets: harmless
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   gradient_as_bucket_view=True)
