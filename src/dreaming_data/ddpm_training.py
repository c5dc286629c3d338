"""Training a class-conditional DDPM (Ho et al. 2020, Algorithm 1) with classifier-free label dropout and an EMA of
the weights, in the resumable loop of ``training.py``."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch

from dreaming_data import distributed as dd
from dreaming_data.checkpoints import ResumeDir
from dreaming_data.config import Params
from dreaming_data.ddpm import build_unet, process_config
from dreaming_data.diffusion import Schedule, from_uint8, make_schedule, training_loss
from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet
from dreaming_data.launch import claim_device
from dreaming_data.randomness import fingerprint_array, seed_for
from dreaming_data.runtime import autocast, maybe_compile, memory_format, setup_backends
from dreaming_data.training import Trainer, check_loss, seed_rank, train, wrap_ddp
from dreaming_data.unet import UNet, count_parameters


@dataclass(frozen=True)
class TrainResult:
    final_loss: float | None
    epoch_losses: list[float]
    images_per_s: float | None  # None when no step ran in this process
    wall_s: float
    parameters: int
    steps: int
    resumed_from: int


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for every parameter; buffers are copied."""
    e, m = list(ema.parameters()), list(model.parameters())
    torch._foreach_lerp_(e, m, 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def ema_decay_at(step: int, decay: float) -> float:
    """Warm-up min(decay, (1 + n) / (10 + n)), as TensorFlow's ExponentialMovingAverage with num_updates:
    short runs otherwise sample from weights still dominated by the random initialisation."""
    return min(decay, (1 + step) / (10 + step))


def training_identity(p: Params, schedule: str, train_set: ImageSet) -> dict:
    """Everything the trained model depends on: a checkpoint resumes only when all of it is equal."""
    d = p.ddpm
    return {
        "schedule": schedule,
        "diffusion": process_config(p.diffusion),
        "unet": asdict(p.unet),
        "ddpm": {"epochs": d.epochs, "batch_size": d.batch_size, "lr": d.lr, "grad_clip": d.grad_clip,
                 "ema_decay": d.ema_decay, "hflip": d.hflip, "seed": d.seed},
        "data": fingerprint_array(train_set.x) + fingerprint_array(train_set.y),
        "image_shape": list(train_set.x.shape[1:]),
        "num_classes": len(train_set.classes),
    }


def train_step(p: Params, model: UNet, fwd, ema: UNet, opt: torch.optim.Optimizer, sched: Schedule,
               x0: torch.Tensor, y: torch.Tensor, step: int, gen: torch.Generator, part: slice | None = None
               ) -> torch.Tensor:
    """One optimizer step of Algorithm 1 (classifier-free label dropout, bf16 autocast on CUDA), gradient
    clipping, Adam, then the EMA update. ``fwd`` is ``model``, its DDP wrapper or their compiled form; with DDP,
    x0 and y are the global batch and ``part`` this rank's share. Returns this rank's loss (on device)."""
    device = x0.device
    with autocast(device, p.runtime):
        loss = training_loss(fwd, sched, x0, y, model.num_classes, p.diffusion.p_uncond, gen, part,
                             dd.world_size())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), p.ddpm.grad_clip)
    opt.step()
    ema_update(ema, model, ema_decay_at(step, p.ddpm.ema_decay))
    return loss


DIVERGED = "ddpm.lr, or ddpm.grad_clip"  # what to look at when the loss is no longer a number


