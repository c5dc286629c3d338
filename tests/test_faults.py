"""Faults a user can cause, each a one-line error with a non-zero exit and nothing half-written or mismatched left:
diverging training, models that do not match the params or the stage, data with one class, a full disk, malformed
command lines, and the edge cases around them. Real stage processes on tiny digits configurations."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, prepare_data, stage_cmd, stage_env, tiny_params, write_params

SHORT = {"ddpm.epochs": 2}


def stage(root: Path, name: str, *args: str, prefix: str = "", ok: bool = False) -> subprocess.CompletedProcess:
    cmd = f"{prefix}{' '.join(stage_cmd(name, *args))}"
    r = subprocess.run(["bash", "-c", cmd], cwd=root, capture_output=True, text=True, env=stage_env(), timeout=600)
    if ok:
        assert r.returncode == 0, r.stderr[-2000:]
    return r


def one_line(r: subprocess.CompletedProcess, *parts: str) -> str:
    """The stage failed with exactly one line on stderr (progress bars aside) that says ``parts``."""
    lines = [line for line in r.stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert all(p in lines[0] for p in parts), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A project with the data and a linear-schedule DDPM (2 epochs)."""
    root = tmp_path_factory.mktemp("faults")
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    write_params(root / "params.yaml", tiny_params(**SHORT))
    prepare_data(root)
    stage(root, "train_ddpm", "linear", ok=True)
    return root


def project(trained: Path, dest: Path, **overrides) -> Path:
    shutil.copytree(trained, dest)
    write_params(dest / "params.yaml", tiny_params(**SHORT | overrides))
    return dest


@pytest.mark.slow
def test_a_diverging_ddpm_stops_with_one_line_and_writes_no_model(trained, tmp_path):
    root = project(trained, tmp_path / "p", **{"ddpm.lr": 10.0, "ddpm.grad_clip": 1e6, "ddpm.epochs": 20})
    model = root / "models/ddpm/linear/model.pt"
    before = model.read_bytes()
    r = stage(root, "train_ddpm", "linear")
    one_line(r, "ddpm linear: the training loss became nan", "lower ddpm.lr")
    assert model.read_bytes() == before and not list(model.parent.glob(".*.tmp"))  # the old model stays


@pytest.mark.slow
def test_models_that_do_not_match_the_params_or_the_stage(trained, tmp_path):
    root = project(trained, tmp_path / "p")
    (root / "models/ddpm/cosine").mkdir()
    shutil.copy(root / "models/ddpm/linear/model.pt", root / "models/ddpm/cosine/model.pt")
    one_line(stage(root, "sample_grid", "cosine", "10"), "models/ddpm/cosine/model.pt: a model of the linear schedule",
             "dvc repro train_ddpm@cosine")
    write_params(root / "params.yaml", tiny_params(**SHORT | {"diffusion.timesteps": 100, "sample.steps": [100, 10]}))
    one_line(stage(root, "sample_grid", "linear", "10"),
             "models/ddpm/linear/model.pt: trained with diffusion.timesteps 40, but the params say 100")
    write_params(root / "params.yaml", tiny_params(**SHORT | {"unet.channels": 32}))
    one_line(stage(root, "generate"), "trained with unet.channels 16, but the params say 32")
    assert not (root / "plots/samples/cosine-10.png").exists() and not (root / "data/generated").exists()


@pytest.mark.slow
def test_a_model_with_nan_weights_is_refused_before_it_draws_black_images(trained, tmp_path):
    root = project(trained, tmp_path / "p")
    path = root / "models/ddpm/linear/model.pt"
    state = torch.load(path, weights_only=True)
    next(iter(state["ema"].values())).fill_(float("nan"))
    torch.save(state, path)
    one_line(stage(root, "generate"), "models/ddpm/linear/model.pt: weights", "hold NaN or infinite values")
    assert not (root / "data/generated/synthetic.npz").exists() and not (root / "metrics/generate.json").exists()


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_file_and_stage_and_leaves_the_old_outputs(trained, tmp_path):
    """RLIMIT_FSIZE (ulimit -f, in 1 KiB blocks) makes any write past it fail with EFBIG, as a full disk does."""
    root = project(trained, tmp_path / "p")
    old = {p: p.read_bytes() for p in (root / "data").rglob("*.npz")} | {root / "metrics/data.json":
                                                                        (root / "metrics/data.json").read_bytes()}
    write_params(root / "params.yaml", tiny_params(**SHORT | {"data.val_size": 60}))  # other outputs
    r = stage(root, "download", prefix="ulimit -f 10; ")
    one_line(r, "download: data/", "cannot be written (File too large)")
    assert {p: p.read_bytes() for p in old} == old  # every old output untouched: none of the new set went in
    assert not list(root.rglob(".*.tmp"))
    r = stage(root, "train_ddpm", "linear", prefix="ulimit -f 10; ")
    one_line(r, "train_ddpm@linear: models/ddpm/linear/model.pt: cannot be written (File too large)",
             "free disk space and run it again")


