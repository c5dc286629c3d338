"""Image classifiers (a small CNN like the report's, and ResNet-18 with a CIFAR stem), trained on uint8 tensors
held on the device and augmented in batches."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dreaming_data import distributed as dd
from dreaming_data.checkpoints import ResumeDir, graceful_stop
from dreaming_data.config import Recipe, RuntimeConfig
from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet, load_torch, save_torch
from dreaming_data.randomness import fingerprint_array, seed_for
from dreaming_data.runtime import (autocast, maybe_compile, memory_format, numerics, progress_bar, resolve_device,
                                   restore_states, rng_states, seed_rank, setup_backends, wrap_ddp)

MODEL_FORMAT = "dreaming-data classifier"


class SimpleCNN(nn.Module):
    """Two conv-pool blocks and a dense head: the scale of the reference report's network (~54% on CIFAR-10)."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, dropout: float):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * (image_size // 4) ** 2, 256), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_classifier(arch: str, in_channels: int, num_classes: int, image_size: int, dropout: float) -> nn.Module:
    if arch == "simple_cnn":
        return SimpleCNN(in_channels, num_classes, image_size, dropout)
    if arch == "resnet18":
        from torchvision.models import resnet18

        net = resnet18(num_classes=num_classes)
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)  # CIFAR stem
        net.maxpool = nn.Identity()
        return net
    raise UserError(f"unknown classifier architecture {arch!r} (expected simple_cnn or resnet18)")