class DDPMTrainer(Trainer):
    """The DDPM of one schedule on ``train_set``: epochs of ``len // batch_size`` full batches in an order drawn
    from (seed, epoch); t, noise, label dropout and flips from the trainer's generator."""

    def __init__(self, p: Params, schedule: str, train_set: ImageSet, device: torch.device):
        cfg = p.ddpm
        if len(train_set) == 0:
            raise UserError("the DDPM's training set is empty (check data.train_per_class and the data source)")
        self.p, self.device, self.label, self.seed = p, device, f"ddpm {schedule}", cfg.seed
        torch.manual_seed(cfg.seed)
        self.sched = make_schedule(p.diffusion, schedule).to(device)
        self.model = build_unet(p.unet, train_set.x.shape[1:], len(train_set.classes))
        self.fmt = memory_format(device, p.runtime, "unet")
        self.model = self.model.to(device, memory_format=self.fmt)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        seed_rank(cfg.seed)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.gen = torch.Generator(device=device).manual_seed(seed_for(cfg.seed, 1))
        self.N, self.batch = len(train_set), cfg.batch_size
        self.steps_per_epoch = max(1, self.N // cfg.batch_size)
        self.total = cfg.epochs * self.steps_per_epoch
        self.epoch_losses: list[float] = []
        self.loss_sum: torch.Tensor | float = 0.0  # this epoch's losses so far, on the device: no sync per step
        self.x_all = torch.from_numpy(train_set.x).to(device)  # [N, H, W, C] uint8, kept on the device
        self.y_all = torch.from_numpy(train_set.y).to(device)
        self.fwd = maybe_compile(wrap_ddp(self.model, device), device, p.runtime)
        self.model.train()
        self.loss = None

    def parts(self) -> dict:
        return {"model": self.model, "ema": self.ema, "optimizer": self.opt}

    def state(self) -> dict:
        return {"epoch_losses": self.epoch_losses,
                "loss_sum": float(dd.mean_over_ranks(torch.as_tensor(self.loss_sum)))}

    def load(self, state: dict) -> None:
        self.epoch_losses, self.loss_sum = list(state["epoch_losses"]), state["loss_sum"]

    def start_epoch(self, epoch: int) -> None:
        g = torch.Generator().manual_seed(seed_for(self.seed, 2, epoch))
        self.perm = torch.randperm(self.N, generator=g).to(self.device)

    def step(self, step: int, i: int) -> None:
        idx = self.perm[i * self.batch:(i + 1) * self.batch]
        x0 = from_uint8(self.x_all[idx]).contiguous(memory_format=self.fmt)  # [B, C, H, W] in [-1, 1]
        if self.p.ddpm.hflip:
            flip = torch.rand(len(idx), device=self.device, generator=self.gen) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
        part = dd.share(len(idx)) if dd.world_size() > 1 else None  # short when N < batch size
        self.loss = train_step(self.p, self.model, self.fwd, self.ema, self.opt, self.sched, x0, self.y_all[idx],
                               step, self.gen, part)
        self.loss_sum = self.loss_sum + self.loss.detach()

    def end_epoch(self, epoch: int) -> None:
        self.epoch_losses.append(float(dd.mean_over_ranks(self.loss_sum)) / self.steps_per_epoch)
        check_loss(self.epoch_losses[-1], self.label, (epoch + 1) * self.steps_per_epoch, DIVERGED)
        self.loss_sum = 0.0

    def postfix(self, step: int, steps_per_s: float) -> dict | None:
        if step % 10 and step != self.total:
            return None
        loss = self.loss.item()  # a sync every 10 steps: the bar's, and the first sight of a diverged run
        check_loss(loss, self.label, step, DIVERGED)
        return {"loss": f"{loss:.4f}", "img_s": f"{steps_per_s * self.batch:.0f}"}

    def live(self, step: int, steps_per_s: float, due: bool) -> dict:
        out = {}
        if due:
            out = {"loss": self.loss.item(), "lr": self.opt.param_groups[0]["lr"],
                   "ema_decay": ema_decay_at(step - 1, self.p.ddpm.ema_decay), "images_per_s": steps_per_s * self.batch}
        if step % self.steps_per_epoch == 0:
            out["epoch_loss"] = self.epoch_losses[-1]
        return out


def train_ddpm(p: Params, schedule: str, train_set: ImageSet, resume: ResumeDir | None = None,
               on_step=None, live_stage: str | None = None) -> tuple[UNet, TrainResult]:
    """Train the DDPM of ``schedule`` on ``train_set``; returns the EMA model and a summary.

    With ``resume`` (built on ``training_identity``), the run continues from the state an interrupted run of the
    same code, configuration and data left there, and saves its state every ``ddpm.checkpoint_minutes`` and when
    stopped by Ctrl-C or SIGTERM (at a step boundary, so a resumed run ends with exactly the weights of an
    uninterrupted one). ``on_step(step)`` is called after each optimizer step. With ``live_stage``, the loss, learning
    rate, EMA decay and images/s go to DVCLive every ``runtime.live_every`` steps, the epoch's loss after each.

    Under torchrun (DDP) every rank draws the randomness of the whole batch of ``ddpm.batch_size`` images, as one
    process does, and computes the loss of its share; gradients are averaged over ranks, so the weights are those
    of one process up to float rounding (and, with dropout, other masks on ranks > 0).
    """
    device = claim_device(p.runtime)
    setup_backends(device)
    t = DDPMTrainer(p, schedule, train_set, device)
    stats = train(t, resume, device, p.runtime, t.gen, save_minutes=p.ddpm.checkpoint_minutes, on_step=on_step,
                  live_stage=live_stage)
    return t.ema, TrainResult(
        final_loss=t.epoch_losses[-1] if t.epoch_losses else None,
        epoch_losses=list(t.epoch_losses),
        images_per_s=stats.steps * t.batch / stats.wall_s if stats.wall_s > 0 and stats.steps else None,
        wall_s=stats.wall_s,
        parameters=count_parameters(t.model),
        steps=t.total,
        resumed_from=stats.resumed_from,
    )
