"""Training a class-conditional DDPM, with EMA, checkpoints that resume, and loading it back for sampling."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from dreaming_data import distributed as dd
from dreaming_data.checkpoints import ResumeDir, graceful_stop
from dreaming_data.config import DDPMConfig, DiffusionConfig, Params, RuntimeConfig, UNetConfig
from dreaming_data.diffusion import Schedule, from_uint8, make_schedule, training_loss
from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet, load_torch, save_torch
from dreaming_data.randomness import fingerprint_array, seed_for
from dreaming_data.runtime import (autocast, maybe_compile, memory_format, numerics, progress_bar, resolve_device,
                                   restore_states, rng_states, seed_rank, setup_backends, wrap_ddp)
from dreaming_data.unet import UNet, count_parameters

MODEL_FORMAT = "dreaming-data ddpm"
# The diffusion settings a trained model depends on (and records); guidance and variance are sampling choices.
PROCESS_KEYS = ("timesteps", "beta_start", "beta_end", "cosine_s", "p_uncond")


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


def process_config(diffusion: DiffusionConfig) -> dict:
    return {k: getattr(diffusion, k) for k in PROCESS_KEYS}


def training_identity(p: Params, schedule: str, train: ImageSet) -> dict:
    """Everything the trained model depends on: a checkpoint resumes only when all of it is equal."""
    d = p.ddpm
    return {
        "schedule": schedule,
        "diffusion": process_config(p.diffusion),
        "unet": asdict(p.unet),
        "ddpm": {"epochs": d.epochs, "batch_size": d.batch_size, "lr": d.lr, "grad_clip": d.grad_clip,
                 "ema_decay": d.ema_decay, "hflip": d.hflip, "seed": d.seed},
        "data": fingerprint_array(train.x) + fingerprint_array(train.y),
        "image_shape": list(train.x.shape[1:]),
        "num_classes": len(train.classes),
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


def build_unet(unet: UNetConfig, image_shape: tuple[int, ...], num_classes: int) -> UNet:
    H, W, C = image_shape
    return UNet(unet, image_size=H, in_channels=C, num_classes=num_classes)


def train_ddpm(
    p: Params,
    schedule: str,
    train: ImageSet,
    resume: ResumeDir | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[UNet, TrainResult]:
    """Train the DDPM of ``schedule`` on ``train``; returns the EMA model and a summary.

    With ``resume`` (built on ``training_identity``), the run continues from the state an interrupted run of the
    same code, configuration and data left there, and saves its state every ``ddpm.checkpoint_minutes`` and when
    stopped by Ctrl-C or SIGTERM (at a step boundary, so a resumed run ends with exactly the weights of an
    uninterrupted one). ``on_step(step)`` is called after each optimizer step.

    Under torchrun (DDP) every rank draws the randomness of the whole batch of ``ddpm.batch_size`` images, as one
    process does, and computes the loss of its share; gradients are averaged over ranks, so the weights are those
    of one process up to float rounding (and, with dropout, other masks on ranks > 0). Stop and checkpoint
    decisions are agreed every few seconds (``distributed.Agreement``).
    """
    cfg: DDPMConfig = p.ddpm
    device = resolve_device(p.runtime)
    setup_backends(device)
    torch.manual_seed(cfg.seed)
    num_classes = len(train.classes)
    sched = make_schedule(p.diffusion, schedule).to(device)
    model = build_unet(p.unet, train.x.shape[1:], num_classes).to(device, memory_format=memory_format(device))
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    seed_rank(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(seed_for(cfg.seed, 1))

    N = len(train)
    steps_per_epoch = max(1, N // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    step, epoch_losses, loss_sum = 0, [], 0.0  # loss_sum: sum of this epoch's losses so far
    label = f"ddpm {schedule}"
    if len(train) == 0:
        raise UserError("the DDPM's training set is empty (check data.train_per_class and the data source)")
    if resume is not None:
        resume.extend(numerics=numerics(device, p.runtime))
    if resume is not None and resume.open() and (ckpt := resume.load_state(device)) is not None:
        step, epoch_losses, loss_sum = ckpt["step"], list(ckpt["epoch_losses"]), ckpt["loss_sum"]
        restore_states(ckpt, {"model": model, "ema": ema, "optimizer": opt}, gen, device, cfg.seed, step)
        print(f"resuming {schedule} from {resume.folder} at step {step}/{total}")
    resumed_from = step

    def save() -> None:  # every rank calls it: the generators and the loss so far are gathered
        states, mean_loss_sum = rng_states(gen, device), float(dd.mean_over_ranks(torch.as_tensor(loss_sum)))
        if resume is not None:
            resume.save_state({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                               **states, "step": step, "epoch_losses": epoch_losses, "loss_sum": mean_loss_sum})
        dd.barrier()  # written before any rank goes on (or stops)

    x_all = torch.from_numpy(train.x).to(device)  # [N, H, W, C] uint8, kept on the device
    y_all = torch.from_numpy(train.y).to(device)
    fwd = maybe_compile(wrap_ddp(model, device), device, p.runtime)
    model.train()
    t_start = time.perf_counter()
    last_save = time.monotonic()
    perm = None
    agree = dd.Agreement(step)
    bar = progress_bar(total=total, initial=step, desc=label, unit="step")
    with graceful_stop(label) as stop:
        while step < total:
            epoch, i = divmod(step, steps_per_epoch)
            if perm is None or i == 0:
                # the epoch's order depends only on (seed, epoch), so a resumed run sees the same batches
                g = torch.Generator().manual_seed(seed_for(cfg.seed, 2, epoch))
                perm = torch.randperm(N, generator=g).to(device)
            idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x0 = from_uint8(x_all[idx]).contiguous(memory_format=memory_format(device))  # [B, C, H, W] in [-1, 1]
            if cfg.hflip:
                flip = torch.rand(len(idx), device=device, generator=gen) < 0.5
                x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
            part = dd.share(len(idx)) if dd.world_size() > 1 else None  # short when N < batch size
            loss = train_step(p, model, fwd, ema, opt, sched, x0, y_all[idx], step, gen, part)
            step += 1
            loss_sum = loss_sum + loss.detach()  # stays on the device: no sync per step
            if step % steps_per_epoch == 0:
                epoch_losses.append(float(dd.mean_over_ranks(loss_sum)) / steps_per_epoch)
                loss_sum = 0.0
            bar.update(1)
            if dd.is_main() and (step % 10 == 0 or step == total):
                elapsed = time.perf_counter() - t_start
                bar.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{(step - resumed_from) * cfg.batch_size / elapsed:.0f}",
                                refresh=False)
            if on_step is not None:
                on_step(step)
            if not agree.due(step) and step < total:
                continue
            due = step < total and time.monotonic() - last_save > cfg.checkpoint_minutes * 60
            stop_now, save_now = agree(step, stop.requested, due and dd.is_main())  # rank 0's clock decides
            if stop_now:
                save()
                bar.close()
                print(f"{label}: stopped at step {step}/{total}; state saved in {resume.folder if resume else 'nowhere'}")
                raise KeyboardInterrupt
            if save_now:
                save()
                last_save = time.monotonic()
    bar.close()
    wall = time.perf_counter() - t_start
    done = step - resumed_from
    return ema, TrainResult(
        final_loss=epoch_losses[-1] if epoch_losses else None,
        epoch_losses=list(epoch_losses),
        images_per_s=done * cfg.batch_size / wall if wall > 0 and done else None,
        wall_s=wall,
        parameters=count_parameters(model),
        steps=step,
        resumed_from=resumed_from,
    )


def save_ddpm(path, ema: UNet, p: Params, schedule: str, train: ImageSet) -> None:
    """A self-describing model file: EMA weights plus everything needed to rebuild and sample from it."""
    save_torch(path, {
        "format": MODEL_FORMAT,
        "ema": ema.state_dict(),
        "schedule": schedule,
        "unet": asdict(p.unet),
        "diffusion": process_config(p.diffusion),
        "image_shape": list(train.x.shape[1:]),
        "classes": list(train.classes),
    })


@dataclass
class LoadedDDPM:
    model: UNet
    schedule: Schedule
    process: dict  # the PROCESS_KEYS the model was trained with
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]  # H, W, C


def load_ddpm(path, device: torch.device) -> LoadedDDPM:
    state = load_torch(path, MODEL_FORMAT)
    try:
        unet_cfg = UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["unet"].items()})
        process = {k: state["diffusion"][k] for k in PROCESS_KEYS}
        schedule = make_schedule(DiffusionConfig(**process, variance="fixed_large", guidance=0.0, sampler="ancestral",
                                                ddim_eta=0.0), state["schedule"])
        model = build_unet(unet_cfg, tuple(state["image_shape"]), len(state["classes"]))
        model.load_state_dict(state["ema"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise UserError(f"{path}: a DDPM file of another version or a damaged one ({type(exc).__name__}); "
                        f"remake it with `dvc repro train_ddpm`") from None
    model = model.to(device, memory_format=memory_format(device)).eval().requires_grad_(False)
    return LoadedDDPM(model, schedule.to(device), process, tuple(state["classes"]), tuple(state["image_shape"]))
