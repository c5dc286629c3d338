"""The CPU side by side: every model the pipeline runs, in fp32 and bf16 and in both memory layouts, in one process.

    PYTHONPATH=src python benchmarks/cpu_speed.py [--seconds 4] [--rounds 3]

Cases run in turn, round after round (so a slow moment of the machine falls on all of them alike), each timed for
``--seconds`` per round after a warm-up call; a case's rate is its median over rounds. Measured:

- DDPM training step (the pipeline's ``ddpm_training.train_step``: Algorithm 1, Adam, clipping, EMA) of the project's
  UNet (channels 64, mult 1,2,2, one res block, attention at 8x8: the CIFAR-10 CPU scale) against diffusers'
  ``UNet2DModel`` of the same shape, batch 32, images/s;
- one guided sampling step (Ho & Salimans eq. 6: the conditional and null halves in one forward) of both networks,
  batch 64 (128 forwards), images/s;
- the FID Inception: fid-helper's TorchScript as it ships (what ``quality.py`` ran before), and the eager form the
  pipeline runs now (``inception.py``) in fp32 and bf16, 32x32 uint8 images in, pool3 features out, images/s;
- the classifiers' training step (``classifier_training.train_step``): the small CNN at batch 64 and ResNet-18 at
  batch 128 on 32x32 RGB images, images/s;
- (``unet-plain``) issue 33's own measurement of the project UNet: forward, backward and Adam only, no dropout, EMA
  or clipping, batch 32.

bf16 is ``torch.autocast("cpu", torch.bfloat16)``, the pipeline's ``runtime.precision: bf16`` where the CPU has it
natively (``runtime.native_bf16_cpu``); each ratio is against the first row of its group.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from dataclasses import replace

import torch
import torch.nn as nn

CL, CONTIG = torch.channels_last, torch.contiguous_format
CPU_UNET = {"unet.channels": 64, "unet.channel_mult": [1, 2, 2], "unet.num_res_blocks": 1,
            "unet.attention_resolutions": [8], "unet.dropout": 0.1}  # 4.44M parameters: the CIFAR-10 CPU scale


def bf16(on: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if on else contextlib.nullcontext()


class DiffusersEps(nn.Module):
    """diffusers' UNet2DModel as an eps model (x, t, y) -> eps, with the project's null class for guidance."""

    def __init__(self, channels: int, mult: list[int], attention_at: int, image_size: int, num_classes: int,
                 dropout: float):
        super().__init__()
        from diffusers import UNet2DModel

        widths = tuple(channels * m for m in mult)
        res = [image_size // 2 ** i for i in range(len(mult))]
        down = tuple("AttnDownBlock2D" if r == attention_at else "DownBlock2D" for r in res)
        up = tuple("AttnUpBlock2D" if r == attention_at else "UpBlock2D" for r in reversed(res))
        self.net = UNet2DModel(sample_size=image_size, in_channels=3, out_channels=3, layers_per_block=1,
                               block_out_channels=widths, down_block_types=down, up_block_types=up,
                               attention_head_dim=widths[-1], norm_num_groups=32, num_class_embeds=num_classes + 1,
                               dropout=dropout)  # the project UNet's dropout: a mask per ResBlock costs ~10% of a step
        self.num_classes = num_classes

    def forward(self, x, t, y):
        return self.net(x, t, class_labels=y).sample


def unet_cases(p, batch: int, sample_batch: int) -> dict:
    from dreaming_data.ddpm import build_unet
    from dreaming_data.ddpm_training import train_step
    from dreaming_data.diffusion import guided_eps, make_schedule
    from dreaming_data.unet import count_parameters

    K = 10
    sched = make_schedule(p.diffusion, "linear")
    ours = build_unet(p.unet, (32, 32, 3), K)
    theirs = DiffusersEps(p.unet.channels, list(p.unet.channel_mult), p.unet.attention_resolutions[0], 32, K,
                          p.unet.dropout)
    print(f"UNets: project {count_parameters(ours) / 1e6:.2f}M parameters, diffusers UNet2DModel "
          f"{count_parameters(theirs) / 1e6:.2f}M")
    gen = torch.Generator().manual_seed(0)
    x0, y = torch.randn(batch, 3, 32, 32, generator=gen), torch.randint(0, K, (batch,), generator=gen)
    xs, ys = torch.randn(sample_batch, 3, 32, 32, generator=gen), torch.randint(0, K, (sample_batch,), generator=gen)
    ts = torch.full((sample_batch,), 250, dtype=torch.int64)
    cases = {}

    def training(net, half: bool, fmt):
        model = copy.deepcopy(net).to(memory_format=fmt).train()
        model.num_classes = K
        ema = copy.deepcopy(model).eval().requires_grad_(False)
        opt = torch.optim.Adam(model.parameters(), lr=p.ddpm.lr)
        q = replace(p, runtime=replace(p.runtime, precision="bf16" if half else "fp32", device="cpu"))
        x = x0.contiguous(memory_format=fmt)
        return lambda: train_step(q, model, model, ema, opt, sched, x, y, 1000, gen), batch

    def sampling(net, half: bool, fmt):
        model = copy.deepcopy(net).to(memory_format=fmt).eval().requires_grad_(False)
        x = xs.contiguous(memory_format=fmt)

        def step():
            with torch.no_grad(), bf16(half):
                return guided_eps(model, x, ts, ys, K, p.diffusion.guidance)
        return step, sample_batch

    for kind, make in (("train step", training), ("guided sampling step", sampling)):
        for half in (False, True):
            prec = "bf16" if half else "fp32"
            group = f"UNet {kind}, {prec}"
            cases[(group, "project UNet, contiguous")] = make(ours, half, CONTIG)
            cases[(group, "project UNet, channels_last")] = make(ours, half, CL)
            cases[(group, "diffusers UNet2DModel, contiguous")] = make(theirs, half, CONTIG)
            cases[(group, "diffusers UNet2DModel, channels_last")] = make(theirs, half, CL)
    return cases


def plain_step_cases(p, batch: int) -> dict:
    """Issue 33's own measurement: forward, backward and Adam of the same UNet without dropout, EMA or clipping (what
    bf16 speeds up least is left out), fp32 eager against bf16 autocast."""
    from dreaming_data.ddpm import build_unet

    K, gen = 10, torch.Generator().manual_seed(3)
    net = build_unet(replace(p.unet, dropout=0.0), (32, 32, 3), K).train()
    x, t, y = (torch.randn(batch, 3, 32, 32, generator=gen), torch.randint(0, 1000, (batch,), generator=gen),
               torch.randint(0, K, (batch,), generator=gen))
    cases = {}
    for half in (False, True):
        model = copy.deepcopy(net)
        opt = torch.optim.Adam(model.parameters(), lr=p.ddpm.lr)

        def step(model=model, opt=opt, half=half):
            with bf16(half):
                loss = (model(x, t, y).float() - x).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        cases[("UNet plain step (forward, backward, Adam; no dropout, EMA, clipping)", "bf16" if half else "fp32")] = \
            (step, batch)
    return cases


def inception_cases(batch: int) -> dict:
    import warnings

    from dreaming_data.quality import FID_INPUT_RANGE, FID_SIZE, InceptionFeatures, default_fid_weights, \
        tf_bilinear_resize

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        script = torch.jit.load(str(default_fid_weights()), map_location="cpu").float().eval()
    eager = InceptionFeatures(None)
    x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    lo, hi = FID_INPUT_RANGE

    def shipped():  # what quality.py did before: the TorchScript as it ships
        with torch.no_grad():
            return script((tf_bilinear_resize(x.float(), FID_SIZE) * ((hi - lo) / 255) + lo).clamp(lo, hi))

    def now(half: bool):
        def run():
            with bf16(half):
                return eager(x)
        return run

    g = "FID Inception (32x32 uint8 in, pool3 features out)"
    return {(g, "fid-helper TorchScript, fp32 (before)"): (shipped, batch),
            (g, "eager: BN folded, channels_last, pools rearranged, fp32 (the pipeline's)"): (now(False), batch),
            (g, "eager, bf16 (not used: FID moves 0.32%)"): (now(True), batch)}


def classifier_cases(p) -> dict:
    from dreaming_data.classifier import Normalizer, build_classifier
    from dreaming_data.classifier_training import optimizer, train_step

    cases = {}
    for arch, batch in (("simple_cnn", 64), ("resnet18", 128)):
        recipe = replace(getattr(p.classifier, arch), batch_size=batch)
        gen = torch.Generator().manual_seed(2)
        xb = torch.randint(0, 256, (batch, 32, 32, 3), dtype=torch.uint8, generator=gen)
        yb = torch.randint(0, 10, (batch,), generator=gen)
        norm = Normalizer((0.5,) * 3, (0.25,) * 3)
        for half in (False, True):
            for fmt, layout in ((CONTIG, "contiguous"), (CL, "channels_last")):
                model = build_classifier(arch, 3, 10, 32, recipe.dropout).to(memory_format=fmt).train()
                opt, sched = optimizer(model, recipe, 10 ** 6)
                rt = replace(p.runtime, precision="bf16" if half else "fp32", device="cpu")
                fn = (lambda m=model, o=opt, s=sched, f=fmt, r=rt:
                      train_step(m, norm, xb, yb, f, recipe, o, s, torch.device("cpu"), r))
                cases[(f"{arch} train step, batch {batch}", f"{'bf16' if half else 'fp32'}, {layout}")] = (fn, batch)
    return cases


def measure(cases: dict, seconds: float, rounds: int) -> dict:
    rates = {key: [] for key in cases}
    for fn, _ in cases.values():  # warm-up: oneDNN picks its kernels on the first call of each shape
        fn()
    for r in range(rounds):
        for key, (fn, n) in cases.items():
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds or calls == 0:
                fn()
                calls += 1
            rates[key].append(calls * n / (time.perf_counter() - t0))
        print(f"round {r + 1} of {rounds} done", flush=True)
    return {key: statistics.median(v) for key, v in rates.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seconds", type=float, default=4.0, help="per case per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=["unet", "unet-plain", "inception", "classifier"])
    args = ap.parse_args()
    from dreaming_data.config import parse_params
    from dreaming_data.overrides import apply_overrides
    from dreaming_data.runtime import native_bf16_cpu

    import yaml

    with open(args.params) as f:
        p = parse_params(apply_overrides(yaml.safe_load(f), CPU_UNET), args.params)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16_cpu()}")
    cases = {}
    if "unet" in args.only:
        cases |= unet_cases(p, 32, 64)
    if "unet-plain" in args.only:
        cases |= plain_step_cases(p, 32)
    if "inception" in args.only:
        cases |= inception_cases(32)
    if "classifier" in args.only:
        cases |= classifier_cases(p)
    rates = measure(cases, args.seconds, args.rounds)
    print("\n| group | case | images/s | ratio |\n|---|---|---|---|")
    first = {}
    for (group, case), rate in rates.items():
        first.setdefault(group, rate)
        print(f"| {group} | {case} | {rate:.1f} | {rate / first[group]:.2f}x |")
    for kind in ("train step", "guided sampling step"):
        key = lambda prec, who: rates.get((f"UNet {kind}, {prec}", f"{who}, contiguous"))
        if key("fp32", "project UNet") and key("bf16", "project UNet"):
            print(f"UNet {kind}: project bf16 / project fp32 = {key('bf16', 'project UNet') / key('fp32', 'project UNet'):.2f}x; "
                  f"project bf16 / diffusers bf16 = {key('bf16', 'project UNet') / key('bf16', 'diffusers UNet2DModel'):.2f}x; "
                  f"project fp32 / diffusers fp32 = {key('fp32', 'project UNet') / key('fp32', 'diffusers UNet2DModel'):.2f}x")


if __name__ == "__main__":
    main()
