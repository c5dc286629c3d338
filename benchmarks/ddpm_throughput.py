"""DDPM throughput: training images/s and sampling UNet-forwards/s for a params file's UNet.

    PYTHONPATH=src python benchmarks/ddpm_throughput.py --params params.yaml --batches 64 128 512 --sample-batch 2048

Training steps are the pipeline's own (``ddpm.train_step``: bf16 autocast on CUDA, Adam, clipping, EMA) on random
images; sampling is one classifier-free-guided evaluation (the conditional and unconditional halves in one
forward, so a guided batch of B images is 2B UNet forwards). Timed after warm-up, with the device synchronised.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from dreaming_data.config import load_params
from dreaming_data.ddpm import build_unet
from dreaming_data.ddpm_training import train_step
from dreaming_data.diffusion import guided_eps, make_schedule
from dreaming_data.runtime import autocast, maybe_compile, memory_format, resolve_device, setup_backends
from dreaming_data.unet import count_parameters


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, warmup: int, seconds: float) -> tuple[float, int]:
    for _ in range(warmup):
        fn()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    sync(device)
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--batches", type=int, nargs="*", default=[64, 128], help="training batch sizes (none: skip)")
    ap.add_argument("--sample-batch", type=int, default=2048, help="guided images per evaluation (2x forwards)")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--unet-channels", type=int, default=None, help="override unet.channels")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="override runtime.compile")
    args = ap.parse_args()
    p = load_params(args.params)
    if args.compile is not None:
        p = type(p)(**{**p.__dict__, "runtime": type(p.runtime)(**{**p.runtime.__dict__, "compile": args.compile})})
    if args.unet_channels is not None:
        p = type(p)(**{**p.__dict__, "unet": type(p.unet)(**{**p.unet.__dict__, "channels": args.unet_channels})})
    device = resolve_device(p.runtime)
    setup_backends(device)
    fmt = memory_format(device, p.runtime, "unet")
    K = 10
    sched = make_schedule(p.diffusion, "linear").to(device)
    shape = (args.image_size, args.image_size, args.channels)
    base = build_unet(p.unet, shape, K)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; UNet {count_parameters(base) / 1e6:.2f}M parameters; "
          f"precision {p.runtime.precision if device.type == 'cuda' else 'fp32'}; "
          f"compile {p.runtime.compile and device.type == 'cuda'}")
    def train_throughput(B: int) -> tuple[float, float]:
        """(images/s, seconds of the first step incl. compile) at batch ``B``; its models are freed on return."""
        model = copy.deepcopy(base).to(device, memory_format=fmt).train()
        ema = copy.deepcopy(model).eval().requires_grad_(False)
        opt = torch.optim.Adam(model.parameters(), lr=p.ddpm.lr)
        fwd = maybe_compile(model, device, p.runtime)
        gen = torch.Generator(device=device).manual_seed(0)
        x0 = torch.randn(B, args.channels, args.image_size, args.image_size, device=device).contiguous(memory_format=fmt)
        y = torch.randint(0, K, (B,), device=device)
        t0 = time.perf_counter()
        train_step(p, model, fwd, ema, opt, sched, x0, y, 0, gen)
        sync(device)
        first = time.perf_counter() - t0
        wall, n = timed(lambda: train_step(p, model, fwd, ema, opt, sched, x0, y, 1000, gen), device,
                        args.warmup, args.seconds)
        return n * B / wall, first

    rows = []
    for B in args.batches:
        rate, first = train_throughput(B)
        rows.append((f"train batch {B}", rate, "images/s", first))
        print(f"train batch {B}: {rate:,.0f} images/s (first step incl. compile {first:.1f} s)", flush=True)
    B = args.sample_batch
    if B <= 0:
        return print_rows(rows)
    model = copy.deepcopy(base).to(device, memory_format=fmt).eval().requires_grad_(False)
    fwd = maybe_compile(model, device, p.runtime)
    x = torch.randn(B, args.channels, args.image_size, args.image_size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, K, (B,), device=device)
    t = torch.full((B,), 250, device=device, dtype=torch.int64)

    def guided():
        with torch.no_grad(), autocast(device, p.runtime):
            return guided_eps(fwd, x, t, y, K, p.diffusion.guidance)

    t0 = time.perf_counter()
    guided()
    sync(device)
    first = time.perf_counter() - t0
    wall, n = timed(guided, device, args.warmup, args.seconds)
    rows.append((f"sample guided batch {B}", 2 * n * B / wall, "UNet forwards/s", first))
    print(f"sample guided batch {B} ({2 * B} forwards each): {2 * n * B / wall:,.0f} forwards/s", flush=True)
    print_rows(rows)


def print_rows(rows: list) -> None:
    print("\n| measurement | throughput | unit | first call (s) |\n|---|---|---|---|")
    for what, value, unit, first in rows:
        print(f"| {what} | {value:,.0f} | {unit} | {first:.1f} |")


if __name__ == "__main__":
    main()