@pytest.mark.slow
def test_a_full_disk_at_generations_last_write_keeps_its_chunks_and_the_rerun_is_the_same(trained, tmp_path):
    """3 KiB: every chunk file fits, synthetic.npz does not. The line names it and says the chunks are kept; the
    rerun without the cap resumes from them and writes what an uninterrupted run writes."""
    whole = project(trained, tmp_path / "whole")
    stage(whole, "generate", ok=True)
    root = project(trained, tmp_path / "p")
    r = stage(root, "generate", prefix="ulimit -f 3; ")
    one_line(r, "generate: data/generated/synthetic.npz: cannot be written (File too large); free disk space and "
                "run it again: checkpoints/generate/ is kept and the rerun resumes from it")
    assert not (root / "data/generated/synthetic.npz").exists()
    again = stage(root, "generate", ok=True)
    assert "resuming" in again.stdout
    assert (root / "data/generated/synthetic.npz").read_bytes() == (whole / "data/generated/synthetic.npz").read_bytes()


@pytest.mark.slow
def test_a_single_class_archive_is_refused(tmp_path):
    import tarfile

    from PIL import Image

    for split in ("train", "test"):
        (tmp_path / "f" / split / "cat").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / "f" / split / "cat" / f"{i}.png")
    with tarfile.open(tmp_path / "one.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "f", arcname="f")
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    write_params(tmp_path / "params.yaml", tiny_params(**{"data.source": "folder", "data.path": "one.tar.gz",
                                                          "data.val_size": 1, "data.train_per_class": None}))
    one_line(stage(tmp_path, "download"), "1 class (cat); a classifier needs at least 2")
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_resnet18_trains_with_a_last_batch_of_one_image(trained, tmp_path):
    """100 real images at batch 99: the last image joins the batch before (BatchNorm cannot train on one)."""
    root = project(trained, tmp_path / "p", **{"classifier.resnet18.batch_size": 99, "classifier.resnet18.epochs": 1})
    stage(root, "train_classifier", "resnet18", "baseline", "0", ok=True)
    import json

    assert json.loads((root / "metrics/train/resnet18-baseline-seed0.json").read_text())["optimizer_steps"] == 1


@pytest.mark.slow
def test_a_refused_checkpoint_is_one_line_without_torchs_warning(trained, tmp_path):
    root = project(trained, tmp_path / "p")  # a finished run leaves no checkpoint: make one of another kind
    from dreaming_data.checkpoints import ResumeDir
    from dreaming_data.config import load_params
    from dreaming_data.ddpm_training import training_identity
    from dreaming_data.io import load_images
    from dreaming_data.runtime import numerics, resolve_device

    p = load_params(root / "params.yaml")
    train = load_images(root / "data/train/baseline.npz")
    resume = ResumeDir(root / "checkpoints/train_ddpm-linear", training_identity(p, "linear", train),
                       "train_ddpm@linear")
    resume.extend(numerics=numerics(resolve_device(p.runtime), p.runtime))
    resume.open()
    torch.save({"format": "dreaming-data checkpoint", "x": Evil()}, resume.path("state.pt"))
    r = stage(root, "train_ddpm", "linear", ok=True)
    assert "starting fresh" in r.stdout and "Warning" not in r.stderr and "warn" not in r.stderr, r.stderr[-2000:]


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


# ---------------------------------------------------------------------------------------------------------
# The command line


@pytest.mark.parametrize("args, message", [
    (["results", "render", "--root", "resluts"], "resluts: no such folder"),
    (["quickstart", "--no-dvc", "-S", "ddpm.lr=[1, 2"], "--set ddpm.lr=[1, 2: not valid YAML"),
    (["quickstart", "--no-dvc", "-S", "ddpm.learning_rate=1"], "override ddpm.learning_rate: no such key"),
    (["quickstart", "-S", "ddpm.lr=1e-3", "--archive", "x.tgz"], "--archive: only without DVC"),
    (["check", "--params", "nothere.yaml"], "nothere.yaml: no such file"),
    (["results", "unpack", "nothere.tgz"], "nothere.tgz: no such file"),
])
def test_command_line_mistakes_are_one_line(workdir, args, message):
    from typer.testing import CliRunner

    from dreaming_data.cli import app

    from dreaming_data.tools.results import BEGIN, END

    shutil.copy(ROOT / "params.yaml", workdir / "params.yaml")
    (workdir / "docs").mkdir()
    for page in ("README.md", "docs/results.md"):
        (workdir / page).write_text(f"{BEGIN}\n{END}\n")
    r = CliRunner().invoke(app, args)
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and lines == [f"error: {lines[0][7:]}"] and message in lines[0], r.output


@pytest.mark.slow
def test_plots_of_a_fresh_clone_say_which_are_missing(workdir, monkeypatch):
    import os

    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    shutil.copy(ROOT / "params.yaml", workdir / "params.yaml")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=workdir, check=True, capture_output=True)
    plots = lambda: subprocess.run([sys.executable, "-m", "dreaming_data.cli", "plots"], cwd=workdir,  # noqa: E731
                                   capture_output=True, text=True, env=stage_env())
    r = plots()
    assert r.returncode == 2 and "no plot drawn: none of their files exist yet" in r.stderr, r.stderr
    (workdir / "plots" / "ddpm").mkdir(parents=True)
    for s in ("linear", "cosine"):
        (workdir / "plots" / "ddpm" / f"loss-{s}.csv").write_text("epoch,loss\n1,0.5\n")
    r = plots()
    missing = r.stdout.split("their files missing (run the study first): ")[-1]
    assert r.returncode == 0 and "1 of 15 plots" in r.stdout and "plots/samples" in missing, r.stdout + r.stderr
    assert "DDPM training loss per epoch" not in missing


