"""What each stage of ``dvc repro`` computes, counted from params and the data's size, so that measured rates of
the pipeline's code paths (``benchmarks/project_default.py``) project its wall time before anything runs.

Work is a list of ``Part``s, each a number of units of one measured code path: DDPM optimizer steps, sampling
image-steps (one image through one sampling step, guided: two UNet forwards) at a batch size, classifier optimizer
steps, classifier forwards (per image), Inception forwards (per image). The counts follow the stages' own
arithmetic (``classifier.training_steps``, the DDPM's steps per epoch, ``config.confident_candidates``): a test
checks them against what a real run recorded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from dreaming_data.config import Params

CIFAR10 = {"classes": 10, "image_shape": (32, 32, 3), "train": 50_000, "test": 10_000}  # torchvision's


@dataclass(frozen=True)
class Sizes:
    classes: int
    image_shape: tuple[int, int, int]  # H, W, C
    train: int  # real training images the baseline trains on
    val: int
    test: int


@dataclass(frozen=True)
class Part:
    path: str  # ddpm_step | sample | classifier_step | predict | inception
    key: str  # schedule, "<sampler>@<batch>", arch, or "" (inception)
    units: int  # steps, image-steps or images

    def describe(self) -> str:
        what = {"ddpm_step": "DDPM steps", "sample": "sampling image-steps", "classifier_step": "optimizer steps",
                "predict": "classifier forwards", "inception": "Inception forwards"}[self.path]
        return f"{self.units:,} {what}" + (f" ({self.key})" if self.key else "")


def data_sizes(p: Params, data_json: Path | None = None) -> Sizes:
    """The data's size: from ``data_json`` (the data stage's metrics of a run of these params) when given, else
    CIFAR-10's published counts with the split arithmetic, else (digits, folders) by reading the source. (The
    workspace's metrics/data.json is not read by default: it may come from a run of other params.)"""
    if data_json is not None and data_json.is_file():
        m = json.loads(data_json.read_text())
        t = m["totals"]
        return Sizes(len(m["classes"]), tuple(m["image_shape"]), t["train"], t["val"], t["test"])
    d = p.data
    if d.source == "cifar10":
        K, per_class = CIFAR10["classes"], (CIFAR10["train"] - d.val_size) // CIFAR10["classes"]
        kept = per_class if d.train_per_class is None else min(d.train_per_class, per_class)
        return Sizes(K, CIFAR10["image_shape"], kept * K, d.val_size, CIFAR10["test"])
    from dreaming_data.data import load_source, split_train

    source, test = load_source(d)
    train, val = split_train(source, d)
    return Sizes(len(train.classes), tuple(train.x.shape[1:]), len(train), len(val), len(test))


def synthetic_merged(p: Params, s: Sizes) -> int:
    """Synthetic images the merge stage adds (all classes)."""
    m, per_class = p.merge, p.generate.per_class
    if m.filter == "confident":
        kept = m.synthetic_per_class if m.synthetic_per_class is not None else max(1, round(per_class * m.keep_fraction))
    else:
        kept = per_class if m.synthetic_per_class is None else m.synthetic_per_class
    return kept * s.classes


def _sampling(sampler: str, batch: int, images: int, steps: int) -> Part:
    return Part("sample", f"{sampler}@{min(batch, images)}", images * steps)


def _classifier(p: Params, s: Sizes, arch: str, train_images: int, steps: int) -> list[Part]:
    from dreaming_data.classifier import steps_per_epoch

    epochs = math.ceil(steps / steps_per_epoch(train_images, p.classifier.recipe(arch).batch_size))
    return [Part("classifier_step", arch, steps), Part("predict", arch, epochs * s.val)]  # validation per epoch


def stage_work(p: Params, s: Sizes, name: str, **kw) -> list[Part]:
    """The work of stage function ``name`` (as in ``pipeline.stage_calls``) with its matrix arguments."""
    from dreaming_data.classifier import training_steps

    K, g, a = s.classes, p.generate, p.ablation
    augmented = s.train + synthetic_merged(p, s)
    if name == "train_ddpm":
        return [Part("ddpm_step", kw["schedule"], p.ddpm.epochs * max(1, s.train // p.ddpm.batch_size))]
    if name == "sample_grid":
        return [_sampling(p.diffusion.sampler, p.sample.batch_size, K * p.sample.columns, kw["steps"])]
    if name == "generate":
        return [_sampling(p.diffusion.sampler, g.batch_size, K * g.per_class, g.steps)]
    if name == "merge":
        if p.merge.filter != "confident":
            return []
        return [Part("predict", p.classifier.judge, K * g.per_class)]
    if name == "train_classifier":
        n = s.train if kw["variant"] == "baseline" else augmented
        return _classifier(p, s, kw["arch"], n, training_steps(p.classifier.recipe(kw["arch"]), n))
    if name == "train_matched":
        return _classifier(p, s, kw["arch"], s.train, training_steps(p.classifier.recipe(kw["arch"]), augmented))
    if name == "evaluate":
        return [Part("predict", kw["arch"], s.test)]
    if name == "fid_reference":
        return [Part("inception", "", s.train + s.val if p.eval.fid_reference == "train" else s.test)]
    if name == "ablation_sample":
        return [_sampling(kw["sampler"], g.batch_size, K * a.per_class, kw["steps"])]
    if name == "ablation":
        cells = len(a.schedules) * len(a.samplers) * len(a.steps)
        judge = p.classifier.judge
        return [Part("inception", "", cells * K * a.per_class),
                Part("classifier_step", judge, (cells + 1) * a.cas_steps),  # CAS: every cell and the real images
                Part("predict", judge, (cells + 1) * s.test + cells * K * a.per_class)]  # CAS tests, recognisability
    if name in ("download", "sample_noise", "compare"):
        return []  # reading, writing and small arithmetic: not projected
    raise KeyError(f"no work model for stage function {name!r}")


def pipeline_work(p: Params, s: Sizes) -> list[tuple[str, list[Part]]]:
    """(stage name as DVC shows it, its work) for every stage of ``dvc.yaml`` under ``p``."""
    from dreaming_data.pipeline import stage_calls

    return [(stage, stage_work(p, s, fn.__name__, **kwargs)) for stage, fn, kwargs in stage_calls(p)]


def needed_paths(work: list[tuple[str, list[Part]]]) -> set[tuple[str, str]]:
    """The (code path, key) pairs a projection needs a measured rate for."""
    return {(part.path, part.key) for _, parts in work for part in parts}


def project(work: list[tuple[str, list[Part]]], seconds_per_unit: dict, first_call: dict) -> list[dict]:
    """Per stage: its work, projected seconds (units x measured seconds per unit) and first-call (compile)
    seconds of each code path it uses (every stage is its own process: it compiles its own)."""
    rows = []
    for stage, parts in work:
        run = sum(part.units * seconds_per_unit[(part.path, part.key)] for part in parts)
        compile_s = sum(first_call.get((part.path, part.key), 0.0) for part in parts)
        rows.append({"stage": stage, "work": "; ".join(part.describe() for part in parts) or "(not projected)",
                     "run_s": run, "first_call_s": compile_s, "total_s": run + compile_s})
    return rows
