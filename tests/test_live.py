"""DVCLive in the training and generation stages: the live files as DVC reads them, a resumed run's curve without a
gap or a repeat, and outputs byte for byte the same with live logging on or off."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, prepare_data, stage_cmd, stage_env, tiny_params, write_params
from dreaming_data.live import LiveLog, cut_to

OUTPUTS = ["models/ddpm/linear/model.pt", "plots/ddpm/loss-linear.csv", "models/classifier/simple_cnn-baseline-seed0.pt",
           "plots/classifier/simple_cnn-baseline-seed0.csv", "data/generated/synthetic.npz"]


def stage(name: str, *args: str) -> list[str]:
    return stage_cmd(name, *args)


def run(cmd, cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=stage_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_cut_to_drops_what_was_logged_after_the_checkpoint(tmp_path):
    live = LiveLog("train_ddpm@x", 1)
    for step in range(1, 8):
        live.log(step, {"loss": 1 / step})
    live.close()
    folder = Path("dvclive/train_ddpm-x")
    try:
        cut_to(folder, 4)
        assert [int(r["step"]) for r in rows(folder / "plots/metrics/loss.tsv")] == [1, 2, 3, 4]
        again = LiveLog("train_ddpm@x", 1, resume_step=4)
        again.log(5, {"loss": 0.2})
        again.close()
        assert [int(r["step"]) for r in rows(folder / "plots/metrics/loss.tsv")] == [1, 2, 3, 4, 5]
    finally:
        shutil.rmtree("dvclive", ignore_errors=True)


LIVE = {"ddpm.epochs": 10, "generate.per_class": 8}


def folder(root: Path, **overrides) -> Path:
    root.mkdir()
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    write_params(root / "params.yaml", tiny_params(**LIVE | overrides))
    return root


def project(root: Path, **overrides) -> Path:
    return prepare_data(folder(root, **overrides))


@pytest.mark.slow
def test_outputs_are_the_same_with_live_logging_on_or_off(tmp_path, monkeypatch):
    """The stages in this process, as `dreaming-data quickstart --no-dvc` runs them (what a stage logs does not
    depend on how it was started)."""
    from dreaming_data.runner import run_stage
    from dreaming_data.tools.registry import stages

    made = {}
    for every in (0, 1):
        root = folder(tmp_path / f"live{every}", **{"runtime.live_every": every})
        monkeypatch.chdir(root)
        for name, kw in (("download", {}), ("train_ddpm", {"schedule": "linear"}),
                         ("train_classifier", {"arch": "simple_cnn", "variant": "baseline", "seed": 0}),
                         ("generate", {})):
            run_stage(stages()[name], "params.yaml", **kw)
        made[every] = {f: (root / f).read_bytes() for f in OUTPUTS}
        live = root / "dvclive"
        assert live.exists() == bool(every)
    assert made[0] == made[1]
    ddpm = rows(tmp_path / "live1/dvclive/train_ddpm-linear/plots/metrics/loss.tsv")
    assert [int(r["step"]) for r in ddpm] == list(range(1, len(ddpm) + 1)) and len(ddpm) == 30  # 10 epochs of 3
    epochs = rows(tmp_path / "live1/dvclive/train_ddpm-linear/plots/metrics/epoch_loss.tsv")
    assert [int(r["step"]) for r in epochs] == list(range(3, 31, 3))
    assert {p.name for p in (tmp_path / "live1/dvclive/train_classifier_simple_cnn-baseline-0/plots/metrics").iterdir()} \
        == {"train_loss.tsv", "train_acc.tsv", "val_acc.tsv", "lr.tsv"}
    gen = rows(tmp_path / "live1/dvclive/generate/plots/metrics/images_done.tsv")
    assert [float(r["images_done"]) for r in gen][-1] == 80  # 8 per class


@pytest.mark.slow
def test_a_resumed_run_continues_the_curve_without_a_gap_or_a_repeat(tmp_path):
    import torch

    root = project(tmp_path / "p", **{"ddpm.epochs": 100, "ddpm.checkpoint_minutes": 0.05, "runtime.live_every": 5})
    state = root / "checkpoints" / "train_ddpm-linear" / "state.pt"
    proc = subprocess.Popen(stage("train_ddpm", "linear"), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=stage_env())
    deadline, saved = time.monotonic() + 120, None
    while saved is None or max([0] + [int(r["step"]) for r in rows_or_none(root)]) < saved + 10:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
        if state.exists():
            saved = torch.load(state, weights_only=True)["step"]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # dies between checkpoints: it logged steps the checkpoint does not have
    proc.wait()
    logged = max(int(r["step"]) for r in rows_or_none(root))
    shutil.rmtree(root / "dvclive" / "train_ddpm-linear")  # as DVC does before it runs the stage (not persist)
    r = run(stage("train_ddpm", "linear"), root)
    resumed = int(r.stdout.split("at step ")[1].split("/")[0])
    assert resumed < logged
    steps = [int(r["step"]) for r in rows_or_none(root)]
    assert steps == list(range(5, 300 + 1, 5)), steps  # 100 epochs of 3 steps, every 5th: none twice, none missing


def rows_or_none(root: Path) -> list[dict]:
    path = root / "dvclive/train_ddpm-linear/plots/metrics/loss.tsv"
    try:
        return rows(path)
    except (FileNotFoundError, csv.Error):
        return []


def test_a_repository_without_commits_turns_live_metrics_off_in_one_line(tmp_path, monkeypatch, capsys):
    """DVCLive asks git for the current commit; in a repository with none it raised, and every training stage with
    it. The stage goes on without live metrics and says so."""
    from dreaming_data.live import LiveLog

    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    log = LiveLog("train_ddpm@linear", 10)
    log.log(10, {"loss": 1.0})
    log.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert log.live is None and err == ["train_ddpm@linear: live metrics off (SCMError: Empty git repo); the stage "
                                        "goes on without them"], err


@pytest.mark.slow
def test_a_reader_polling_the_live_files_never_sees_half_a_file(tmp_path):
    """`dvc exp show` and users' scripts read the summary while the stage writes it: polled as fast as the test can
    for the whole run, metrics.json is always valid JSON and the step table always whole rows."""
    import json

    root = project(tmp_path / "p", **{"ddpm.epochs": 30, "runtime.live_every": 1})
    live = root / "dvclive/train_ddpm-linear"
    proc = subprocess.Popen(stage("train_ddpm", "linear"), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=stage_env())
    summaries, tables, bad = 0, 0, []
    while proc.poll() is None:
        try:
            text = (live / "metrics.json").read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        try:
            summaries += "step" in json.loads(text)
        except json.JSONDecodeError:
            bad.append(text)
        try:
            table = (live / "plots/metrics/loss.tsv").read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        tables += 1
        lines = table.splitlines(keepends=True)
        bad += [line for line in lines if not line.endswith("\n") or line.count("\t") != lines[0].count("\t")]
    assert proc.wait() == 0, proc.stderr.read()[-2000:]
    assert not bad, bad[:3]
    assert summaries > 50 and tables > 50, (summaries, tables)  # it really read the files while they were written


def test_a_classifier_resumed_from_an_epochs_checkpoint_keeps_that_epochs_row(tmp_path, monkeypatch):
    """A classifier saves at every epoch's end. A run that dies after such a checkpoint resumes from it with the
    live table as the checkpoint kept it: that epoch's row must be in it (it was saved before the row was logged,
    and the resumed curve missed it)."""
    import numpy as np

    from dreaming_data.checkpoints import ResumeDir
    from dreaming_data.classifier_training import train_classifier, training_identity
    from dreaming_data.config import parse_params
    from dreaming_data.data import load_digits

    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "t"],
                   check=True)
    p = parse_params(tiny_params(**{"classifier.simple_cnn.batch_size": 16}))
    recipe = p.classifier.simple_cnn
    digits, _ = load_digits(8, seed=0)  # 80 training images at batch 16: 5 steps per epoch
    train, val = (digits.subset(np.concatenate([np.flatnonzero(digits.y == c)[:n] for c in range(10)])) for n in (8, 3))
    steps, live = 13, tmp_path / "dvclive/train_classifier-t/plots/metrics/val_acc.tsv"
    resume = lambda: ResumeDir(tmp_path / "ckpt", training_identity("simple_cnn", recipe, train, val, 0, steps), "t")  # noqa: E731

    def die_after_the_first_epoch(step):
        if step == 6:
            raise SystemExit("killed")  # what a kill leaves: the checkpoint of step 5 and a row logged after it

    with pytest.raises(SystemExit):
        train_classifier("simple_cnn", recipe, p.runtime, train, val, 0, steps, resume(), on_step=die_after_the_first_epoch,
                         live_stage="train_classifier-t")
    assert torch_step(tmp_path / "ckpt" / "state.pt") == 5
    shutil.rmtree(tmp_path / "dvclive")  # as DVC does before it runs the stage again
    train_classifier("simple_cnn", recipe, p.runtime, train, val, 0, steps, resume(), live_stage="train_classifier-t")
    assert [int(r["step"]) for r in rows(live)] == [5, 10, 13]


def torch_step(path: Path) -> int:
    import torch

    return torch.load(path, weights_only=True)["step"]
