"""A trained DDPM as a file: the EMA weights and everything needed to rebuild and sample from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from dreaming_data.config import DiffusionConfig, Params, UNetConfig
from dreaming_data.diffusion import Schedule, make_schedule
from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet, load_torch, save_torch
from dreaming_data.runtime import memory_format
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
