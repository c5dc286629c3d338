"""Devices, precision and compilation, decided in one place from ``runtime`` params."""

from __future__ import annotations

import contextlib
import os

import torch

from dreaming_data.config import RuntimeConfig
from dreaming_data.errors import UserError


def resolve_device(cfg: RuntimeConfig) -> torch.device:
    if cfg.num_workers > 0:
        torch.set_num_threads(cfg.num_workers)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("runtime.device: cuda requested but torch sees no CUDA device (use auto or cpu)")
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def numerics(device: torch.device, cfg: RuntimeConfig) -> dict:
    """What, besides params and data, moves training results by float rounding: the device, its precision and
    compilation on CUDA, the number of CPU threads (reductions split differently). A resumed run must match it."""
    if device.type == "cuda":
        return {"device": torch.cuda.get_device_name(device), "precision": cfg.precision, "compile": cfg.compile}
    return {"device": "cpu", "threads": torch.get_num_threads()}


def autocast(device: torch.device, cfg: RuntimeConfig) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``precision`` is bf16; plain fp32 otherwise (CPU bf16 is slow on most CPUs)."""
    if device.type == "cuda" and cfg.precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def maybe_compile(module: torch.nn.Module, device: torch.device, cfg: RuntimeConfig):
    """``torch.compile`` on CUDA when ``runtime.compile`` is true (``DREAMING_DATA_NO_COMPILE=1`` turns it off)."""
    if device.type == "cuda" and cfg.compile and not os.environ.get("DREAMING_DATA_NO_COMPILE"):
        return torch.compile(module)
    return module


def rng_states(gen: torch.Generator, device: torch.device) -> dict:
    """Every generator a training loop draws from: its own ``gen`` and the global ones (dropout)."""
    return {"generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None}


def restore_states(state: dict, parts: dict, gen: torch.Generator, device: torch.device) -> None:
    """Load each of ``parts`` (name -> module, optimizer or scheduler) from ``state``, then the generators."""
    for name, part in parts.items():
        part.load_state_dict(state[name])
    gen.set_state(state["generator"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])


def setup_backends(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def progress_bar(**kwargs):
    """A tqdm bar that redraws often on a terminal and every 10 s in a log (DVC, CI)."""
    import sys

    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(dynamic_ncols=True, mininterval=0.2 if interactive else 10.0, **kwargs)
