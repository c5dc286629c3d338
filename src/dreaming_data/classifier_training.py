"""Training the classifiers on uint8 tensors held on the device, augmented in batches, in the resumable loop of
``training.py``; and the run of one (arch, variant, seed) that the classifier stages share."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dreaming_data import distributed as dd, paths
from dreaming_data.checkpoints import ResumeDir
from dreaming_data.classifier import Normalizer, build_classifier, predict, save_classifier
from dreaming_data.config import Params, Recipe, RuntimeConfig, steps_per_epoch, training_steps  # noqa: F401
from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet, check_same_kind, load_images, write_csv, write_json
from dreaming_data.randomness import fingerprint_array, seed_for
from dreaming_data.launch import claim_device
from dreaming_data.runtime import autocast, maybe_compile, memory_format, setup_backends
from dreaming_data.training import Trainer, check_loss, seed_rank, train, wrap_ddp


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


@dataclass
class TrainedClassifier:
    model: nn.Module
    normalizer: Normalizer
    classes: tuple[str, ...]
    history: list[dict]
    images_per_s: float | None  # None when no step ran in this process
    wall_s: float


def training_identity(arch: str, recipe: Recipe, train: ImageSet, val: ImageSet, seed: int, steps: int) -> dict:
    """Everything a trained classifier depends on: a checkpoint resumes only when all of it is equal."""
    return {"arch": arch, "recipe": {k: v for k, v in asdict(recipe).items() if k != "epochs"},
            "steps": steps, "seed": seed,
            "data": fingerprint_array(train.x) + fingerprint_array(train.y) + fingerprint_array(train.synthetic)
            + fingerprint_array(val.x) + fingerprint_array(val.y)}


class ClassifierTrainer(Trainer):
    """``arch`` on ``train_set`` for ``steps`` optimizer steps, in epochs of one pass each (the last batch of an epoch
    may be smaller, the last epoch is cut short at ``steps``), validation accuracy after each epoch."""

    def __init__(self, arch: str, cfg: Recipe, runtime: RuntimeConfig, train_set: ImageSet, val: ImageSet,
                 seed: int, steps: int, label: str, device: torch.device):
        if len(train_set) == 0:
            raise UserError(f"{label}: the training set is empty")
        if steps < 1:
            raise UserError(f"{label}: {steps} optimizer steps; at least 1 is needed")
        if arch == "resnet18" and len(train_set) < 2:
            raise UserError(f"{label}: ResNet-18 needs at least 2 training images (BatchNorm), got {len(train_set)}")
        self.cfg, self.runtime, self.val, self.device, self.label, self.arch = cfg, runtime, val, device, label, arch
        self.seed, self.data_seed = seed_for(seed, 10), seed
        torch.manual_seed(self.seed)
        H, W, C = train_set.x.shape[1:]
        self.fmt = memory_format(device, runtime, "classifier")
        self.model = build_classifier(arch, C, len(train_set.classes), H, cfg.dropout).to(device, memory_format=self.fmt)
        if dd.world_size() > 1 and device.type == "cuda":
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)  # the global batch's statistics
        seed_rank(self.seed)
        self.N = len(train_set)
        self.steps_per_epoch, self.total = steps_per_epoch(self.N, cfg.batch_size), steps
        self.opt, self.sched = optimizer(self.model, cfg, steps)
        real = ~train_set.synthetic
        self.normalizer = Normalizer.fit(train_set.x[real] if real.any() else train_set.x)
        self.gen = torch.Generator(device=device).manual_seed(seed_for(seed, 11))
        self.history: list[dict] = []
        self.x_all = torch.from_numpy(train_set.x).to(device)  # [N, H, W, C] uint8 on the device
        self.y_all = torch.from_numpy(train_set.y).to(device)
        self.fwd = maybe_compile(wrap_ddp(self.model, device), device, runtime)
        self._reset()
        self.seen, self.shown = 0, None  # images this process trained on (for images/s); the bar's last epoch summary

    def _reset(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device, dtype=torch.int64)
        self.epoch_seen = 0

    def parts(self) -> dict:
        return {"model": self.model, "optimizer": self.opt, "scheduler": self.sched}

    def state(self) -> dict:  # the epoch so far, summed over ranks (rank 0 takes it back on resuming)
        return {"history": self.history, "epoch_seen": self.epoch_seen,
                "loss_sum": float(dd.sum_over_ranks(self.loss_sum)), "correct": int(dd.sum_over_ranks(self.correct))}

    def load(self, state: dict) -> None:
        self.history, self.epoch_seen = list(state["history"]), state["epoch_seen"]
        if dd.is_main():
            self.loss_sum = torch.tensor(state["loss_sum"], device=self.device)
            self.correct = torch.tensor(state["correct"], device=self.device, dtype=torch.int64)

    def start_epoch(self, epoch: int) -> None:
        self.model.train()
        g = torch.Generator().manual_seed(seed_for(self.data_seed, 12, epoch))
        self.perm = torch.randperm(self.N, generator=g).to(self.device)

    def step(self, step: int, i: int) -> None:
        B = self.cfg.batch_size
        idx = self.perm[i * B:(i + 1) * B if i + 1 < self.steps_per_epoch else self.N]  # the last takes the rest
        xb = self.x_all[idx]
        if self.cfg.augment:
            xb = random_crop_flip(xb, pad=self.cfg.crop_padding, flip=self.cfg.hflip, gen=self.gen)
        self.lr = self.opt.param_groups[0]["lr"]  # this step's: after the last one the schedule points past its end
        logits, yb, loss_of_share = train_step(self.fwd, self.normalizer, xb, self.y_all[idx], self.fmt, self.cfg,
                                               self.opt, self.sched, self.device, self.runtime)
        self.loss_sum += loss_of_share
        self.correct += (logits.argmax(1) == yb).sum()
        self.seen += len(idx)
        self.epoch_seen += len(idx)

    def end_epoch(self, epoch: int) -> None:
        val = self.val
        val_acc = (round(float((predict(self.model, self.normalizer, val.x, self.device, self.runtime).argmax(1)
                                == val.y).mean()), 5) if len(val) else None)
        loss = float(dd.sum_over_ranks(self.loss_sum)) / self.epoch_seen
        check_loss(loss, self.label, min((epoch + 1) * self.steps_per_epoch, self.total),
                   f"classifier.{self.arch}.lr")
        self.history.append({"epoch": epoch + 1, "steps": min((epoch + 1) * self.steps_per_epoch, self.total),
                             "train_loss": round(loss, 5),
                             "train_acc": round(float(dd.sum_over_ranks(self.correct)) / self.epoch_seen, 5),
                             "val_acc": val_acc})
        self.shown = {"loss": f"{self.history[-1]['train_loss']:.3f}"} | ({"val_acc": f"{val_acc:.3f}"} if len(val) else {})
        self._reset()

    def postfix(self, step: int, steps_per_s: float) -> dict | None:
        shown, self.shown = self.shown, None
        return shown

    def live(self, step: int, steps_per_s: float, due: bool) -> dict:
        if step % self.steps_per_epoch and step != self.total:
            return {}
        h = self.history[-1]
        return {"train_loss": h["train_loss"], "train_acc": h["train_acc"], "val_acc": h["val_acc"],
                "lr": self.lr}


def train_classifier(arch: str, cfg: Recipe, runtime: RuntimeConfig, train_set: ImageSet, val: ImageSet, seed: int,
                     steps: int, resume: ResumeDir | None = None, label: str = "classifier",
                     on_step=None, live_stage: str | None = None) -> TrainedClassifier:
    """Train ``arch`` on ``train_set`` for ``steps`` optimizer steps (``training_steps`` for the recipe's epochs);
    validation accuracy after each epoch (None without ``val``).

    Constant or one-cycle learning rate (linear rise over ``cfg.warmup_fraction`` of the steps, then linear decay),
    SGD or AdamW, label smoothing. With ``resume`` (built on ``training_identity``) the state is saved after every
    epoch and on Ctrl-C or SIGTERM, and an interrupted run of the same code, configuration and data continues where
    it stopped. ``on_step(step)`` is called after each optimizer step.

    Under torchrun (DDP) every rank draws the order and augmentation of the whole batch, as one process does, and
    computes its share; the loss is scaled so that the averaged gradient is the batch mean's, also for a short last
    batch. BatchNorm statistics are synchronised over ranks on CUDA (SyncBatchNorm), per rank on the CPU (where rank
    0 takes a last batch of fewer than 2 images per rank whole: BatchNorm cannot train on one image).
    """
    device = claim_device(runtime)
    setup_backends(device)
    t = ClassifierTrainer(arch, cfg, runtime, train_set, val, seed, steps, label, device)
    stats = train(t, resume, device, runtime, t.gen, save_each_epoch=True, on_step=on_step, live_stage=live_stage)
    speed = t.seen / stats.wall_s if t.seen and stats.wall_s > 0 else None
    return TrainedClassifier(t.model, t.normalizer, train_set.classes, t.history, speed, stats.wall_s)


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




def train_and_save(p: Params, arch: str, variant: str, seed: int, stage: str, train_set: ImageSet, steps: int) -> None:
    """One classifier run of a stage (``train_classifier`` or ``train_matched``): train, resumably in the stage's
    checkpoint folder, then write the model, its per-epoch history and its metrics."""
    name = paths.classifier_name(arch, variant, seed)
    val = load_images(paths.prepared("val"))
    check_same_kind(train_set, val, f"{paths.prepared('val')}: its images", "rerun download")
    recipe = p.classifier.recipe(arch)
    resume = ResumeDir(paths.resume_dir(stage), training_identity(arch, recipe, train_set, val, seed, steps), stage)
    trained = train_classifier(arch, recipe, p.runtime, train_set, val, seed, steps, resume, label=f"classifier {name}",
                               live_stage=stage)
    if dd.is_main():
        save_classifier(paths.classifier_model(name), trained.model, trained.normalizer, trained.classes, arch, recipe,
                        train_set.x.shape[1:])
        write_csv(trained.history, paths.PLOTS / "classifier" / f"{name}.csv")
        val_accs = [h["val_acc"] for h in trained.history if h["val_acc"] is not None]
        write_json(paths.METRICS / "train" / f"{name}.json", {
            "arch": arch, "variant": variant, "optimizer_steps": steps,
            "epochs": round(steps / steps_per_epoch(len(train_set), recipe.batch_size), 3),
            "final_val_acc": trained.history[-1]["val_acc"], "best_val_acc": max(val_accs, default=None),
            "train_images": len(train_set), "synthetic_images": int(train_set.synthetic.sum()),
            "images_per_s": None if trained.images_per_s is None else round(trained.images_per_s, 1),
            "wall_s": round(trained.wall_s, 2)})
    resume.finish()
    print(f"classifier {name}: val acc {trained.history[-1]['val_acc']} after {steps} optimizer steps")
