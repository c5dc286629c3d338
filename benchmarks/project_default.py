"""How long `dvc repro` of a params file takes on this machine, projected from a few seconds of each code path.

    PYTHONPATH=src python benchmarks/project_default.py                      # params.yaml: the full study
    PYTHONPATH=src python benchmarks/project_default.py --params P --seconds 0.2 --out results.json
    PYTHONPATH=src python benchmarks/project_default.py --profile gpu-study -S data.path=/data/cifar10-jpeg.tar.gz

Measures, with the pipeline's own functions and the params' batch sizes, precision and compilation: the DDPM
optimizer step (``ddpm.train_step``) per schedule, guided sampling steps (``sampling.Sampler``) for every sampler
and batch size the stages use, each classifier architecture's optimizer step (``classifier.train_step``) and
forward (``classifier.predict``), and Inception feature extraction. Each rate is timed after a first call, whose
extra time (compilation on CUDA) is reported and added once to every stage that uses the path (a stage is its own
process). Multiplies the rates by the work of every stage (``projection.pipeline_work``: steps, images, sampling
steps) and prints the per-stage table and the total; writes it as JSON to ``--out`` (default
``benchmarks/results/<device>-<date>.json``). Models have random weights: speed does not depend on them.
Reading and writing data, and data preparation, are not projected.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch

from dreaming_data.overrides import apply_overrides, profile_overrides
from dreaming_data.tools import projection
from dreaming_data.config import parse_params, read_yaml
from dreaming_data.errors import UserError
from dreaming_data.runtime import maybe_compile, memory_format, resolve_device, setup_backends


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(fn, units: int, device: torch.device, seconds: float) -> tuple[float, float]:
    """(seconds per unit, extra seconds of the first call) of ``fn``, which does ``units`` units per call."""
    t0 = time.perf_counter()
    fn()
    sync(device)
    first = time.perf_counter() - t0
    calls, t0 = 0, time.perf_counter()
    while calls < 1 or time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
        sync(device)
    per_call = (time.perf_counter() - t0) / calls
    return per_call / units, max(0.0, first - per_call)


def measure(p, sizes: projection.Sizes, paths: set[tuple[str, str]], device: torch.device, seconds: float,
            inception_weights) -> tuple[dict, dict]:
    """Seconds per unit and first-call seconds of every (code path, key) in ``paths``."""
    from dreaming_data.classifier import Normalizer, build_classifier, predict
    from dreaming_data.classifier_training import optimizer, train_step as cls_step
    from dreaming_data.ddpm import LoadedDDPM, build_unet, process_config
    from dreaming_data.ddpm_training import train_step as ddpm_step
    from dreaming_data.diffusion import make_schedule
    from dreaming_data.quality import InceptionFeatures, inception_features
    from dreaming_data.randomness import image_keys
    from dreaming_data.sampling import Sampler

    H, W, C = sizes.image_shape
    K = sizes.classes
    fmt, cls_fmt = memory_format(device, p.runtime, "unet"), memory_format(device, p.runtime, "classifier")
    gen = torch.Generator(device=device).manual_seed(0)
    per_unit, first = {}, {}
    for path, key in sorted(paths):
        if path == "ddpm_step":
            B = p.ddpm.batch_size
            model = build_unet(p.unet, sizes.image_shape, K).to(device, memory_format=fmt).train()
            ema = copy.deepcopy(model).eval().requires_grad_(False)
            opt = torch.optim.Adam(model.parameters(), lr=p.ddpm.lr)
            fwd = maybe_compile(model, device, p.runtime)
            sched = make_schedule(p.diffusion, key).to(device)
            x0 = torch.rand(B, C, H, W, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
            y = torch.randint(0, K, (B,), device=device)
            result = rate(lambda: ddpm_step(p, model, fwd, ema, opt, sched, x0, y, 1000, gen), 1, device, seconds)
        elif path == "sample":
            sampler_name, batch = key.split("@")
            B, steps = int(batch), 4
            net = build_unet(p.unet, sizes.image_shape, K).to(device, memory_format=fmt).eval().requires_grad_(False)
            ddpm = LoadedDDPM(net, make_schedule(p.diffusion, "linear").to(device), process_config(p.diffusion),
                              tuple(map(str, range(K))), sizes.image_shape)
            sampler = Sampler(ddpm, p.diffusion, p.runtime, device, sampler_name)
            y = torch.arange(B) % K
            keys = image_keys(0, y, torch.arange(B))
            result = rate(lambda: sampler(y, keys, steps), B * steps, device, seconds)
        elif path in ("classifier_step", "predict"):
            recipe = p.classifier.recipe(key)
            model = build_classifier(key, C, K, H, recipe.dropout).to(device, memory_format=cls_fmt)
            x = torch.randint(0, 256, (recipe.batch_size, H, W, C), dtype=torch.uint8, device=device)
            norm = Normalizer.fit(x.cpu().numpy())
            if path == "classifier_step":
                model.train()
                fwd = maybe_compile(model, device, p.runtime)
                opt, sched = optimizer(model, recipe, 10 ** 9)
                y = torch.randint(0, K, (recipe.batch_size,), device=device)
                result = rate(lambda: cls_step(fwd, norm, x, y, cls_fmt, recipe, opt, sched, device, p.runtime), 1,
                              device, seconds)
            else:
                images = np.random.default_rng(0).integers(0, 256, (1000, H, W, C), dtype=np.uint8)
                result = rate(lambda: predict(model, norm, images, device, p.runtime), len(images), device, seconds)
        elif path == "inception":
            net = InceptionFeatures(inception_weights)
            # one batch of the stages' size per call (an image's cost does not depend on how many batches follow)
            images = np.random.default_rng(0).integers(0, 256, (p.eval.batch_size, H, W, C), dtype=np.uint8)
            result = rate(lambda: inception_features(images, None, device, p.eval.batch_size, net=net), len(images),
                          device, seconds)
        else:
            raise KeyError(path)
        per_unit[(path, key)], first[(path, key)] = result
        print(f"{path} {key}: {1 / result[0]:,.1f} units/s (first call +{result[1]:.1f} s)", flush=True)
    return per_unit, first


def hms(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--profile", default=None, help="apply a committed profile's overrides (e.g. gpu-study)")
    ap.add_argument("--set", "-S", action="append", default=[], metavar="KEY=VALUE", help="one more override (YAML value)")
    ap.add_argument("--seconds", type=float, default=3.0, help="timing per code path (after its first call)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/<device>-<date>.json)")
    args = ap.parse_args()
    try:
        overrides = profile_overrides(args.profile, args.set)
        p = parse_params(apply_overrides(read_yaml(args.params), overrides),
                         args.params + (f" + {args.profile} profile" if args.profile else ""))
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
    label = args.params + (f" + profile {args.profile}" if args.profile else "") + (f" + {len(args.set)} overrides" if args.set else "")
    device = resolve_device(p.runtime)
    setup_backends(device)
    sizes = projection.data_sizes(p)
    work = projection.pipeline_work(p, sizes)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{label} on {name}: {sizes.train:,} training images, {sizes.classes} classes, "
          f"{len(work)} stages", flush=True)
    per_unit, first = measure(p, sizes, projection.needed_paths(work), device, args.seconds, p.eval.fid_weights)
    rows = projection.project(work, per_unit, first)
    total = sum(r["total_s"] for r in rows)
    print("\n| stage | work | projected | of which first call |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['work']} | {hms(r['total_s'])} | {r['first_call_s']:.1f} s |")
    print(f"| **total** | | **{hms(total)}** | {sum(r['first_call_s'] for r in rows):.0f} s |")
    today = datetime.date.today().isoformat()
    out = args.out or Path("benchmarks/results") / f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}-{today}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "params": label, "overrides": overrides, "device": name, "date": today, "torch": torch.__version__,
        "python": platform.python_version(), "precision": p.runtime.precision if device.type == "cuda" else "fp32",
        "compile": bool(p.runtime.compile and device.type == "cuda"), "seconds_per_path": args.seconds,
        "data": {"train": sizes.train, "val": sizes.val, "test": sizes.test, "classes": sizes.classes,
                 "image_shape": list(sizes.image_shape)},
        "rates": [{"path": k[0], "key": k[1], "units_per_s": 1 / v, "first_call_extra_s": first[k]}
                  for k, v in sorted(per_unit.items())],
        "stages": rows, "total_s": total}, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
