"""What DVCLive costs a DDPM training run: the seconds of one live record as train_ddpm writes it, against the
seconds of the training steps between two records.

    PYTHONPATH=src python benchmarks/live_overhead.py [--params params.yaml] [--records 2000] [--seconds 10]

A record is what ``train_ddpm`` logs every ``runtime.live_every`` steps: loss, learning rate, EMA decay and
images/s through ``live.LiveLog`` (four TSV rows appended and ``metrics.json`` rewritten), timed over ``--records``
records so that the files grow as in a run of ``records x live_every`` steps. The step time is the pipeline's own
``train_step`` at ``ddpm.batch_size`` on this machine (as ``ddpm_throughput.py`` times it), and, with
``--step-images-per-s``, a throughput measured elsewhere (the H100's 2,585 images/s at batch 128 in docs/results.md).
The loss the record holds is read anyway every 10 steps for the progress bar, so a record adds no device sync.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from ddpm_throughput import timed  # noqa: E402

from dreaming_data.config import load_params  # noqa: E402
from dreaming_data.ddpm import build_unet  # noqa: E402
from dreaming_data.ddpm_training import train_step  # noqa: E402
from dreaming_data.diffusion import make_schedule  # noqa: E402
from dreaming_data.live import LiveLog  # noqa: E402
from dreaming_data.runtime import maybe_compile, memory_format, resolve_device, setup_backends  # noqa: E402


def record_seconds(records: int, every: int) -> float:
    """Mean seconds of one record, in a fresh DVCLive directory."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            live = LiveLog("train_ddpm@linear", every)
            t0 = time.perf_counter()
            for i in range(1, records + 1):
                live.log(i * every, {"loss": 0.05 + 1 / i, "lr": 2e-4, "ema_decay": 0.9999, "images_per_s": 855.0})
            seconds = (time.perf_counter() - t0) / records
            live.close()
        finally:
            os.chdir(old)
    return seconds


def step_seconds(params: str, seconds: float) -> tuple[float, int, str]:
    """Seconds of one DDPM training step at ``ddpm.batch_size`` here, the batch size, and the device."""
    p = load_params(params)
    device = resolve_device(p.runtime)
    setup_backends(device)
    fmt = memory_format(device, p.runtime, "unet")
    size, channels, B = p.data.image_size, 1 if p.data.source == "digits" else 3, p.ddpm.batch_size
    model = build_unet(p.unet, (size, size, channels), 10).to(device, memory_format=fmt).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=p.ddpm.lr)
    fwd = maybe_compile(model, device, p.runtime)
    sched = make_schedule(p.diffusion, "linear").to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    x0 = torch.randn(B, channels, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (B,), device=device)
    wall, n = timed(lambda: train_step(p, model, fwd, ema, opt, sched, x0, y, 1000, gen), device, 3, seconds)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    return wall / n, B, name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=10.0, help="how long to time the training step")
    ap.add_argument("--every", type=int, default=None, help="steps per record (default: runtime.live_every)")
    ap.add_argument("--step-images-per-s", type=float, nargs=2, metavar=("IMAGES_PER_S", "BATCH"),
                    default=(2585.0, 128), help="a training throughput measured elsewhere")
    args = ap.parse_args()
    every = args.every or load_params(args.params).runtime.live_every
    record = record_seconds(args.records, every)
    print(f"one live record: {1e3 * record:.3f} ms ({args.records:,} records, one every {every} steps)")
    step, batch, device = step_seconds(args.params, args.seconds)
    rows = [(f"{device}, batch {batch} (measured here)", step)]
    rate, b = args.step_images_per_s
    rows.append((f"{rate:,.0f} images/s at batch {b:.0f} (given)", b / rate))
    for what, s in rows:
        print(f"{what}: {1e3 * s:.2f} ms per step, {batch if 'here' in what else b:.0f} images per step; "
              f"live logging costs {100 * record / (every * s):.3f}% of the training time")


if __name__ == "__main__":
    main()
