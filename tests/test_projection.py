"""The projection of a `dvc repro`: the work each stage does, counted by hand for the default study, and the
benchmark script's command line (its projection of a tiny study on the CPU: the GPU job's rehearsal,
test_results.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, default_params, stage_env
from dreaming_data.config import merged_per_class, parse_params
from dreaming_data.overrides import apply_overrides
from dreaming_data.stage import Part, Sizes
from dreaming_data.tools import projection
from dreaming_data.tools.registry import ordered


def work_of(p, sizes) -> dict[str, dict[tuple[str, str], int]]:
    return {stage: {(part.path, part.key): part.units for part in parts}
            for stage, parts in projection.pipeline_work(p, sizes)}


def test_the_default_study_counted_by_hand(tmp_path):
    p = parse_params(default_params())
    sizes = projection.data_sizes(p, tmp_path / "no-data.json")
    assert sizes == Sizes(10, (32, 32, 3), 45_000, 5_000, 10_000)  # 50,000 - 5,000 validation
    w = work_of(p, sizes)
    assert w["train_ddpm@linear"] == {("ddpm_step", "linear"): 100 * 703}  # 45,000 // 64 full batches, 100 epochs
    assert w["generate"] == {("sample", "ancestral@1000"): 50_000 * 100}  # 5,000 per class, 100 steps
    assert w["sample_grid@cosine-500"] == {("sample", "ancestral@100"): 100 * 500}
    # the report's CNN: 40 epochs at batch 64 over 45,000 real (704 steps each, the last one short) ...
    assert w["train_classifier_simple_cnn@baseline-0"] == {("classifier_step", "simple_cnn"): 40 * 704,
                                                          ("predict", "simple_cnn"): 40 * 5_000}
    # ... and over 45,000 + 50,000 dreams (1,485 steps); the matched control as many steps on the real images
    assert w["train_classifier_simple_cnn@augmented-1"][("classifier_step", "simple_cnn")] == 40 * 1_485
    assert w["train_matched_resnet18@2"] == {("classifier_step", "resnet18"): 40 * 372,  # ceil(95,000 / 256)
                                             ("predict", "resnet18"): 85 * 5_000}  # 14,880 steps of 176 per epoch
    assert w["fid_reference"] == {("inception", ""): 50_000}
    assert w["ablation_sample@linear-ddim-25"] == {("sample", "ddim@1000"): 10_000 * 25}
    cells = 2 * 2 * 3
    assert w["ablation"] == {("inception", ""): cells * 10_000, ("classifier_step", "resnet18"): (cells + 1) * 1_500,
                             ("predict", "resnet18"): (cells + 1) * 10_000 + cells * 10_000}
    assert set(w) == {i.label for i in ordered(p)}
    low = work_of(parse_params(apply_overrides(default_params(), {"data.train_per_class": 100})),
                  projection.data_sizes(p, tmp_path / "no-data.json").__class__(10, (32, 32, 3), 1_000, 5_000, 10_000))
    assert low["train_ddpm@cosine"] == {("ddpm_step", "cosine"): 100 * 15}  # 1,000 // 64


def test_sizes_come_from_these_params_not_from_a_workspace_left_by_others(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "data.json").write_text(json.dumps({  # the data stage of a digits run
        "source": "digits", "classes": list("0123456789"), "image_shape": [8, 8, 1],
        "totals": {"train": 100, "val": 50, "test": 360}}))
    assert projection.data_sizes(parse_params(default_params())).train == 45_000


def test_filtered_dreams_count_what_merge_keeps():
    p = parse_params(apply_overrides(default_params(), {"merge.filter": "confident", "merge.synthetic_per_class": 2000}))
    sizes = Sizes(10, (32, 32, 3), 45_000, 5_000, 10_000)
    assert sizes.classes * merged_per_class(p) == 20_000
    w = work_of(p, sizes)
    assert w["merge"] == {("predict", "resnet18"): 50_000}  # the judge scores every generated image
    assert w["train_classifier_simple_cnn@augmented-0"][("classifier_step", "simple_cnn")] == 40 * 1_016  # 65,000


def test_project_sums_units_times_rates_and_first_calls():
    work = [("a", [Part("ddpm_step", "linear", 10), Part("predict", "x", 100)]), ("b", [])]
    rows = projection.project(work, {("ddpm_step", "linear"): 0.5, ("predict", "x"): 0.01},
                              {("ddpm_step", "linear"): 7.0})
    assert rows[0]["run_s"] == pytest.approx(6.0) and rows[0]["total_s"] == pytest.approx(13.0)
    assert rows[1] == {"stage": "b", "work": "(not projected)", "run_s": 0, "first_call_s": 0, "total_s": 0}


def test_benchmark_says_an_unknown_profile_in_one_line(tmp_path):
    """(The benchmark's projection of a tiny study: the GPU job's rehearsal, test_results.py.)"""
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "project_default.py"), "--profile", "gpu-stuyd"],
                         cwd=tmp_path, capture_output=True, text=True, env=stage_env(), timeout=600)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "error: --profile: unknown profile 'gpu-stuyd' (expected one of quickstart, cpu-study, cifar-cpu, gpu-smoke, gpu-study)"]