def random_crop_flip(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Batched augmentation of x: [B, H, W, C] uint8 -> same shape: a random crop of the zero-padded image
    (pad pixels each side), then a horizontal flip with probability 1/2."""
    B, H, W, C = x.shape
    dev = x.device
    if pad > 0:
        xp = F.pad(x, (0, 0, pad, pad, pad, pad))  # [B, H + 2p, W + 2p, C]
        dy = torch.randint(0, 2 * pad + 1, (B,), device=dev, generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (B,), device=dev, generator=gen)
        rows = (dy[:, None] + torch.arange(H, device=dev))[:, :, None]  # [B, H, 1]
        cols = (dx[:, None] + torch.arange(W, device=dev))[:, None, :]  # [B, 1, W]
        x = xp[torch.arange(B, device=dev)[:, None, None], rows, cols]  # [B, H, W, C]
    if flip:
        m = torch.rand(B, device=dev, generator=gen) < 0.5
        x = torch.where(m[:, None, None, None], x.flip(2), x)
    return x


@dataclass(frozen=True)
class Normalizer:
    mean: tuple[float, ...]  # per channel, in [0, 1] units
    std: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray) -> Normalizer:
        f = x.reshape(-1, x.shape[-1]).astype(np.float64) / 255
        return cls(tuple(f.mean(0).tolist()), tuple(np.maximum(f.std(0), 1e-3).tolist()))

    def __call__(self, x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
        """[B, H, W, C] uint8 -> [B, C, H, W] float32, standardised."""
        mean = torch.tensor(self.mean, device=x.device)
        std = torch.tensor(self.std, device=x.device)
        return ((x.float() / 255 - mean) / std).permute(0, 3, 1, 2).contiguous(memory_format=fmt)


@dataclass
class TrainedClassifier:
    model: nn.Module
    normalizer: Normalizer
    classes: tuple[str, ...]
    history: list[dict]
    images_per_s: float | None  # None when no step ran in this process
    wall_s: float


@torch.no_grad()
def predict(model: nn.Module, normalizer: Normalizer, x: np.ndarray, device: torch.device, runtime: RuntimeConfig,
            batch_size: int = 1000) -> np.ndarray:
    """Class probabilities of x: [N, H, W, C] uint8 -> [N, K] float32 (a numpy array)."""
    model.eval()
    out = []
    fmt = memory_format(device)
    for start in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[start:start + batch_size]).to(device)
        with autocast(device, runtime):
            logits = model(normalizer(xb, fmt))
        out.append(logits.float().softmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    """Optimizer steps of one pass over ``n_images`` (the last batch may be smaller)."""
    return max(1, -(-n_images // batch_size))


def training_steps(recipe: Recipe, n_images: int) -> int:
    """Optimizer steps of ``recipe.epochs`` epochs over ``n_images``. baseline_matched trains on the baseline images
    for the number of steps of augmented: training_steps(recipe, len(augmented))."""
    return recipe.epochs * steps_per_epoch(n_images, recipe.batch_size)


def training_identity(arch: str, recipe: Recipe, train: ImageSet, val: ImageSet, seed: int, steps: int) -> dict:
    """Everything a trained classifier depends on: a checkpoint resumes only when all of it is equal."""
    return {"arch": arch, "recipe": {k: v for k, v in asdict(recipe).items() if k != "epochs"},
            "steps": steps, "seed": seed,
            "data": fingerprint_array(train.x) + fingerprint_array(train.y) + fingerprint_array(train.synthetic)
            + fingerprint_array(val.x) + fingerprint_array(val.y)}


def train_classifier(
    arch: str,
    cfg: Recipe,
    runtime: RuntimeConfig,
    train: ImageSet,
    val: ImageSet,
    seed: int,
    steps: int,
    resume: ResumeDir | None = None,
    label: str = "classifier",
    on_epoch: Callable[[int], None] | None = None,
) -> TrainedClassifier:
    """Train ``arch`` on ``train`` for ``steps`` optimizer steps (``training_steps`` for the recipe's epochs), in
    epochs of one pass each, the last one cut short at ``steps``; validation accuracy after each epoch (None without
    ``val``).

    Constant or one-cycle learning rate (linear rise over ``cfg.warmup_fraction`` of the steps, then linear decay),
    SGD or AdamW, label smoothing. With ``resume`` (built on ``training_identity``) the state is saved after every
    epoch, and an interrupted run of the same code, configuration and data continues after its last finished epoch.
    ``on_epoch(epoch)`` is called after each epoch's checkpoint.

    Under torchrun (DDP) every rank draws the order and augmentation of the whole batch, as one process does, and
    computes its share; the loss is scaled so that the averaged gradient is the batch mean's, also for a short last
    batch. BatchNorm statistics are synchronised over ranks on CUDA (SyncBatchNorm), per rank on the CPU (where rank
    0 takes a last batch of fewer than 2 images per rank whole: BatchNorm cannot train on one image).
    """
    device = resolve_device(runtime)
    setup_backends(device)
    torch.manual_seed(seed_for(seed, 10))
    H, W, C = train.x.shape[1:]
    K = len(train.classes)
    fmt = memory_format(device)
    model = build_classifier(arch, C, K, H, cfg.dropout).to(device, memory_format=fmt)
    world = dd.world_size()
    if world > 1 and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # statistics of the global batch, as one process
    seed_rank(seed_for(seed, 10))
    N = len(train)
    per_epoch = steps_per_epoch(N, cfg.batch_size)
    total = steps
    epochs = -(-total // per_epoch)
    if total < 1:
        raise UserError(f"{label}: {total} optimizer steps; at least 1 is needed")
    opt, sched = optimizer(model, cfg, total)
    normalizer = Normalizer.fit(train.x[~train.synthetic] if (~train.synthetic).any() else train.x)
    gen = torch.Generator(device=device).manual_seed(seed_for(seed, 11))
    history: list[dict] = []
    start_epoch = 0
    if N == 0:
        raise UserError(f"{label}: the training set is empty")
    if resume is not None:
        resume.extend(numerics=numerics(device, runtime))
    if resume is not None and resume.open() and (ckpt := resume.load_state(device)) is not None:
        history, start_epoch = list(ckpt["history"]), ckpt["epoch"]
        restore_states(ckpt, {"model": model, "optimizer": opt, "scheduler": sched}, gen, device, seed_for(seed, 10),
                       start_epoch * per_epoch)
        print(f"{label}: resuming after epoch {start_epoch}/{epochs}")

    x_all = torch.from_numpy(train.x).to(device)  # [N, H, W, C] uint8 on the device
    y_all = torch.from_numpy(train.y).to(device)
    fwd = maybe_compile(wrap_ddp(model, device), device, runtime)
    t0 = time.perf_counter()
    seen = 0
    step = start_epoch * per_epoch
    agree = dd.Agreement(step)
    bar = progress_bar(total=total, initial=step, desc=label, unit="step")
    with graceful_stop(label) as stop:
        for epoch in range(start_epoch, epochs):
            model.train()
            perm = torch.randperm(N, generator=torch.Generator().manual_seed(seed_for(seed, 12, epoch))).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            epoch_seen = 0
            for i in range(min(per_epoch, total - epoch * per_epoch)):
                if agree.due(step) and agree(step, stop.requested)[0]:
                    bar.close()  # the last finished epoch's checkpoint is the consistent state to resume from
                    raise KeyboardInterrupt
                idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                xb = x_all[idx]
                if cfg.augment:
                    xb = random_crop_flip(xb, pad=cfg.crop_padding, flip=cfg.hflip, gen=gen)
                logits, yb, loss_of_share = train_step(fwd, normalizer, xb, y_all[idx], fmt, cfg, opt, sched, device,
                                                       runtime)
                loss_sum += loss_of_share
                correct += (logits.argmax(1) == yb).sum()
                seen += len(idx)
                epoch_seen += len(idx)
                step += 1
                bar.update(1)
            val_acc = (round(float((predict(model, normalizer, val.x, device, runtime).argmax(1) == val.y).mean()), 5)
                       if len(val) else None)
            history.append({"epoch": epoch + 1, "steps": min((epoch + 1) * per_epoch, total),
                            "train_loss": round(float(dd.sum_over_ranks(loss_sum)) / epoch_seen, 5),
                            "train_acc": round(float(dd.sum_over_ranks(correct)) / epoch_seen, 5), "val_acc": val_acc})
            shown = {"loss": f"{history[-1]['train_loss']:.3f}"} | ({"val_acc": f"{val_acc:.3f}"} if len(val) else {})
            bar.set_postfix(shown, refresh=False)
            if resume is not None and epoch + 1 < epochs:
                resume.save_state({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                   "scheduler": sched.state_dict(), **rng_states(gen, device), "history": history,
                                   "epoch": epoch + 1})
                dd.barrier()  # written before any rank stops
            if on_epoch is not None:
                on_epoch(epoch + 1)
    bar.close()
    wall = time.perf_counter() - t0
    return TrainedClassifier(model, normalizer, train.classes, history, seen / wall if seen and wall > 0 else None, wall)


def optimizer(model: nn.Module, cfg: Recipe, total: int):
    """The recipe's optimizer (weight decay on weights, not on biases and norm parameters) and its learning-rate
    schedule over ``total`` steps: (optimizer, scheduler)."""
    params = [{"params": [p for p in model.parameters() if p.ndim > 1], "weight_decay": cfg.weight_decay},
              {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr)
    if cfg.lr_schedule == "onecycle":
        if abs(cfg.warmup_fraction * total - 1) < 1e-9:  # OneCycleLR divides by (warm-up steps - 1)
            raise UserError(f"warmup_fraction: {cfg.warmup_fraction} of {total} steps is a single warm-up step; "
                            f"use another fraction or more steps")
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total,
                                                    pct_start=cfg.warmup_fraction, anneal_strategy="linear",
                                                    cycle_momentum=False)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    return opt, sched


def train_step(fwd, normalizer: Normalizer, xb: torch.Tensor, yb: torch.Tensor, fmt, cfg: Recipe,
               opt: torch.optim.Optimizer, sched, device: torch.device, runtime: RuntimeConfig):
    """One optimizer step on the batch ``xb`` ([B, H, W, C] uint8, augmented), ``yb``: cross-entropy with label
    smoothing, backward, optimizer and schedule steps. Returns (logits, labels, summed loss) of this process's
    share (the whole batch with one process)."""
    if dd.world_size() > 1:
        logits, yb, loss, loss_of_share = _share_step(fwd, normalizer, xb, yb, fmt, cfg, device, runtime)
    else:
        with autocast(device, runtime):
            logits = fwd(normalizer(xb, fmt))
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
        loss_of_share = loss.detach() * len(yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return logits, yb, loss_of_share


def _share_step(fwd, normalizer: Normalizer, xb: torch.Tensor, yb: torch.Tensor, fmt, cfg: Recipe,
                device: torch.device, runtime: RuntimeConfig):
    """This rank's share of a global batch (DDP): (logits, labels, loss to backpropagate, summed loss for the log).

    The loss is the share's summed cross-entropy x world size / batch size, so that DDP's mean over ranks is the
    mean over the whole batch even when shares differ by one image. When the batch has fewer than 2 images per rank
    (the end of an epoch), rank 0 takes it whole and the others run its first images at weight 0 (DDP needs every
    rank in backward; BatchNorm cannot train on one image)."""
    n, world = len(yb), dd.world_size()
    part, weight = dd.share(n), 1.0
    if n < 2 * world:  # shares of one image cannot train BatchNorm: rank 0 takes this short batch whole
        part, weight = (slice(0, n), 1.0) if dd.is_main() else (slice(0, min(2, n)), 0.0)
    xs, ys = xb[part], yb[part]
    with autocast(device, runtime):
        logits = fwd(normalizer(xs, fmt))
        summed = F.cross_entropy(logits.float(), ys, label_smoothing=cfg.label_smoothing, reduction="sum")
    loss = summed * (weight * dd.world_size() / len(yb))
    return logits[:0] if weight == 0 else logits, ys[:0] if weight == 0 else ys, loss, summed.detach() * weight


def save_classifier(path, trained: TrainedClassifier, arch: str, cfg: Recipe, image_shape: tuple[int, ...]) -> None:
    save_torch(path, {"format": MODEL_FORMAT, "arch": arch, "dropout": cfg.dropout,
                      "model": trained.model.state_dict(), "normalizer": asdict(trained.normalizer),
                      "classes": list(trained.classes), "image_shape": list(image_shape)})


def load_classifier(path, device: torch.device, images: ImageSet | None = None,
                    what: str = "these images") -> tuple[nn.Module, Normalizer, tuple[str, ...]]:
    """A saved classifier; with ``images``, a one-line error unless they have its class names and image shape."""
    state = load_torch(path, MODEL_FORMAT)
    if images is not None and isinstance(state, dict) and "classes" in state and "image_shape" in state:
        if tuple(state["classes"]) != images.classes:
            raise UserError(f"{path}: classifies {list(state['classes'])}, but {what} are of classes "
                            f"{list(images.classes)} (retrain it: `dvc repro`)")
        if tuple(state["image_shape"]) != tuple(images.x.shape[1:]):
            raise UserError(f"{path}: takes images of shape {list(state['image_shape'])}, but {what} are "
                            f"{list(images.x.shape[1:])} (retrain it: `dvc repro`)")
    try:
        H, W, C = state["image_shape"]
        model = build_classifier(state["arch"], C, len(state["classes"]), H, state["dropout"])
        model.load_state_dict(state["model"])
        norm = Normalizer(tuple(state["normalizer"]["mean"]), tuple(state["normalizer"]["std"]))
    except (KeyError, TypeError, ValueError, RuntimeError, UserError) as exc:
        raise UserError(f"{path}: a classifier file of another version or a damaged one ({type(exc).__name__}); "
                        f"remake it with `dvc repro train_classifier`") from None
    return model.to(device, memory_format=memory_format(device)).eval(), norm, tuple(state["classes"])
