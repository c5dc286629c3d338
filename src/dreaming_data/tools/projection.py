"""What each stage of ``dvc repro`` computes, counted from params and the data's size, so that measured rates of
the pipeline's code paths (``benchmarks/project_default.py``) project its wall time before anything runs.

Work is a list of ``Part``s, each a number of units of one measured code path: DDPM optimizer steps, sampling
image-steps (one image through one sampling step, guided: two UNet forwards) at a batch size, classifier optimizer
steps, classifier forwards (per image), Inception forwards (per image). Each stage module declares its own
(``Stage.work``), with the stage's own arithmetic (``config.training_steps``, the DDPM's steps per epoch,
``config.merged_per_class``): a test checks them against what a real run recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

from dreaming_data.config import Params
from dreaming_data.stage import Part, Sizes

CIFAR10 = {"classes": 10, "image_shape": (32, 32, 3), "train": 50_000, "test": 10_000}  # torchvision's


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


def pipeline_work(p: Params, s: Sizes) -> list[tuple[str, list[Part]]]:
    """(stage name as DVC shows it, its work) for every stage of ``dvc.yaml`` under ``p``."""
    from dreaming_data.tools.registry import ordered

    return [(i.label, i.work(p, s)) for i in ordered(p)]


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
