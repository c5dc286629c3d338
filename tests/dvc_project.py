"""A temporary git + DVC repository holding the real pipeline (src/, dvc.yaml) and tiny params, and how tests drive
DVC in it: shared by the end-to-end files, which xdist runs side by side."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, TINY_PIPELINE, stage_env, tiny_params, write_params

# The tiny pipeline with the small CNN alone, one seed, one sample grid per schedule and few images for Inception (~5
# per second on a CPU core: 30 training + 10 validation images):
# here each stage is a process with DVC's bookkeeping. ResNet-18 and the T-step grids run end to end in the GPU job's
# rehearsal (test_results.py), several seeds in the params-read test (test_dvc_contract.py).
STUDY = TINY_PIPELINE | {"classifier.seeds.simple_cnn": [0], "classifier.seeds.resnet18": [], "data.val_size": 10,
                         "data.train_per_class": 3, "novelty.per_class": 1, "ablation.per_class": 1,
                         "sample.steps": [10], "merge.synthetic_per_class": 6}  # 6: every dream (a curve point)


def sh(*cmd, cwd, check=True):
    env = stage_env()
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    env["DVC_NO_ANALYTICS"] = "1"
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def new_project(repo: Path, *targets: str) -> tuple[Path, str]:
    """The pipeline with STUDY's params committed in ``repo``, then ``dvc repro [targets]``: (repo, its stdout)."""
    for item in ("src", "stages", "dvc.yaml", ".dvcignore", ".gitignore"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / item)
    shutil.rmtree(repo / "src" / "dreaming_data.egg-info", ignore_errors=True)
    write_params(repo / "params.yaml", tiny_params(**STUDY))
    sh("git", "init", "-q", cwd=repo)
    sh("git", "config", "user.email", "test@example.com", cwd=repo)
    sh("git", "config", "user.name", "test", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "study", cwd=repo)
    return repo, sh("dvc", "repro", *targets, cwd=repo).stdout
