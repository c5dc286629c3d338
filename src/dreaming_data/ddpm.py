"""A trained DDPM as a file: the EMA weights and everything needed to rebuild and sample from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from dreaming_data.config import DiffusionConfig, Params, UNetConfig
from dreaming_data.diffusion import Schedule, make_schedule
from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet, check_finite, load_torch, save_torch
from dreaming_data.unet import UNet

MODEL_FORMAT = "dreaming-data ddpm"
# The diffusion settings a trained model depends on (and records); guidance and variance are sampling choices.
PROCESS_KEYS = ("timesteps", "beta_start", "beta_end", "cosine_s", "p_uncond")


def process_config(diffusion: DiffusionConfig) -> dict:
    return {k: getattr(diffusion, k) for k in PROCESS_KEYS}


def build_unet(unet: UNetConfig, image_shape: tuple[int, ...], num_classes: int) -> UNet:
    H, W, C = image_shape
    return UNet(unet, image_size=H, in_channels=C, num_classes=num_classes)


def save_ddpm(path, ema: UNet, p: Params, schedule: str, train: ImageSet) -> None:
    """A self-describing model file: EMA weights plus everything needed to rebuild and sample from it."""
    check_finite(ema.state_dict(), f"{path}: not written")
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


def load_ddpm(path, device: torch.device, p: Params | None = None, schedule: str | None = None) -> LoadedDDPM:
    """A trained model; with the params ``p`` and the ``schedule`` it is loaded for, a one-line error (naming the
    file, what it records, the params key and the stage that remakes it) unless it was trained so."""
    state = load_torch(path, MODEL_FORMAT)
    try:
        unet_cfg = UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["unet"].items()})
        process = {k: state["diffusion"][k] for k in PROCESS_KEYS}
        recorded = (state["schedule"], process, unet_cfg)
        if p is not None:
            check_trained_as(path, recorded, p, schedule)
        sched = make_schedule(DiffusionConfig(**process, variance="fixed_large", guidance=0.0, sampler="ancestral",
                                             ddim_eta=0.0), state["schedule"])
        model = build_unet(unet_cfg, tuple(state["image_shape"]), len(state["classes"]))
        check_finite(state["ema"], str(path))
        model.load_state_dict(state["ema"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise UserError(f"{path}: a DDPM file of another version or a damaged one ({type(exc).__name__}); "
                        f"remake it with `dvc repro train_ddpm`") from None
    model = model.to(device).eval().requires_grad_(False)  # its layout: the sampler's (runtime.memory_format)
    return LoadedDDPM(model, sched.to(device), process, tuple(state["classes"]), tuple(state["image_shape"]))


def check_trained_as(path, recorded: tuple, p: Params, schedule: str | None) -> None:
    """The model's recorded (schedule, process, UNet) against the params that load it."""
    stage = f"run `dvc repro train_ddpm@{schedule}` to retrain it" if schedule else "retrain it"
    trained_schedule, process, unet = recorded
    if schedule is not None and trained_schedule != schedule:
        raise UserError(f"{path}: a model of the {trained_schedule} schedule, loaded as the {schedule} one "
                        f"({stage})")
    for key, value in process.items():
        if getattr(p.diffusion, key) != value:
            raise UserError(f"{path}: trained with diffusion.{key} {value}, but the params say "
                            f"{getattr(p.diffusion, key)} ({stage})")
    for field, value in asdict(unet).items():
        if getattr(p.unet, field) != value:
            raise UserError(f"{path}: trained with unet.{field} {list(value) if isinstance(value, tuple) else value},"
                            f" but the params say {getattr(p.unet, field)} ({stage})")