def test_a_broken_archive_is_one_line_without_reprs(tmp_path):
    from dreaming_data.data import read_image_folder
    from dreaming_data.errors import UserError

    (tmp_path / "bad.tar.gz").write_bytes(b"not an archive at all")
    with pytest.raises(UserError) as err:
        read_image_folder(tmp_path / "bad.tar.gz", 32)
    assert str(err.value) == f"{tmp_path / 'bad.tar.gz'}: not a tar archive (plain, gzip, bz2 or xz)"


# ---------------------------------------------------------------------------------------------------------
# A long run on the machine at hand says so


def test_a_bar_projected_past_an_hour_says_so_once(capsys, monkeypatch):
    import time

    from dreaming_data import runtime

    clock = iter([0.0, 6.0, 7.0, 8.0, 9.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    bar = runtime.progress_bar(total=10_000, desc="ddpm linear", unit="step")
    for _ in range(3):
        bar.update(1)
    bar.close()
    notes = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if "note:" in line]
    assert len(notes) == 1 and "ddpm linear: about 16.7 h to go on cpu" in notes[0]
    assert "`dreaming-data quickstart`" in notes[0] and "-S runtime.device=cuda" in notes[0]
    clock = iter([0.0, 6.0])
    short = runtime.progress_bar(total=100, desc="generate")  # 10 minutes: nothing to say
    short.update(1)
    short.close()
    assert "note:" not in capsys.readouterr().err


@pytest.mark.slow
def test_the_default_ddpm_on_a_cpu_prints_its_projection(tmp_path):
    """params.yaml's own DDPM (35.7M parameters, 100 epochs) on 1,000 digits at 32x32, at batch 8 so that a step
    takes seconds, not half a minute: about ten hours on 2 cores; the stage says so a few seconds in. Stopped once it
    has."""
    import os
    import signal
    import time

    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    from conftest import default_params
    from dreaming_data.overrides import apply_overrides

    write_params(tmp_path / "params.yaml", apply_overrides(default_params(), {
        "data.source": "digits", "data.val_size": 50, "data.train_per_class": 100, "ddpm.batch_size": 8,
        "runtime.num_workers": 2}))
    prepare_data(tmp_path)
    proc = subprocess.Popen(stage_cmd("train_ddpm", "linear"), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=stage_env(),
                            start_new_session=True)
    deadline, err = time.monotonic() + 240, ""
    try:
        while "note:" not in err and time.monotonic() < deadline and proc.poll() is None:
            err += os.read(proc.stderr.fileno(), 65536).decode(errors="replace")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    note = next(line for line in err.replace("\r", "\n").splitlines() if "note:" in line)
    assert "ddpm linear: about" in note and " h to go on cpu (2 threads)" in note and "quickstart" in note


def test_a_finished_stage_leaves_with_its_exit_handlers_run_and_its_output_flushed(tmp_path):
    """runner.leave skips the interpreter's teardown (os._exit) after a stage succeeded: what the process printed
    into a pipe, and what its exit handlers write, must still come out, with exit status 0."""
    script = ("import atexit, pathlib, sys\n"
              "from dreaming_data.runner import leave\n"
              f"atexit.register(lambda: pathlib.Path({str(tmp_path / 'handler')!r}).write_text('ran'))\n"
              "print('stdout, buffered', end='')\n"
              "print('stderr', file=sys.stderr, end='')\n"
              "leave()\n"
              "print('never')\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=stage_env(), timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (0, "stdout, buffered", "stderr")
    assert (tmp_path / "handler").read_text() == "ran"
