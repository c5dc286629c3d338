"""Devices, precision and compilation, decided in one place from ``runtime`` params."""

from __future__ import annotations

import contextlib
import os

import torch

from dreaming_data.config import RuntimeConfig
from dreaming_data.errors import UserError


def resolve_device(cfg: RuntimeConfig) -> torch.device:
    """The device ``runtime.device`` asks for (auto: CUDA when torch sees it, else the CPU), and the CPU threads
    ``runtime.num_workers`` sets. A stage that may run under torchrun or beside others on a machine with several GPUs
    takes its GPU with ``launch.claim_device`` instead."""
    if cfg.num_workers > 0:
        torch.set_num_threads(cfg.num_workers)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("runtime.device: cuda requested but torch sees no CUDA device (use auto or cpu)")
    return use_device(torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                                   "cpu" if cfg.device == "auto" else cfg.device))


def use_device(device: torch.device) -> torch.device:
    """Record ``device`` as the one this process computes on (what a progress bar's time projection names)."""
    _DEVICE[0] = describe(device)
    return device


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): there bf16 autocast doubles a convolution's rate;
    elsewhere oneDNN emulates it, slower than fp32."""
    cpu = getattr(torch, "cpu", None)
    checks = (getattr(cpu, "_is_avx512_bf16_supported", None), getattr(cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in checks)


def precision(device: torch.device, cfg: RuntimeConfig) -> str:
    """The precision a stage computes in: ``runtime.precision`` (bf16 autocast) on CUDA and on a CPU with native
    bf16; fp32 on any other CPU."""
    if cfg.precision == "bf16" and (device.type == "cuda" or native_bf16_cpu()):
        return "bf16"
    return "fp32"


def numerics(device: torch.device, cfg: RuntimeConfig) -> dict:
    """What, besides params and data, moves training results by float rounding: the device, its precision and
    compilation on CUDA, the precision and number of threads on a CPU (reductions split differently). A resumed run
    must match it."""
    if device.type == "cuda":
        return {"device": torch.cuda.get_device_name(device), "precision": cfg.precision, "compile": cfg.compile}
    return {"device": "cpu", "threads": torch.get_num_threads(), "precision": precision(device, cfg)}


def autocast(device: torch.device, cfg: RuntimeConfig) -> contextlib.AbstractContextManager:
    """bf16 autocast where ``precision`` says bf16 (CUDA, or a CPU with native bf16); plain fp32 otherwise."""
    if precision(device, cfg) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device, cfg: RuntimeConfig, net: str) -> torch.memory_format:
    """The layout of ``net`` (unet | classifier), by measurement (benchmarks/cpu_speed.py, docs/speed.md):
    channels_last on CUDA and for the classifiers everywhere; on a CPU the UNet only in fp32 (under bf16 autocast
    channels_last costs its training step 20% and its sampling 10%)."""
    if device.type == "cuda" or net == "classifier" or precision(device, cfg) == "fp32":
        return torch.channels_last
    return torch.contiguous_format


def maybe_compile(module: torch.nn.Module, device: torch.device, cfg: RuntimeConfig):
    """``torch.compile`` on CUDA when ``runtime.compile`` is true (``DREAMING_DATA_NO_COMPILE=1`` turns it off)."""
    if device.type == "cuda" and cfg.compile and not os.environ.get("DREAMING_DATA_NO_COMPILE"):
        return torch.compile(module)
    return module


def setup_backends(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


LONG_RUN_S = 3600  # a bar projected past this says so, once, a few seconds in
_DEVICE = ["cpu"]  # the device resolve_device chose last, described: what a bar's projection is for


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def long_run_note(what: str, seconds: float, elapsed: float) -> str:
    """One line: how long ``what`` will take at its rate so far, on which device, and the cheaper ways to run."""
    device = _DEVICE[0]
    ways = ("`dreaming-data quickstart --profile gpu-study` runs the CIFAR-10 study at one GPU's 10-minute scale"
            if not device.startswith("cpu") else
            "`dreaming-data quickstart` runs the whole study small (about 10 minutes on 2 CPU cores), and on a GPU "
            "`-S runtime.device=cuda` uses it")
    return (f"note: {what}: about {seconds / 3600:,.1f} h to go on {device} at the rate of its first {elapsed:.0f} s. "
            f"params.yaml's defaults are the full GPU study; {ways}. Going on.")


def progress_bar(**kwargs):
    """A tqdm bar that redraws often on a terminal and every 10 s in a log (DVC, CI); shown by rank 0 only. A few
    seconds in, a bar that will take more than ``LONG_RUN_S`` at its rate says so in one line (and goes on)."""
    import sys
    import time

    from tqdm.auto import tqdm

    class Bar(tqdm):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self._t0, self._n0, self._projected = time.monotonic(), self.n, False

        def update(self, n=1):
            shown = super().update(n)
            elapsed, done = time.monotonic() - self._t0, self.n - self._n0
            if not self._projected and not self.disable and self.total and done > 0 and elapsed >= 5:
                self._projected = True
                left = (self.total - self.n) * elapsed / done
                if left > LONG_RUN_S:
                    self.write(long_run_note(self.desc, left, elapsed), file=sys.stderr)
            return shown

    interactive = sys.stderr.isatty()
    main = os.environ.get("RANK", "0") == "0"  # torchrun's rank of this process (none: the only one)
    return Bar(dynamic_ncols=True, mininterval=0.2 if interactive else 10.0, disable=not main, **kwargs)
