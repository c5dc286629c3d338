"""Kill a stage mid-run (SIGKILL: power loss; SIGTERM: what Ctrl-C does), run it again, and get the bytes an uninterrupted run
writes. Real stage scripts in subprocesses, on tiny digits configurations."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import prepare_data, stage_cmd, stage_env, tiny_params, write_params

pytestmark = pytest.mark.slow

LONGER = {  # long enough that a kill lands mid-run (seconds on 2 cores), checkpoints every step or chunk
    "ddpm.epochs": 25,
    "ddpm.checkpoint_minutes": 0.0005,
    "generate.per_class": 12,
    "generate.steps": 15,
    "generate.batch_size": 8,
    "generate.chunk_size": 4,
    "classifier.simple_cnn.epochs": 60,
    "classifier.seeds.simple_cnn": [0],
    "classifier.seeds.resnet18": [0],
}


def stage(name: str, *args: str) -> list[str]:
    return stage_cmd(name, *args)


def run(cmd, cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=stage_env())
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def interrupt(cmd, cwd: Path, ready, sig: int) -> subprocess.CompletedProcess:
    """Start ``cmd``, wait until ``ready()`` (its first checkpoint exists), send ``sig``, and wait for the end."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=stage_env())
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, f"ended before its first checkpoint: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A project folder with params and the data stage's outputs."""
    root = tmp_path_factory.mktemp("kill")
    write_params(root / "params.yaml", tiny_params(**LONGER))
    return prepare_data(root)


def copy(base: Path, dest: Path, *extra: str) -> Path:
    dest.mkdir()
    for item in ("params.yaml", "data", *extra):
        (shutil.copytree if (base / item).is_dir() else shutil.copy)(base / item, dest / item)
    return dest


def check_interrupted(r: subprocess.CompletedProcess, sig: int, output: Path) -> None:
    """SIGKILL: the process is gone; SIGINT and SIGTERM: one line, exit 2."""
    assert not output.exists(), "the stage finished before the signal: make LONGER longer"
    if sig == signal.SIGKILL:
        assert r.returncode == -signal.SIGKILL
    else:
        assert r.returncode == 2, r.stderr[-2000:]
        assert r.stderr.strip().splitlines()[-1].startswith("error: interrupted; rerun the stage to resume")


def test_train_ddpm_resumes_to_the_same_bytes(base, tmp_path):
    """After power loss (Ctrl-C's save-and-stop: test_models.py with a real SIGINT, test_distributed.py through the
    launcher of two processes)."""
    sig = signal.SIGKILL
    model = Path("models/ddpm/linear/model.pt")
    state = Path("checkpoints/train_ddpm-linear/state.pt")
    if not (base / model).exists():  # the uninterrupted reference, once
        run(stage("train_ddpm", "linear"), base)
        assert not (base / state.parent).exists()  # a finished run leaves no state behind
    work = copy(base, tmp_path / "w")
    r = interrupt(stage("train_ddpm", "linear"), work, (work / state).exists, sig)
    check_interrupted(r, sig, work / model)
    resumed = run(stage("train_ddpm", "linear"), work)
    assert "ddpm linear: resuming from" in resumed.stdout
    assert (work / model).read_bytes() == (base / model).read_bytes()
    assert (work / "plots/ddpm/loss-linear.csv").read_bytes() == (base / "plots/ddpm/loss-linear.csv").read_bytes()
    assert not (work / state.parent).exists()


# SIGTERM is Ctrl-C in every stage process (Stage.main): here for generation, and for a torchrun worker in
# test_distributed.py; the training loop the DDPM and the classifier share saves on Ctrl-C: test_models.py (a real
# SIGINT in the test process) and test_distributed.py (Ctrl-C to the launcher of two processes)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_generate_resumes_to_the_same_bytes(base, tmp_path, sig):
    out = Path("data/generated/synthetic.npz")
    if not (base / "models/ddpm/linear/model.pt").exists():
        run(stage("train_ddpm", "linear"), base)
    if not (base / out).exists():
        run(stage("generate"), base)
    work = copy(base, tmp_path / "w", "models")
    (work / out).unlink()
    chunks = work / "checkpoints" / "generate"
    r = interrupt(stage("generate"), work, lambda: len(list(chunks.glob("class*.npy"))) >= 2, sig)
    check_interrupted(r, sig, work / out)
    # the rerun samples with another batch size: a speed knob, the bytes stay the same
    params = (work / "params.yaml").read_text()
    (work / "params.yaml").write_text(params.replace("  batch_size: 8\n  chunk_size: 4", "  batch_size: 5\n  chunk_size: 4"))
    assert (work / "params.yaml").read_text() != params
    resumed = run(stage("generate"), work)
    assert "chunks already done" in resumed.stdout
    assert (work / out).read_bytes() == (base / out).read_bytes()
    assert not chunks.exists()


def test_train_classifier_resumes_to_the_same_bytes(base, tmp_path):
    sig = signal.SIGKILL
    model = Path("models/classifier/simple_cnn-baseline-seed0.pt")
    state = Path("checkpoints/train_classifier_simple_cnn-baseline-0/state.pt")
    args = ("simple_cnn", "baseline", "0")
    if not (base / model).exists():
        run(stage("train_classifier", *args), base)
    work = copy(base, tmp_path / "w")
    r = interrupt(stage("train_classifier", *args), work, (work / state).exists, sig)
    check_interrupted(r, sig, work / model)
    resumed = run(stage("train_classifier", *args), work)
    assert "simple_cnn-baseline-seed0: resuming from" in resumed.stdout
    assert (work / model).read_bytes() == (base / model).read_bytes()
    assert (work / "plots/classifier/simple_cnn-baseline-seed0.csv").read_bytes() == \
        (base / "plots/classifier/simple_cnn-baseline-seed0.csv").read_bytes()
