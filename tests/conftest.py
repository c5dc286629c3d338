"""Shared fixtures: the repository's own params.yaml made tiny, and a working directory to run stages in."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
import yaml

if os.environ.get("PYTEST_XDIST_WORKER"):  # two test processes on two cores: one thread each, and their stages'
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # (before torch is imported; runtime.num_workers 0 follows it)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # a stage that asks for more threads waits, never spins

ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def stage_cmd(name: str, *args: str) -> list[str]:
    """The command of stage ``name`` with ``args``, from any folder: ``python <repo>/stages/<name>.py ARGS...``."""
    import sys

    return [sys.executable, str(ROOT / "stages" / f"{name}.py"), *args]

# On top of the CPU quickstart profile: small enough for a test to train, sample and classify in seconds.
TINY = {
    "classifier.seeds.simple_cnn": [0, 1, 2],
    "classifier.seeds.resnet18": [0, 1, 2],
    "data.val_size": 50,
    "data.train_per_class": 10,
    "diffusion.timesteps": 40,
    "unet.channels": 16,
    "ddpm.epochs": 6,
    "ddpm.checkpoint_minutes": 10.0,
    "sample.steps": [40, 10],
    "sample.columns": 3,
    "generate.per_class": 6,
    "generate.steps": 10,
    "generate.chunk_size": 4,
    "generate.batch_size": 4,
    "classifier.simple_cnn.epochs": 2,
    "classifier.resnet18.epochs": 2,
    "classifier.resnet18.batch_size": 64,  # the tests' own, whatever the profile's recipe
    "ablation.steps": [40, 10],
    "ablation.per_class": 6,
    "ablation.cas_steps": 4,
}


# The whole pipeline end to end in a few minutes: one ablation cell with few images.
TINY_PIPELINE = {
    "classifier.seeds.simple_cnn": [0, 1],
    "classifier.seeds.resnet18": [0, 1],
    "ablation.schedules": ["linear"],
    "ablation.samplers": ["ancestral", "dpmsolver++"],
    "ablation.steps": [10],
    "ablation.per_class": 2,
    "eval.batch_size": 20,
}


def default_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def tiny_params(**extra) -> dict:
    from dreaming_data.overrides import apply_overrides, load_profile

    return apply_overrides(default_params(), load_profile("quickstart") | TINY | extra)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A project folder with nothing but the pipeline's dvc.yaml (where error hints find which stage writes a file),
    as the current directory."""
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_params(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(copy.deepcopy(raw), sort_keys=False))
    return path


def stage_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def prepare_data(root: Path) -> Path:
    """The data stage's outputs for ``root``/params.yaml, computed in this process as `--no-dvc` runs it: for
    fixtures that need the data, not the stage's process (a data stage process's start-up, torch and scikit-learn,
    costs more than its work here; its process runs in test_faults.py and the DVC studies)."""
    import contextlib

    from dreaming_data.runner import run_stage
    from dreaming_data.tools.registry import stages

    with contextlib.chdir(root):
        run_stage(stages()["download"], "params.yaml")
    return root



# Under xdist (--dist loadfile) a file runs whole in one process, files handed out in collection order: the longest
# end-to-end files first, so that none of them starts last and runs alone. (xdist >= 3.5 hands out the files with the
# most tests first instead, which started test_pipeline_dvc.py late and left it running alone for minutes: addopts
# has --no-loadscope-reorder, xdist 3.8.) Measured on 2 cores, in minutes:
# test_pipeline_dvc ~6-8, test_results ~3, test_distributed ~3, test_interrupts ~2.
LONGEST_FIRST = ("test_pipeline_dvc.py", "test_results.py", "test_distributed.py", "test_interrupts.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order stays
